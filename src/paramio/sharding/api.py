"""`shard`, `merge` and `reshard`: the Python API over plans, tensor-parallel sets and writers.

Every function streams: inputs stay mapped, pieces are spans or strided views read through
bounded buffers, and outputs are written atomically file by file with their manifest last.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.core.source import Progress
from paramio.formats.contract import ARCHIVE, archive_format, get_format
from paramio.formats.registry import FormatContents, detect_format, read_path, write_path
from paramio.sharding import vllm
from paramio.sharding.plan import Layout, Plan, make_plan, split_rules
from paramio.sharding.tpset import MANIFEST_SUFFIX, is_manifest_path, write_set

__all__ = ["ShardResult", "find_manifest", "merge", "open_source", "plan", "reshard", "shard"]

Source = str | os.PathLike[str] | FormatContents | Sequence[ParameterEntry]


@dataclasses.dataclass(frozen=True, slots=True)
class ShardResult:
    """What `shard` did: the plan and the paths written (the manifest last); `job`, for
    ``engine="ray"``, the job's report (`paramio.scaleout.JobReport`: tasks, workers, bytes)."""

    plan: Plan
    paths: list[str]
    job: object | None = None

    @property
    def manifest(self) -> str:
        return self.paths[-1]


def find_manifest(path: str) -> str:
    """`path` itself, or the one ``*.tp.json`` in the folder `path`. Raises `InvalidArgumentError`."""
    if not os.path.isdir(path):
        return path
    found = sorted(n for n in os.listdir(path) if n.lower().endswith(MANIFEST_SUFFIX))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise InvalidArgumentError(f"folder has {what} *{MANIFEST_SUFFIX} manifests; name one", path=path)
    return os.path.join(path, found[0])


SplitRules = Mapping[str, int] | Iterable[tuple[str, int] | str]


def sharktank_root(path: str) -> str | None:
    """For a sharktank rank file (``model.rank1.irpa``), its dataset's root file when that
    exists and is one (paramio's own tensor-parallel device files have the same names)."""
    from paramio.sharding import sharktank

    m = re.fullmatch(r"(.*)\.rank(?:0|[1-9][0-9]{0,5})(\.irpa)", path, re.IGNORECASE)
    if m is None or not os.path.isfile(root := m.group(1) + m.group(2)):
        return None
    return root if sharktank.is_dataset(read_path(root)) else None


def _has_manifest(folder: str) -> bool:
    return any(n.lower().endswith(MANIFEST_SUFFIX) for n in os.listdir(folder))


def open_source(
    source: Source, *, split: SplitRules = (), replicate: Iterable[str] | None = None
) -> tuple[FormatContents, str]:
    """Contents and a stem (for output names) of a path (any format or set, or a folder with one
    tensor-parallel manifest), a `FormatContents`, or entries.

    A vLLM ``sharded_state`` set (its folder, or any ``model-rank-<r>-part-<p>.safetensors``)
    records no split axes: `split` names them and `replicate` (when given) limits what may be
    replicated (`paramio.sharding.vllm.read_set`)."""
    from paramio.sharding import sharktank, vllm

    if isinstance(source, FormatContents):
        return source, "model"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if vllm.find_set(path) is not None and not (os.path.isdir(path) and _has_manifest(path)):
            return vllm.read_set(path, split=split, replicate=replicate), "model"
        p = sharktank_root(path) or find_manifest(path)
        contents = read_path(p)
        if sharktank.is_dataset(contents):  # its tensors joined, its properties as attributes
            contents = sharktank.read_dataset(p, contents)
        return contents, get_format(detect_format(p)).stem(p)
    return FormatContents(list(source)), "model"


def plan(
    source: Source,
    tp: int,
    *,
    split: Mapping[str, int] | Iterable[tuple[str, int] | str] = (),
    replicate: Iterable[str] = (),
    layout: Layout | str = Layout.DEVICES,
) -> Plan:
    """Where every tensor of `source` would go, without writing anything (see `make_plan`)."""
    rules = split_rules(split)
    replicated = list(replicate)
    contents, _ = open_source(source, split=rules, replicate=replicated or None)
    return make_plan(list(contents.entries), tp, split=rules, replicate=replicated, layout=layout)


def shard(
    source: Source,
    output: str | os.PathLike[str],
    *,
    tp: int,
    split: Mapping[str, int] | Iterable[tuple[str, int] | str] = (),
    replicate: Iterable[str] = (),
    layout: Layout | str = Layout.DEVICES,
    format: str | None = None,
    stem: str | None = None,
    alignment: int | None = None,
    max_shard_size: int | None = None,
    on_loss: str = "warn",
    durable: bool = True,
    progress: Progress | None = None,
    engine: str = "local",
    address: str | None = None,
) -> ShardResult:
    """Split `source` for `tp` devices into `output` (a folder, or a ``.tp.json`` manifest path).

    ``split={"*.attn_q.weight": 0}`` splits matching tensors along axis 0 into `tp` equal pieces;
    ``replicate=["*"]`` copies the rest to every device. `layout` ``"devices"`` writes one file
    per device (``model.rank<i>.irpa``), ``"keys"`` one file with ``<key>.shard.<i>`` pieces,
    ``"vllm"`` vLLM's ``model-rank-<i>-part-<p>.safetensors`` files (no manifest; `format` is
    safetensors, the default there, irpa elsewhere). The manifest (``model.tp.json``) is written
    last; `merge` reverses it bit for bit. A vLLM set as `source` is read with the same `split`
    rules naming its axes (it records none).
    Raises `InvalidArgumentError` (naming the key) for a tensor no rule places or a split that
    cannot be made, before anything is written.

    ``engine="ray"`` (`address`: ``auto``, ``ray://HOST:PORT``, ``HOST:PORT``) writes the set
    as a job on a Ray cluster, one task per device file, byte for byte these files
    (`paramio.scaleout.shard`): `source` is then a path every worker reads, or a URL; the
    devices and keys layouts, without `max_shard_size`. The default, ``"local"``, imports no Ray.
    """
    if engine != "local" or address is not None:
        return _shard_on_engine(
            source,
            output,
            tp=tp,
            split=split,
            replicate=replicate,
            layout=layout,
            format=format,
            stem=stem,
            alignment=alignment,
            max_shard_size=max_shard_size,
            on_loss=on_loss,
            durable=durable,
            progress=progress,
            engine=engine,
            address=address,
        )
    rules = split_rules(split)
    replicated = list(replicate)
    contents, default_stem = open_source(source, split=rules, replicate=replicated or None)
    entries = list(contents.entries)
    p = make_plan(entries, tp, split=rules, replicate=replicated, layout=layout)
    if format is None:
        format = vllm.FORMAT if p.layout is Layout.VLLM else ARCHIVE
    paths = write_set(
        os.fspath(output),
        entries,
        p,
        stem=stem or default_stem,
        attributes=contents.attributes,
        fmt=format,
        alignment=alignment,
        max_shard_size=max_shard_size,
        on_loss=on_loss,
        durable=durable,
        progress=progress,
    )
    return ShardResult(p, paths)


def _shard_on_engine(
    source: Source,
    output: str | os.PathLike[str],
    *,
    max_shard_size: int | None,
    progress: Progress | None,
    engine: str,
    address: str | None,
    **options: object,
) -> ShardResult:
    from paramio.core.exports import above

    if max_shard_size is not None:
        raise InvalidArgumentError(
            f"engine={engine!r} writes each device file whole; max_shard_size is written by the one-machine path"
        )
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"engine={engine!r} reopens the source on every worker: give a path or URL, not a {type(source).__name__}"
        )
    run = above("sharding.shard_on_engine")
    p, report = run(source, output, engine=engine, address=address, progress=_job_progress(progress), **options)  # type: ignore[operator]
    return ShardResult(p, list(report.outputs), report)


def _job_progress(progress: Progress | None) -> Callable[[object], None] | None:
    """A job's progress snapshots (bytes done across all workers) as `progress`'s byte counts."""
    if progress is None:
        return None
    seen = [0]

    def report(snapshot: object) -> None:
        done = int(getattr(snapshot, "done", 0))
        if done > seen[0]:
            progress(done - seen[0])
            seen[0] = done

    return report


def _merge_on_engine(
    source: Source,
    output: str | os.PathLike[str],
    *,
    progress: Progress | None,
    engine: str,
    address: str | None,
    **options: object,
) -> None:
    from paramio.core.exports import above

    if not isinstance(source, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"engine={engine!r} reopens the set on every worker: give a path or URL, not a {type(source).__name__}"
        )
    run = above("sharding.merge_on_engine")
    run(source, output, engine=engine, address=address, progress=_job_progress(progress), **options)  # type: ignore[operator]


def merge(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    split: SplitRules = (),
    replicate: Iterable[str] | None = None,
    format: str | None = None,
    max_shard_size: int | None = None,
    on_loss: str = "warn",
    durable: bool = True,
    progress: Progress | None = None,
    engine: str = "local",
    address: str | None = None,
) -> None:
    """Join a tensor-parallel set (its manifest, or a folder holding one) back into `output`:
    every split tensor is its pieces joined along the axis, byte for byte the original.

    A vLLM ``sharded_state`` set (its folder or any of its files) records no axes: `split`
    names them (``{"*.weight": 0}``); every other tensor must be identical in every rank
    (and match `replicate`, when given). A sharktank dataset (its root ``.irpa`` or any rank
    file) is joined as its tensor descriptions say, its properties kept as attributes.

    ``engine="ray"`` (and `address`) writes `output` as a job on a Ray cluster, one task per
    output member, each worker opening the set itself and reading the pieces its member needs;
    the same bytes (`paramio.scaleout.merge`). The default, ``"local"``, imports no Ray."""
    from paramio.sharding import sharktank, vllm

    on_engine = engine != "local" or address is not None
    common: dict[str, object] = {"format": format, "max_shard_size": max_shard_size, "on_loss": on_loss}
    if vllm.find_set(source) is not None and not (os.path.isdir(source) and _has_manifest(os.fspath(source))):
        if on_engine:
            _merge_on_engine(
                source,
                output,
                split=split,
                replicate=replicate,
                progress=progress,
                engine=engine,
                address=address,
                **common,
            )
            return
        contents = vllm.read_set(source, split=split, replicate=replicate)
        reshard(
            contents,
            output,
            format=format,
            max_shard_size=max_shard_size,
            on_loss=on_loss,
            durable=durable,
            progress=progress,
        )
        return
    path = os.fspath(source)
    archive = archive_format().extension
    root = sharktank_root(path) or (path if path.lower().endswith(archive) and os.path.isfile(path) else None)
    if root is not None:
        contents = read_path(root)
        if sharktank.is_dataset(contents):
            if on_engine:
                _merge_on_engine(root, output, progress=progress, engine=engine, address=address, **common)
                return
            reshard(
                sharktank.read_dataset(root, contents),
                output,
                format=format,
                max_shard_size=max_shard_size,
                on_loss=on_loss,
                durable=durable,
                progress=progress,
            )
            return
    p = find_manifest(path)
    if not is_manifest_path(p):
        raise InvalidArgumentError(f"not a tensor-parallel manifest (*{MANIFEST_SUFFIX})", path=p)
    if on_engine:
        _merge_on_engine(p, output, progress=progress, engine=engine, address=address, **common)
        return
    reshard(
        p, output, format=format, max_shard_size=max_shard_size, on_loss=on_loss, durable=durable, progress=progress
    )


def reshard(
    source: Source,
    output: str | os.PathLike[str],
    *,
    format: str | None = None,
    max_shard_size: int | None = None,
    tp: int | None = None,
    split: Mapping[str, int] | Iterable[tuple[str, int] | str] = (),
    replicate: Iterable[str] = (),
    layout: Layout | str = Layout.DEVICES,
    shard_format: str | None = None,
    on_loss: str = "warn",
    durable: bool = True,
    progress: Progress | None = None,
    engine: str = "local",
    address: str | None = None,
) -> list[str] | None:
    """Any layout to any other, streaming: `source` is opened as its tensors (a safetensors or
    IRPA set, a GGUF split, a tensor-parallel set joined on the fly) and written as `output`:
    a size-sharded set with `max_shard_size`, a tensor-parallel set with `tp` (or an output
    ending ``.tp.json``), else one file. Returns the paths a tensor-parallel write made.

    ``engine="ray"`` (and `address`) runs it on a Ray cluster: a tensor-parallel output as
    `shard` does (a reshard, TP 4 -> 2, has each worker read, of every joined tensor, the rows of
    its piece), any other as `merge` does, one task per output member."""
    out = os.fspath(output)
    if tp is not None or is_manifest_path(out):
        if tp is None:
            raise InvalidArgumentError("a tensor-parallel output needs tp=")
        if format is not None and not get_format(format).composite:
            raise InvalidArgumentError(f"format={format!r} with tp=: name the device files' format with shard_format=")
        result = shard(
            source,
            out,
            on_loss=on_loss,
            tp=tp,
            split=split,
            replicate=replicate,
            layout=layout,
            format=shard_format,
            max_shard_size=max_shard_size,
            durable=durable,
            progress=progress,
            engine=engine,
            address=address,
        )
        return result.paths
    if engine != "local" or address is not None:
        _merge_on_engine(
            source,
            output,
            split=split,
            replicate=list(replicate) or None,
            format=format,
            max_shard_size=max_shard_size,
            on_loss=on_loss,
            progress=progress,
            engine=engine,
            address=address,
        )
        return None
    contents, _ = open_source(source, split=split, replicate=list(replicate) or None)  # a vLLM set's axes
    fmt = format or detect_format(out, for_writing=True)
    options: dict[str, object] = {"durable": durable, "progress": progress}
    if max_shard_size is not None:
        options["max_shard_size"] = max_shard_size
    write_path(out, contents.entries, format=fmt, attributes=contents.attributes, on_loss=on_loss, **options)
    return None
