"""Records: small slotted value classes on the listing path, without ``dataclasses``.

`Record` is what ``@dataclass(frozen=True, slots=True)`` makes and `MutableRecord` what
``@dataclass(slots=True)`` makes: equality by class and field values, a field-by-field `repr`,
``replace(**changes)`` (also as ``__replace__``, for Python 3.13's `copy.replace`), pickling and
copying by value; a `Record` also hashes by its values and refuses assignment and deletion with
`dataclasses.FrozenInstanceError`, a `MutableRecord` has no hash. What they save is the
``dataclasses`` decorator's work (it generates and compiles each class's methods: about half a
millisecond per class) and the ``inspect``, ``ast``, ``dis`` and ``tokenize`` it imports, in every
process that imports the class (``paramio dump FILE``: tests/core/test_startup.py,
benchmarks/startup.py).

A subclass is written one of two ways:

- by hand: it names its fields once, in order, as ``__slots__`` (then ``__match_args__ = __slots__``), and
  writes its own ``__init__``, setting each field with ``object.__setattr__`` (or, where a record
  is made per entry, with its slot's setter: `paramio.core.tensor.TensorInfo`). Its constructor
  takes every field under the field's name (`replace` calls it with keywords);
- with `record`, which builds the class from its annotations and class-level defaults, as
  ``@dataclass`` does: ``__slots__``, ``__init__`` (positional or, with ``kw_only=True``,
  keyword-only), a ``__post_init__`` hook, `factory` defaults (a fresh value per instance).
"""

from __future__ import annotations

from operator import attrgetter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Self, TypeVar, dataclass_transform, overload

    _T = TypeVar("_T")
    _C = TypeVar("_C", bound=type)

__all__ = ["MutableRecord", "Record", "factory", "record"]


def _getter(fields: tuple[str, ...]) -> Callable[[object], tuple[object, ...]]:
    """A function of an instance giving its field values as a tuple (`operator.attrgetter`:
    a third of the time of a generator over `getattr`)."""
    if len(fields) > 1:
        return attrgetter(*fields)
    if fields:
        name = fields[0]
        return lambda obj: (getattr(obj, name),)
    return lambda obj: ()


class _Value:
    """What `Record` and `MutableRecord` share: fields, equality, `repr`, `replace`, pickling."""

    __slots__ = ()
    #: The fields, in order: each hand-written subclass names the same tuple as its ``__slots__``.
    __match_args__: tuple[str, ...] = ()
    #: The fields, in order (`record` sets it; otherwise the class's ``__match_args__``): what
    #: equality, hash, `repr`, `replace` and pickling read.
    _record_fields: tuple[str, ...] = ()
    #: `_getter` of `_record_fields`, made once per class.
    _field_values: Callable[[object], tuple[object, ...]] = staticmethod(_getter(()))

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        own = cls.__dict__
        if "_record_fields" not in own and "__match_args__" in own:  # a hand-written record
            cls._record_fields = own["__match_args__"]
        cls._field_values = staticmethod(_getter(cls._record_fields))  # (else its base's fields)

    def __repr__(self) -> str:
        pairs = zip(self._record_fields, self._field_values(self), strict=True)
        return f"{type(self).__qualname__}({', '.join([f'{name}={value!r}' for name, value in pairs])})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._field_values(self) == self._field_values(other)

    def replace(self, **changes: object) -> Self:
        """A copy with the named fields changed, made by the class's constructor (so its checks
        run), as `dataclasses.replace` makes one. `TypeError` names a field the class lacks."""
        fields = self._record_fields
        values = dict(zip(fields, self._field_values(self), strict=True))
        values.update(changes)
        if len(values) != len(fields):  # a name that is no field
            unknown = sorted(changes.keys() - set(fields))
            raise TypeError(f"{type(self).__qualname__} has no field(s) {', '.join(unknown)}")
        return type(self)(**values)

    #: `copy.replace` (Python 3.13) calls this.
    __replace__ = replace

    # Pickling and copying: by value, past ``__init__`` and a frozen record's guard (as a slotted
    # dataclass does it), so a keyword-only constructor needs nothing of its own.
    def __getstate__(self) -> tuple[object, ...]:
        return self._field_values(self)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self._record_fields, state, strict=True):
            object.__setattr__(self, name, value)


class Record(_Value):
    """An immutable slotted value; see the module's docstring."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._field_values(self))

    def __setattr__(self, name: str, value: object) -> None:
        import dataclasses  # the error a frozen dataclass raises, so callers catch one kind

        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        import dataclasses

        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


class MutableRecord(_Value):
    """A slotted value whose fields may be set; see the module's docstring."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]


# -- `record`: a record class from its annotations ----------------------------------------------


class _Factory:
    """A `factory` default: what makes a field's value when the constructor is not given one."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make

    def __repr__(self) -> str:
        return "<factory>"


def factory(make: Callable[[], _T]) -> _T:
    """A default made afresh for each instance of a `record` class: ``extra: dict[str, object] =
    factory(dict)`` (as ``dataclasses.field(default_factory=dict)``)."""
    return _Factory(make)  # type: ignore[return-value]


class _Signature:
    """``inspect.signature`` of a `record` class: its generated ``__init__``'s parameters, made
    when first asked for (``inspect`` is not imported to make a record)."""

    __slots__ = ("_annotations", "_defaults", "_kw_only")

    def __init__(self, annotations: dict[str, object], defaults: dict[str, object], kw_only: bool) -> None:
        self._annotations = annotations
        self._defaults = defaults
        self._kw_only = kw_only

    def __get__(self, obj: object, owner: type | None = None) -> object:
        import inspect

        kind = inspect.Parameter.KEYWORD_ONLY if self._kw_only else inspect.Parameter.POSITIONAL_OR_KEYWORD
        empty = inspect.Parameter.empty
        parameters = [
            inspect.Parameter(name, kind, default=self._defaults.get(name, empty), annotation=annotation)
            for name, annotation in self._annotations.items()
        ]
        return inspect.Signature(parameters, return_annotation=None)


def _make_init(
    name: str, fields: tuple[str, ...], defaults: dict[str, object], kw_only: bool
) -> tuple[Callable[..., None], list[tuple[str, Callable[[object, object], None]]]]:
    """The ``__init__`` of a `record` class, and the list of ``(field, slot setter)`` it stores
    through (filled in once the class, and so its slots, exist)."""
    positional = () if kw_only else fields
    required = [f for f in fields if f not in defaults]
    known = frozenset(fields)
    setters: list[tuple[str, Callable[[object, object], None]]] = []
    missing_value = object()

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        if args:
            if len(args) > len(positional):
                raise TypeError(f"{name}() takes {len(positional)} positional argument(s) but {len(args)} were given")
            for field, value in zip(positional, args, strict=False):
                if field in kwargs:
                    raise TypeError(f"{name}() got multiple values for argument {field!r}")
                kwargs[field] = value
        if not known.issuperset(kwargs):
            unknown = sorted(kwargs.keys() - known)
            raise TypeError(f"{name}() got an unexpected keyword argument {unknown[0]!r}")
        absent = [f for f in required if f not in kwargs]
        if absent:
            raise TypeError(f"{name}() missing required argument(s): {', '.join(map(repr, absent))}")
        for field, set_field in setters:
            value = kwargs.get(field, missing_value)
            if value is missing_value:
                value = defaults[field]
                if type(value) is _Factory:
                    value = value.make()
            set_field(self, value)
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    __init__.__qualname__ = f"{name}.__init__"
    return __init__, setters


def _own_annotations(cls: type) -> dict[str, object]:
    own = cls.__dict__.get("__annotations__")
    if own is None:  # Python 3.14 evaluates a class's annotations on first use
        own = cls.__annotations__ if "__annotate__" in cls.__dict__ else {}
    return dict(own)


def _is_class_var(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return isinstance(text, str) and text.replace("typing.", "").startswith("ClassVar")


def _build(cls: type, kw_only: bool, frozen: bool) -> type:
    base = Record if frozen else MutableRecord
    if not issubclass(cls, base) or issubclass(cls, Record if not frozen else MutableRecord):
        raise TypeError(
            f"@record{'' if frozen else '(frozen=False)'} makes a {base.__name__}: derive {cls.__name__} from it"
        )
    own = dict(cls.__dict__)
    if "__slots__" in own:
        raise TypeError(f"{cls.__name__}: @record makes the slots from the annotations; name none")
    if any(issubclass(b, _Value) and b._record_fields for b in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: @record does not extend another record's fields")
    annotations = {f: a for f, a in _own_annotations(cls).items() if not _is_class_var(a)}
    fields = tuple(annotations)
    defaults: dict[str, object] = {}
    for f in fields:
        if f in own:
            value = own.pop(f)
            if type(value) in (list, dict, set):
                raise TypeError(f"{cls.__name__}.{f}: a mutable default is shared by every instance; use factory()")
            defaults[f] = value
        elif defaults and not kw_only:
            raise TypeError(f"{cls.__name__}: field {f!r} without a default follows one with a default")
    own.pop("__dict__", None)
    own.pop("__weakref__", None)
    own["__slots__"] = fields
    own["__qualname__"] = cls.__qualname__
    own["_record_fields"] = fields
    own["__match_args__"] = () if kw_only else fields
    setters = None
    if "__init__" not in own:
        own["__init__"], setters = _make_init(cls.__qualname__, fields, defaults, kw_only)
        own["__signature__"] = _Signature(annotations, defaults, kw_only)
    new = type(cls.__name__, cls.__bases__, own)  # (the bases' metaclass makes it)
    if setters is not None:
        setters.extend((f, new.__dict__[f].__set__) for f in fields)
    _repoint_class_cells(own.values(), cls, new)
    return new


def _repoint_class_cells(members: Iterable[object], old: type, new: type) -> None:
    """Point the ``__class__`` cell of the methods (what zero-argument ``super()`` reads) at the
    rebuilt class, as ``dataclass(slots=True)`` does."""
    for member in members:
        for func in (member, getattr(member, "__func__", None), getattr(member, "fget", None)):
            code = getattr(func, "__code__", None)
            if code is None or "__class__" not in code.co_freevars:
                continue
            cell = func.__closure__[code.co_freevars.index("__class__")]  # type: ignore[union-attr]
            if cell.cell_contents is old:
                cell.cell_contents = new


if TYPE_CHECKING:

    @overload
    def record(cls: _C, /) -> _C: ...
    @overload
    def record(*, kw_only: bool = False, frozen: bool = True) -> Callable[[_C], _C]: ...
    @dataclass_transform(frozen_default=True)
    def record(cls: _C | None = None, /, *, kw_only: bool = False, frozen: bool = True) -> object: ...

else:

    def record(cls=None, /, *, kw_only=False, frozen=True):
        """Make a `Record` (or, with ``frozen=False``, a `MutableRecord`) subclass from its
        annotations: ``__slots__`` and an ``__init__`` taking the fields in order (keywords only
        with ``kw_only=True``); a class-level value is the field's default, `factory` makes one
        per instance; ``__post_init__``, where defined, runs after the fields are set. A class
        that defines ``__init__`` keeps it. ``inspect.signature`` gives the constructor's."""

        def build(cls):
            return _build(cls, kw_only, frozen)

        return build if cls is None else build(cls)
