"""One registry type for every kind of component (task kinds, model kinds, losses, gradient transforms, optimisers,
recipes). A registry lives beside the components it lists; configs derive their allowed values from it, so adding a
component is one ``@REGISTRY.register("name")`` in the component's own file."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, in registration order. ``get`` raises a ``ValueError`` naming what is allowed (and
    the nearest name, for a misspelling)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@TASKS.register("modular")`` on the entry (a class or a function)."""
        return lambda entry: self.add(name, entry)

    def get(self, name: str) -> T:
        if name not in self._entries:
            near = difflib.get_close_matches(str(name), list(self._entries), n=1, cutoff=0.6)
            raise ValueError(f"unknown {self.kind} {name!r}; " + (f"did you mean `{near[0]}`? " if near else "")
                             + f"allowed: {', '.join(self._entries)}")
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


def tagged_union(registry: Registry[Any], default: str) -> Any:
    """A pydantic discriminated union over the config classes in ``registry``, chosen by their ``kind`` (``default``
    when the input has none): a config section whose allowed kinds are whatever is registered."""
    from typing import Annotated, Union

    from pydantic import Discriminator, Tag

    def kind(value: Any) -> str:
        return value.get("kind", default) if isinstance(value, dict) else getattr(value, "kind", default)

    members = tuple(Annotated[cls, Tag(name)] for name, cls in registry.items())
    return Annotated[Union[members], Discriminator(kind)]  # noqa: UP007

