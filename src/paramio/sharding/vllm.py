"""vLLM's ``sharded_state`` layout: ``model-rank-{rank}-part-{part}.safetensors``, one group of
files per tensor-parallel rank.

vLLM (``ShardedStateLoader.save_model``) writes each rank's own state dict: a tensor its model
splits across ranks holds that rank's slice under the tensor's own key, a replicated one is
whole in every rank. Parts number from 0 within a rank; a new part starts when the next tensor
would pass the size limit. The files carry no manifest and no split axes, so reading a set
back needs the axes named (``split=``, as for `paramio.sharding.shard`); a tensor no split rule
names must be whole and byte-identical in every rank, and is read once. vLLM stores tensors
that share memory (tied weights) once, under the smaller key: the set holds what the files
hold, nothing is invented.

`write_set` writes a plan's pieces in this layout (``layout="vllm"``), `read_set` joins a set
back into the original tensors on the fly (nothing is materialised), and `find_set` tells a
folder or any member of a set from other paths.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, InvalidArgumentError, SourceError
from paramio.core.tensor import TensorInfo
from paramio.formats.contract import FormatContents
from paramio.formats.output_set import AtomicOutputSet
from paramio.sharding.plan import Layout, Plan, split_axis, split_rules
from paramio.sharding.tensor import geometry, join_pieces, split_entry

__all__ = ["FILE_PATTERN", "FORMAT", "file_name", "find_set", "read_set", "write_set"]

#: The format vLLM's ``sharded_state`` files are in: the layout is defined by it.
FORMAT = "safetensors"
#: vLLM's default ``pattern`` (``ShardedStateLoader.DEFAULT_PATTERN``).
FILE_PATTERN = "model-rank-{rank}-part-{part}.safetensors"
_MEMBER = re.compile(r"model-rank-(0|[1-9][0-9]{0,5})-part-(0|[1-9][0-9]{0,5})\.safetensors")
#: Chunk compared at a time when checking that replicated copies are identical.
_COMPARE_CHUNK = 4 << 20


def file_name(rank: int, part: int) -> str:
    return FILE_PATTERN.format(rank=rank, part=part)


def _members(folder: str) -> dict[int, dict[int, str]]:
    """rank -> part -> path of the set's files in `folder`."""
    found: dict[int, dict[int, str]] = {}
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise SourceError(f"cannot list the folder: {exc.strerror or exc}", path=folder) from exc
    for n in names:
        m = _MEMBER.fullmatch(n)
        if m is not None:
            found.setdefault(int(m.group(1)), {})[int(m.group(2))] = os.path.join(folder, n)
    return found


def find_set(path: str | os.PathLike[str]) -> str | None:
    """The folder of the vLLM set `path` names (the folder, or any of its files), else None."""
    p = os.fspath(path)
    if os.path.isdir(p):
        return p if 0 in _members(p) else None
    if _MEMBER.fullmatch(os.path.basename(p)) and os.path.isfile(p):
        return os.path.dirname(p) or "."
    return None


def _rank_files(folder: str) -> list[list[str]]:
    """Each rank's part files, in order. Raises `FormatError` naming the first file missing."""
    found = _members(folder)
    if not found:
        raise FormatError(f"no {FILE_PATTERN} files", path=folder)
    ranks = max(found) + 1
    out: list[list[str]] = []
    for r in range(ranks):
        parts = found.get(r)
        if not parts:
            raise FormatError(
                f"rank {r} has no files; ranks 0..{ranks - 1} are expected", path=os.path.join(folder, file_name(r, 0))
            )
        for p in range(max(parts) + 1):
            if p not in parts:
                raise FormatError(f"part {p} of rank {r} is missing", path=os.path.join(folder, file_name(r, p)))
        out.append([parts[p] for p in range(len(parts))])
    return out


def _same_bytes(a: ParameterEntry, b: ParameterEntry) -> bool:
    if a.length != b.length:
        return False
    for x, y in zip(a.iter_chunks(_COMPARE_CHUNK), b.iter_chunks(_COMPARE_CHUNK), strict=True):
        if x != y:
            return False
    return True


def read_set(
    path: str | os.PathLike[str],
    *,
    split: Mapping[str, int] | Iterable[tuple[str, int] | str] = (),
    replicate: Iterable[str] | None = None,
    check_replicas: bool = True,
) -> FormatContents:
    """The original tensors of the vLLM set at `path` (its folder or any of its files).

    A tensor matching a `split` rule (glob pattern -> axis, first match) is its ranks' slices
    joined along that axis; any other must be whole in every rank with the same dtype, shape
    and (with `check_replicas`, read once at open) bytes, and, when `replicate` patterns are
    given, match one of them. Tensors come in rank 0's order. Raises `FormatError` naming the
    file and key for a missing part, a key in one rank and not another, slices that do not
    fit, or a tensor no rule splits that differs between ranks."""
    from paramio.formats.registry import read_path

    folder = find_set(path)
    if folder is None:
        raise InvalidArgumentError(f"not a vLLM sharded_state set (no {FILE_PATTERN} files)", path=os.fspath(path))
    rules = split_rules(split)
    keep = None if replicate is None else list(replicate)
    files = _rank_files(folder)
    tp = len(files)
    ranks: list[dict[str, ParameterEntry]] = []
    attributes: dict[str, object] = {}
    paths: list[str] = []
    for r, parts in enumerate(files):
        table: dict[str, ParameterEntry] = {}
        for f in parts:
            contents = read_path(f)
            paths.extend(contents.paths)
            if r == 0 and not attributes:
                attributes = dict(contents.attributes)
            for e in contents.entries:
                if e.key in table:
                    raise FormatError(f"key is in two parts of rank {r}", path=f, key=e.key)
                table[e.key] = e
        ranks.append(table)
    for r in range(1, tp):
        for key in ranks[0].keys() ^ ranks[r].keys():
            where = files[r][0] if key in ranks[0] else files[0][0]
            raise FormatError(
                f"key is in rank {0 if key in ranks[0] else r} and not in rank {r if key in ranks[0] else 0}",
                path=where,
                key=key,
            )
    entries: list[ParameterEntry] = []
    for key, first in ranks[0].items():
        pieces = [t[key] for t in ranks]
        rule = split_axis(key, rules)
        if rule is not None:
            entries.append(_join(folder, key, pieces, rule[1], tp))
            continue
        if keep is not None and not any(_match(key, p) for p in keep):
            raise FormatError("matches no split or replicate rule", path=folder, key=key)
        for r, other in enumerate(pieces[1:], start=1):
            same = other.dtype == first.dtype and other.shape == first.shape
            if not same or (check_replicas and not _same_bytes(first, other)):
                raise FormatError(
                    f"differs between rank 0 and rank {r} and no split rule names it; "
                    "name its axis (split=, --split=PATTERN=AXIS)",
                    path=folder,
                    key=key,
                )
        entries.append(first)
    return FormatContents(entries, attributes, paths)


def _match(key: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(key, pattern)


def _join(folder: str, key: str, pieces: Sequence[ParameterEntry], axis: int, tp: int) -> ParameterEntry:
    info = pieces[0].tensor
    if info is None:
        raise FormatError("a split tensor needs a dtype and shape", path=folder, key=key)
    for r, p in enumerate(pieces):
        if p.tensor is None or p.tensor.dtype != info.dtype or tuple(p.tensor.shape) != tuple(info.shape):
            raise FormatError(
                f"rank {r}'s slice is {p.dtype}{list(p.shape or ())}, rank 0's {info.dtype}{list(info.shape)}",
                path=folder,
                key=key,
            )
    ndim = len(info.shape)
    ax = axis + ndim if axis < 0 else axis
    if not 0 <= ax < ndim:
        raise FormatError(f"split axis {axis} is out of range for {info.dtype}{list(info.shape)}", path=folder, key=key)
    shape = list(info.shape)
    shape[ax] *= tp
    whole = TensorInfo(info.dtype, tuple(shape), info.extra)
    try:
        g = geometry(key, whole, sum(p.length for p in pieces), ax, tp)
        return join_pieces(pieces, g, key)
    except InvalidArgumentError as exc:
        raise FormatError(exc.reason, path=folder, key=key) from exc


def write_set(
    output: str,
    entries: Sequence[ParameterEntry],
    plan: Plan,
    *,
    attributes: Mapping[str, object] | None = None,
    max_shard_size: int | None = None,
    on_loss: str = "warn",
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Write `plan` as vLLM's files in the folder `output`; returns their paths (rank by rank).

    Rank r's files hold piece r of every split tensor and every replicated tensor, in input
    order; `max_shard_size` starts a new part when the next tensor would pass it (as vLLM's
    ``max_size``; a larger tensor gets a part of its own). The set is committed as one: files
    of a previous set in the folder that this one does not reuse (rank 3 of a 4-rank set
    resharded to 2) are removed once it is in place."""
    from paramio.formats.conversion import report_losses
    from paramio.formats.registry import plan_losses
    from paramio.formats.registry import write_path as write_any
    from paramio.formats.sets import remove_files

    if plan.layout is not Layout.VLLM:
        raise InvalidArgumentError(f"the plan is for layout {plan.layout.value}, not vllm")
    if output.lower().endswith(".json") or (os.path.exists(output) and not os.path.isdir(output)):
        raise InvalidArgumentError(
            "the vllm layout writes a folder of files and no manifest; name a folder", path=output
        )
    entries = list(entries)
    if [e.key for e in entries] != [p.key for p in plan.placements]:
        raise InvalidArgumentError("the plan was made for other entries")
    if max_shard_size is not None and max_shard_size < 1:
        raise InvalidArgumentError(f"max_shard_size must be positive, not {max_shard_size}")
    report_losses(
        plan_losses(os.path.join(output, file_name(0, 0)), entries, format=FORMAT, attributes=dict(attributes or {})),
        on_loss,
        path=output,
        fmt=FORMAT,
    )
    os.makedirs(output, exist_ok=True)
    groups: list[tuple[str, list[ParameterEntry]]] = []
    for r in range(plan.tp):
        rank = [
            split_entry(e, p.geometry, r) if p.geometry is not None else e
            for e, p in zip(entries, plan.placements, strict=True)
        ]
        parts: list[list[ParameterEntry]] = [[]]
        size = 0
        for e in rank:
            if max_shard_size is not None and parts[-1] and size + e.length > max_shard_size:
                parts.append([])
                size = 0
            parts[-1].append(e)
            size += e.length
        groups.extend((os.path.join(output, file_name(r, i)), part) for i, part in enumerate(parts))
    previous = {os.path.abspath(p) for parts in _members(output).values() for p in parts.values()}
    written: list[str] = []
    with AtomicOutputSet(durable=durable) as outputs:
        outputs.on_published(lambda: remove_files(previous - {os.path.abspath(p) for p in outputs.paths}, output))
        with outputs.gathering():
            for target, group in groups:
                write_any(
                    target,
                    group,
                    format=FORMAT,
                    attributes=dict(attributes or {}),
                    on_loss="ignore",
                    durable=durable,
                    progress=progress,
                )
                written.append(target)
        outputs.commit()
    return written
