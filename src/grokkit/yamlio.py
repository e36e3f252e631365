"""Bounded YAML: every YAML file or string grokkit reads goes through :func:`load_yaml_text` / :func:`read_yaml_file`.

``yaml.safe_load`` already refuses Python tags, but two inputs still hurt it. A file of gigabytes (a wrong path, a
device such as ``/dev/zero``) is read whole. An *alias bomb* -- nine levels of anchors, each a list of ten references
to the level below -- is a few hundred bytes that PyYAML composes into a small graph of shared nodes in a
millisecond; everything downstream (validation, overrides, deep copies, ``json.dumps``) walks it as the 10^9 items it
stands for, which takes minutes and memory without bound. A recursive alias (``&a [*a]``) is even infinite.

So a file is read only up to :data:`MAX_BYTES` (a config is a few KiB), and before the composed graph is turned into
Python objects its *expanded* size -- every node counted as often as aliases make it appear -- is computed in one
memoised pass over the distinct nodes, which takes time proportional to the file, not to its expansion. More than
:data:`MAX_NODES` expanded nodes, or an alias that contains itself, is refused at once. Everything else is exactly
``yaml.safe_load`` (the same constructors; no Python tags).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

#: the largest YAML file read (1 MiB): shipped configs and specs are a few KiB, a large sweep spec tens of KiB
MAX_BYTES = 1 << 20
#: the most nodes a document may expand to, aliases counted as often as they are used: 40 times the largest shipped
#: file (configs/map/map.yaml, about 2,400), and small enough that validating that many takes well under a second
MAX_NODES = 100_000


class YAMLLimitError(yaml.YAMLError):
    """A YAML input larger than grokkit reads (bytes or expanded nodes); the message says which limit and why."""


def _expanded_size(root: Node, limit: int) -> int:
    """Nodes of ``root`` with every alias expanded, counted without expanding (memoised per distinct node); raises
    :class:`YAMLLimitError` past ``limit`` or on a node that contains itself."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    # iterative depth-first walk: a deeply nested document must not hit Python's recursion limit
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _children(node))
            if total > limit:
                raise YAMLLimitError(f"it expands to more than {limit:,} YAML nodes, aliases counted each time they "
                                     "are used (an alias bomb?); a config or spec is a few hundred")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YAMLLimitError("an alias refers to a node that contains it (a recursive alias)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that checks a document's expanded size (:data:`MAX_NODES`) before constructing it."""

    max_nodes = MAX_NODES

    def construct_document(self, node: Node) -> Any:
        _expanded_size(node, self.max_nodes)
        return super().construct_document(node)


def load_yaml_text(text: str, max_nodes: int = MAX_NODES) -> Any:
    """``yaml.safe_load(text)`` with the expansion bound; raises ``yaml.YAMLError`` (a :class:`YAMLLimitError` for a
    bound)."""
    if len(text) > MAX_BYTES:
        raise YAMLLimitError(f"it is larger than {MAX_BYTES:,} bytes")
    loader = BoundedSafeLoader(text)
    loader.max_nodes = max_nodes
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_file(path: str | Path) -> Any:
    """A YAML file's content, read only up to :data:`MAX_BYTES` (so a huge file or a device costs nothing); raises
    FileNotFoundError / OSError / UnicodeDecodeError as reading does, ``yaml.YAMLError`` for bad or oversized YAML."""
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise YAMLLimitError(f"it is larger than {MAX_BYTES:,} bytes (a config or spec is a few KiB)")
    return load_yaml_text(data.decode("utf-8"))
