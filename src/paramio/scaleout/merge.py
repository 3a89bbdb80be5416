"""``merge`` (and ``reshard`` into one file or a size-sharded set) on the engine.

A merge is a conversion whose input is a set read as one model: a tensor-parallel set (its
split tensors joined from their pieces on the fly), a vLLM ``sharded_state`` set, a sharktank
dataset, or any sharded set. It runs as `paramio.scaleout.convert.ConvertJob`, one task per
output member, with the entries in the reopen form (`paramio.scaleout.entries.reopen_records`):
each worker opens the set as `paramio.sharding.api.open_source` does, reading only headers, and
writes its member from the joined entries, reading of each piece only what its member needs.
The bytes are those `paramio.merge` writes on one machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from paramio.core.errors import InvalidArgumentError
from paramio.scaleout.engine import DEFAULT_MEMORY_BOUND, JobReport, ProgressSnapshot, check_engine
from paramio.scaleout.job import run_job
from paramio.sharding.plan import split_rules

__all__ = ["merge_on_engine"]


def merge_on_engine(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    split: Mapping[str, int] | Iterable[tuple[str, int] | str] = (),
    replicate: Iterable[str] | None = None,
    format: str | None = None,
    max_shard_size: int | None = None,
    on_loss: str = "warn",
    engine: str = "ray",
    address: str | None = None,
    memory_bound: int = DEFAULT_MEMORY_BOUND,
    max_retries: int = 3,
    progress: Callable[[ProgressSnapshot], None] | None = None,
    source_options: Mapping[str, Any] | None = None,
) -> JobReport:
    """The set at `source` (a path every worker reads, or a URL) written to `output` as a job on
    `engine`: one file, or a size-sharded set with `max_shard_size`. `split` / `replicate`: a
    vLLM set's axes (see `paramio.merge`). `source_options`: the remote options URLs are opened
    with, on every worker too. Returns the job's report (``outputs``: the members, the manifest
    last).

    Raises what `paramio.merge` raises before anything is written, `InvalidArgumentError` for a
    source that is not a path or URL, a stream output, an uploaded sharded output of a set
    that stores digests (its new digests would need the joined tensors hashed before the copy), and the first task error that is not retried (after the job's staged
    members were removed)."""
    import warnings

    from paramio.core.errors import ConversionWarning
    from paramio.formats.inputs import current_options, input_options
    from paramio.formats.registry import detect_format, prepare_write
    from paramio.formats.targets import resolve_output
    from paramio.scaleout.convert import ConvertJob
    from paramio.scaleout.entries import set_fingerprint
    from paramio.sharding.api import open_source

    check_engine(engine, address)
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"engine={engine!r} reopens the set on every worker: give a path or URL, not a {type(source).__name__}"
        )
    src, out = os.fspath(source), os.fspath(output)
    if resolve_output(out).streamed:
        raise InvalidArgumentError(f"engine={engine!r} writes files or objects; {out} is a stream")
    rules = split_rules(split)
    kept = None if replicate is None else list(replicate)
    options = {**current_options(), **dict(source_options or {})}
    with input_options(options):
        contents, _ = open_source(src, split=rules, replicate=kept)
        fmt = format or detect_format(out, for_writing=True)
        writer_options: dict[str, object] = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConversionWarning)
            fmt_obj, path, prepared, sink = prepare_write(
                out,
                contents.entries,
                format=fmt,
                attributes=dict(contents.attributes),
                on_loss=on_loss,
                **writer_options,
            )
        for w in caught:  # once, from the driver's plan (as the one-machine merge reports them)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        job = ConvertJob(
            path,
            prepared.entries,
            format=fmt_obj.name,
            attributes=prepared.attributes,
            writer_options=writer_options,
            source_options=options,
            reopen={"source": src, "split": rules, "replicate": kept, "fingerprint": set_fingerprint(contents)},
            digests=sink,  # the set's record, computed anew for the joined tensors as the tasks copy them
            engine=engine,
            address=address,
            memory_bound=memory_bound,
            max_retries=max_retries,
        )
        job.name = "merge"
        return run_job(
            job, engine=engine, address=address, memory_bound=memory_bound, max_retries=max_retries, progress=progress
        )
