"""Optional metric streams: TensorBoard and Weights & Biases (offline by default). Off unless a config's ``logging``
section turns them on; ``metrics.csv`` is always written regardless."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from grokkit.config import RunConfig

SCALARS = ("train_loss", "train_acc", "test_loss", "test_acc", "weight_norm")


class Sink(Protocol):
    def write(self, step: int, rows: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


class TensorBoardSink:
    """One scalar per member and metric, tagged ``<metric>/member<k>_seed<s>``, so TensorBoard overlays members."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError("logging.tensorboard needs TensorBoard: pip install 'grokkit[tensorboard]'") from None
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def write(self, step: int, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            for key in SCALARS:
                if r.get(key) is not None:
                    self.writer.add_scalar(f"{key}/member{r['member']}_seed{r['seed']}", r[key], step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    """Weights & Biases; ``mode: offline`` (default) writes locally, to sync later with ``wandb sync``."""

    def __init__(self, cfg: RunConfig, out: Path | None) -> None:
        try:
            import wandb
        except ImportError:
            raise ValueError("logging.wandb needs Weights & Biases: pip install 'grokkit[wandb]'") from None
        lg = cfg.logging
        self.run = wandb.init(project=lg.wandb_project, name=cfg.name, mode=lg.wandb_mode,
                              dir=str(out) if out is not None else None, config=cfg.model_dump(mode="json"))

    def write(self, step: int, rows: list[dict[str, Any]]) -> None:
        data = {f"{key}/member{r['member']}": r[key] for r in rows for key in SCALARS if r.get(key) is not None}
        self.run.log(data, step=step)

    def close(self) -> None:
        self.run.finish()


def check_sinks(cfg: RunConfig) -> None:
    """Raise ValueError (naming the extra to install) if a requested backend is missing; writes nothing."""
    import importlib

    for wanted, module, extra in ((cfg.logging.tensorboard, "torch.utils.tensorboard", "tensorboard"),
                                  (cfg.logging.wandb, "wandb", "wandb")):
        if wanted:
            try:
                importlib.import_module(module)
            except ImportError:
                raise ValueError(f"logging.{extra} needs {extra}: pip install 'grokkit[{extra}]'") from None


def make_sinks(cfg: RunConfig, out: Path | None) -> list[Sink]:
    sinks: list[Sink] = []
    if cfg.logging.tensorboard:
        sinks.append(TensorBoardSink((out or Path("runs/unnamed")) / "tensorboard"))
    if cfg.logging.wandb:
        sinks.append(WandbSink(cfg, out))
    return sinks
