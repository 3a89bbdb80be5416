"""``convert`` on the engine: one task per output member, the manifest committed last.

Planning (driver, headers only): `paramio.index.convert.plan_conversion` applies the rules,
`paramio.formats.registry.prepare_write` does what ``write_path`` does before a writer runs
(losses, carried facts, the digest record), and the format's own writer plans the set under
`paramio.formats.sets.planning_only`: members, their entries, names, stamp and the manifest's
exact bytes. A task gets its member's entries as plain records and writes the member with the
same writer under `paramio.formats.sets.writing_one_member` (the task: `paramio.scaleout.member`),
so the bytes are those of the one-machine path. A member goes to a staging name beside its final one (a shared path) or is
built in the worker's temporary folder and uploaded as a multipart upload to its final object
(an object store URL); the task then opens what it wrote (headers) and checks it holds its
entries. The driver's commit renames staged members into place (or checks each uploaded
object's size) and writes the manifest last; a failed job removes what it wrote.

A single-file output is one task (the whole file is one member).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError, WriteError
from paramio.scaleout.engine import (
    DEFAULT_MEMORY_BOUND,
    JobReport,
    ProgressSnapshot,
    Task,
    TaskBody,
    TaskResult,
    check_engine,
)
from paramio.scaleout.entries import records_of
from paramio.scaleout.job import run_job
from paramio.scaleout.member import check_member, write_member
from paramio.scaleout.staging import remove_files, staged_files, staging_name

if TYPE_CHECKING:
    from paramio.formats.digests import DigestSink

__all__ = ["ConvertJob", "convert_job", "convert_on_engine"]

#: A member larger than this (on a shared path) is written by several tasks, a byte range each.
DEFAULT_MAX_TASK_BYTES = 4 << 30


class ConvertJob:
    """The `paramio.scaleout.engine.Operation` writing `entries` to `output` set member by set member."""

    name = "convert"

    def __init__(
        self,
        output: str,
        entries: Sequence[ParameterEntry],
        *,
        format: str,
        attributes: Mapping[str, object],
        writer_options: Mapping[str, object],
        source_options: Mapping[str, Any],
        reopen: Mapping[str, Any] | None = None,
        max_task_bytes: int | None = None,
        digests: DigestSink | None = None,
        engine: str = "local",
        address: str | None = None,
        memory_bound: int = DEFAULT_MEMORY_BOUND,
        max_retries: int = 3,
    ) -> None:
        """`reopen`: ``{"source": path, "split": rules, "replicate": patterns}`` when `entries`
        come from a set a worker must reopen to read them (`paramio.scaleout.entries.reopen_records`).
        `digests`: the sink `paramio.formats.registry.prepare_write` laid the record out with
        (its placeholders are in `attributes`), None when the output stores no record; digests
        still to come are hashed by the tasks as they copy and put into the headers before the
        commit publishes (module docstring). `engine` ... `max_retries`: what a digest job the
        plan needs runs with (entries hashed before the copy: the job's own engine)."""
        from paramio.formats.inputs import is_url

        self.output = output
        self.remote = is_url(output)
        self.entries = list(entries)
        self.format = format
        self.attributes = dict(attributes)
        self.writer_options = dict(writer_options)
        self.source_options = dict(source_options)
        self.reopen = None if reopen is None else dict(reopen)
        if max_task_bytes is not None and (
            isinstance(max_task_bytes, bool) or not isinstance(max_task_bytes, int) or max_task_bytes < 1
        ):
            raise InvalidArgumentError(f"max_task_bytes={max_task_bytes!r}: expected a positive byte count or None")
        #: On a shared path, a member of more bytes is written by several tasks, a range each.
        self.max_task_bytes = max_task_bytes
        #: The entries of each member (the driver checks a member written in parts by them).
        self.groups: dict[str, list[ParameterEntry]] = {}
        #: For an upload: each member object's version at planning (None: absent; "?": unknown).
        self.before: dict[str, str | None] = {}
        self.job = uuid.uuid4().hex[:12]
        self.body: TaskBody = write_member
        self.finals: list[str] = []
        self.manifest: str | None = None
        self.manifest_text: str | None = None
        self.stale: set[str] = set()
        self.sizes: dict[str, int] = {}
        self.sink = digests if digests is not None and not digests.complete else None
        self.engine = engine
        self.address = address
        self.memory_bound = memory_bound
        self.max_retries = max_retries
        #: Bytes of entries hashed in a digest job of their own (not while copying).
        self.hashed_apart = 0

    # -- plan -------------------------------------------------------------------------------

    def _plan_path(self) -> str:
        """The path the writer is given: the output itself, or for a URL a local name with its
        file name (the manifest names members by file name only)."""
        if not self.remote:
            return self.output
        from urllib.parse import unquote, urlsplit

        name = unquote(urlsplit(self.output).path).rsplit("/", 1)[-1]
        if not name:
            raise WriteError("names a folder, not an object; add a file name", path=self.output)
        return os.path.join(tempfile.gettempdir(), f"paramio-plan-{self.job}", name)

    def _final(self, planned: str) -> str:
        if not self.remote:
            return planned
        from paramio.formats.inputs import beside

        return beside(self.output, os.path.basename(planned))

    def plan(self) -> list[Task]:
        from paramio.formats.contract import get_format
        from paramio.formats.sets.reading import is_manifest
        from paramio.formats.sets.writing import planning_only

        fmt = get_format(self.format)
        path = self._plan_path()
        layout = fmt.set_layout
        is_set = self.writer_options.get("max_shard_size") is not None or (
            layout is not None and is_manifest(path, layout)
        )
        common = {
            "format": fmt.name,
            "plan_path": path,
            "attributes": self.attributes,
            "writer_options": self.writer_options,
            "source_options": self.source_options,
            "remote": self.remote,
        }
        if not is_set:  # one file: one task writes it whole
            groups, names, count, stamp = [self.entries], [path], 1, None
            single = True
        else:
            with planning_only() as plan:
                fmt.write_path(path, self.entries, attributes=self.attributes, **self.writer_options)
            groups, names, count, stamp = plan.groups, plan.names, len(plan.names), plan.stamp
            self.manifest = self._final(plan.manifest) if plan.manifest is not None else None
            self.manifest_text = plan.manifest_text
            self.stale = set() if self.remote else plan.stale
            single = False
        tasks = []
        cut: list[str] = []  # entries written in byte ranges by several tasks
        every: list[dict[str, Any]] = []  # each task's arguments (the digest state joins them)
        for i, (name, group) in enumerate(zip(names, groups, strict=True)):
            final = self._final(name)
            self.finals.append(final)
            if self.remote:  # what is there now: an abort removes only what the job wrote
                self.before[final] = _object_state(final, self.source_options)
            self.groups[final] = list(group)
            args = {
                **common,
                "entries": records_of(group) if self.reopen is None else self._reopen_form(group),
                "member": (i, count, len(self.entries), stamp),
                "single": single,
                "final": final,
                "staging": None if self.remote else staging_name(final, self.job),
            }
            pieces = None if self.remote or self.reopen is not None else self._pieces(group, fmt.splats)
            if pieces is None:
                every.append(args)
                tasks.append(
                    Task(
                        id=f"member-{i + 1:05d}",
                        args=args,
                        input_bytes=sum(e.length for e in group if e.source is not None or not fmt.splats),
                        output=final,
                    )
                )
                continue
            by_key = {e.key: e for e in group}
            cut += [k for parts in pieces for k, ranges in parts.items() if ranges != [[0, by_key[k].length]]]
            for j, parts in enumerate(pieces):
                every.append({**args, "parts": parts, "part": (j, len(pieces))})
                tasks.append(
                    Task(
                        id=f"member-{i + 1:05d}-part-{j + 1:05d}",
                        args=every[-1],
                        input_bytes=sum(
                            hi - lo
                            for k, ranges in parts.items()
                            if by_key[k].source is not None or not fmt.splats  # copied: data, or splats written out
                            for lo, hi in ranges
                        ),
                        output=final,
                    )
                )
        if self.sink is not None:
            self._plan_digests(cut, single)
            state = self.sink.task_state()
            for args in every:
                args["digests"] = state
        return tasks

    def _plan_digests(self, cut: Sequence[str], single: bool) -> None:
        """Hash, before the copy, the entries no task can hash while copying it: an entry cut in
        byte ranges between tasks (a hash is one sequential pass), and for an uploaded set every
        entry still to come (each member's header holds the whole record and an upload cannot be
        patched after; a single uploaded file is written whole by one task, which hashes as it
        copies). Runs as a digest job on the workers: no tensor byte on the driver."""
        assert self.sink is not None
        missing = self.sink.missing()
        if not (self.remote and not single):
            wanted = set(cut)
            missing = [(k, e) for k, e in missing if k in wanted]
        if missing:
            self.sink.merge(self._hash(missing))
            self.hashed_apart += sum(e.length for _, e in missing)

    def _hash(self, pairs: Sequence[tuple[str, ParameterEntry]]) -> dict[str, str]:
        from paramio.scaleout.digest import digest_job

        assert self.sink is not None
        if self.reopen is not None:  # entries a worker makes by reopening the set (joined tensors)
            raise InvalidArgumentError(
                f"the digests of {len(pairs)} entries (first: {pairs[0][0]!r}) are needed before the copy "
                "(an uploaded sharded output), and entries joined from a set are hashed only as a task "
                "copies them; write one file, or on a shared path, or add the record after: paramio digest --write",
                path=self.output,
            )
        digests, _ = digest_job(
            pairs,
            self.sink.algorithm,
            engine=self.engine,
            address=self.address,
            memory_bound=self.memory_bound,
            max_retries=self.max_retries,
            source_options=self.source_options,
        )
        return digests

    def _pieces(self, group: Sequence[ParameterEntry], keeps_splats: bool) -> list[dict[str, list[list[int]]]] | None:
        """A member larger than `max_task_bytes` in parts of about that many bytes (key -> byte
        ranges of the entry), an entry larger than that cut in MiB-aligned ranges (a splat is
        never cut); None for a member one task writes whole."""
        limit = self.max_task_bytes
        weight = [0 if (keeps_splats and e.source is None) else e.length for e in group]
        if limit is None or sum(weight) <= limit:
            return None
        pieces: list[dict[str, list[list[int]]]] = []
        current: dict[str, list[list[int]]] = {}
        size = 0
        step = max(1 << 20, limit >> 20 << 20)
        for e, w in zip(group, weight, strict=True):
            if e.source is None or w <= limit:
                if current and size + w > limit:
                    pieces.append(current)
                    current, size = {}, 0
                current[e.key] = [[0, e.length]]
                size += w
                continue
            if current:
                pieces.append(current)
                current, size = {}, 0
            pieces.extend({e.key: [[lo, min(e.length, lo + step)]]} for lo in range(0, e.length, step))
        if current:
            pieces.append(current)
        return pieces if len(pieces) > 1 else None

    def _reopen_form(self, group: Sequence[ParameterEntry]) -> dict[str, Any]:
        from paramio.scaleout.entries import reopen_records

        assert self.reopen is not None
        spec = self.reopen
        return reopen_records(
            spec["source"],
            group,
            split=spec.get("split", ()),
            replicate=spec.get("replicate"),
            fingerprint=spec.get("fingerprint"),
        )

    # -- commit -----------------------------------------------------------------------------

    def commit(self, results: Sequence[TaskResult]) -> list[str]:
        by_output: dict[str | None, list[TaskResult]] = {}
        for r in results:
            by_output.setdefault(r.output, []).append(r)
        missing = [f for f in self.finals if f not in by_output]
        if missing:
            raise WriteError(f"{len(missing)} members were not written (first: {missing[0]})", path=self.output)
        for final, parts in by_output.items():
            if len(parts) > 1:  # written in byte ranges: whole, and reads back with its entries
                assert final is not None
                staged = parts[0].values["staging"]
                numbers = sorted(p.values["part"] for p in parts)
                if {p.size for p in parts} != {parts[0].size} or numbers != list(range(len(parts))):
                    raise WriteError("the parts of a member disagree on its size or are missing", path=staged)
                check_member(self.format, staged, self.groups[final])
        results = [parts[0] for parts in by_output.values()]
        if self.sink is not None:
            self._store_digests(by_output)
        if self.remote:
            self._check_uploaded(results)
            if self.manifest is not None and self.manifest_text is not None:
                _upload_bytes(self.manifest, self.manifest_text.encode("utf-8"), self.source_options)
        else:
            self._publish(results)
        return [*self.finals, *([self.manifest] if self.manifest is not None else [])]

    def _store_digests(self, by_output: Mapping[str | None, Sequence[TaskResult]]) -> None:
        """Merge the digests the tasks computed and put the whole record into each staged header
        that still holds placeholders (before anything is renamed into place). An entry no task
        hashed (a writer that copied it transformed) is hashed in a digest job, on the workers."""
        assert self.sink is not None
        for parts in by_output.values():
            for r in parts:
                self.sink.merge(r.values.get("digests") or {})
        missing = self.sink.missing()
        if missing:
            self.sink.merge(self._hash(missing))
            self.hashed_apart += sum(e.length for _, e in missing)
        for final, parts in by_output.items():
            heads = {int(r.values["head"]) for r in parts if r.values.get("head")}
            if not heads:
                continue
            if self.remote or len(heads) > 1:  # an upload is patched by its task, before it goes
                raise WriteError("a member's header still holds digests to come", path=final)
            self.sink.patch_file(parts[0].values["staging"], heads.pop())

    def _check_uploaded(self, results: Sequence[TaskResult]) -> None:
        """Each member object is there with the size its task wrote (the store says, one HEAD)."""
        from paramio.formats.inputs import input_options, open_input

        with input_options(self.source_options):
            for r in results:
                assert r.output is not None
                src = open_input(r.output)
                try:
                    if src.size != r.size:
                        raise WriteError(
                            f"the uploaded member has {src.size} bytes, its task wrote {r.size}", path=r.output
                        )
                finally:
                    close = getattr(src, "close", None)
                    if close is not None:
                        close()

    def _publish(self, results: Sequence[TaskResult]) -> None:
        from paramio.formats.interrupts import held_signals
        from paramio.formats.output import AtomicOutput, sync_folder
        from paramio.formats.sets.writing import remove_files

        for r in results:
            staged = r.values["staging"]
            if os.path.getsize(staged) != r.size:
                raise WriteError(
                    f"the staged member has {os.path.getsize(staged)} bytes, its task wrote {r.size}", path=staged
                )
        folders = {os.path.dirname(f) or "." for f in self.finals}
        with held_signals():  # a few renames: a SIGTERM waits for them rather than halve the set
            for r in results:
                os.replace(r.values["staging"], r.output)  # type: ignore[arg-type]
            for folder in folders:
                sync_folder(os.path.join(folder, "."))
        if self.manifest is not None and self.manifest_text is not None:
            with AtomicOutput(self.manifest) as out:  # last: a reader sees the old set or the new one
                out.pwrite(self.manifest_text.encode("utf-8"), 0)
                out.commit()
        if self.stale:
            remove_files(self.stale, self.finals[0])
        for path in self.leftovers():  # temporaries of attempts whose worker died (retried since)
            with contextlib.suppress(OSError):
                os.unlink(path)

    # -- abort ------------------------------------------------------------------------------

    def abort(self, results: Sequence[TaskResult]) -> list[str]:
        """Remove what the job wrote: staged members (also those of attempts that died: found by
        the job's staging names), or uploaded member objects. Returns what stayed."""
        left: list[str] = []
        if self.remote:
            from paramio.sources.upload import delete_object

            written = {r.output for r in results if r.output is not None}
            for final in self.finals:
                if final not in written:
                    # A task cancelled or killed after its upload completed: the object changed
                    # since the plan (or appeared) is this job's.
                    now, before = _object_state(final, self.source_options), self.before.get(final, "?")
                    if now is None or (now == before and now != "?"):
                        continue  # absent, or the version that was there before the job
                    if "?" in (now, before):
                        left.append(f"{final} (perhaps written by this job)")
                        continue
                try:
                    delete_object(final, **self.source_options)
                except WriteError:
                    left.append(final)
            return left
        return left + remove_files(self.leftovers())

    def leftovers(self) -> list[str]:
        """Staging files of this job still on disk (none after a commit or an abort)."""
        return [] if self.remote else staged_files(self.finals, self.job)


def _object_state(url: str, options: Mapping[str, Any]) -> str | None:
    """The object's version (ETag, date, size), None when it does not exist, ``"?"`` when the
    store does not say."""
    from paramio.formats.inputs import input_options, open_input

    try:
        with input_options(dict(options)):
            src = open_input(url)
    except OSError as exc:
        return None if getattr(exc, "status", None) == 404 else "?"
    try:
        inner = getattr(src, "inner", src)  # the bridged async source holds the object's version
        validator = getattr(inner, "validator", None)
        return str(validator) if validator else "?"
    finally:
        close = getattr(src, "close", None)
        if close is not None:
            close()


def _upload_bytes(url: str, data: bytes, options: Mapping[str, Any]) -> None:
    from paramio.formats.uploads import UPLOAD_OPTIONS
    from paramio.sources.upload import open_upload

    with open_upload(url, size=len(data), **{k: v for k, v in options.items() if k in UPLOAD_OPTIONS}) as up:
        up.write(data)


# -- the library call -------------------------------------------------------------------------


def convert_job(
    inputs: Any,
    output: str | os.PathLike[str],
    *,
    engine: str = "ray",
    address: str | None = None,
    memory_bound: int = DEFAULT_MEMORY_BOUND,
    max_retries: int = 3,
    progress: Callable[[ProgressSnapshot], None] | None = None,
    source_options: Mapping[str, Any] | None = None,
    exclude: Iterable[str] = (),
    rename: Any = None,
    splat: Any = None,
    strip: bool = False,
    duplicates: str = "first",
    typed: bool = True,
    format: str | None = None,
    on_loss: str = "warn",
    expand_splats: bool = False,
    max_shard_size: int | None = None,
    strict: bool = False,
    plan: Any = None,
    max_task_bytes: int | None = DEFAULT_MAX_TASK_BYTES,
    digests: bool | str | None = None,
) -> tuple[Any, JobReport]:
    """`paramio.convert` as a job on `engine` (``"ray"``, or ``"local"``: the same plan and
    tasks run here one by one): returns (the conversion plan, the job's report). The bytes
    written are those `paramio.convert` writes. `source_options` are the remote options every
    input and output URL is opened with (on the workers too; they travel with the tasks).
    On a shared path, a member larger than `max_task_bytes` is written by several tasks, a byte
    range each (None: one task a member); an upload is one task a member."""

    from paramio.formats.inputs import current_options, input_options
    from paramio.formats.registry import prepare_write
    from paramio.index.convert import entries_to_write, output_format, plan_conversion, wanted_digests

    check_engine(engine, address)
    out = os.fspath(output)
    options = {**current_options(), **(source_options or {})}
    with input_options(options):
        fmt = output_format(out, format)
        from paramio.formats.targets import resolve_output

        if resolve_output(out).streamed:
            raise InvalidArgumentError(f"engine={engine!r} writes files or objects; {out} is a stream")
        if plan is None:
            plan = plan_conversion(
                inputs,
                exclude=exclude,
                rename=rename,
                splat=splat,
                strip=strip,
                duplicates=duplicates,
                typed=typed,
                strict=strict,
            )
        entries = entries_to_write(plan, fmt, typed=typed)
        writer_options: dict[str, object] = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
        fmt_obj, path, prepared, sink = prepare_write(
            out,
            entries,
            format=fmt,
            attributes=plan.attributes,
            on_loss=on_loss,
            expand_splats=expand_splats,
            digests=wanted_digests(getattr(plan, "digests", None), digests),  # carried: unchanged bytes
            **writer_options,
        )
        job = ConvertJob(
            path,
            prepared.entries,
            format=fmt_obj.name,
            attributes=prepared.attributes,
            writer_options=writer_options,
            source_options=options,
            max_task_bytes=max_task_bytes,
            digests=sink,
            engine=engine,
            address=address,
            memory_bound=memory_bound,
            max_retries=max_retries,
        )
        report = run_job(
            job, engine=engine, address=address, memory_bound=memory_bound, max_retries=max_retries, progress=progress
        )
    return plan, report


def convert_on_engine(
    inputs: Any, output: str | os.PathLike[str], *, engine: str, address: str | None, **kwargs: Any
) -> Any:
    """What ``paramio.convert(..., engine=...)`` calls for an engine other than the local one
    (declared by the package root: the index layer does not import this one)."""
    kwargs.pop("copy", None)
    progress = kwargs.pop("progress", None)
    if progress is not None:
        seen = [0]

        def bytes_progress(snap: ProgressSnapshot) -> None:
            if snap.done > seen[0]:
                progress(snap.done - seen[0])
                seen[0] = snap.done

        kwargs["progress"] = bytes_progress
    plan, _ = convert_job(inputs, output, engine=engine, address=address, **kwargs)
    return plan
