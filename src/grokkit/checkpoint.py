"""Files: atomic writes, model files and training checkpoints (safetensors + JSON metadata; nothing is unpickled)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from grokkit.errors import InputError
from grokkit.io import _UMASK, DiskFullError, atomic_write, atomic_write_text  # noqa: F401 (re-exported)
from grokkit.models import EnsembleModel, build_model_from_shape
from grokkit.tasks import Vocabulary

MODEL_FORMAT = "grokkit-model-v1"
CHECKPOINT_FORMAT = "grokkit-checkpoint-v1"
MODEL_FILE = "model.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
#: a run directory's summary (written last: a directory with one is a finished run)
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"


class CheckpointError(InputError):
    """A model or checkpoint file that is missing, corrupt or incompatible."""


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {k: json.dumps(v) for k, v in metadata.items()}
    atomic_write(path, lambda p: save_file(flat, str(p), metadata=meta))


def _load_tensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = f.metadata() or {}
        tensors = load_file(str(path))
        meta = {k: json.loads(v) for k, v in raw_meta.items()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{what} {path} is corrupt or not a safetensors file: {err}") from None
    return tensors, meta


def save_model(path: Path, model: EnsembleModel, vocab: Vocabulary, extra: dict[str, Any] | None = None) -> None:
    """Weights (TransformerLens names, leading member axis) and metadata: kind, shape, vocabulary, the token layout
    (the name of every token id) and the members' seeds."""
    if model.shape.d_vocab != vocab.d_vocab:
        raise ValueError(f"model has d_vocab={model.shape.d_vocab} but its vocabulary {vocab.d_vocab} tokens")
    meta = {"format": MODEL_FORMAT, "model_kind": model.kind, "shape": model.shape.to_dict(), "vocab": vocab.to_dict(),
            "token_layout": vocab.token_names(), "seeds": model.seeds}
    meta.update(extra or {})
    _save_tensors(path, dict(model.named_parameters()), meta)


def load_model(path: str | Path) -> tuple[EnsembleModel, Vocabulary, dict[str, Any]]:
    """Load a model file, or the model of a run directory. Raises :class:`CheckpointError` with the reason."""
    path = Path(path)
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise CheckpointError(describe_missing_model(path))
        path = path / MODEL_FILE
    elif not path.exists():
        raise CheckpointError(describe_missing_model(path))
    tensors, meta = _load_tensors(path, "model file")
    if meta.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"model file {path} is not a grokkit model (format {meta.get('format')!r})")
    try:
        vocab = Vocabulary.from_dict(meta["vocab"])
        model = build_model_from_shape(meta.get("model_kind", "transformer"), meta["shape"], meta["seeds"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"model file {path} has invalid metadata: {err}") from None
    # files written before the layout was stored are layout v1, which Vocabulary reproduces; a stored layout must be
    # the one this version derives from the vocabulary, or the file's token ids would be read as other tokens
    stored = meta.get("token_layout")
    if stored is not None and stored != vocab.token_names():
        first = next(i for i, (a, b) in enumerate(zip([*stored, None], [*vocab.token_names(), None])) if a != b)
        raise CheckpointError(f"model file {path} was written with another token layout: token id {first} is "
                              f"{(stored + [None])[first]!r} in the file but {([*vocab.token_names(), None])[first]!r} "
                              "here; it cannot be read with this version")
    if model.shape.d_vocab != vocab.d_vocab:
        raise CheckpointError(f"model file {path}: d_vocab={model.shape.d_vocab} but its vocabulary has "
                              f"{vocab.d_vocab} tokens")
    expected = dict(model.named_parameters())
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"model file {path} does not match its shape: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for name, p in expected.items():
            t = tensors[name]
            if t.shape != p.shape:
                raise CheckpointError(f"model file {path}: {name} has shape {list(t.shape)}, expected {list(p.shape)}")
            if not torch.isfinite(t).all():
                raise CheckpointError(f"model file {path}: {name} holds NaN or inf")
            p.copy_(t)
    return model, vocab, meta


def describe_missing_model(path: Path) -> str:
    """Why ``path`` (given where a trained model is expected: a teacher, ``init:``) holds no model, and what to give
    instead: a sweep directory (with the paths of the runs it trained first, e.g. its teacher), an unfinished run
    (with the command that finishes it), a folder that holds no run, or nothing at all."""
    path = Path(path)
    if not path.exists():
        near = sorted(p.name for p in path.parent.glob(path.name[:3] + "*")) if path.parent.is_dir() else []
        hint = f" (in {path.parent}: {', '.join(near[:5])})" if near else ""
        return (f"{path} does not exist{hint}: give a finished run directory (it holds {MODEL_FILE}) or a model "
                ".safetensors file")
    if (path / "sweep.yaml").is_file():
        runs = sorted(str(p) for p in (path / "requires").glob("*") if (p / MODEL_FILE).is_file())
        trials = path / "trials"
        return (f"{path} is a sweep directory, not a run: give one of its runs"
                + (f"; the runs it trained first (e.g. a teacher): {', '.join(runs)}" if runs else "")
                + (f"; its trials are in {trials}/<trial>" if trials.is_dir() else ""))
    if (path / CONFIG_FILE).is_file():
        state = (f"an unfinished run (its checkpoint is {path / CHECKPOINT_FILE})" if (path / CHECKPOINT_FILE).exists()
                 else "an unfinished run (no checkpoint yet)")
        return (f"{path} is {state}, so it has no {MODEL_FILE} yet: finish it with "
                f"`grokkit run {path / CONFIG_FILE} --out {path}` (it resumes), then use it")
    return f"{path} is a directory that holds no grokkit run ({MODEL_FILE} is missing)"


def run_summary(path: str | Path) -> dict[str, Any] | None:
    """The summary of the run a model file belongs to (``summary.json`` of a run directory, or beside a model file
    in one); None for a bare model file or an unreadable summary."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    summary = folder / SUMMARY_FILE
    if not summary.is_file():
        return None
    try:
        data = json.loads(summary.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def checkpoint_step(path: str | Path) -> int | None:
    """The step a checkpoint file was saved at (its metadata only); None if there is none or it cannot be read."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return int(json.loads((f.metadata() or {})["state"])["step"])
    except (OSError, SafetensorError, KeyError, ValueError, TypeError):
        return None


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    _save_tensors(path, tensors, {"format": CHECKPOINT_FORMAT, "state": state})


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, meta = _load_tensors(path, "checkpoint")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    return tensors, meta["state"]
