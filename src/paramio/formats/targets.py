"""What an output path names, and so how it is written: the rules every writer follows.

paramio writes files the way careful tools do (``install``, ``rsync``, editors that save
atomically), and never turns a device node or a symlink into a regular file:

| the path is ...                                      | paramio ...                                             |
|------------------------------------------------------|---------------------------------------------------------|
| missing                                              | creates it atomically (temp file, fsync, rename)        |
| a regular file                                       | replaces it atomically, keeping its mode and owner      |
| a symlink (or a chain of them) to one of these       | writes the file at the end of the chain; links stay     |
| a dangling symlink                                   | creates its target (its folder must exist)              |
| ``-``, ``/dev/stdout``, ``/dev/fd/N``                | streams into that open descriptor                       |
| a FIFO or a character device (``/dev/null``, a tty)  | streams into it                                         |
| a directory, a socket, a block device, other, a loop | refuses (`WriteError`), before anything is written      |
| a URL (``s3://``, ``gs://``, ``az://``, ``https://``)  | builds it locally, then uploads it (`paramio.formats.uploads`) |

A stream cannot be seeked back into, and every format's writer places its header before data it
writes later (or writes data out of order, from several threads), so a streamed output is built
in an unnamed temporary file (``tempfile.gettempdir()``, removed by the kernel whatever happens)
and copied into the stream once complete: a failure writes nothing into the stream. The cost
is the output's size in temporary space and one sequential copy.

``/dev/stdout``, ``/dev/fd/N`` and ``/proc/self/fd/N`` (directly or through symlinks) name a
descriptor this process already has open: they are streamed into it as ``-`` is, at its
position, whatever it is open on (a pipe, a tty, a file the shell redirected into).
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import os
import re
import select
import stat

from paramio.core.errors import WriteError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["STDOUT", "OutputKind", "OutputTarget", "copy_to_stream", "resolve_output", "take_mode_and_owner"]

STREAM_CHUNK = 8 << 20  # per copy into a stream: a pipe takes what it has room for, a device all

#: The path that means standard output (write ``./-`` for a file named ``-``).
STDOUT = "-"


class OutputKind(enum.StrEnum):
    FILE = "file"  # a regular file, created or replaced atomically
    STREAM = "stream"  # bytes are copied, in order, into something that is not a regular file
    REMOTE = "remote"  # an object store URL: built in a local temp folder, uploaded once complete


@dataclasses.dataclass(frozen=True, slots=True)
class OutputTarget:
    """Where an output's bytes go.

    `path` is the path as given (absolute; ``-`` for standard output), for messages. For a
    `FILE`, `final` is the regular file's own path (symlinks resolved), the name that is
    replaced; for a `STREAM`, the path opened for writing, or None with `fd` set (``-``).
    """

    path: str
    kind: OutputKind
    final: str | None
    fd: int | None = None

    @property
    def streamed(self) -> bool:
        return self.kind is OutputKind.STREAM


_REFUSED = (
    (stat.S_ISDIR, "is a directory"),
    (stat.S_ISSOCK, "is a socket"),
    (stat.S_ISBLK, "is a block device"),
)


def resolve_output(path: str | os.PathLike[str]) -> OutputTarget:
    """Classify `path` for writing by the rules in the module docstring.

    Raises `WriteError` (naming the path and what it is) for a directory, a socket, a block
    device or any other special file, for a dangling symlink whose folder does not exist, and
    for a symlink loop.
    """
    from paramio.formats.inputs import is_url, local_path

    given = os.fspath(path)
    given = local_path(given) or given  # a file:// URL is the local path it names

    if is_url(given):
        from paramio.sources.retry import redact_url

        return OutputTarget(redact_url(given), OutputKind.REMOTE, None)
    shown = STDOUT if given == STDOUT else os.path.abspath(given)
    fd = 1 if given == STDOUT else _own_descriptor(shown)
    if fd is not None:
        _check_descriptor(fd, shown)
        return OutputTarget(shown, OutputKind.STREAM, None, fd)
    try:
        st = os.stat(given)  # follows symlinks, and /proc's descriptor links
    except FileNotFoundError:
        return OutputTarget(shown, OutputKind.FILE, _missing_target(given, shown))
    except OSError as exc:
        reason = "symlink loop" if exc.errno == errno.ELOOP else f"cannot write here: {exc.strerror or exc}"
        raise WriteError(f"{reason}; not written", path=shown) from exc
    if stat.S_ISREG(st.st_mode):
        final = os.path.realpath(given)
        try:
            same = os.path.samestat(os.stat(final), st)
        except OSError:
            same = False
        if same:
            return OutputTarget(shown, OutputKind.FILE, final)
        # A descriptor link (/proc/self/fd/N, /dev/stdout) to a file with no name of its own
        # (deleted, or in another mount namespace): there is no name to replace, so write into it.
        return OutputTarget(shown, OutputKind.STREAM, given)
    if stat.S_ISCHR(st.st_mode):
        _check_opens(given, shown)  # a tty with no terminal, a device without a driver: say so now
        return OutputTarget(shown, OutputKind.STREAM, given)
    if stat.S_ISFIFO(st.st_mode):  # not opened here: that waits for a reader
        return OutputTarget(shown, OutputKind.STREAM, given)
    what = next((w for test, w in _REFUSED if test(st.st_mode)), f"is a special file ({stat.filemode(st.st_mode)})")
    raise WriteError(f"{what}; not written", path=shown)


_DESCRIPTOR_LINK = re.compile(r"/(?:proc/(?P<pid>self|thread-self|\d+)(?:/task/\d+)?|dev)/fd/(?P<fd>\d+)")


def _own_descriptor(path: str) -> int | None:
    """The descriptor `path` names when it leads (through symlinks) to this process's
    ``/proc/self/fd/N`` or ``/dev/fd/N``: ``/dev/stdout`` is descriptor 1, to be written at its
    own position (after what the tool printed there), as ``-`` is."""
    for _ in range(40):  # the kernel's own limit on a symlink chain
        m = _DESCRIPTOR_LINK.fullmatch(path)
        if m is not None:
            pid = m["pid"]
            if pid is None or not pid.isdigit() or int(pid) == os.getpid():
                return int(m["fd"])
            return None
        try:
            link = os.readlink(path)
        except OSError:
            return None
        path = os.path.normpath(os.path.join(os.path.dirname(path), link))
    return None


def _check_descriptor(fd: int, shown: str) -> None:
    try:
        os.fstat(fd)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL) if fcntl is not None else os.O_WRONLY
    except OSError as exc:
        raise WriteError(f"descriptor {fd} is not open; not written", path=shown) from exc
    if flags & getattr(os, "O_ACCMODE", 3) == os.O_RDONLY:
        raise WriteError(f"descriptor {fd} is open for reading only; not written", path=shown)


def _check_opens(path: str, shown: str) -> None:
    flags = os.O_WRONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        os.close(os.open(path, flags))
    except OSError as exc:
        raise WriteError(f"cannot open for writing: {exc.strerror or exc}; not written", path=shown) from exc


def _missing_target(given: str, shown: str) -> str:
    """The file to create for a path that does not exist: the path itself, or, for a dangling
    symlink (chain), the name at its end."""
    if not os.path.islink(given):
        return shown
    final = os.path.realpath(given)
    folder = os.path.dirname(final)
    if not os.path.isdir(folder):
        raise WriteError(f"is a symlink to {final}, whose folder does not exist; not written", path=shown)
    return final


def take_mode_and_owner(temp: str, final: str) -> None:
    """Give `temp` the permission bits and, where this process may, the owner and group of the
    file it replaces (a new file gets 0o666 less the umask, as ``open()`` would)."""
    try:
        old = os.stat(final)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        return
    mine = os.stat(temp)
    if (old.st_uid, old.st_gid) != (mine.st_uid, mine.st_gid):
        # Root may give the file back to its owner; anyone may keep a group they belong to.
        for uid, gid in ((old.st_uid, old.st_gid), (-1, old.st_gid)):
            try:
                os.chown(temp, uid, gid)
                break
            except PermissionError:
                continue
    os.chmod(temp, old.st_mode & 0o7777)  # after chown, which clears set-id bits


def copy_to_stream(src: int, dst: int, size: int) -> None:
    """Copy `size` bytes of the file `src` from its start into the stream `dst`, in order
    (``sendfile`` where the kernel can, else through a buffer)."""
    pos = 0
    use_sendfile = hasattr(os, "sendfile")
    while pos < size:
        n = min(STREAM_CHUNK, size - pos)
        try:
            if use_sendfile:
                try:
                    k = os.sendfile(dst, src, pos, n)
                except OSError as exc:
                    if isinstance(exc, BlockingIOError) or exc.errno not in (errno.EINVAL, errno.ENOSYS):
                        raise
                    use_sendfile = False  # a tty, or an old kernel: copy through a buffer
                    continue
            else:
                k = os.write(dst, os.pread(src, n, pos))
        except BlockingIOError:
            select.select([], [dst], [])  # a non-blocking stdout: wait until it takes more
            continue
        if k == 0:
            raise OSError(errno.EIO, "the stream took no more bytes")
        pos += k
