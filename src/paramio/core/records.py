"""`Record`: the base of small immutable value classes on the listing path.

`MutableRecord` is the same for ``@dataclass(slots=True)`` (fields may be set; equality by
value, hence no hash). A subclass names its fields once, in order, as ``__slots__`` and ``__match_args__``, and writes
its own ``__init__`` (setting each field with ``object.__setattr__``). It behaves as
``@dataclass(frozen=True, slots=True)`` would make it: equality and hash by class and field
values, a field-by-field `repr`, `dataclasses.FrozenInstanceError` on assignment or deletion,
pickling and copying by value. What it saves is the ``dataclasses`` decorator's work, about half
a millisecond per class in every process that imports it (``paramio dump FILE`` builds its
classes at start-up: tests/core/test_startup.py, benchmarks/startup.py).
"""

from __future__ import annotations

__all__ = ["MutableRecord", "Record"]


class Record:
    """An immutable slotted value; see the module's docstring."""

    __slots__ = ()
    #: The fields, in order: each subclass names the same tuple as its ``__slots__``.
    __match_args__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, Record):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        import dataclasses  # the error a frozen dataclass raises, so callers catch one kind

        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        import dataclasses

        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return (type(self), self._values())


class MutableRecord:
    """A slotted value whose fields may be set: equality by class and field values (so no hash)
    and a field-by-field `repr`, as ``@dataclass(slots=True)`` makes them."""

    __slots__ = ()
    #: The fields, in order: each subclass names the same tuple as its ``__slots__``.
    __match_args__: tuple[str, ...] = ()
    __hash__ = None  # type: ignore[assignment]

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, MutableRecord):
            return NotImplemented
        return self._values() == other._values()
