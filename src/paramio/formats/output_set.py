"""Several files committed as one: shards and their index, or a tensor-parallel set.

`AtomicOutputSet` is the one mechanism for every set paramio writes (sharded safetensors and
IRPA with their index or manifest, split GGUF, tensor-parallel sets): each member is an
`AtomicOutput`, and the set decides when and in what order their names change.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from types import TracebackType

from paramio.core.errors import InvalidArgumentError, WriteError
from paramio.formats.interrupts import held_signals
from paramio.formats.output import AtomicOutput, _gathering_set, _set_gathering, sync_folder

__all__ = ["AtomicOutputSet"]


class AtomicOutputSet:
    """Several files committed as one (shards and their index): all of them or none.

    Each `add` creates one member's temporary file; `commit` first finishes every member (all
    bytes written and fsynced), so a failure while writing any member (a full disk on shard 2)
    leaves every old file as it was and no temporary file. Then it publishes: the old files at
    the members' names are removed, the members are renamed into place in the order added, and
    the member added with ``index=True`` is renamed over its old self last of all. A process
    killed during those renames leaves members missing (a reader fails loudly), never new
    members next to old ones that would open as a silent mix of two saves; an index that
    changes last means a reader that opens the index sees the old set or the new one.

    Members must be files: a set cannot be streamed (`WriteError` from `add`). A writer may
    call a member's `AtomicOutput.finish` as soon as it is written, to close its descriptor.
    """

    def __init__(self, *, durable: bool = True) -> None:
        self.durable = durable
        self.outputs: list[AtomicOutput] = []
        self._index: AtomicOutput | None = None
        self._done = False
        self._after: list[Callable[[], None]] = []

    def add(self, path: str | os.PathLike[str], *, index: bool = False) -> AtomicOutput:
        """A new member at `path` (at most one with `index`), to write into before `commit`."""
        if index and self._index is not None:
            raise InvalidArgumentError("a set of files has one index member", path=os.fspath(path))
        out = AtomicOutput(path, durable=self.durable)
        if out.streamed:
            out.abort()
            raise WriteError("is not a regular file; a set of files cannot be streamed into it", path=out.path)
        for other in self.outputs:
            if other.target.final == out.target.final:
                out.abort()
                raise WriteError("named twice in one set of files", path=out.path)
        self.outputs.append(out)
        out._owner = self
        if index:
            self._index = out
        return out

    def _adopt(self, out: AtomicOutput) -> None:
        """Take a finished file (written by a writer inside `gathering`) as a plain member."""
        for other in self.outputs:
            if other.target.final == out.target.final:
                out.abort()
                raise WriteError("named twice in one set of files", path=out.path)
        self.outputs.append(out)
        out._owner = self

    @contextlib.contextmanager
    def gathering(self) -> Iterator[AtomicOutputSet]:
        """Within the block, files that writers commit in this thread (`AtomicOutput.commit`,
        and the commit of a nested set, such as a sharded device file) are finished but not put
        in place: they join this set, in order, and are published by its `commit`. A set made
        of whole files written by other writers (a tensor-parallel set) is then one commit."""
        previous = _gathering_set()
        _set_gathering(self)
        try:
            yield self
        finally:
            _set_gathering(previous)

    def on_published(self, action: Callable[[], None]) -> None:
        """Run `action` once the set is in place (removing what the new set replaces); in a
        set gathered into another, once that one is."""
        self._after.append(action)

    @property
    def paths(self) -> list[str]:
        """The members' final names, in commit order."""
        return [o.target.final or o.path for o in self._order()]

    def _order(self) -> list[AtomicOutput]:
        return [o for o in self.outputs if o is not self._index] + ([self._index] if self._index else [])

    def commit(self) -> None:
        """Finish every member, then publish them as the class docstring says. Raises
        `WriteError`; before publishing starts, nothing under a final name has changed."""
        try:
            for out in self.outputs:
                out.finish()
            # A record of digests a member's header holds for entries of later members is
            # complete only now (`paramio.formats.digests.DigestSink.settle`).
            for sink in {id(o.sink): o.sink for o in self.outputs if o.sink is not None}.values():
                sink.settle()
        except BaseException:
            self.abort()
            raise
        into = _gathering_set()
        if into is not None and into is not self:  # a nested set: its files join the outer one
            try:
                for out in self._order():
                    into._adopt(out)
            except BaseException:
                self.abort()
                raise
            into._after.extend(self._after)
            self._done = True
            return
        members = [o for o in self._order() if o is not self._index]
        try:
            with held_signals():  # a few renames: a SIGTERM waits for them rather than halve the set
                self._publish(members)
        except OSError as exc:
            self.abort()
            if isinstance(exc, WriteError):
                raise
            raise WriteError(f"cannot finish writing the set: {exc.strerror or exc}", path=exc.filename) from exc
        except BaseException:
            self.abort()
            raise
        self._done = True
        for action in self._after:
            action()

    def _publish(self, members: list[AtomicOutput]) -> None:
        for out in members:
            assert out.target.final is not None
            try:
                os.unlink(out.target.final)
            except FileNotFoundError:
                pass
        self._sync(members)
        for out in members:
            out.publish()
        self._sync(members)
        if self._index is not None:
            self._index.publish()
            self._sync([self._index])

    def _sync(self, outputs: list[AtomicOutput]) -> None:
        if self.durable:
            for folder in dict.fromkeys(os.path.dirname(o.target.final or "") for o in outputs):
                sync_folder(os.path.join(folder, "."))

    def abort(self) -> None:
        """Remove every member's temporary file (members already renamed stay)."""
        with held_signals():
            for out in self.outputs:
                out.abort()

    def __enter__(self) -> AtomicOutputSet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None or not self._done:
            self.abort()
