"""Scopes as IREE's tools build them from ``--parameters=[scope=]file`` flags.

A scope is a plain string; ``""`` is the global scope. Each flag is split at its first ``=``
(no ``=``, or a ``:``/``/``/``?`` before it, as in a presigned URL: the global scope); files of one scope are appended, in flag order, into that scope's
index, so for a key held twice the first file given wins (IREE's rule, measured). Scope order is
the order of first appearance. Layered lookups with other precedence rules live in
`paramio.index.provider`.
"""

from __future__ import annotations

import os

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError, ParameterNotFoundError
from paramio.core.records import Record
from paramio.index.index import DuplicatePolicy, ParameterIndex
from paramio.sources.paths import AllowExternal

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["ParameterSpec", "ScopeMap", "parse_parameters_flag", "split_scope", "split_scoped_key"]


class ParameterSpec(Record):
    """One ``--parameters`` value: the scope it serves and the file behind it."""

    __slots__ = ("scope", "path")
    __match_args__ = __slots__
    scope: str
    path: str

    def __init__(self, scope: str, path: str) -> None:
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "path", path)


def split_scope(value: str) -> tuple[str, str]:
    """``[scope=]path`` -> (scope, path). Split at the first ``=`` as IREE does, but only where
    what precedes it can be a scope name (no ``:``, ``/``, ``\\`` or ``?``): a URL whose query
    holds ``=`` (every presigned URL) or a path like ``dir/a=b.irpa`` is a file in the global
    scope, never a scope named after part of it."""
    scope, sep, path = value.partition("=")
    if not sep or any(c in scope for c in ":/\\?"):
        return "", value
    return scope, path


def parse_parameters_flag(value: str) -> ParameterSpec:
    """``[scope=]path`` split by `split_scope`."""
    if value == "":
        raise InvalidArgumentError("--parameters needs a file: --parameters=[scope=]path")
    scope, path = split_scope(value)
    if path == value:
        return ParameterSpec("", value)
    if not path:
        raise InvalidArgumentError(f"--parameters={value!r} names a scope but no file")
    return ParameterSpec(scope, path)


def split_scoped_key(text: str) -> tuple[str, str]:
    """``scope::key`` -> (scope, key); a key without ``::`` is in the global scope.

    IREE splits at the first single ``:``, mangling keys that contain one; paramio splits at
    the first ``::`` so ``a:b`` stays a key.
    """
    scope, sep, key = text.partition("::")
    if not sep:
        return "", text
    return scope, key


class ScopeMap:
    """Ordered scopes, each with one flat index; IREE's semantics by default (duplicates kept,
    the first one found)."""

    def __init__(self, *, duplicates: DuplicatePolicy | str = DuplicatePolicy.KEEP) -> None:
        self.duplicates = DuplicatePolicy(duplicates)
        self._scopes: dict[str, ParameterIndex] = {}

    @classmethod
    def from_flags(
        cls,
        values: Iterable[str],
        *,
        duplicates: DuplicatePolicy | str = DuplicatePolicy.KEEP,
        writable: bool = False,
        strict: bool = False,
        allow_external: AllowExternal = None,
        copy: bool = False,
    ) -> ScopeMap:
        sm = cls(duplicates=duplicates)
        for v in values:
            spec = parse_parameters_flag(v)
            sm.load(spec.scope, spec.path, writable=writable, strict=strict, allow_external=allow_external, copy=copy)
        return sm

    def scope(self, name: str) -> ParameterIndex:
        """The index of scope `name`, created empty if new."""
        index = self._scopes.get(name)
        if index is None:
            index = self._scopes[name] = ParameterIndex(duplicates=self.duplicates)
        return index

    def load(
        self,
        scope: str,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        writable: bool = False,
        strict: bool = False,
        allow_external: AllowExternal = None,
        copy: bool = False,
    ) -> None:
        """Load `path` into `scope`; `copy=True` reads it into memory (see `ParameterIndex.load`)."""
        self.scope(scope).load(
            path, format=format, writable=writable, strict=strict, allow_external=allow_external, copy=copy
        )

    def lookup(self, scope: str, key: str) -> ParameterEntry:
        index = self._scopes.get(scope)
        if index is None:
            raise ParameterNotFoundError(
                f"no scope {scope!r} (scopes: {', '.join(map(repr, self._scopes)) or 'none'})", key=key
            )
        return index[key]

    def __getitem__(self, scoped_key: str) -> ParameterEntry:
        return self.lookup(*split_scoped_key(scoped_key))

    def items(self) -> Iterator[tuple[str, ParameterIndex]]:
        return iter(list(self._scopes.items()))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._scopes))

    def __len__(self) -> int:
        return len(self._scopes)

    def __contains__(self, scope: object) -> bool:
        return scope in self._scopes
