"""Progress measures for grokking on modular addition (Nanda et al. 2023, "Progress measures for grokking via
mechanistic interpretability"), plus the softmax-collapse fraction of Prieto et al. (2025) and weight norms.

For a model trained on ``(a op b) mod p`` (``op`` add or sub; the run's ``task``, whose train pairs are the ones each
member trained on — for multi-task recipes only that first task is analysed), with inputs ``[a, b, op, P]`` over the
run's shared vocabulary and answers read at one position (``final`` unless told otherwise):

* **Fourier norms of the embedding.** ``W_E`` restricted to the number tokens ``0..p-1`` is written in the orthonormal
  Fourier basis of Z_p (the constant, then ``cos(2 pi k x / p)`` and ``sin(2 pi k x / p)`` for ``k = 1..p//2``, each of
  unit norm). The norm of frequency ``k`` is the L2 norm of its cos and sin rows together.
* **Key frequencies** (the rule, :func:`key_frequencies`): sort frequencies ``1..p//2`` by squared norm, largest
  first; find the largest ratio between consecutive squared norms among the first half of the list; the key
  frequencies are the ones before that gap, if the gap is at least ``min_gap`` (default 1.5), else there are none
  (the embedding has no sparse Fourier structure: an untrained or memorising model). A grokked model puts most of its
  embedding on a handful of frequencies, so the gap after them is large (>= 2 just after grokking, far larger later).
* **Restricted and excluded loss.** The logits over the answer classes ``c = 0..p-1`` are computed for every pair
  ``(a, b)`` — a ``p x p x p`` array — and projected onto the directions ``cos(w_k (s - c))`` and ``sin(w_k (s - c))``
  (``s = a + b``, or ``a - b`` for subtraction; ``w_k = 2 pi k / p``) of the key frequencies; these directions are
  orthogonal over the ``(a, b, c)`` cube. *Restricted* logits keep only those components plus the class bias (the mean
  over ``(a, b)`` of each class's logit, as in Nanda et al.'s code); *excluded* logits are the logits minus those
  components. Both losses are the softmax cross-entropy over the ``p`` answer classes on the member's **training**
  pairs, in float64. A grokked model has a restricted loss at or below its full loss and an excluded loss far above
  it. (Nanda et al.'s code builds the restricted logits by projecting the MLP activations onto ``cos/sin(w_k (a+b))``
  and mapping them through ``W_out`` and ``W_U``; projecting the logits themselves, as their text describes, works
  for any depth and keeps the restricted and excluded losses exact complements.)
* **Softmax collapse** (Prieto et al.): the fraction of training rows whose float32 sum ``sum_c exp(z_c - max z)`` is
  exactly 1, i.e. every other class underflows next to the largest logit, so the gradient of the cross-entropy
  vanishes. Computed over the classes the run's loss normalises over (the answer range unless the run's
  ``loss.restrict_to_answer_range`` is false).
* **Weight norms**: L2 norm of each parameter group (``embed``, ``pos_embed``, ``blocks.i.attn``, ``blocks.i.mlp``,
  LayerNorms, ``unembed``) and of all weights (the ``weight_norm`` of ``metrics.csv``), and the sum of squared weights.

* **Sparsity of the spectrum**: the Gini coefficient of the Fourier norms (0: every frequency alike; towards 1: the
  embedding on a few frequencies).

A run directory keeps the final model (``model.safetensors``), the weight snapshots of ``training.snapshot_every`` /
``snapshot_steps`` (``snapshots/``), and, while it is unfinished, the engine's ``checkpoint.safetensors``.
:func:`analyze_run` analyses all of them. Over time (snapshots), the restricted and excluded losses use each member's
key frequencies **of its last model** (as Nanda et al. do with the final model's), so the curves measure how much of
the final algorithm is present at each step; :func:`over_time` tabulates every measure per snapshot and member, and
:func:`phases` places the phase boundaries (rules in its docstring).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grokkit.errors import InputError
from grokkit.losses import collapsed_rows
from grokkit.models import EnsembleTransformer

#: operations whose answer depends on (a, b) through one residue s(a, b); the Fourier analysis applies to these
FOURIER_OPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b}
MIN_GAP = 1.5


class AnalysisError(InputError):
    """A run directory that cannot be analysed: the message says why."""


# ------------------------------------------------------------------------------------------------ Fourier basis
def fourier_basis(p: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, list[tuple[int, str]]]:
    """Orthonormal Fourier basis of Z_p: ``basis [p, p]`` (rows are basis vectors over ``x = 0..p-1``) and the label
    ``(frequency, "const" | "cos" | "sin")`` of each row. For even ``p`` frequency ``p/2`` has a cos row only."""
    x = torch.arange(p, dtype=dtype)
    rows = [torch.ones(p, dtype=dtype)]
    labels: list[tuple[int, str]] = [(0, "const")]
    for k in range(1, p // 2 + 1):
        rows.append(torch.cos(2 * math.pi * k * x / p))
        labels.append((k, "cos"))
        if 2 * k != p:
            rows.append(torch.sin(2 * math.pi * k * x / p))
            labels.append((k, "sin"))
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True), labels


def fourier_norms(embedding: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Norm of each frequency ``k = 1..p//2`` of ``embedding [p, d_model]`` (rows are the numbers ``0..p-1``):
    ``(norms [p//2], constant_norm)``. ``norms[k-1]`` belongs to frequency ``k``."""
    p = embedding.shape[0]
    basis, labels = fourier_basis(p)
    sq = (basis @ embedding.detach().double().cpu()).pow(2).sum(1)
    per_freq = torch.zeros(p // 2, dtype=torch.float64)
    for (k, kind), v in zip(labels, sq):
        if kind != "const":
            per_freq[k - 1] += v
    return per_freq.sqrt(), float(sq[0].sqrt())


@dataclass(frozen=True)
class KeyFrequencies:
    frequencies: list[int]  # in decreasing order of norm
    gap: float  # squared-norm ratio across the gap that was found (the largest in the first half)
    energy_fraction: float  # share of the non-constant squared norm held by the key frequencies


def gini(values: torch.Tensor) -> float:
    """The Gini coefficient of non-negative ``values`` (0: all equal; (n-1)/n: one non-zero)."""
    v = values.double().flatten().sort().values
    n, total = len(v), float(v.sum())
    if n == 0 or total <= 0:
        return 0.0
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    return float((2 * (ranks * v).sum()) / (n * total) - (n + 1) / n)


def key_frequencies(norms: torch.Tensor, min_gap: float = MIN_GAP) -> KeyFrequencies:
    """The key frequencies of per-frequency ``norms [p//2]`` (``norms[k-1]`` is frequency ``k``): the frequencies
    before the largest ratio between consecutive squared norms (sorted decreasingly) within the first half of the
    list, if that ratio is at least ``min_gap``; none otherwise. See the module docstring."""
    sq = norms.double().pow(2)
    order = torch.argsort(sq, descending=True)
    ranked = sq[order]
    half = max(1, len(ranked) // 2)
    if len(ranked) < 2:
        return KeyFrequencies([1] if len(ranked) else [], math.inf, 1.0)
    ratios = ranked[:half] / ranked[1:half + 1].clamp(min=1e-300)
    m = int(torch.argmax(ratios)) + 1
    gap = float(ratios[m - 1])
    if gap < min_gap:
        return KeyFrequencies([], gap, 0.0)
    keys = [int(i) + 1 for i in order[:m]]
    total = float(sq.sum())
    return KeyFrequencies(keys, gap, float(ranked[:m].sum()) / total if total > 0 else 0.0)


# ------------------------------------------------------------------------------------------------ logit decomposition
def key_directions(p: int, freqs: list[int], op: str = "add") -> torch.Tensor:
    """Unit directions ``cos(w_k (s - c))`` and ``sin(w_k (s - c))`` over the ``(a, b, c)`` cube for the key
    frequencies: ``[n_dirs, p, p, p]`` (float64), mutually orthogonal. ``s = a + b`` (add) or ``a - b`` (sub)."""
    if op not in FOURIER_OPS:
        raise AnalysisError(f"the Fourier progress measures need op add or sub, not {op!r}")
    a = torch.arange(p, dtype=torch.float64).view(p, 1, 1)
    b = torch.arange(p, dtype=torch.float64).view(1, p, 1)
    c = torch.arange(p, dtype=torch.float64).view(1, 1, p)
    s = FOURIER_OPS[op](a, b)
    dirs = []
    for k in freqs:
        phase = 2 * math.pi * k * (s - c) / p
        dirs.append(torch.cos(phase))
        if 2 * k != p:
            dirs.append(torch.sin(phase))
    if not dirs:
        return torch.zeros(0, p, p, p, dtype=torch.float64)
    d = torch.stack(dirs)
    return d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def decompose_logits(logits: torch.Tensor, freqs: list[int], op: str = "add") -> tuple[torch.Tensor, torch.Tensor]:
    """``(restricted, excluded)`` logits from ``logits [p, p, p]`` over ``(a, b, c)``; see the module docstring."""
    logits = logits.double()
    p = logits.shape[0]
    if logits.shape != (p, p, p):
        raise ValueError(f"logits must be [p, p, p] over (a, b, c), got {list(logits.shape)}")
    dirs = key_directions(p, freqs, op)
    coef = dirs.flatten(1) @ logits.flatten()
    key_part = (coef.view(-1, 1, 1, 1) * dirs).sum(0) if len(dirs) else torch.zeros_like(logits)
    class_bias = logits.mean(dim=(0, 1), keepdim=True)
    return class_bias + key_part, logits - key_part


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean softmax cross-entropy in float64 of ``logits [n, C]`` against ``labels [n]``."""
    return float(torch.nn.functional.cross_entropy(logits.double(), labels))


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels).double().mean())


def softmax_collapse_fraction(logits: torch.Tensor) -> float:
    """Fraction of rows of ``logits [n, C]`` whose float32 ``sum_c exp(z_c - max z)`` equals exactly 1."""
    return float(collapsed_rows(logits).double().mean())


# ------------------------------------------------------------------------------------------------ weight norms
def parameter_group(name: str) -> str:
    """``embed.W_E`` -> ``embed``; ``blocks.0.attn.W_Q`` -> ``blocks.0.attn``: the name without the weight's own."""
    return name.rsplit(".", 1)[0]


def weight_norms(state: dict[str, torch.Tensor]) -> dict[str, float]:
    """L2 norm of each parameter group of one member's ``state`` (name -> tensor), plus ``total`` (all weights) and
    ``total_squared`` (the sum of squared weights, Nanda et al.'s measure)."""
    sq: dict[str, float] = {}
    for name, t in state.items():
        g = parameter_group(name)
        sq[g] = sq.get(g, 0.0) + float(t.detach().double().pow(2).sum())
    out = {g: math.sqrt(v) for g, v in sq.items()}
    total = sum(sq.values())
    out["total"] = math.sqrt(total)
    out["total_squared"] = total
    return out


# ------------------------------------------------------------------------------------------------ one model
@torch.no_grad()
def grid_logits(model: EnsembleTransformer, vocab: Any, op: str, p: int, position: int) -> torch.Tensor:
    """Logits of every member at ``position`` for every pair: ``[K, p, p, d_vocab_out]`` (``[a, b]`` row-major)."""
    from grokkit.tasks import ModularTask

    tokens, _ = ModularTask(op, p).all_examples(vocab)
    if len(tokens) != p * p:
        raise AnalysisError(f"op {op!r} mod {p} is not defined on every pair; the Fourier analysis needs all pairs")
    k = model.n_members
    device = next(model.parameters()).device
    logits = model(tokens.to(device).unsqueeze(0).expand(k, -1, -1).contiguous(), [position])[:, :, 0]
    return logits.view(k, p, p, -1).cpu()


@torch.no_grad()
def analyze_member(model: EnsembleTransformer, member: int, grid: torch.Tensor, op: str, p: int,
                   train_pairs: torch.Tensor, test_pairs: torch.Tensor, collapse_classes: int,
                   min_gap: float = MIN_GAP, key_freqs: list[int] | None = None) -> dict[str, Any]:
    """Every measure for one member. ``grid [p, p, C]``: the member's logits over all pairs; ``train_pairs``,
    ``test_pairs [n, 2]``: its ``(a, b)`` rows; ``collapse_classes``: how many classes the softmax-collapse fraction
    normalises over. ``key_freqs`` overrides the key-frequency rule."""
    norms, const = fourier_norms(model.embed.W_E[member, :p])
    found = key_frequencies(norms, min_gap)
    if key_freqs is not None:
        total = float(norms.pow(2).sum())
        share = float(sum(norms[k - 1] ** 2 for k in key_freqs)) / total if total > 0 else 0.0
        found = KeyFrequencies(list(key_freqs), math.nan, share)
    answer = grid[..., :p].double()
    restricted, excluded = decompose_logits(answer, found.frequencies, op)
    s = FOURIER_OPS[op]

    def rows(x: torch.Tensor, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = pairs[:, 0], pairs[:, 1]
        return x[a, b], s(a, b) % p

    train_logits, train_labels = rows(answer, train_pairs)
    test_logits, test_labels = rows(answer, test_pairs)
    res_logits, _ = rows(restricted, train_pairs)
    exc_logits, _ = rows(excluded, train_pairs)
    collapse_logits, _ = rows(grid[..., :collapse_classes], train_pairs)
    return {
        "fourier": {
            "frequencies": list(range(1, len(norms) + 1)),
            "norms": [float(v) for v in norms],
            "constant_norm": const,
            "key_frequencies": found.frequencies,
            "key_gap": found.gap,
            "key_energy_fraction": found.energy_fraction,
            "gini": gini(norms),
        },
        "losses": {
            "train_loss": cross_entropy(train_logits, train_labels),
            "train_acc": accuracy(train_logits, train_labels),
            "test_loss": cross_entropy(test_logits, test_labels) if len(test_labels) else None,
            "test_acc": accuracy(test_logits, test_labels) if len(test_labels) else None,
            "restricted_loss": cross_entropy(res_logits, train_labels),
            "restricted_acc": accuracy(res_logits, train_labels),
            "excluded_loss": cross_entropy(exc_logits, train_labels),
            "excluded_acc": accuracy(exc_logits, train_labels),
            "chance_loss": math.log(p),
        },
        "softmax_collapse_fraction": softmax_collapse_fraction(collapse_logits),
        "weight_norms": weight_norms(model.member_state(member)),
    }


# ------------------------------------------------------------------------------------------------ a run directory
@dataclass
class RunModel:
    label: str  # "final" or "checkpoint"
    step: int | None
    model: EnsembleTransformer


def _read_run(run_dir: Path) -> tuple[Any, Any, list[RunModel]]:
    """(config, vocabulary, models) of a run directory; raises AnalysisError with the reason."""
    from grokkit.checkpoint import CHECKPOINT_FILE, MODEL_FILE, CheckpointError, load_checkpoint, load_model
    from grokkit.config import ConfigError
    from grokkit.recipes.common import build_model, build_vocab
    from grokkit.rundir import RunDir

    rd = RunDir(run_dir)
    run_dir = rd.path
    if not run_dir.exists():
        raise AnalysisError(f"{run_dir} is not a directory (it does not exist): give a run directory (grokkit run "
                            "... --out DIR)")
    if not run_dir.is_dir():
        raise AnalysisError(f"{run_dir} is not a directory")
    if not rd.has_config():
        raise AnalysisError(f"{run_dir} holds no config.yaml: not a grokkit run directory"
                            + (" (it is a sweep: analyse one of its trials/TRIAL directories)"
                               if (run_dir / "sweep.yaml").exists() else ""))
    damaged = ("; the run's files are damaged: train it again with `grokkit run CONFIG --out "
               f"{run_dir} --restart` (the damaged files are kept, renamed *.corrupt-<time>)")
    try:
        cfg = rd.read_config()
    except ConfigError as err:
        raise AnalysisError(f"{rd.config_path} is unreadable: {err}{damaged}") from None
    from grokkit.recipes import RECIPES

    recipe = RECIPES.get(cfg.recipe)
    if recipe.stages is not None and recipe.multi_task:
        raise AnalysisError(f"{run_dir} is a {cfg.recipe} run of several tasks; analyse one of its stage directories "
                            f"({run_dir}/stages/*)")
    models: list[RunModel] = []
    for snap_step, path in rd.snapshots():  # weight snapshots during training, in step order
        try:
            models.append(RunModel("snapshot", snap_step, load_model(path)[0]))
        except CheckpointError as err:
            raise AnalysisError(str(err)) from None
    step = None
    if rd.has_summary():
        try:
            step = int(rd.read_summary()["steps"])
        except (ValueError, KeyError, TypeError):
            step = None
    if rd.has_model():
        try:
            model, vocab, _ = rd.read_model()
        except CheckpointError as err:
            raise AnalysisError(f"{err}{damaged}") from None
        models.append(RunModel("final", step, model))
    else:
        vocab = build_vocab(cfg)
    if rd.has_checkpoint():  # an unfinished run: analyse where it got to
        try:
            tensors, state = load_checkpoint(rd.checkpoint_path)
            model = build_model(cfg, vocab)
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(tensors[f"model.{name}"])
        except (CheckpointError, KeyError, RuntimeError, ValueError) as err:
            raise AnalysisError(f"{run_dir / CHECKPOINT_FILE} cannot be read as this run's model: {err}{damaged}"
                                ) from None
        models.append(RunModel("checkpoint", state.get("step"), model))
    if not models:
        raise AnalysisError(f"{run_dir} holds neither {MODEL_FILE} nor {CHECKPOINT_FILE}: nothing to analyse (the "
                            "run has not reached its first checkpoint, or its files were removed); run it with "
                            f"`grokkit run CONFIG --out {run_dir}` (training.snapshot_every also keeps snapshots)")
    for m in models:
        if not isinstance(m.model, EnsembleTransformer) or not hasattr(m.model, "embed"):
            raise AnalysisError(f"{run_dir}: the model is not a grokkit transformer; progress measures need one")
    return cfg, vocab, models


def analyze_run(run_dir: str | Path, member: int | None = None, position: str = "final",
                min_gap: float = MIN_GAP, key_freqs: list[int] | None = None) -> dict[str, Any]:
    """Progress measures of every model a run directory holds (see the module docstring), for every member or only
    ``member``. Returns a JSON-ready dict; raises :class:`AnalysisError` if the run cannot be analysed."""
    from grokkit.recipes.common import member_splits
    from grokkit.tasks import POSITIONS

    cfg, vocab, models = _read_run(Path(run_dir))
    op, p = cfg.task.op, cfg.task.modulus
    if op not in FOURIER_OPS:
        raise AnalysisError(f"{run_dir} trains {op} mod {p}; the progress measures (Fourier key frequencies, "
                            f"restricted/excluded loss) are defined for modular addition or subtraction only")
    if position not in POSITIONS:
        raise AnalysisError(f"position {position!r} unknown; allowed: {', '.join(POSITIONS)}")
    n_members = models[0].model.n_members
    members = list(range(n_members)) if member is None else [member]
    if any(not 0 <= k < n_members for k in members):
        raise AnalysisError(f"--member {member} but the run has {n_members} member(s) (0..{n_members - 1})")
    splits = member_splits(cfg, vocab, cfg.task)
    seeds = [m.seed for m in cfg.member_list()]
    collapse_classes = p if cfg.loss.restrict_to_answer_range else vocab.n_classes

    def pairs(tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, :2].long()

    out: dict[str, Any] = {
        "run_dir": str(run_dir), "task": cfg.task.name if hasattr(cfg.task, "name") else f"{op}{p}",
        "op": op, "modulus": p, "position": position, "recipe": cfg.recipe,
        "key_frequency_rule": {"min_gap": min_gap, "override": key_freqs},
        "hold_window_steps": cfg.training.hold_steps(),  # the run's hold window: the "generalised" phase needs it
        "checkpoints": [],
    }
    def analyze(rm: RunModel, freqs: dict[int, list[int] | None]) -> dict[str, Any]:
        rm.model.eval()
        grid = grid_logits(rm.model, vocab, op, p, POSITIONS[position])
        rows = []
        for k in members:
            result = analyze_member(rm.model, k, grid[k], op, p, pairs(splits[k].train.tokens),
                                    pairs(splits[k].test.tokens), collapse_classes, min_gap, freqs[k])
            rows.append({"member": k, "seed": seeds[k], **result})
        return {"label": rm.label, "step": rm.step, "members": rows}

    # the last model first: its key frequencies are the ones every snapshot's restricted/excluded loss uses
    last = analyze(models[-1], {k: key_freqs for k in members})
    final_freqs = {m["member"]: key_freqs or m["fourier"]["key_frequencies"] for m in last["members"]}
    out["checkpoints"] = [analyze(rm, final_freqs) if rm.label == "snapshot" else analyze(rm, {k: key_freqs
                                                                                             for k in members})
                          for rm in models[:-1]] + [last]
    return out


#: the columns of :func:`over_time`, besides label, step, member, seed and the weight-norm groups
OVER_TIME = ("train_loss", "train_acc", "test_loss", "test_acc", "restricted_loss", "excluded_loss",
             "key_energy_fraction", "gini", "softmax_collapse_fraction", "weight_norm")


def over_time(result: dict[str, Any]) -> Any:
    """Every measure of every analysed model and member, one row each, in step order (a pandas DataFrame)."""
    import pandas as pd

    rows = []
    for ckpt in result["checkpoints"]:
        for m in ckpt["members"]:
            los, fou, norms = m["losses"], m["fourier"], m["weight_norms"]
            rows.append({"label": ckpt["label"], "step": ckpt["step"], "member": m["member"], "seed": m["seed"],
                         **{k: los[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc",
                                                "restricted_loss", "excluded_loss")},
                         "key_energy_fraction": fou["key_energy_fraction"], "gini": fou["gini"],
                         "key_frequencies": " ".join(map(str, fou["key_frequencies"])),
                         "softmax_collapse_fraction": m["softmax_collapse_fraction"],
                         "weight_norm": norms.get("total"),
                         **{f"norm@{g}": v for g, v in norms.items() if g not in ("total", "sum_of_squares")}})
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.sort_values(["step", "member"], kind="stable").drop_duplicates(["step", "member"], keep="last")
    return frame.reset_index(drop=True)


def phases(frame: Any, threshold: float = 0.99, window: float = 0) -> dict[str, int | None]:
    """Phase boundaries from the member-mean curves of :func:`over_time` (Nanda et al.'s three phases), by rule:

    * ``memorised``: the first step at which mean train accuracy >= ``threshold`` (memorisation done; circuit formation
      goes on underneath, visible as the restricted loss falling while test loss stays high);
    * ``cleanup``: the first step at which mean test accuracy >= 0.5 (test loss leaves its plateau: weight decay is
      removing the memorising components, the excluded loss rises);
    * ``generalised``: the first step from which mean test accuracy stays >= ``threshold`` to the last step, held
      for at least ``window`` steps (the run's hold window: :func:`grokkit.engine.lasting_step`).

    None where a boundary is not reached."""
    if not len(frame):
        return {"memorised": None, "cleanup": None, "generalised": None}
    mean = frame.groupby("step")[["train_acc", "test_acc"]].mean().sort_index()

    def first(cond: Any) -> int | None:
        hit = mean.index[cond.to_numpy()]
        return int(hit[0]) if len(hit) else None

    from grokkit.engine import lasting_step

    lasting = lasting_step([int(s) for s in mean.index], mean.test_acc.tolist(), threshold, window)
    return {"memorised": first(mean.train_acc >= threshold), "cleanup": first(mean.test_acc >= 0.5),
            "generalised": lasting}


# ------------------------------------------------------------------------------------------------ outputs
ANALYSIS_FILE = "analysis.json"
FIGURES = ("analysis_fourier.png", "analysis_weight_norms.png", "analysis_losses.png")
#: written when the run holds more than one model (snapshots): every measure per step and member, and the figure
OVER_TIME_FILES = ("analysis_over_time.csv", "analysis_over_time.png")


def write_analysis(result: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``analysis.json`` and the figures (of the last model analysed: the newest) into ``out``, atomically.
    Returns the paths written."""
    from grokkit.checkpoint import atomic_write_text
    from grokkit.plots import plot_fourier_norms, plot_loss_decomposition, plot_weight_norms

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    latest = result["checkpoints"][-1]
    title = f"{result['task']} ({latest['label']}, step {latest['step']})"
    paths = [out / f for f in (ANALYSIS_FILE, *FIGURES)]
    plot_fourier_norms(latest["members"], paths[1], f"Fourier norms of W_E, {title}")
    plot_weight_norms(latest["members"], paths[2], f"weight norms, {title}")
    plot_loss_decomposition(latest["members"], paths[3], f"train loss decomposition, {title}")
    frame = over_time(result)
    if frame.step.nunique() > 1:
        from grokkit.io import atomic_write
        from grokkit.plots import plot_progress_over_time

        bounds = phases(frame, window=result.get("hold_window_steps", 0))
        result["phases"] = bounds
        csv, png = (out / f for f in OVER_TIME_FILES)
        atomic_write(csv, lambda q: frame.to_csv(q, index=False))
        plot_progress_over_time(frame, bounds, png, f"{result['task']}: progress measures over training")
        paths += [csv, png]
    atomic_write_text(paths[0], json.dumps(result, indent=2))
    return paths
