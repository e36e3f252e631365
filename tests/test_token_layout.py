"""The token layout is stored in every model file and checked on load; appending an operation or a modulus never
changes an existing token id. ``tests/data/layout_v1_n7_p5_p7.safetensors`` was saved by layout v1 (numbers 0..6, the
five operations, P=5, P=7) and must keep loading with these ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, safe_open, save_file

from grokkit.checkpoint import CheckpointError, load_model
from grokkit.config import parse_config
from grokkit.recipes import build_setup
from grokkit.recipes.common import build_vocab
from grokkit.recipes.distill import TeacherError
from grokkit.tasks import OPS
from helpers import tiny_config

FIXTURE = Path(__file__).parent / "data" / "layout_v1_n7_p5_p7.safetensors"
V1 = ["0", "1", "2", "3", "4", "5", "6", "add", "sub", "mul", "div", "quad", "P=5", "P=7"]
MODEL = {"d_model": 8, "n_heads": 1, "d_head": 8, "d_mlp": 16}


def _student(tmp_path: Path, modulus: int = 5, moduli: list[int] | None = None, op: str = "add") -> dict:
    return tiny_config(recipe="distill", seeds=[0], task={"op": op, "modulus": modulus, "train_fraction": 0.5},
                       vocab={"n_numbers": 7, "moduli": moduli or [5, 7]}, model=MODEL,
                       distill={"teacher": str(FIXTURE)})


def _rewrite(tmp_path: Path, change) -> Path:
    with safe_open(str(FIXTURE), framework="pt") as f:
        meta = dict(f.metadata())
    change(meta)
    out = tmp_path / "model.safetensors"
    save_file(load_file(str(FIXTURE)), str(out), metadata=meta)
    return out


def test_the_committed_v1_file_keeps_its_token_ids():
    _, vocab, meta = load_model(FIXTURE)
    assert meta["token_layout"] == V1 and vocab.token_names() == V1
    assert (vocab.operation_token("add"), vocab.operation_token("quad"), vocab.modulus_token(7)) == (7, 11, 13)


def test_a_file_written_before_layouts_were_stored_reads_as_v1(tmp_path):
    _, vocab, _ = load_model(_rewrite(tmp_path, lambda m: m.pop("token_layout")))
    assert vocab.token_names() == V1


def test_a_file_with_another_layout_is_refused(tmp_path):
    def swap(meta):
        layout = json.loads(meta["token_layout"])
        layout[12], layout[13] = layout[13], layout[12]
        meta["token_layout"] = json.dumps(layout)

    with pytest.raises(CheckpointError, match="another token layout: token id 12"):
        load_model(_rewrite(tmp_path, swap))


def test_registering_an_operation_changes_no_existing_vocabulary(tmp_path, monkeypatch):
    def max_op(a: torch.Tensor, b: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.maximum(a, b) % p, torch.ones_like(a, dtype=torch.bool)

    monkeypatch.setitem(OPS._entries, "max", max_op)
    cfg = parse_config(_student(tmp_path))
    assert build_vocab(cfg).token_names() == V1  # an add-only run: the new operation is not one of its tokens
    build_setup(cfg)  # the committed v1 teacher still teaches it
    init = parse_config(tiny_config(seeds=[0], task={"op": "add", "modulus": 5, "train_fraction": 0.5},
                                    vocab={"n_numbers": 7, "moduli": [5, 7]}, model=MODEL,
                                    init={"model": str(FIXTURE)}))
    build_setup(init)  # and is an init: source
    new_task = parse_config(_student(tmp_path, op="max"))
    assert build_vocab(new_task).token_names() == V1 + ["max"]  # a run that uses it: its token comes last
    with pytest.raises(TeacherError, match=r"no token for max.*retrain the teacher"):
        build_setup(new_task)


def test_a_new_modulus_is_read_by_name_up_to_the_distilled_position(tmp_path):
    cfg = parse_config(_student(tmp_path, moduli=[5, 7, 3]))
    assert build_vocab(cfg).token_names() == V1 + ["P=3"]
    build_setup(cfg)
    # the teacher has no P=3, but at the operator position a causal teacher never reads the modulus token
    build_setup(parse_config(_student(tmp_path, modulus=3, moduli=[5, 7, 3])))
    final = _student(tmp_path, modulus=3, moduli=[5, 7, 3])
    final["distill"]["position"] = "final"
    with pytest.raises(TeacherError, match=r"no token for P=3.*distill.position: operator.*moduli: \[3, 5, 7\]"):
        build_setup(parse_config(final))


def test_a_teacher_reads_the_students_tokens_by_name_not_id(tmp_path):
    """Student moduli [7, 5]: its P=7 is the teacher's id 13 and its P=5 the teacher's 12. The targets are the
    teacher's outputs on the same pairs in its own ids."""
    from grokkit.losses import teacher_log_probs

    setup = build_setup(parse_config(_student(tmp_path, modulus=7, moduli=[7, 5])))
    assert setup.vocab.token_names()[12:] == ["P=7", "P=5"]
    teacher, vocab, _ = load_model(FIXTURE)
    tokens = setup.train.tokens.clone()
    tokens[..., 3] = vocab.modulus_token(7)  # the same inputs written in the teacher's ids
    with torch.no_grad():
        expected = teacher_log_probs(teacher(tokens, [2])[:, :, 0], 2.0).exp()
    assert torch.allclose(setup.train.extras["distill.0.probs"], expected.to(torch.float64), atol=1e-12)
