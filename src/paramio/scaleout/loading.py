"""Multi-host loading: each rank (a Ray actor, or any process that knows its rank) loads only its
own tensors, or its slice of a tensor, reading only those bytes from the source.

A *placement* says what each rank needs, in one of four forms:

- ``{rank: ["key", ...]}``: whole tensors per rank (a key may go to several ranks);
- ``{rank: {"key": ((start, stop), ...) | None}}``: a box per key (one ``(start, stop)`` per
  axis; None: the whole tensor), e.g. a pipeline stage's layers and a column block of another;
- a `paramio.sharding.Plan` (``paramio.sharding.plan(source, tp, split=..., replicate=...)``):
  rank ``r`` gets piece ``r`` of every split tensor and every replicated tensor, the bytes
  ``paramio shard`` would write to device ``r``;
- `RankSplit` (``world_size`` and ``split`` rules, the loader's ``rank=, world_size=, split=``
  form): matching tensors cut along their axis, the rest whole on every rank.

`plan_ranks` checks a placement against the source's headers (no tensor data is read): every
key exists, every cut is one ``paramio shard`` or a box can make, and says the bytes of each
rank. `load_rank` is one rank's load inside any process (a Ray actor, a ``torchrun`` rank, a
vLLM worker): it opens the source, turns the rank's pieces into entries that read only their
bytes (`paramio.loading.slices.rank_piece` / `slice_entry`) and hands them to `paramio.load`,
the same budgeted parallel loader as everywhere else. `load_on_actors` plans on the driver, then
runs `load_rank` on one Ray actor per rank (paramio's own, or the caller's actors through Ray's
``__ray_call__``); the tensors stay in the actors, where the model that uses them runs, and only
summaries come back to the driver. Ray is imported only by `load_on_actors` and `RankLoads`.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias, Union

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError, ParamioError, import_extra
from paramio.index.index import DuplicatePolicy, ParameterIndex
from paramio.loading.api import Loadable, Loaded, load, resolve
from paramio.loading.slices import box_spans, rank_piece, slice_entry
from paramio.loading.summary import LoadSummary
from paramio.sharding.plan import Plan, split_axis, split_rules
from paramio.sharding.tensor import geometry

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "Piece",
    "RankLoads",
    "RankPlan",
    "RankSplit",
    "RankSummary",
    "load_on_actors",
    "load_rank",
    "plan_ranks",
]

Box: TypeAlias = tuple[tuple[int, int], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class RankSplit:
    """The loader's rank form for every rank at once: tensors matching a `split` rule
    (``{"pattern": axis}``, ``paramio shard --split``'s rules, first match wins) are cut into
    `world_size` pieces along the axis; the others (or only `keys`, when given) load whole."""

    world_size: int
    split: Mapping[str, int] | Sequence[tuple[str, int] | str]
    keys: Sequence[str] | None = None


#: Which rank needs what (see the module's docstring).
Placement: TypeAlias = Mapping[int, Iterable[str] | Mapping[str, Sequence[tuple[int, int]] | None]] | Plan | RankSplit
#: What each rank opens: a path or URL (opened in each rank), or a callable with no arguments
#: returning anything `paramio.load` takes (called in each rank: custom sources, credentials).
Opener: TypeAlias = Union[str, "os.PathLike[str]", Callable[[], Loadable]]


@dataclasses.dataclass(frozen=True, slots=True)
class Piece:
    """One tensor a rank loads: whole, piece `part` of `parts` along `axis` (as ``paramio
    shard`` cuts it), or the `box` slice. `nbytes`: the bytes it reads."""

    key: str
    nbytes: int
    axis: int | None = None
    part: int = 0
    parts: int = 1
    box: Box | None = None

    def entry(self, whole: ParameterEntry) -> ParameterEntry:
        """The entry that reads only this piece's bytes of `whole`."""
        if self.axis is not None:
            return rank_piece(self.key, whole, self.axis, self.part, self.parts)
        if self.box is not None:
            return slice_entry(self.key, whole, self.box)
        return whole


@dataclasses.dataclass(frozen=True, slots=True)
class RankPlan:
    """What one rank loads, in the source's order."""

    rank: int
    pieces: tuple[Piece, ...]

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.pieces)

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.pieces]


@dataclasses.dataclass(frozen=True, slots=True)
class RankSummary:
    """What one rank's load did: where it ran, what it loaded (the loader's own summary)."""

    rank: int
    host: str
    pid: int
    keys: tuple[str, ...]
    load: LoadSummary
    #: The Ray node's id ("" outside Ray).
    node: str = ""

    @property
    def bytes(self) -> int:
        return self.load.bytes

    def to_dict(self) -> dict[str, object]:
        return {
            "rank": self.rank,
            "host": self.host,
            "node": self.node,
            "pid": self.pid,
            "keys": list(self.keys),
            **self.load.to_dict(),
        }


# -- planning (headers only, no Ray) -----------------------------------------------------------


def _opened(what: Opener | Loadable) -> Loadable:
    if callable(what) and not isinstance(what, (ParameterIndex, str, os.PathLike)):
        return what()
    if isinstance(what, (str, os.PathLike)):
        return ParameterIndex.open(os.fspath(what), duplicates=DuplicatePolicy.KEEP)
    return what


def _whole(key: str, entry: ParameterEntry) -> Piece:
    return Piece(key, entry.length)


def _check_rank_number(rank: object) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise InvalidArgumentError(f"a placement's ranks are integers 0, 1, ...; not {rank!r}")
    return rank


def _plan_mapping(
    items: Mapping[str, ParameterEntry],
    order: Sequence[str],
    placement: Mapping[int, Iterable[str] | Mapping[str, Sequence[tuple[int, int]] | None]],
) -> list[RankPlan]:
    ranks = sorted(_check_rank_number(r) for r in placement)
    if ranks != list(range(len(ranks))):
        raise InvalidArgumentError(f"a placement names ranks 0..{len(ranks) - 1} each once, not {ranks}")
    position = {k: i for i, k in enumerate(order)}
    plans = []
    for rank in ranks:
        wanted = placement[rank]
        boxes: Mapping[str, Sequence[tuple[int, int]] | None]
        if isinstance(wanted, str):
            raise InvalidArgumentError(f"rank {rank}'s keys are a list, not the string {wanted!r}")
        boxes = wanted if isinstance(wanted, Mapping) else dict.fromkeys(wanted)
        pieces = []
        for key, box in boxes.items():
            entry = items.get(key)
            if entry is None:
                from paramio.core.errors import ParameterNotFoundError

                raise ParameterNotFoundError(f"rank {rank} asks for a key the source does not have", key=key)
            if box is None:
                pieces.append(_whole(key, entry))
                continue
            cut = tuple((int(a), int(b)) for a, b in box)
            starts, run = box_spans(key, entry.tensor, entry.length, cut)  # checks the box; reads nothing
            pieces.append(Piece(key, len(starts) * run, box=cut))
        pieces.sort(key=lambda p: position[p.key])  # the source's order: reads go forward
        plans.append(RankPlan(rank, tuple(pieces)))
    return plans


def _plan_split(items: Mapping[str, ParameterEntry], order: Sequence[str], spec: RankSplit) -> list[RankPlan]:
    w = spec.world_size
    if isinstance(w, bool) or not isinstance(w, int) or w < 1:
        raise InvalidArgumentError(f"world_size must be a positive integer, not {w!r}")
    rules = split_rules(spec.split)
    keys = list(order) if spec.keys is None else list(spec.keys)
    missing = [k for k in keys if k not in items]
    if missing:
        from paramio.core.errors import ParameterNotFoundError

        raise ParameterNotFoundError("not in the source", key=missing[0])
    per_rank: list[list[Piece]] = [[] for _ in range(w)]
    for key in keys:
        entry = items[key]
        rule = split_axis(key, rules)
        if rule is None:
            for pieces in per_rank:
                pieces.append(_whole(key, entry))
            continue
        g = geometry(key, entry.tensor, entry.length, rule[1], w)  # paramio shard's checks
        for r, pieces in enumerate(per_rank):
            pieces.append(Piece(key, g.piece_length, axis=g.axis, part=r, parts=w))
    return [RankPlan(r, tuple(p)) for r, p in enumerate(per_rank)]


def _plan_tp(items: Mapping[str, ParameterEntry], plan: Plan) -> list[RankPlan]:
    per_rank: list[list[Piece]] = [[] for _ in range(plan.tp)]
    for p in plan.placements:
        entry = items.get(p.key)
        if entry is None:
            from paramio.core.errors import ParameterNotFoundError

            raise ParameterNotFoundError("the plan places a key the source does not have", key=p.key)
        if p.axis is None:
            for pieces in per_rank:
                pieces.append(_whole(p.key, entry))
            continue
        g = geometry(p.key, entry.tensor, entry.length, p.axis, plan.tp)  # the source may not be the plan's
        for r, pieces in enumerate(per_rank):
            pieces.append(Piece(p.key, g.piece_length, axis=g.axis, part=r, parts=plan.tp))
    return [RankPlan(r, tuple(p)) for r, p in enumerate(per_rank)]


def plan_from_items(items: Sequence[tuple[str, ParameterEntry]], placement: Placement) -> list[RankPlan]:
    """`plan_ranks` over entries already opened. Raises what `plan_ranks` raises."""
    by_key: dict[str, ParameterEntry] = {}
    for k, e in items:
        by_key.setdefault(k, e)  # the first of a key held twice, as the loader takes it
    order = list(by_key)
    if isinstance(placement, Plan):
        return _plan_tp(by_key, placement)
    if isinstance(placement, RankSplit):
        return _plan_split(by_key, order, placement)
    if isinstance(placement, Mapping):
        return _plan_mapping(by_key, order, placement)
    raise InvalidArgumentError(
        f"a placement is {{rank: keys}}, {{rank: {{key: box}}}}, a paramio.sharding.Plan or a RankSplit, "
        f"not a {type(placement).__name__}"
    )


def plan_ranks(what: Opener | Loadable, placement: Placement) -> list[RankPlan]:
    """Each rank's pieces and bytes, from the source's headers only.

    Raises `ParameterNotFoundError` for a key the source lacks, `InvalidArgumentError` naming
    the key for a cut ``paramio shard`` refuses (a dimension not a multiple of the world size,
    a cut through a quantisation block) or a box outside the tensor, and for a malformed
    placement; what opening the source raises (`FormatError`, `SourceError`)."""
    return plan_from_items(resolve(_opened(what)), placement)


# -- one rank's load (any process) -------------------------------------------------------------


def _load_plan(what: Opener | Loadable, plan: RankPlan, options: Mapping[str, object]) -> Loaded:
    opened = _opened(what)
    items = dict(resolve(opened, list(dict.fromkeys(plan.keys))))
    entries = [p.entry(items[p.key]) for p in plan.pieces]
    return load(entries, **options)  # type: ignore[arg-type]


def load_rank(what: Opener | Loadable, placement: Placement | RankPlan, rank: int, **options: object) -> Loaded:
    """Rank `rank`'s tensors of `placement` (see the module's docstring), read from `what`
    reading only their bytes, as `paramio.load` returns them (a dict by key, with `summary`).

    `options` go to `paramio.load` (``into=``, ``device=``, ``budget=``, ``concurrency=``,
    ``io=``, ``progress=``). Raises what `plan_ranks` raises (before any tensor is read), what
    `paramio.load` raises, and `InvalidArgumentError` for a rank the placement does not have."""
    if isinstance(placement, RankPlan):
        if placement.rank != rank:
            raise InvalidArgumentError(f"the plan given is rank {placement.rank}'s, not rank {rank}'s")
        return _load_plan(what, placement, options)
    opened = _opened(what)
    plans = plan_from_items(resolve(opened), placement)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < len(plans):
        raise InvalidArgumentError(f"rank {rank!r} is not one of the placement's ranks 0..{len(plans) - 1}")
    return _load_plan(opened, plans[rank], options)


# -- on Ray actors -----------------------------------------------------------------------------


class LoaderActor:
    """paramio's own actor (one per rank, made by `load_on_actors`): it holds its rank's tensors
    in `tensors` and runs what it is given with itself as the first argument (as Ray's
    ``__ray_call__`` does for any actor)."""

    def __init__(self) -> None:
        self.tensors: dict[str, object] = {}

    def apply(self, fn: Callable[..., object], *args: object) -> object:
        return fn(self, *args)


def _actor_load(
    actor: object, attribute: str, what: Opener, plan: RankPlan, options: Mapping[str, object]
) -> RankSummary:
    """Run inside an actor: load the rank's tensors into ``actor.<attribute>``."""
    loaded = _load_plan(what, plan, options)
    setattr(actor, attribute, loaded)
    node = ray_module().get_runtime_context().get_node_id()
    return RankSummary(plan.rank, socket.gethostname(), os.getpid(), tuple(loaded), loaded.summary, node)


def _actor_run(
    actor: object,
    attribute: str,
    fn: Callable[..., object],
    rank: int,
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> object:
    return fn(getattr(actor, attribute), rank, *args, **kwargs)


def _actor_drop(actor: object, attribute: str) -> None:
    if hasattr(actor, attribute):
        delattr(actor, attribute)


def ray_module() -> ModuleType:
    """Ray, or `MissingExtraError` naming the ``ray`` extra."""
    return import_extra("ray", "ray", what="loading on Ray actors needs ray")


def _get(ray: ModuleType, refs: Sequence[object], what: str) -> list[object]:
    """`ray.get`, with a paramio error raised in an actor re-raised as itself (its rank noted)."""
    out = []
    for rank, ref in enumerate(refs):
        try:
            out.append(ray.get(ref))
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, ParamioError):
                cause.add_note(f"raised by rank {rank}'s actor while {what}")
                raise cause from None
            raise
    return out


class RankLoads:
    """The actors holding each rank's tensors (`actors`, rank order), what each loaded
    (`summaries`) and the plans they followed (`plans`).

    `run` calls a function next to the tensors in every actor; `close` (or leaving a ``with``
    block) ends the actors paramio started and drops the tensors from the caller's own."""

    def __init__(
        self,
        actors: Sequence[object],
        plans: Sequence[RankPlan],
        summaries: Sequence[RankSummary],
        attribute: str,
        owned: bool,
        seconds: float,
    ) -> None:
        self.actors = list(actors)
        self.plans = list(plans)
        self.summaries = list(summaries)
        self.attribute = attribute
        self.owned = owned
        self.seconds = seconds
        self._closed = False

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.summaries)

    def _call(self, actor: object, fn: Callable[..., object], *args: object) -> object:
        if self.owned:
            return actor.apply.remote(fn, *args)  # type: ignore[attr-defined]
        return actor.__ray_call__.remote(fn, *args)  # type: ignore[attr-defined]

    def run(self, fn: Callable[..., object], *args: object, **kwargs: object) -> list[object]:
        """``fn(tensors, rank, *args, **kwargs)`` in every actor (its tensors: a dict by key),
        and each rank's result, in rank order. A paramio error raised by `fn` is re-raised."""
        if self._closed:
            raise InvalidArgumentError("these actors' tensors were released (close())")
        ray = ray_module()
        refs = [self._call(a, _actor_run, self.attribute, fn, r, args, dict(kwargs)) for r, a in enumerate(self.actors)]
        return _get(ray, refs, "running a function")

    def close(self) -> None:
        """End paramio's actors, or drop the tensors from the caller's actors."""
        if self._closed:
            return
        self._closed = True
        ray = ray_module()
        if self.owned:
            for a in self.actors:
                ray.kill(a)
        else:
            for a in self.actors:  # one by one: an actor that died (its node went away) holds nothing
                try:
                    ray.get(self._call(a, _actor_drop, self.attribute))
                except ray.exceptions.RayActorError:
                    continue
        # Drop the handles now, while connected: a handle that outlives its Ray session and is
        # collected in a later one takes a reference away from that session's actor of the
        # same id (Ray numbers a driver's actors alike in every session), which Ray then ends.
        self.actors = []

    def __enter__(self) -> RankLoads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def to_dict(self) -> dict[str, object]:
        return {"seconds": self.seconds, "bytes": self.bytes, "ranks": [s.to_dict() for s in self.summaries]}


def load_on_actors(
    what: Opener,
    placement: Placement,
    *,
    actors: Sequence[object] | None = None,
    attribute: str = "tensors",
    actor_options: Mapping[str, object] | None = None,
    address: str | None = None,
    **options: object,
) -> RankLoads:
    """Load each rank's tensors of `placement` into its own Ray actor, each actor reading only
    its bytes straight from `what` (a local or shared path, an ``https://``, ``s3://``, ``az://``
    URL, or a callable returning what to load, called in each actor). Nothing is read on the
    driver but headers, and no tensor passes through the driver or Ray's object store.

    `actors`: the caller's own actors, one per rank, rank order (each gets its tensors as the
    attribute `attribute`, through Ray's ``__ray_call__``); without them paramio starts one
    `LoaderActor` per rank with `actor_options` (``num_gpus=1``, ``resources=``,
    ``scheduling_strategy=``; default: spread over the nodes). `address`: the cluster for
    ``ray.init`` when Ray is not initialised yet (``"auto"``, ``"ray://HOST:PORT"``).
    `options` go to `paramio.load` in each actor (``into=``, ``device=``, ``budget=``, ``io=``).

    Raises `MissingExtraError` naming the ``ray`` extra without Ray; what `plan_ranks` raises
    before any actor starts; `InvalidArgumentError` when `actors` does not have one actor per
    rank or `what` cannot be sent to an actor; the first rank's paramio error (`SourceError`,
    `TruncatedError` ...) from the loads, with a note naming its rank."""
    if not (isinstance(what, (str, os.PathLike)) or callable(what)) or isinstance(what, ParameterIndex):
        raise InvalidArgumentError(
            f"each actor opens the source itself: give a path, a URL or a callable returning what to load, "
            f"not a {type(what).__name__}"
        )
    if "progress" in options:
        raise InvalidArgumentError("progress= is per process; each actor's summary has its bytes and seconds")
    src: Opener = os.fspath(what) if isinstance(what, os.PathLike) else what
    plans = plan_ranks(src, placement)  # every error a header can show, before any actor starts
    if actors is not None and len(actors) != len(plans):
        raise InvalidArgumentError(f"the placement has {len(plans)} ranks but {len(actors)} actors were given")
    from paramio.scaleout.ray_engine import connect

    ray = connect(address)
    owned = actors is None
    if actors is None:
        opts = {"scheduling_strategy": "SPREAD", **dict(actor_options or {})}
        cls = ray.remote(LoaderActor).options(**opts)
        actors = [cls.remote() for _ in plans]
        attribute = "tensors"
    started = time.perf_counter()
    result = RankLoads(actors, plans, [], attribute, owned, 0.0)
    refs = [result._call(a, _actor_load, attribute, src, p, dict(options)) for a, p in zip(actors, plans, strict=True)]
    try:
        summaries = _get(ray, refs, "loading")
    except BaseException:
        result.close()
        raise
    result.summaries = [s for s in summaries if isinstance(s, RankSummary)]
    result.seconds = time.perf_counter() - started
    return result
