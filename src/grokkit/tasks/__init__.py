"""Tasks: binary operations modulo P over one vocabulary shared by every task of a run (:mod:`.modular`), and bit
tasks (sparse parity, high-dimensional XOR; :mod:`.bits`).

Every module of this package is imported here, so a new task kind is one new module (a :class:`TaskSpec` subclass
registered in :data:`TASKS`); the config's ``task:`` section, :data:`TaskConfig`, is the discriminated union (on
``kind``, default ``modular``) of every registered kind.
"""

from __future__ import annotations

import importlib
import pkgutil

from grokkit.registry import tagged_union
from grokkit.tasks.base import (
    LAYOUT_V1_OPERATIONS,
    POSITIONS,
    SEQUENCE_LENGTH,
    TASKS,
    EnsembleExamples,
    Examples,
    Split,
    Task,
    TaskSpec,
    Vocabulary,
    stack_members,
)

importlib.import_module(f"{__name__}.modular")  # the default kind first
for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

from grokkit.tasks.bits import (  # noqa: E402
    BIT_VOCABULARY,
    SparseParityTask,
    XorTask,
    bit_vocabulary,
    distinct_bit_rows,
)
from grokkit.tasks.modular import OPS, ModularTask, ModularTaskConfig  # noqa: E402

#: every registered operation (layout-v1 ones first)
OPERATIONS: tuple[str, ...] = OPS.names()


#: the ``task:`` section: one config class per registered task kind, chosen by ``kind`` (default ``modular``)
TaskConfig = tagged_union(TASKS, default="modular")

__all__ = ["BIT_VOCABULARY", "LAYOUT_V1_OPERATIONS", "OPERATIONS", "OPS", "POSITIONS", "SEQUENCE_LENGTH", "TASKS",
           "EnsembleExamples", "Examples", "ModularTask", "ModularTaskConfig", "SparseParityTask", "Split", "Task",
           "TaskConfig", "TaskSpec", "Vocabulary", "XorTask", "bit_vocabulary", "distinct_bit_rows", "stack_members"]
