"""``kind: digits``: classify scikit-learn's bundled 8×8 handwritten digits (1,797 images, intensities 0..16,
10 classes), a task beyond modular arithmetic on which grokking can be induced the Omnigrok way (a large
initialisation scale, a small training set, weight decay).

The data ship inside the scikit-learn wheel (``sklearn.datasets.load_digits`` reads a CSV from the installed
package): nothing is downloaded, at install time or at run time.

**Tokens.** An image is a sequence of its 64 pixels in row-major order, each pixel one token: its intensity ``0..16``
(the number tokens of ``Vocabulary(17, (2,))``), and the class (``0..9``, ``answer_range`` 10) is answered at the
last position, as with the bit tasks. So every existing model reads the task unchanged (the ``mlp`` through shared
intensity embeddings; with ``positional_tokens`` one token per (pixel, intensity), ``17 * i + v``), and the model kind
made for it, ``pixel_mlp`` (:mod:`grokkit.models.pixel_mlp`), reads the token ids back as intensities (``v / 16``): the
MLP over pixels of Omnigrok's MNIST experiment. Keeping the pixels as tokens, rather than adding a float input path,
leaves the engine, the model files (token layout), the distillation recipe and the sweeps as they are.

**The distribution shift** (the analogue of a change of modulus). ``shift`` translates every image ``shift`` pixels to
the right: the same rule (which digit it is) on a different input distribution. With ``shift_mode: roll`` (default)
the columns wrap around, so the shifted images are a fixed permutation of the pixels: no information is lost, and
for an MLP with an i.i.d. initialisation the shifted task is exactly as hard from scratch as the unshifted one (its
first layer is exchangeable over inputs). ``shift_mode: translate`` fills the vacated columns with 0 instead and
drops what leaves the frame. A teacher trained on ``shift: 0`` is partly right on shifted images (digits have blank
margins, so a shift of one column mostly moves ink to neighbouring pixels), less so as ``shift`` grows: ``shift`` is
the distance, as ``|P1 - P2|`` is for moduli.

**Splits.** ``subset`` picks the images a member draws from: ``all`` 1,797, or one of two fixed disjoint halves
``a`` (899) and ``b`` (898), drawn once by a constant seed, so that a teacher trained on half ``a`` has never seen,
shifted or not, any image of a student on half ``b``. Each member's split seed permutes its subset; the first
``n_test`` images are its test set, the next ``n_val`` its validation set, the next ``n_train`` its training set
(``n_test: null``: every image left after train and validation). Test and validation sets do not depend on
``n_train``, and a larger ``n_train`` extends a smaller one's training set (nested), so a sweep over ``n_train``
compares training sets, not test sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import torch
from pydantic import Field, model_validator

from grokkit.tasks.base import TASKS, Examples, Split, TaskSpec, Vocabulary

#: intensities of the 8×8 digits: 0..16
LEVELS = 17
SIDE = 8
N_PIXELS = SIDE * SIDE
N_CLASSES = 10
N_IMAGES = 1797
#: the seed of the two fixed halves (``subset: a`` / ``b``); a constant, so every run sees the same halves
SUBSET_SEED = 20_240_817


def digits_vocabulary(positional_tokens: bool = False) -> Vocabulary:
    """Tokens ``0..16`` are the intensities (and ``0..9`` the classes), or with positional tokens ``17 * i + v`` for
    pixel ``i`` of intensity ``v``."""
    return Vocabulary(LEVELS * N_PIXELS if positional_tokens else LEVELS, (2,))


@lru_cache(maxsize=1)
def _load() -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled images ``[1797, 8, 8]`` (long, 0..16) and labels ``[1797]``, read from the scikit-learn wheel."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.as_tensor(data.images, dtype=torch.float64).round().long()
    return images, torch.as_tensor(data.target, dtype=torch.long)


def load_images() -> tuple[torch.Tensor, torch.Tensor]:
    """Copies of the bundled images ``[1797, 8, 8]`` and labels ``[1797]``."""
    images, labels = _load()
    return images.clone(), labels.clone()


def shift_images(images: torch.Tensor, shift: int, mode: str = "roll") -> torch.Tensor:
    """``images [..., 8, 8]`` moved ``shift`` pixels to the right: cyclically (``roll``) or with zeros coming in from
    the left and what leaves the frame dropped (``translate``). ``shift`` 0 returns the images unchanged."""
    if shift == 0:
        return images
    if mode == "roll":
        return torch.roll(images, shifts=shift, dims=-1)
    if mode == "translate":
        out = torch.zeros_like(images)
        if shift < images.shape[-1]:
            out[..., shift:] = images[..., : images.shape[-1] - shift]
        return out
    raise ValueError(f"shift_mode must be roll or translate, got {mode!r}")


def subset_indices(subset: str) -> torch.Tensor:
    """The image indices of ``subset``: all 1,797, or one of the two fixed disjoint halves ``a`` / ``b``."""
    if subset == "all":
        return torch.arange(N_IMAGES)
    order = torch.randperm(N_IMAGES, generator=torch.Generator().manual_seed(SUBSET_SEED))
    half = (N_IMAGES + 1) // 2
    if subset == "a":
        return order[:half].sort().values
    if subset == "b":
        return order[half:].sort().values
    raise ValueError(f"subset must be all, a or b, got {subset!r}")


@dataclass(frozen=True)
class DigitsTask:
    """The 8×8 digits as 64-token sequences, shifted by ``shift`` pixels; sizes per member (see the module doc)."""

    n_train: int
    n_val: int = 0
    n_test: int | None = None
    shift: int = 0
    shift_mode: str = "roll"
    subset: str = "all"
    positional_tokens: bool = False

    @property
    def name(self) -> str:
        tail = "" if self.shift == 0 else f"_shift{self.shift}" + ("" if self.shift_mode == "roll" else "t")
        return f"digits{'' if self.subset == 'all' else self.subset}{tail}"

    @property
    def answer_range(self) -> int:
        return N_CLASSES

    @property
    def sequence_length(self) -> int:
        return N_PIXELS

    @property
    def final_position(self) -> int:
        return N_PIXELS - 1

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """``images [n, 8, 8]`` -> tokens ``[n, 64]`` (shifted, row-major, positional if asked)."""
        flat = shift_images(images, self.shift, self.shift_mode).reshape(len(images), N_PIXELS)
        return flat + LEVELS * torch.arange(N_PIXELS) if self.positional_tokens else flat

    def split(self, seed: int) -> Split:
        images, labels = _load()
        pool = subset_indices(self.subset)
        order = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))]
        n_test = len(pool) - self.n_val - self.n_train if self.n_test is None else self.n_test
        if n_test < 1 or n_test + self.n_val + self.n_train > len(pool):
            raise ValueError(f"n_train={self.n_train} + n_val={self.n_val} + n_test={self.n_test} do not fit in the "
                             f"{len(pool)} images of subset {self.subset!r} (each needs >= 1 test image)")
        test_i = order[:n_test]
        val_i = order[n_test : n_test + self.n_val]
        train_i = order[n_test + self.n_val : n_test + self.n_val + self.n_train]

        def examples(index: torch.Tensor) -> Examples:
            y = labels[index]
            return Examples(self.tokens(images[index]), y, torch.full_like(y, N_CLASSES))

        return Split(examples(train_i), examples(test_i), examples(val_i) if self.n_val else None)


@TASKS.register("digits")
class DigitsConfig(TaskSpec):
    """``kind: digits``: scikit-learn's bundled 8×8 digits, 64 pixel tokens, class at the last position;
    ``n_train``/``n_val``/``n_test`` images per member from ``subset``, translated ``shift`` pixels right."""

    kind: Literal["digits"]
    n_train: int = Field(..., ge=1, description="training images per member")
    n_val: int = Field(0, ge=0, description="validation images per member, disjoint from train and test")
    n_test: int | None = Field(None, ge=1, description="test images per member; None: every image left")
    shift: int = Field(0, ge=0, le=SIDE - 1, description="translate every image this many pixels to the right")
    shift_mode: Literal["roll", "translate"] = Field(
        "roll", description="roll: columns wrap around (a pixel permutation); translate: zeros come in")
    subset: Literal["all", "a", "b"] = Field(
        "all", description="all 1797 images, or one of two fixed disjoint halves (a: 899, b: 898)")
    positional_tokens: bool = Field(False, description="token 17*i+v (one W_E row per pixel and intensity) "
                                    "instead of the intensity v")

    @model_validator(mode="after")
    def _sizes_fit(self) -> DigitsConfig:
        available = len(subset_indices(self.subset))
        used = self.n_train + self.n_val + (self.n_test if self.n_test is not None else 1)
        if used > available:
            raise ValueError(f"n_train + n_val + n_test = {used} images do not exist in subset {self.subset!r} "
                             f"({available} images)")
        return self

    @property
    def name(self) -> str:
        return self.build().name

    def build(self) -> DigitsTask:
        return DigitsTask(self.n_train, self.n_val, self.n_test, self.shift, self.shift_mode, self.subset,
                          self.positional_tokens)

    def own_vocabulary(self) -> Vocabulary:
        return digits_vocabulary(self.positional_tokens)

    def split(self, vocab: Vocabulary, seed: int, train_fraction: float | None = None) -> Split:
        return self.build().split(seed)

    def describe_data(self) -> str:
        return f"{self.n_train} training images"

    def example_counts(self, train_fraction: float | None = None) -> tuple[int, int, int]:
        n_test = self.n_test if self.n_test is not None else N_IMAGES - self.n_train - self.n_val
        return self.n_train, n_test, self.n_val
