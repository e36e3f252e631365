"""Progress measures (Nanda et al.) and ``grokkit analyze``: each measure against a case whose answer is known."""

import json
import math
import shutil

import pytest
import torch
import yaml
from typer.testing import CliRunner

from grokkit.analysis.progress import (
    FIGURES,
    cross_entropy,
    decompose_logits,
    fourier_norms,
    key_frequencies,
    softmax_collapse_fraction,
    weight_norms,
)
from grokkit.cli import app
from grokkit.models import EnsembleTransformer, TransformerShape
from helpers import tiny_config

runner = CliRunner()


def _embedding(p, freqs, d_model=24, noise=0.01, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(p, dtype=torch.float64).view(p, 1)
    w = noise * torch.randn(p, d_model, generator=g, dtype=torch.float64)
    for k in freqs:
        w += torch.cos(2 * math.pi * k * x / p) * torch.randn(1, d_model, generator=g, dtype=torch.float64)
        w += torch.sin(2 * math.pi * k * x / p) * torch.randn(1, d_model, generator=g, dtype=torch.float64)
    return w + 0.5  # a constant offset: frequency 0, never key


@pytest.mark.parametrize("p,freqs", [(31, [3, 7, 11]), (113, [14, 35, 41, 42, 52]), (17, [2, 5, 6, 8])])
def test_key_frequencies_recovered_from_synthetic_embedding(p, freqs):
    norms, const = fourier_norms(_embedding(p, freqs))
    assert len(norms) == p // 2 and const > 1.0
    found = key_frequencies(norms)
    assert sorted(found.frequencies) == freqs
    assert found.gap > 100 and found.energy_fraction > 0.99


def test_no_key_frequencies_in_a_random_embedding():
    w = torch.randn(113, 128, generator=torch.Generator().manual_seed(1))
    found = key_frequencies(fourier_norms(w)[0])
    assert found.frequencies == [] and found.gap < 1.5


def test_fourier_norms_are_a_rotation():
    w = torch.randn(31, 8, dtype=torch.float64)
    norms, const = fourier_norms(w)
    assert math.isclose(float(norms.pow(2).sum()) + const**2, float(w.pow(2).sum()), rel_tol=1e-10)


def _cube(p, terms, op="add"):
    """Logits over (a, b, c): sum of alpha cos(w_k (s - c)) + beta sin(w_k (s - c))."""
    a = torch.arange(p, dtype=torch.float64).view(p, 1, 1)
    b = torch.arange(p, dtype=torch.float64).view(1, p, 1)
    c = torch.arange(p, dtype=torch.float64).view(1, 1, p)
    s = a + b if op == "add" else a - b
    out = torch.zeros(p, p, p, dtype=torch.float64)
    for k, alpha, beta in terms:
        out += alpha * torch.cos(2 * math.pi * k * (s - c) / p) + beta * torch.sin(2 * math.pi * k * (s - c) / p)
    return out


def _train_loss(cube, op="add"):
    p = cube.shape[0]
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    labels = ((a + b) if op == "add" else (a - b)) % p
    return cross_entropy(cube.reshape(p * p, p), labels.reshape(-1))


@pytest.mark.parametrize("op", ["add", "sub"])
def test_logits_made_of_key_frequencies_restricted_equals_full_excluded_is_chance(op):
    p = 23
    cube = _cube(p, [(3, 8.0, 0.0), (8, 6.0, 0.5)], op)
    restricted, excluded = decompose_logits(cube, [3, 8], op)
    torch.testing.assert_close(restricted, cube, atol=1e-9, rtol=0)
    torch.testing.assert_close(excluded, torch.zeros_like(cube), atol=1e-9, rtol=0)
    assert math.isclose(_train_loss(restricted, op), _train_loss(cube, op), rel_tol=1e-9)
    assert math.isclose(_train_loss(excluded, op), math.log(p), rel_tol=1e-9)
    assert _train_loss(cube, op) < 0.5


def test_restricted_drops_other_frequencies_and_keeps_class_bias():
    p = 19
    key, other = _cube(p, [(2, 3.0, -2.0)]), _cube(p, [(5, 1.0, 1.0)])
    bias = torch.linspace(-1, 1, p, dtype=torch.float64).view(1, 1, p)
    restricted, excluded = decompose_logits(key + other + bias, [2])
    torch.testing.assert_close(restricted, key + bias.expand(p, p, p), atol=1e-9, rtol=0)
    torch.testing.assert_close(excluded, other + bias.expand(p, p, p), atol=1e-9, rtol=0)
    restricted, excluded = decompose_logits(key, [])  # no key frequencies: restricted is the class bias (0 here)
    assert restricted.abs().max() < 1e-9 and torch.equal(excluded, key)


def test_softmax_collapse_fraction():
    small = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.4, 0.3]])
    huge = torch.tensor([[200.0, 0.0, 0.0], [0.0, 150.0, -10.0]])
    assert softmax_collapse_fraction(small) == 0.0
    assert softmax_collapse_fraction(huge) == 1.0
    assert softmax_collapse_fraction(torch.cat([small, huge, huge])) == pytest.approx(4 / 6)
    # float32: exp(-17) ~ 4e-8 is lost next to 1, exp(-10) is not
    assert softmax_collapse_fraction(torch.tensor([[17.0, 0.0], [10.0, 0.0]], dtype=torch.float64)) == 0.5


def test_weight_norms_by_hand():
    shape = TransformerShape(d_vocab=20, d_vocab_out=15, d_model=8, n_heads=2, d_head=4, d_mlp=16, layer_norm=True)
    model = EnsembleTransformer(shape, [0, 1])
    state = model.member_state(1)
    norms = weight_norms(state)
    mlp = torch.cat([state[f"blocks.0.mlp.{n}"].flatten() for n in ("W_in", "b_in", "W_out", "b_out")])
    assert norms["blocks.0.mlp"] == pytest.approx(float(torch.linalg.norm(mlp)), rel=1e-6)
    assert norms["embed"] == pytest.approx(float(torch.linalg.norm(state["embed.W_E"])), rel=1e-6)
    assert norms["total"] == pytest.approx(float(model.weight_norm()[1]), rel=1e-6)
    assert norms["total_squared"] == pytest.approx(norms["total"] ** 2, rel=1e-9)
    assert {"pos_embed", "blocks.0.attn", "blocks.0.ln1", "blocks.0.ln2", "ln_final", "unembed"} <= set(norms)


# ------------------------------------------------------------------------------------------------ grokkit analyze
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from grokkit.api import run
    from grokkit.config import parse_config

    out = tmp_path_factory.mktemp("analyze") / "run"
    cfg = tiny_config(vocab={"n_numbers": 19, "moduli": [17, 19]}, training__steps=40)
    run(parse_config(cfg), out, progress=False)
    return out


def test_analyze_end_to_end(tiny_run, tmp_path):
    result = runner.invoke(app, ["analyze", str(tiny_run)])
    assert result.exit_code == 0, result.output
    assert "restricted" in result.output
    data = json.loads((tiny_run / "analysis.json").read_text())
    assert data["task"] == "add17" and data["modulus"] == 17 and len(data["checkpoints"]) == 1
    ckpt = data["checkpoints"][0]
    assert ckpt["label"] == "final" and ckpt["step"] == 40 and [m["member"] for m in ckpt["members"]] == [0, 1]
    m = ckpt["members"][0]
    assert len(m["fourier"]["norms"]) == 8 and 0.0 <= m["softmax_collapse_fraction"] <= 1.0
    assert all(math.isfinite(m["losses"][k]) for k in ("train_loss", "restricted_loss", "excluded_loss"))
    metrics = __import__("pandas").read_csv(tiny_run / "metrics.csv")
    last = metrics[(metrics.step == 40) & (metrics.member == 0)].iloc[0]
    assert m["weight_norms"]["total"] == pytest.approx(last.weight_norm, rel=1e-5)
    assert m["losses"]["train_acc"] == pytest.approx(last.train_acc)  # output vocab 19 > p = 17: restricted
    for f in FIGURES:
        assert (tiny_run / f).read_bytes()[:4] == b"\x89PNG"
    # --member and --out
    out = tmp_path / "elsewhere"
    result = runner.invoke(app, ["analyze", str(tiny_run), "--member", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "analysis.json").read_text())
    assert [m["member"] for m in data["checkpoints"][0]["members"]] == [1]
    assert all((out / f).exists() for f in FIGURES)


def test_analyze_reads_the_resume_checkpoint_of_an_unfinished_run(tiny_run, tmp_path):
    from grokkit.checkpoint import CHECKPOINT_FILE, MODEL_FILE, load_model, save_checkpoint

    run_dir = tmp_path / "unfinished"
    shutil.copytree(tiny_run, run_dir)
    model, _, _ = load_model(run_dir)
    (run_dir / MODEL_FILE).unlink()
    (run_dir / "summary.json").unlink()
    save_checkpoint(run_dir / CHECKPOINT_FILE, {f"model.{n}": p for n, p in model.named_parameters()}, {"step": 20})
    result = runner.invoke(app, ["analyze", str(run_dir), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "a" / "analysis.json").read_text())
    assert [(c["label"], c["step"]) for c in data["checkpoints"]] == [("checkpoint", 20)]


@pytest.mark.parametrize("damage,needle", [
    ("missing", "not a directory"),
    ("no_config", "no config.yaml"),
    ("corrupt_model", "corrupt"),
    ("no_model", "nothing to analyse"),
    ("mul", "addition or subtraction"),
    ("member", "--member 7"),
])
def test_analyze_bad_input_fails_cleanly(tiny_run, tmp_path, damage, needle):
    run_dir = tmp_path / "run"
    if damage != "missing":
        shutil.copytree(tiny_run, run_dir)
    args = ["analyze", str(run_dir), "--out", str(tmp_path / "out")]
    if damage == "no_config":
        (run_dir / "config.yaml").unlink()
    elif damage == "corrupt_model":
        (run_dir / "model.safetensors").write_bytes(b"not a model")
    elif damage == "no_model":
        (run_dir / "model.safetensors").unlink()
    elif damage == "mul":
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        cfg["task"]["op"] = "mul"
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    elif damage == "member":
        args += ["--member", "7"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert needle in " ".join(result.output.split())
    assert not (tmp_path / "out" / "analysis.json").exists()
