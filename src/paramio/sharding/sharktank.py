"""shark-ai/sharktank's datasets: an IRPA file holding the dataset's properties and tensor
descriptions, and one ``<stem>.rank<N>.irpa`` file per rank for sharded tensors.

What sharktank (``Dataset.save``, ``sharktank/types/theta.py``) writes, and so what is read:

- the root file ``model.irpa`` holds three JSON blobs: ``__SHARK_DATASET__`` (the properties,
  an object with ``SHARK_DATASET_VERSION``), ``__SHARK_SHARD_RANKS__`` (the ranks that have a
  file, when any tensor is sharded) and ``__SHARK_INFERENCE_TENSORS__`` (each tensor's
  ``type_name``, its ``raw_tensors`` naming the archive entries that hold it, and properties);
  unsharded tensors (``PrimitiveTensor``) sit in the root file under their own name;
- a ``SplitPrimitiveTensor`` (``shard_dim``, ``shard_count``, ``shape``) has piece i in rank i's
  file as ``<name>.shard.<i>``; a ``ReplicatedTensor`` (``shard_count``) is stored once, in
  rank 0's file, as ``<name>.shard.0``.

`read_dataset` gives the dataset's tensors under their names, split ones joined on the fly, and
the properties as the contents' attributes (never as a tensor; ``SHARK_DATASET_VERSION`` is the
file format's, checked and left out). `write_dataset` writes a plan so (``layout="sharktank"``),
the attributes as the properties. Entries no tensor description
names are not tensors of the dataset (sharktank's loader ignores them too); an entry in several
files is taken from the last, as sharktank's loader does. Other sharktank tensor types
(quantised layouts, unreduced tensors) and uneven splits are refused, naming the tensor.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, InvalidArgumentError
from paramio.core.tensor import TURBINE_PREFIX, TensorInfo, encode_tensor_metadata, is_numpy_shape
from paramio.formats.contract import ARCHIVE, FormatContents, archive_format
from paramio.sharding.plan import Layout, Plan
from paramio.sharding.tensor import geometry, join_pieces, split_entry

__all__ = [
    "DATASET_KEY",
    "INFERENCE_TENSORS_KEY",
    "SHARD_RANKS_KEY",
    "is_dataset",
    "rank_path",
    "read_dataset",
    "root_path",
    "write_dataset",
]

DATASET_KEY = "__SHARK_DATASET__"
SHARD_RANKS_KEY = "__SHARK_SHARD_RANKS__"
INFERENCE_TENSORS_KEY = "__SHARK_INFERENCE_TENSORS__"
#: The properties' format version (sharktank writes 1); not an attribute of the contents.
VERSION_KEY = "SHARK_DATASET_VERSION"
#: A JSON blob larger than this is refused before it is read.
MAX_BLOB = 256 << 20
#: Ranks a dataset may name.
MAX_RANKS = 65_536


def rank_path(path: str, rank: int) -> str:
    """sharktank's name for rank `rank`'s file: ``model.irpa`` -> ``model.rank0.irpa``."""
    stem, ext = os.path.splitext(path)
    return f"{stem}.rank{rank}{ext}"


def is_dataset(contents: FormatContents) -> bool:
    """Whether `contents` (one IRPA file as read) is a sharktank dataset's root file."""
    return any(e.key == DATASET_KEY for e in contents.entries)


def _blob(path: str, entry: ParameterEntry | None, required: bool) -> object:
    if entry is None:
        if required:
            raise FormatError(f"a sharktank dataset needs a {INFERENCE_TENSORS_KEY} entry", path=path)
        return None
    if entry.length > MAX_BLOB:
        raise FormatError(f"{entry.length} bytes of JSON is more than {MAX_BLOB}", path=path, key=entry.key)
    try:
        return json.loads(entry.read())
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"not JSON: {exc}", path=path, key=entry.key) from None


def read_dataset(path: str, root: FormatContents | None = None) -> FormatContents:
    """The tensors of the sharktank dataset whose root file is `path` (`root`: that file as
    already read), with its properties as attributes. Raises `FormatError` naming the file and
    key for a malformed description, a missing rank file or entry, or a piece that does not fit."""
    from paramio.formats.registry import read_path

    if root is None:
        root = read_path(path)
    own = {e.key: e for e in root.entries}
    if DATASET_KEY not in own:
        raise InvalidArgumentError(f"not a sharktank dataset (no {DATASET_KEY} entry)", path=path)
    properties = _blob(path, own[DATASET_KEY], True)
    if not isinstance(properties, dict):
        raise FormatError("the properties must be a JSON object", path=path, key=DATASET_KEY)
    properties = dict(properties)
    version = properties.pop(VERSION_KEY, 1)  # the file format's, written back by `write_dataset`
    if version != 1:
        raise FormatError(f"{VERSION_KEY} {version!r} is not supported (1 is)", path=path, key=DATASET_KEY)
    ranks = _blob(path, own.get(SHARD_RANKS_KEY), False)
    if ranks is None:
        ranks = []
    if (
        not isinstance(ranks, list)
        or len(ranks) > MAX_RANKS
        or not all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < MAX_RANKS for r in ranks)
    ):
        raise FormatError(f"must be a list of at most {MAX_RANKS} rank numbers", path=path, key=SHARD_RANKS_KEY)
    described = _blob(path, own.get(INFERENCE_TENSORS_KEY), True)
    if not isinstance(described, dict):
        raise FormatError("must be a JSON object", path=path, key=INFERENCE_TENSORS_KEY)
    table: dict[str, ParameterEntry] = dict(own)
    paths = list(root.paths)
    for r in ranks:
        p = rank_path(path, r)
        part = read_path(p)
        paths.extend(part.paths)
        table.update((e.key, e) for e in part.entries)  # the last file wins, as in sharktank
    entries = [_tensor(path, name, desc, table) for name, desc in described.items()]
    return FormatContents(entries, properties, paths)


def _raw(
    path: str, name: str, desc: Mapping[str, object], table: Mapping[str, ParameterEntry], local: str
) -> ParameterEntry:
    raw = desc.get("raw_tensors")
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise FormatError("'raw_tensors' must map names to archive entries", path=path, key=name)
    global_name = raw.get(local)
    if not isinstance(global_name, str):
        raise FormatError(f"'raw_tensors' has no {local!r}", path=path, key=name)
    entry = table.get(global_name)
    if entry is None:
        raise FormatError(f"entry {global_name!r} is in none of the dataset's files", path=path, key=name)
    if entry.tensor is None:
        raise FormatError(f"entry {global_name!r} has no dtype and shape", path=path, key=name)
    return entry


def _count(path: str, name: str, desc: Mapping[str, object]) -> int:
    n = desc.get("shard_count")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_RANKS:
        raise FormatError(f"'shard_count' must be an integer in 1..{MAX_RANKS}", path=path, key=name)
    return n


def _tensor(path: str, name: str, desc: object, table: Mapping[str, ParameterEntry]) -> ParameterEntry:
    if not isinstance(desc, dict):
        raise FormatError("a tensor description must be an object", path=path, key=name)
    kind = desc.get("type_name")
    if kind in ("PrimitiveTensor", "DefaultPrimitiveTensor", "ReplicatedTensor"):
        if kind == "ReplicatedTensor":
            _count(path, name, desc)
        entry = _raw(path, name, desc, table, "")
        info = entry.tensor
        assert info is not None
        # The tensor as paramio describes one (turbine's ``PYTORCH:`` is the container's encoding,
        # as the split tensors joined from pieces are).
        return entry.replace(key=name, metadata=encode_tensor_metadata(info), declared_tensor=info)
    if kind != "SplitPrimitiveTensor":
        raise FormatError(
            f"sharktank tensor type {kind!r} is not supported (PrimitiveTensor, ReplicatedTensor and "
            "SplitPrimitiveTensor are)",
            path=path,
            key=name,
        )
    count = _count(path, name, desc)
    axis = desc.get("shard_dim")
    shape = desc.get("shape")
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise FormatError("a SplitPrimitiveTensor needs an integer 'shard_dim'", path=path, key=name)
    if not is_numpy_shape(shape):  # bounded before any product of it is made (or printed)
        raise FormatError(
            "a SplitPrimitiveTensor needs a 'shape' of at most 64 non-negative integers", path=path, key=name
        )
    assert isinstance(shape, list)
    pieces = [_raw(path, name, desc, table, str(i)) for i in range(count)]
    first = pieces[0].tensor
    assert first is not None
    if not 0 <= axis < len(shape) or shape[axis] % count:
        sizes = [p.shape[axis] if p.shape and 0 <= axis < len(p.shape) else None for p in pieces]
        raise FormatError(
            f"split of {shape} along {axis} into {count} pieces ({sizes}) is uneven or out of range; "
            "only even splits are supported",
            path=path,
            key=name,
        )
    whole = TensorInfo(first.dtype, tuple(shape), first.extra)
    try:
        g = geometry(name, whole, sum(p.length for p in pieces), axis, count)
        for i, p in enumerate(pieces):
            if p.tensor is None or p.tensor.dtype != first.dtype or tuple(p.tensor.shape) != g.piece_info.shape:
                raise InvalidArgumentError(
                    f"piece {i} ({p.key}) is {p.dtype}{list(p.shape or ())}, expected "
                    f"{first.dtype}{list(g.piece_info.shape)}",
                    key=name,
                )
        return join_pieces(pieces, g, name)
    except InvalidArgumentError as exc:
        raise FormatError(exc.reason, path=path, key=name) from exc


#: dtype names iree-turbine's ``PYTORCH:`` metadata has (``iree/turbine/aot/params.py``).
TURBINE_DTYPES = frozenset(
    "float32 float64 float16 bfloat16 complex64 complex128 bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 "
    "float8_e4m3fn float8_e4m3fnuz float8_e5m2 float8_e5m2fnuz".split()
)


def _turbine(entry: ParameterEntry, info: TensorInfo | None, key: str) -> ParameterEntry:
    """`entry` under `key` with turbine's metadata for `info` (what sharktank's loader reads)."""
    if info is None or info.dtype not in TURBINE_DTYPES:
        what = "no dtype and shape" if info is None else f"dtype {info.dtype}"
        raise InvalidArgumentError(f"a sharktank dataset cannot hold {what} as a PrimitiveTensor", key=entry.key)
    return entry.replace(key=key, metadata=encode_tensor_metadata(info, prefix=TURBINE_PREFIX), declared_tensor=info)


def _jsonable(value: object) -> object:
    import numpy as np

    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _blob_entry(key: str, doc: object) -> ParameterEntry:
    from paramio.core.entry import EntryKind
    from paramio.sources.memory import MemorySource

    try:
        data = json.dumps(doc, indent=2, default=_jsonable).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"the dataset's properties (the attributes) must be JSON: {exc}", key=key) from None
    return ParameterEntry(key=key, kind=EntryKind.DATA, length=len(data), source=MemorySource(data, name=f"<{key}>"))


def root_path(output: str, stem: str) -> str:
    """The root file of a dataset written to `output`: `output` itself when it names an
    ``.irpa`` file, else ``<output>/<stem>.irpa``."""
    ext = archive_format().extension
    return output if output.lower().endswith(ext) else os.path.join(output, stem + ext)


def write_dataset(
    output: str,
    entries: Sequence[ParameterEntry],
    plan: Plan,
    *,
    stem: str = "model",
    attributes: Mapping[str, object] | None = None,
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Write `plan` as sharktank writes a dataset (see the module docstring): the rank files,
    then the root file with the properties (`attributes`) and tensor descriptions, committed as
    one (the root last). Returns the paths written, the root last. Rank files of a previous
    dataset at the same root that this one does not reuse are removed once it is in place.
    Raises `InvalidArgumentError` for a dtype turbine's metadata cannot name (GGUF's quantised
    types) or properties that are not JSON."""
    from paramio.formats.output_set import AtomicOutputSet
    from paramio.formats.registry import write_path as write_any
    from paramio.formats.sets import remove_files

    if plan.layout is not Layout.SHARKTANK:
        raise InvalidArgumentError(f"the plan is for layout {plan.layout.value}, not sharktank")
    entries = list(entries)
    if [e.key for e in entries] != [p.key for p in plan.placements]:
        raise InvalidArgumentError("the plan was made for other entries")
    root = root_path(output, stem)
    if os.path.isdir(root):
        raise InvalidArgumentError("is a folder; name the dataset's root .irpa file or its folder", path=root)
    tp = plan.tp
    top: list[ParameterEntry] = []
    per_rank: list[list[ParameterEntry]] = [[] for _ in range(tp)]
    described: dict[str, dict[str, object]] = {}
    for e, p in zip(entries, plan.placements, strict=True):
        g = p.geometry
        if g is not None and tp > 1:
            names = {str(i): shard_name(e.key, i) for i in range(tp)}
            for i in range(tp):
                per_rank[i].append(_turbine(split_entry(e, g, i), g.piece_info, names[str(i)]))
            described[e.key] = {
                "type_name": "SplitPrimitiveTensor",
                "raw_tensors": names,
                "shard_count": tp,
                "shape": list(g.info.shape),
                "shard_dim": g.axis,
            }
        elif tp > 1:
            per_rank[0].append(_turbine(e, e.tensor, shard_name(e.key, 0)))
            described[e.key] = {
                "type_name": "ReplicatedTensor",
                "raw_tensors": {"": shard_name(e.key, 0)},
                "shard_count": tp,
            }
        else:  # one rank: sharktank splits into at least 2, so everything is a plain tensor
            top.append(_turbine(e, e.tensor, e.key))
            described[e.key] = {"type_name": "PrimitiveTensor", "raw_tensors": {"": e.key}}
    ranks = [r for r in range(tp) if per_rank[r]]
    properties = dict(attributes or {})
    properties[VERSION_KEY] = 1
    top.append(_blob_entry(DATASET_KEY, properties))
    if ranks:
        top.append(_blob_entry(SHARD_RANKS_KEY, ranks))
    top.append(_blob_entry(INFERENCE_TENSORS_KEY, described))
    folder = os.path.dirname(root) or "."
    os.makedirs(folder, exist_ok=True)
    previous = _previous_ranks(root)
    written: list[str] = []
    with AtomicOutputSet(durable=durable) as outputs:
        outputs.on_published(lambda: remove_files(previous - {os.path.abspath(p) for p in outputs.paths}, folder))
        with outputs.gathering():
            for r in ranks:
                target = rank_path(root, r)
                write_any(target, per_rank[r], format=ARCHIVE, on_loss="ignore", durable=durable, progress=progress)
                written.append(target)
            write_any(root, top, format=ARCHIVE, on_loss="ignore", durable=durable, progress=progress)
        written.append(root)
        outputs.commit()
    return written


def shard_name(key: str, index: int) -> str:
    """sharktank's name for piece `index` of `key` (``SplitPrimitiveTensor`` shards)."""
    return f"{key}.shard.{index}"


def _previous_ranks(root: str) -> set[str]:
    """The rank files (absolute) of the dataset now at `root`, if one is there."""
    from paramio.core.errors import ParamioError
    from paramio.formats.registry import read_path

    if not os.path.isfile(root):
        return set()
    try:
        contents = read_path(root)
        if not is_dataset(contents):
            return set()
        ranks = _blob(root, next((e for e in contents.entries if e.key == SHARD_RANKS_KEY), None), False)
    except ParamioError:
        return set()
    if not isinstance(ranks, list):
        return set()
    return {os.path.abspath(rank_path(root, r)) for r in ranks if isinstance(r, int) and not isinstance(r, bool)}
