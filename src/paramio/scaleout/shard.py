"""``shard`` / ``reshard`` into a tensor-parallel set on the engine: one task per device file, the
manifest committed last.

Planning (driver, headers only): the source is opened as `paramio.shard` opens it (any format or
set; a tensor-parallel set joined on the fly, for a reshard), placed by
`paramio.sharding.make_plan`, and laid out by `paramio.sharding.tpset.plan_files`, the plan
`paramio.sharding.tpset.write_set` itself writes from: file names, each file's entries, the
manifest's document and the save's stamp. A task reopens the source on its worker, makes the
same plan with the same stamp and writes its one device file with the same writer, so every
file is byte for byte the one-machine path's; a split tensor's piece is read as its spans (a
reshard's worker reads, of each joined tensor, only the rows its piece needs). Each file goes to
a staging name beside its final one on a shared path, and is checked against its planned
entries; the commit renames every file into place, writes the manifest last and removes the
files of the set it replaced. A failed job removes its staged files and leaves no manifest.

The devices and keys layouts; ``max_shard_size`` (device files that are sets of their own), the
vLLM and sharktank layouts and object-store outputs stay on the one-machine path.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from paramio.core.errors import FormatError, InvalidArgumentError, WriteError
from paramio.scaleout.engine import (
    DEFAULT_MEMORY_BOUND,
    JobReport,
    ProgressSnapshot,
    Task,
    TaskBody,
    TaskContext,
    TaskResult,
)
from paramio.scaleout.job import run_job
from paramio.scaleout.staging import remove_files, staged_files, staging_name
from paramio.sharding.plan import Layout, Plan, make_plan, split_rules

__all__ = ["ShardJob", "shard_on_engine", "write_device_file"]


def _open_and_plan(args: Mapping[str, Any]) -> tuple[Any, str, list[Any], Plan]:
    """The source's contents, its default stem, its entries and the plan (driver and workers
    alike)."""
    from paramio.formats.inputs import input_options
    from paramio.sharding.api import open_source

    rules = [tuple(r) for r in args["split"]]
    replicate = list(args["replicate"])
    with input_options(args.get("source_options")):  # a URL's remote options, on every worker too
        contents, stem = open_source(args["source"], split=rules, replicate=replicate or None)
    entries = list(contents.entries)
    plan = make_plan(entries, args["tp"], split=rules, replicate=replicate, layout=args["layout"])
    return contents, stem, entries, plan


class ShardJob:
    """The `paramio.scaleout.engine.Operation` writing a tensor-parallel set file by file."""

    name = "shard"

    def __init__(
        self,
        source: str,
        output: str,
        *,
        tp: int,
        split: Mapping[str, int] | Iterable[tuple[str, int] | str] = (),
        replicate: Iterable[str] = (),
        layout: Layout | str = Layout.DEVICES,
        format: str | None = None,
        stem: str | None = None,
        alignment: int | None = None,
        on_loss: str = "warn",
        durable: bool = True,
        source_options: Mapping[str, Any] | None = None,
    ) -> None:
        """`source_options`: the remote options a URL source is opened with, on the driver and
        on every worker (besides those of an enclosing `paramio.formats.inputs.input_options`)."""
        from paramio.formats.contract import ARCHIVE
        from paramio.formats.inputs import is_url

        if is_url(output):
            raise InvalidArgumentError(
                "engine='ray' writes a tensor-parallel set to a shared path; an object-store output is written "
                "by the one-machine path",
                path=output,
            )
        try:
            lay = Layout(layout)
        except ValueError:
            raise InvalidArgumentError(
                f"unknown layout {layout!r}; expected devices, keys, vllm or sharktank"
            ) from None
        if lay not in (Layout.DEVICES, Layout.KEYS):
            raise InvalidArgumentError(f"engine='ray' writes the devices and keys layouts; {lay.value} is one-machine")
        from paramio.formats.inputs import current_options

        self.args: dict[str, Any] = {
            "source_options": {**current_options(), **dict(source_options or {})},
            "source": source,
            "output": output,
            "tp": tp,
            "split": [list(r) for r in split_rules(split)],
            "replicate": list(replicate),
            "layout": lay.value,
            "format": format or ARCHIVE,
            "stem": stem,
            "alignment": alignment,
            "durable": durable,
        }
        self.on_loss = on_loss
        self.body: TaskBody = write_device_file
        self.job = uuid.uuid4().hex[:12]
        self.plan_made: Plan | None = None
        self.finals: list[str] = []
        self.manifest = ""
        self.manifest_bytes = b""
        self.previous: set[str] = set()

    def plan(self) -> list[Task]:
        from paramio.sharding.tpset import plan_files

        contents, default_stem, entries, plan = _open_and_plan(self.args)
        self.args["stem"] = self.args["stem"] or default_stem
        files = plan_files(
            self.args["output"],
            entries,
            plan,
            stem=self.args["stem"],
            attributes=contents.attributes,
            fmt=self.args["format"],
            alignment=self.args["alignment"],
            on_loss=self.on_loss,
            durable=self.args["durable"],
        )
        from paramio.formats.sets import STAMP_KEY

        self.plan_made = plan
        self.manifest = files.manifest
        self.manifest_bytes = files.manifest_bytes()
        self.previous = files.previous
        stamp = files.doc.get(STAMP_KEY)
        tasks = []
        for i, (name, group) in enumerate(zip(files.names, files.groups, strict=True)):
            final = os.path.join(files.folder, name)
            self.finals.append(final)
            tasks.append(
                Task(
                    id=f"device-{i:05d}",
                    args={
                        **self.args,
                        "stamp": stamp,
                        "manifest_sha256": hashlib.sha256(self.manifest_bytes).hexdigest(),
                        "index": i,
                        "final": final,
                        "staging": staging_name(final, self.job),
                    },
                    input_bytes=sum(e.length for e in group if e.source is not None),
                    output=final,
                )
            )
        return tasks

    def commit(self, results: Sequence[TaskResult]) -> list[str]:
        from paramio.formats.interrupts import held_signals
        from paramio.formats.output import AtomicOutput, sync_folder
        from paramio.formats.sets import remove_files

        done = {r.output: r for r in results}
        missing = [f for f in self.finals if f not in done]
        if missing:
            raise WriteError(f"{len(missing)} device files were not written (first: {missing[0]})", path=self.manifest)
        for r in results:
            staged = r.values["staging"]
            if os.path.getsize(staged) != r.size:
                raise WriteError(
                    f"the staged file has {os.path.getsize(staged)} bytes, its task wrote {r.size}", path=staged
                )
        with held_signals():  # a few renames: a SIGTERM waits for them rather than halve the set
            for final in self.finals:
                os.replace(done[final].values["staging"], final)
            sync_folder(self.manifest)
        with AtomicOutput(self.manifest, durable=bool(self.args["durable"])) as out:  # last
            out.pwrite(self.manifest_bytes, 0)
            out.commit()
        stale = self.previous - {os.path.abspath(p) for p in [*self.finals, self.manifest]}
        if stale:
            remove_files(stale, self.manifest)
        return [*self.finals, self.manifest]

    def abort(self, results: Sequence[TaskResult]) -> list[str]:
        """Remove the staged files (of every attempt: found by the job's staging names)."""
        return remove_files(self.leftovers())

    def leftovers(self) -> list[str]:
        """This job's staged files (and their writers' temporaries) still on disk."""
        return staged_files(self.finals, self.job)


def write_device_file(task: Task, context: TaskContext) -> TaskResult:
    """One device file, on a worker: the source reopened, the same plan made with the job's
    stamp, the file written at its staging name with the one-machine writer and checked."""
    from paramio.formats.registry import read_path
    from paramio.sharding.tpset import plan_files

    a = task.args
    contents, _, entries, plan = _open_and_plan(a)
    files = plan_files(
        a["output"],
        entries,
        plan,
        stem=a["stem"],
        attributes=contents.attributes,
        fmt=a["format"],
        alignment=a["alignment"],
        on_loss="ignore",  # reported once, by the driver's plan
        durable=a["durable"],
        stamp=a["stamp"],
    )
    index, staging = a["index"], a["staging"]
    if hashlib.sha256(files.manifest_bytes()).hexdigest() != a["manifest_sha256"]:
        # The manifest records every tensor's placement, dtype, shape and file: the same bytes
        # mean the same plan, so the file written here is the one the driver will name.
        raise InvalidArgumentError(
            "the source changed since the job was planned: this worker plans another set", path=a["source"]
        )
    files.write_file(index, staging, progress=context.advance)
    got = [(e.key, e.length) for e in read_path(staging, format=a["format"]).entries]
    want = [(e.key, e.length) for e in files.groups[index]]
    if got != want:
        raise FormatError(f"the device file written does not hold its {len(want)} entries as planned", path=staging)
    return TaskResult(
        task.id, output=a["final"], size=os.path.getsize(staging), values={"staging": staging}, bytes_read=context.done
    )


def shard_on_engine(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    tp: int,
    split: Mapping[str, int] | Iterable[tuple[str, int] | str] = (),
    replicate: Iterable[str] = (),
    layout: Layout | str = Layout.DEVICES,
    format: str | None = None,
    stem: str | None = None,
    alignment: int | None = None,
    on_loss: str = "warn",
    durable: bool = True,
    engine: str = "ray",
    address: str | None = None,
    memory_bound: int = DEFAULT_MEMORY_BOUND,
    max_retries: int = 3,
    progress: Callable[[ProgressSnapshot], None] | None = None,
    source_options: Mapping[str, Any] | None = None,
) -> tuple[Plan, JobReport]:
    """`paramio.shard` as a job on `engine` (``"ray"``; ``"local"`` runs the same tasks here):
    the plan and the job's report (its ``outputs``: the device files, the manifest last).
    `source` is a path every worker can read (a shared filesystem) or a URL, opened with
    `source_options` (``config=``, ``client_options=``: `paramio.sources.open_source`'s) there.

    Raises what `paramio.shard` raises before anything is written (from the driver's plan),
    `InvalidArgumentError` for a layout or output the engine does not write, and the first
    task error that is not retried, after the job's staged files were removed."""
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"engine={engine!r} reopens the source on every worker: give a path or URL, not a {type(source).__name__}"
        )
    job = ShardJob(
        os.fspath(source),
        os.fspath(output),
        tp=tp,
        split=split,
        replicate=replicate,
        layout=layout,
        format=format,
        stem=stem,
        alignment=alignment,
        on_loss=on_loss,
        durable=durable,
        source_options=source_options,
    )
    report = run_job(
        job, engine=engine, address=address, memory_bound=memory_bound, max_retries=max_retries, progress=progress
    )
    assert job.plan_made is not None
    return job.plan_made, report
