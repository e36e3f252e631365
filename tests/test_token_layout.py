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


def test_registering_an_operation_changes_no_existing_token_id(tmp_path, monkeypatch):
    def max_op(a: torch.Tensor, b: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.maximum(a, b) % p, torch.ones_like(a, dtype=torch.bool)

    monkeypatch.setitem(OPS._entries, "max", max_op)
    cfg = parse_config(_student(tmp_path))
    vocab = build_vocab(cfg)
    assert vocab.token_names() == V1 + ["max"]  # the new operation's token comes last
    build_setup(cfg)  # the v1 teacher still teaches a student of the new layout (compared by token name)
    new_task = parse_config(_student(tmp_path, op="max"))
    with pytest.raises(TeacherError, match="no token for max"):
        build_setup(new_task)


def test_appending_a_modulus_changes_no_existing_token_id(tmp_path):
    cfg = parse_config(_student(tmp_path, moduli=[5, 7, 3]))
    assert build_vocab(cfg).token_names() == V1 + ["P=3"]
    build_setup(cfg)
    with pytest.raises(TeacherError, match="no token for P=3"):
        build_setup(parse_config(_student(tmp_path, modulus=3, moduli=[5, 7, 3])))


def test_a_teacher_whose_ids_name_other_tokens_is_refused(tmp_path):
    with pytest.raises(TeacherError, match="token id 12 is 'P=7' here but 'P=5'"):
        build_setup(parse_config(_student(tmp_path, modulus=7, moduli=[7, 5])))
