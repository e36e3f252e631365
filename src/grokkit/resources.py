"""A run's memory, estimated from its config before anything is allocated, and the memory there is to spend.

Without this a run too large for the machine (``task.modulus=50021``: 2.5 billion pairs) dies in the middle of
building its data with ``can't allocate memory: you tried to allocate 20016803528 bytes``, or is killed by the
kernel, after minutes. :func:`check_memory` refuses it at once, with the estimate, its parts and what to reduce.

The estimate (:func:`estimate_memory`) is deliberately an upper bound, computed from the settings alone (the model is
built on PyTorch's ``meta`` device, which allocates nothing):

* **data**: every member's train, test, validation and watched-task examples (``tokens`` int64 per position, label,
  answer range, weight: ``8 * seq + 20`` bytes per example), held twice while the per-member sets are stacked, plus
  the transient cost of enumerating the largest task's examples once (all ``modulus**2`` pairs for modular tasks);
* **model and optimiser**: the parameters of every member times the copies that live at once: the weights, their
  gradients, the chunked-gradient buffer, the optimiser's state (Adam/AdamW: 2, SGD with momentum: 1), the gradient
  transforms' state (Grokfast-MA: its window) and a checkpoint being written; plus any teacher model files and the
  teacher log-probabilities distillation precomputes for every training row;
* **compute**: the logits (float32 and the loss dtype, with their gradients) and activations of one member chunk of a
  training step, or of one evaluation chunk, whichever is larger, including the one-layer transformer's attention
  tables, which grow with the square of the vocabulary.

The memory to spend (:func:`memory_limit`) is the smaller of ``GROKKIT_MEMORY_LIMIT`` (``64GiB``, ``500M``, bytes;
``off`` disables the check) and what the device has: ``MemAvailable`` of ``/proc/meminfo`` (and a cgroup's
``memory.max``) on CPU, ``torch.cuda.mem_get_info`` on CUDA (the data are built on the host there, so the host is
checked for them too). Where neither can be read the check is skipped rather than guessed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from grokkit.errors import InputError

if TYPE_CHECKING:
    from grokkit.config import RunConfig

#: the cap on what a run may use (see the module docstring); ``off`` disables the check
LIMIT_ENV = "GROKKIT_MEMORY_LIMIT"
GiB = 1 << 30
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "m": 1000**2, "mb": 1000**2, "mib": 1 << 20,
          "g": 1000**3, "gb": 1000**3, "gib": 1 << 30, "t": 1000**4, "tb": 1000**4, "tib": 1 << 40}
#: the engine's rows per member chunk on CPU and per evaluation chunk (see grokkit.engine): the estimate follows them
CPU_CHUNK_ROWS = 8192
EVAL_ROWS = {"cpu": CPU_CHUNK_ROWS * 4, "other": 1 << 20}


class ResourceError(InputError):
    """A run (or a sweep's trial) that needs more memory than the machine has or the cap allows; nothing has been
    allocated or written."""


def fmt_bytes(n: float) -> str:
    """``1.5 GiB``, ``300.2 MiB``, ``12 KiB``."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


@dataclass
class MemoryEstimate:
    """Bytes a run needs at its peak, by part, each with a few words on what it is made of."""

    data: int
    model: int
    compute: int
    #: what the accelerator holds on CUDA (data once, model, compute); equal to :attr:`total` on CPU
    device_bytes: int
    #: what is built on the host whatever the device (the data, twice while stacking, and the build's transient)
    host_bytes: int
    notes: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"

    @property
    def total(self) -> int:
        return self.data + self.model + self.compute

    def describe(self) -> str:
        return (f"data {fmt_bytes(self.data)} ({self.notes['data']}), model and optimiser {fmt_bytes(self.model)} "
                f"({self.notes['model']}), logits and activations {fmt_bytes(self.compute)} ({self.notes['compute']})")


def _model_params(cfg: RunConfig, d_vocab: int, n_classes: int, seq: int) -> tuple[int, int]:
    """(bytes of one member's parameters, their number), from the model built on the meta device without its seeded
    initialisation (drawing random numbers on ``meta`` costs seconds of PyTorch imports, and shapes are all we need)."""
    import torch

    rank = None
    if cfg.embedding_init is not None:  # the transferred embedding's inner width is the source's d_model
        rank = _source_width(cfg.embedding_init.model)
    spec = cfg.model
    shapes_only = type("ShapesOnly", (spec.model_class,), {"reset_parameters": lambda self: None})
    with torch.device("meta"):
        model = shapes_only(spec.shape(d_vocab, n_classes, seq, rank), [0])
    params = list(model.parameters())
    return sum(p.numel() * p.element_size() for p in params), sum(p.numel() for p in params)


def _source_width(path: str) -> int | None:
    """The embedding width of a model file's ``embed.W_E`` (its header only); None if it cannot be read here."""
    from safetensors import safe_open

    p = Path(path)
    p = p / "model.safetensors" if p.is_dir() else p
    try:
        with safe_open(str(p), framework="pt") as f:
            for key in ("embed.W_E", "embed.W_E_B"):
                if key in f.keys():
                    return int(f.get_slice(key).get_shape()[-1])
    except Exception:  # noqa: BLE001 - an unreadable source is reported by the run itself, with its own message
        return None
    return None


def _file_bytes(path: str | None) -> int:
    if not path:
        return 0
    p = Path(path)
    p = p / "model.safetensors" if p.is_dir() else p
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _teachers(cfg: RunConfig) -> list[str]:
    """The teacher model files a run loads (``distill.teacher``, one path or several)."""
    d = getattr(cfg, "distill", None)
    return [t for t in d.teacher_list() if t] if d is not None else []


def estimate_memory(cfg: RunConfig) -> MemoryEstimate:
    """The peak memory of training ``cfg`` (see the module docstring for what is counted); nothing is allocated."""
    from grokkit.recipes.common import build_vocab

    vocab = build_vocab(cfg)
    members = cfg.member_list()
    k = len(members)
    seq = cfg.task.build().sequence_length
    dtype_bytes = 8 if cfg.loss.dtype == "float64" else 4
    own_fraction = cfg.task.member_fraction and cfg.member_applies("train_fraction")
    fractions = cfg.member_values("train_fraction") if own_fraction else [None] * k

    # ---- data: per member, padded to the largest member's set
    train = test = val = watched = 0
    largest_task = 0
    uncounted: list[str] = []
    for tc in cfg.all_tasks() + list(cfg.eval_tasks or []):
        try:
            counts = ([tc.example_counts(f if tc is cfg.task else None) for f in fractions] if tc in cfg.all_tasks()
                      else [(0, tc.example_counts()[1], 0)])
        except NotImplementedError:  # a task kind that cannot say: its data are left out of the estimate
            uncounted.append(tc.kind)
            continue
        train += max(c[0] for c in counts)
        test += max(c[1] for c in counts) if tc in cfg.all_tasks() else 0
        watched += 0 if tc in cfg.all_tasks() else counts[0][1]
        val += max(c[2] for c in counts)
        largest_task = max(largest_task, sum(counts[0]))
    per_example = 8 * seq + 20
    examples = train + test + val + watched
    data_once = k * examples * per_example
    build = largest_task * (16 * seq + 60)  # enumerating one member's task: all examples, indices, selected copies
    data_host = 2 * data_once + build

    # ---- model and optimiser
    param_bytes, n_params = _model_params(cfg, vocab.d_vocab, vocab.n_classes, seq)
    opt = cfg.optimizer
    opt_copies = 2 if opt.name in ("adam", "adamw") else (1 if opt.momentum else 0)
    transform_copies = 0
    for t in opt.transforms:
        extra = t.model_dump()
        transform_copies += int(extra.get("window", 1)) + 1 if t.name == "grokfast_ma" else 1
    copies = 1 + 1 + 1 + opt_copies + transform_copies + (1 + opt_copies)  # weights, grads, chunk buffer, state, ckpt
    model_bytes = k * param_bytes * copies
    teachers = _teachers(cfg)
    teacher_files = sum(2 * _file_bytes(t) for t in teachers)
    teacher_targets = len(teachers) * k * (train + test) * vocab.n_classes * (4 + dtype_bytes)
    model_total = model_bytes + teacher_files + teacher_targets

    # ---- compute: one training chunk or one evaluation chunk
    m = cfg.model
    width = getattr(m, "d_model", None) or getattr(m, "d_embed", None) or 0
    d_mlp = getattr(m, "d_mlp", 0) or 0
    heads = getattr(m, "n_heads", 0) or 0
    d_head = getattr(m, "d_head", 0) or 0
    n_layers = getattr(m, "n_layers", 1) or 1
    scored = 2 if teachers or getattr(cfg, "distill", None) is not None else 1
    hidden = n_layers * seq * (6 * width + 3 * d_mlp + 4 * heads * d_head + 3 * seq * heads)  # floats per example
    batch = cfg.training.batch_size
    batch_rows = min(batch, train) if batch else train
    device = cfg.training.device
    on_cpu = device == "cpu"

    def tables(rows: int) -> int:
        """Floats of one member's lookup tables for ``rows`` examples: the first layer's (token, position) table and,
        with attention heads, the score table over (query, key) token rows (both bounded by the rows present)."""
        key_rows = min(seq * vocab.d_vocab, rows * seq)
        query_rows = min(scored * vocab.d_vocab, rows * scored)
        out = key_rows * max(width, d_mlp)
        if heads:
            out += query_rows * key_rows * heads + key_rows * heads * width
        return out

    rows_per_member = max(1, batch_rows * scored)
    if cfg.training.member_chunk is not None:
        chunk = min(cfg.training.member_chunk, k)
    elif on_cpu:
        chunk = max(1, min(k, CPU_CHUNK_ROWS // rows_per_member))
    else:
        chunk = k
    logit_bytes = vocab.n_classes * (4 + 4 + 2 * dtype_bytes)
    train_step = chunk * (rows_per_member * logit_bytes + batch_rows * hidden * 8 + tables(batch_rows) * 12)
    eval_rows = min(max(train, test, val, watched, 1), max(1, EVAL_ROWS["cpu" if on_cpu else "other"] // k))
    evaluation = k * (eval_rows * (vocab.n_classes * (4 + dtype_bytes) + hidden * 4) + tables(eval_rows) * 4)
    compute = max(train_step, evaluation)

    notes = {
        "data": f"{k} member(s) x {examples:,} examples of {seq} tokens, stacked"
                + (f"; building them enumerates {largest_task:,} examples" if largest_task else "")
                + (f"; task kind(s) {', '.join(uncounted)} not counted" if uncounted else ""),
        "model": f"{n_params:,} parameters x {k} member(s) x {copies} copies: weights, gradients, {opt.name} state, "
                 "checkpoint" + (f"; {len(teachers)} teacher(s) and their targets" if teachers else ""),
        "compute": f"{chunk} member(s) per chunk x {batch_rows:,} rows x {vocab.n_classes} classes"
                   + (f", attention tables over a vocabulary of {vocab.d_vocab}" if heads else ""),
    }
    device_bytes = data_once + model_total + compute if not on_cpu else data_host + model_total + compute
    return MemoryEstimate(data=data_host, model=model_total, compute=compute, device_bytes=device_bytes,
                          host_bytes=data_host + teacher_files + teacher_targets, notes=notes, device=device)


def parse_size(text: str) -> int | None:
    """``"64GiB"``, ``"500M"``, ``"2e9"`` -> bytes; ``"off"`` -> None (no cap, no check). Raises
    :class:`ResourceError` for anything else."""
    raw = text.strip().lower().replace(" ", "")
    if raw in ("off", "none", "unlimited"):
        return None
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[0-9]+)?)([a-z]*)", raw)
    if not match or match.group(2) not in _UNITS or float(match.group(1)) <= 0:
        raise ResourceError(f"{LIMIT_ENV}={text!r} is not a size: give e.g. 64GiB, 500MB or a number of bytes "
                            "(or off to skip the memory check)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """What a cgroup-v2 memory limit leaves (``memory.max - memory.current``), if this process is under one."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((base / "memory.current").read_text().strip())
    except (OSError, ValueError):
        return None


def host_available() -> tuple[int | None, str]:
    """(bytes of host memory available, where the number comes from); (None, why) where it cannot be read."""
    found = [(v, w) for v, w in ((_meminfo_available(), "MemAvailable in /proc/meminfo"),
                                 (_cgroup_available(), "this cgroup's memory.max")) if v is not None]
    if not found:
        try:
            import psutil  # type: ignore[import-untyped]

            return int(psutil.virtual_memory().available), "psutil"
        except ImportError:
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free physical pages"
        except (ValueError, OSError, AttributeError):
            return None, "the free memory cannot be read here"
    return min(found)


def device_available(device: str) -> tuple[int | None, str]:
    """(bytes free on ``device``, where the number comes from); the host's for ``cpu``."""
    if device == "cpu":
        return host_available()
    if device.startswith("cuda"):
        import torch

        try:
            free, _ = torch.cuda.mem_get_info(torch.device(device))
            return int(free), f"free memory of {device} (torch.cuda.mem_get_info)"
        except (RuntimeError, AssertionError, ValueError):
            return None, f"the free memory of {device} cannot be read"
    return None, f"the free memory of {device} cannot be read"


def memory_limit(device: str) -> tuple[int | None, str]:
    """What a run on ``device`` may use: the smaller of :data:`LIMIT_ENV` and what the device has, with where it comes
    from; (None, why) when there is nothing to check against (``GROKKIT_MEMORY_LIMIT=off``, or nothing readable)."""
    raw = os.environ.get(LIMIT_ENV)
    cap = parse_size(raw) if raw else None
    if raw and cap is None:
        return None, f"{LIMIT_ENV}=off"
    have, where = device_available(device)
    if cap is not None and (have is None or cap < have):
        return cap, f"{LIMIT_ENV}={raw}"
    return have, where


def check_memory(cfg: RunConfig, limit: tuple[int | None, str] | None = None) -> MemoryEstimate:
    """Refuse (:class:`ResourceError`) a run whose estimate exceeds what it may use, before anything is allocated;
    returns the estimate otherwise. ``limit``: (bytes, where) instead of :func:`memory_limit` of the run's device."""
    est = estimate_memory(cfg)
    device = cfg.training.device
    checks = [(est.device_bytes, limit if limit is not None else memory_limit(device), device)]
    if device != "cpu" and limit is None:  # the data are built on the host first
        checks.append((est.host_bytes, memory_limit("cpu"), "the host"))
    for need, (have, where), what in checks:
        if have is not None and need > have:
            raise ResourceError(
                f"this run needs about {fmt_bytes(need)} of memory on {what}, more than the {fmt_bytes(have)} it may "
                f"use ({where}); nothing was allocated or written. Estimate: {est.describe()}. Reduce what dominates: "
                f"{_advice(est, cfg, have)}; or, if the estimate is wrong for this machine, set {LIMIT_ENV} (e.g. "
                f"{LIMIT_ENV}=64GiB, or off to skip this check)")
    return est


def _advice(est: MemoryEstimate, cfg: RunConfig, have: int) -> str:
    """What to reduce, the two largest parts first; the data first whenever they alone exceed ``have`` (their size
    drives the rows of the logits too, and nothing else helps then)."""
    parts = sorted((("data", est.data), ("model", est.model), ("compute", est.compute)),
                   key=lambda p: (not (p[0] == "data" and p[1] > have), -p[1]))
    tips = {
        "data": ("the task's size (task.modulus: the pairs grow with its square; n_train/n_test) or the number of "
                 "members (seeds)") if any(t.is_modular for t in cfg.all_tasks()) else
                "the task's size (n_train/n_test) or the number of members (seeds)",
        "model": "the model's widths (model.d_model, d_mlp, n_heads, d_vocab through vocab.n_numbers) or the number "
                 "of members (seeds)",
        "compute": "training.batch_size, training.member_chunk (members computed at once) or the vocabulary "
                   "(vocab.n_numbers)",
    }
    return "; then ".join(tips[name] for name, _ in parts[:2])


def fits(cfg: RunConfig, budget: int) -> bool:
    """Whether ``cfg``'s estimate (on its device) is within ``budget`` bytes."""
    return estimate_memory(cfg).device_bytes <= budget
