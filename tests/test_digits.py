"""The digits task (src/grokkit/tasks/digits.py), the pixel MLP (src/grokkit/models/pixel_mlp.py), distillation on a
non-modular task, and the shipped study (configs/sweeps/digits.yaml) end to end at a tiny step count."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import grokkit
from grokkit.cli import app
from grokkit.config import ConfigError, parse_config
from grokkit.models.pixel_mlp import EnsemblePixelMLP
from grokkit.recipes import build_setup
from grokkit.tasks import digits
from grokkit.tasks.digits import DigitsTask, load_images, shift_images, subset_indices
from helpers import tiny_config

DIGITS = {"kind": "digits", "n_train": 40, "n_val": 20, "n_test": 50}
PIXEL_MLP = {"kind": "pixel_mlp", "n_layers": 2, "d_mlp": 16}
SPEC = Path(grokkit.__file__).parent / "configs" / "sweeps" / "digits.yaml"


def _cfg(**overrides):
    base = tiny_config(task=DIGITS, model=PIXEL_MLP)
    base.update(overrides)
    return parse_config(base)


def test_the_images_are_the_bundled_8x8_digits():
    images, labels = load_images()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    assert images.dtype == torch.long and int(images.min()) == 0 and int(images.max()) == 16
    assert sorted(labels.unique().tolist()) == list(range(10))


def test_building_the_task_never_touches_the_network(monkeypatch):
    digits._load.cache_clear()  # read the files again, not the cached tensors

    def refuse(*args, **kwargs):
        raise AssertionError("the digits task tried to open a network socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    setup = build_setup(_cfg())
    assert setup.train.tokens.shape == (2, 40, 64)


def test_shapes_vocabulary_and_answer_position():
    setup = build_setup(_cfg())
    assert setup.vocab.n_numbers == 17 and setup.vocab.n_classes == 17  # tokens 0..16 are the intensities
    assert setup.task.answer_range == 10 and setup.task.sequence_length == 64 and setup.objective.final == 63
    assert setup.train.tokens.shape == (2, 40, 64) and setup.test.tokens.shape == (2, 50, 64)
    assert setup.val is not None and setup.val.tokens.shape == (2, 20, 64)
    assert int(setup.train.tokens.max()) <= 16 and int(setup.train.labels.max()) <= 9
    assert isinstance(setup.model, EnsemblePixelMLP) and setup.model.shape.n_ctx == 64
    positional = build_setup(_cfg(task=dict(DIGITS, positional_tokens=True), model={"kind": "mlp", "d_embed": 2}))
    assert positional.vocab.n_numbers == 17 * 64
    assert torch.equal(positional.train.tokens[0] % 17, setup.train.tokens[0])


def test_splits_are_seeded_disjoint_and_nested():
    task = DigitsTask(n_train=100, n_val=50, n_test=200, subset="b")
    a, b, other = task.split(3), task.split(3), task.split(4)
    assert torch.equal(a.train.tokens, b.train.tokens) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.tokens, other.train.tokens)
    # disjoint by image index: rebuild the split's index order as the task does
    pool = subset_indices("b")
    order = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(3))]
    test_i, val_i, train_i = order[:200], order[200:250], order[250:350]
    assert len(set(torch.cat([test_i, val_i, train_i]).tolist())) == 350  # no image in two splits
    images, labels = load_images()
    assert torch.equal(a.train.tokens, images[train_i].reshape(-1, 64)) and torch.equal(a.train.labels,
                                                                                        labels[train_i])
    # the test and validation sets do not depend on n_train; a larger training set extends a smaller one
    bigger = DigitsTask(n_train=150, n_val=50, n_test=200, subset="b").split(3)
    assert torch.equal(bigger.test.tokens, a.test.tokens) and torch.equal(bigger.val.tokens, a.val.tokens)
    assert torch.equal(bigger.train.tokens[:100], a.train.tokens)
    rest = DigitsTask(n_train=100, n_val=50, subset="b").split(3)
    assert len(rest.test) == len(pool) - 150


def test_the_halves_are_fixed_and_disjoint():
    a, b = subset_indices("a"), subset_indices("b")
    assert len(a) == 899 and len(b) == 898 and not set(a.tolist()) & set(b.tolist())
    assert sorted(a.tolist() + b.tolist()) == list(range(1797))
    assert torch.equal(a, subset_indices("a"))


def test_shift_zero_is_the_original_and_a_shift_moves_pixels_right():
    images, _ = load_images()
    assert torch.equal(shift_images(images, 0), images)
    rolled = shift_images(images, 2)
    assert torch.equal(rolled[..., 2:], images[..., :-2]) and torch.equal(rolled[..., :2], images[..., -2:])
    moved = shift_images(images, 2, "translate")
    assert torch.equal(moved[..., 2:], images[..., :-2]) and int(moved[..., :2].abs().sum()) == 0
    assert torch.equal(shift_images(rolled, 6), images)  # a roll by 8 is the identity
    plain, shifted = DigitsTask(30, shift=0).split(0), DigitsTask(30, shift=1).split(0)
    assert torch.equal(shifted.train.labels, plain.train.labels)  # the same images, the same rule
    assert torch.equal(shifted.train.tokens.view(-1, 8, 8), shift_images(plain.train.tokens.view(-1, 8, 8), 1))
    assert DigitsTask(30, shift=1).name == "digits_shift1" and DigitsTask(30, subset="a").name == "digitsa"


@pytest.mark.parametrize("bad, match", [
    ({"n_train": 0}, "n_train"),
    ({"n_train": 1000, "subset": "a"}, "do not exist in subset 'a'"),
    ({"n_train": 1700, "n_val": 100, "n_test": None}, "do not exist"),
    ({"shift": 8}, "shift"),
    ({"shift": -1}, "shift"),
    ({"shift_mode": "mirror"}, "shift_mode"),
    ({"subset": "c"}, "subset"),
    ({"modulus": 7}, "task.kind=digits does not use modulus"),
])
def test_bad_settings_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(task=dict(DIGITS, **bad))


def test_pixel_mlp_reads_intensities_and_takes_the_init_scale():
    cfg = _cfg(model=dict(PIXEL_MLP, init_scale=4.0))
    setup = build_setup(cfg)
    plain = build_setup(_cfg()).model
    for (name, a), (_, b) in zip(plain.named_parameters(), setup.model.named_parameters()):
        factor = 4.0 if name.split(".")[-1].startswith("W_") else 1.0
        torch.testing.assert_close(b, factor * a, rtol=0, atol=0)
    tokens = setup.train.tokens
    logits, cache = setup.model.run_with_cache(tokens)
    torch.testing.assert_close(setup.model(tokens, [63])[:, :, 0], logits)
    torch.testing.assert_close(cache["hook_pixels"], tokens.double() / 16 if logits.dtype == torch.float64
                               else tokens.float() / 16)
    with pytest.raises(ConfigError, match="levels"):
        _cfg(model=dict(PIXEL_MLP, levels=1))


def test_distillation_runs_on_digits_at_the_final_position(tmp_path):
    from grokkit.api import run

    teacher = run(_cfg(seeds=[0], training={"steps": 20, "eval_every": 10, "checkpoint_every": 0,
                                            "progress": False}), tmp_path / "t", progress=False, log=lambda _: None)
    assert teacher["members"][0]["final_train_acc"] >= 0
    with pytest.raises(ConfigError, match="distill.position: final"):
        _cfg(recipe="distill", distill={"teacher": str(tmp_path / "t")})
    cfg = _cfg(recipe="distill", task=dict(DIGITS, shift=1),
               distill={"teacher": str(tmp_path / "t"), "position": "final", "alpha": 0.5})
    setup = build_setup(cfg)
    assert setup.objective.final == 63 and setup.objective.positions == [63]
    assert 0 <= setup.info["teacher_acc_on_student_test"] <= 1


def _tiny_spec(tmp_path: Path) -> Path:
    """The shipped study with every run cut to a few steps, one size and one seed."""
    spec = yaml.safe_load(SPEC.read_text())
    tiny = {"steps": 10, "eval_every": 5, "checkpoint_every": 0, "progress": False, "threads": 1}
    spec["base"]["training"] = dict(spec["base"]["training"], **tiny)
    spec["requires"]["teacher"]["base"]["training"] = dict(spec["requires"]["teacher"]["base"]["training"], **tiny)
    spec["grid"] = {"task.n_train": [20]}
    spec["n_seeds"] = 1
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_shipped_study_runs_end_to_end_at_a_tiny_step_count(tmp_path):
    runner = CliRunner()
    out = tmp_path / "sweep"
    result = runner.invoke(app, ["sweep", str(_tiny_spec(tmp_path)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["results", str(out), "--group-by", "case", "--group-by", "task.n_train"])
    assert result.exit_code == 0, result.output
    for case in ("scratch", "distill", "distill_decay", "random", "random_decay", "distill_a0.1", "distill_s0",
                 "scratch_init1", "scratch_s0"):
        assert case in result.output
    assert (out / "requires" / "teacher").exists() and (out / "requires" / "random_teacher").exists()
