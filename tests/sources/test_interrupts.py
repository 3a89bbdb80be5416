"""Ctrl-C during a remote read: the exception leaves paramio only once the requests it started
have stopped (none writes into the caller's buffer afterwards), and promptly, without waiting
for stalled requests to use up their retries. Each case runs in a child process that sends
itself SIGINT; every wait is bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("obstore", reason="the remote extra is not installed")

from hostile_server import HostileServer, run_hostile_server  # noqa: E402

INTERRUPT_AFTER = """
import signal, threading
def _interrupt_after(seconds):
    main = threading.main_thread().ident
    threading.Timer(seconds, lambda: signal.pthread_kill(main, signal.SIGINT)).start()
"""


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with run_hostile_server() as server:
        server.stall_seconds = 60.0
        yield server


def _run(script: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", INTERRUPT_AFTER + textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )


def test_ctrl_c_during_a_read_leaves_no_request_writing_into_the_buffer(hostile: HostileServer, tmp_path: Path) -> None:
    """Many small parts arrive one after another (a throttled server); Ctrl-C lands mid-read.
    Before the fix the I/O loop went on filling the buffer after `KeyboardInterrupt`."""
    data = bytes(range(256)) * 8192  # 2 MiB
    name = tmp_path.name + ".bin"
    hostile.put(name, data)
    hostile.rate = 64 * 1024
    proc = _run(
        """
        import sys, time
        from paramio.sources import open_source
        from paramio.sources.retry import RetryPolicy
        src = open_source(sys.argv[1], max_request=16384, max_concurrency=4, retry=RetryPolicy(attempts=1))
        buf = bytearray(src.size)
        _interrupt_after(0.6)
        try:
            src.readinto(0, buf)
            print("finished")
        except KeyboardInterrupt:
            snap = bytes(buf)
            time.sleep(1.0)
            print("unchanged" if bytes(buf) == snap else "changed", sum(1 for b in snap if b) > 0)
        """,
        f"{hostile.url}/throttle/{name}",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["unchanged", "True"], proc.stdout + proc.stderr


def test_ctrl_c_during_a_load_of_a_stalled_url_is_prompt(hostile: HostileServer, tmp_path: Path) -> None:
    """The tensors' ranges stall (headers sent, then nothing); Ctrl-C one second in must end
    `paramio.load` within seconds, not after every request has timed out and been retried."""
    import numpy as np

    from paramio.formats.registry import write_path
    from paramio.index.index import ParameterIndex

    index = ParameterIndex()
    for i in range(4):
        index.add_array(f"w{i}", np.full(256 * 1024, i, dtype=np.float32))
    write_path(tmp_path / "m.safetensors", list(index.entries), format="safetensors")
    name = tmp_path.name + ".safetensors"
    hostile.put(name, (tmp_path / "m.safetensors").read_bytes())
    proc = _run(
        """
        import sys, time
        import paramio
        _interrupt_after(1.0)
        began = time.monotonic()
        try:
            paramio.load(sys.argv[1])
            print("finished")
        except KeyboardInterrupt:
            print("interrupted", round(time.monotonic() - began, 1))
        """,
        f"{hostile.url}/stall-data/{name}",
        timeout=40,
    )
    assert proc.returncode == 0, proc.stderr
    word, seconds = proc.stdout.split()
    assert word == "interrupted" and float(seconds) < 5.0, proc.stdout + proc.stderr


@pytest.mark.slow  # 40 processes
def test_processes_that_opened_urls_exit_cleanly_every_time(hostile: HostileServer, tmp_path: Path) -> None:
    """`paramio dump URL` run again and again exits 0 each time: the I/O loop and its requests
    are stopped before the interpreter finalises (runs once died of SIGABRT, ~5 in 80, on the
    machine issue 24 was found on; here 80 of 80 runs of the old code exited 0, so this guards
    the property rather than reproducing the crash)."""
    import time

    import numpy as np

    from paramio.formats.registry import write_path
    from paramio.index.index import ParameterIndex

    index = ParameterIndex()
    for i in range(8):
        index.add_array(f"w{i}", np.full(64 * 1024, i, dtype=np.float32))
    write_path(tmp_path / "m.safetensors", list(index.entries), format="safetensors")
    name = tmp_path.name + ".safetensors"
    hostile.put(name, (tmp_path / "m.safetensors").read_bytes())
    url = f"{hostile.url}/plain/{name}"
    script = "import sys; from paramio.cli.main import main; sys.exit(main(['dump', sys.argv[1]]))"
    deadline = time.monotonic() + 90
    codes: list[int] = []
    while len(codes) < 40 and time.monotonic() < deadline:
        proc = subprocess.run([sys.executable, "-c", script, url], capture_output=True, timeout=30)
        codes.append(proc.returncode)
    assert len(codes) >= 10 and codes == [0] * len(codes), codes


def test_cancelled_threaded_read_returns_only_once_the_thread_has_written() -> None:
    """A sync source read from async code runs in a thread, which a cancel cannot stop: the
    cancelled read must wait for it, so nothing writes into the buffer after it returned."""
    import asyncio
    import threading
    import time

    from paramio.sources import ByteSource
    from paramio.sources.aio import ThreadedSource

    started = threading.Event()

    class Slow(ByteSource):
        name = "slow"
        size = 1 << 16

        def view(self, offset: int, length: int) -> memoryview:
            return memoryview(bytes(length))

        def readinto(self, offset: int, out: memoryview | bytearray) -> int:
            started.set()
            time.sleep(0.5)
            memoryview(out)[:] = b"\x01" * len(out)
            return len(out)

    async def main() -> bytes:
        buf = bytearray(4096)
        task = asyncio.ensure_future(ThreadedSource(Slow()).readinto(0, buf))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        snap = bytes(buf)
        await asyncio.sleep(0.8)
        return snap + bytes(buf)

    both = asyncio.run(main())
    assert both[:4096] == both[4096:]
