"""A tool stopped by any catchable signal removes its temporary files (issue 18, item 10).

A real ``paramio convert`` of a 2 GiB (sparse) safetensors file is signalled while it copies:
it exits with 128 + the signal number, leaves no temporary file, and the output it was
replacing is untouched. SIGINT did this before; SIGTERM, SIGHUP and the other terminating
signals killed the process where it stood, leaving a 2 GiB ``.tmp`` file behind.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import paramio

SRC = str(Path(paramio.__file__).resolve().parents[1])
BIG = 2 << 30


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A safetensors file with one 2 GiB tensor, all holes: costs no disk, reads as zeros."""
    path = tmp_path_factory.mktemp("signals") / "big.safetensors"
    header = json.dumps({"w": {"dtype": "U8", "shape": [BIG], "data_offsets": [0, BIG]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + BIG)
    return path


def _temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def _convert_and_signal(
    folder: Path,
    source: Path,
    signals: list[signal.Signals],
    *,
    ignore: tuple[signal.Signals, ...] = (),
    pause: float = 0.2,
) -> subprocess.Popen[bytes]:
    """Start a conversion, wait until it is copying into its temporary file, then send each of
    `signals` in turn (a moment apart). `ignore`: signals the parent leaves ignored, as nohup."""
    out = folder / "out.irpa"
    out.write_bytes(b"the previous output")

    def ignored() -> None:
        for s in ignore:
            signal.signal(s, signal.SIG_IGN)

    proc = subprocess.Popen(
        [sys.executable, "-m", "paramio", "convert", f"--parameters={source}", f"--output={out}", "--quiet"],
        env={**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=ignored if ignore else None,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        temps = _temp_files(folder)
        if temps and temps[0].exists() and temps[0].stat().st_blocks * 512 >= 8 << 20:
            break  # 8 MiB copied: the copy is under way
        time.sleep(0.01)
    else:
        proc.kill()
        pytest.fail(f"the conversion never started copying: {proc.communicate()[1]!r}")
    for s in signals:
        proc.send_signal(s)
        time.sleep(pause)
    return proc


@pytest.mark.parametrize(
    "sig",
    [
        signal.SIGTERM,
        signal.SIGHUP,
        pytest.param(signal.SIGINT, marks=pytest.mark.slow),
        pytest.param(signal.SIGQUIT, marks=pytest.mark.slow),
        pytest.param(signal.SIGUSR1, marks=pytest.mark.slow),
        pytest.param(signal.SIGALRM, marks=pytest.mark.slow),
    ],
    ids=lambda s: s.name,
)
def test_a_signal_mid_copy_cleans_up_and_exits_128_plus_n(tmp_path: Path, big_source: Path, sig: int) -> None:
    proc = _convert_and_signal(tmp_path, big_source, [sig])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert _temp_files(tmp_path) == []
    assert (tmp_path / "out.irpa").read_bytes() == b"the previous output"
    message = err.decode().strip().splitlines()[-1]
    expected = "interrupted" if sig == signal.SIGINT else f"terminated by {signal.Signals(sig).name}"
    assert message == f"paramio convert: {expected}"


def test_more_signals_during_the_cleanup_do_not_cut_it_short(tmp_path: Path, big_source: Path) -> None:
    proc = _convert_and_signal(tmp_path, big_source, [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], pause=0)
    _, err = proc.communicate(timeout=60)
    # signals pending together are taken lowest number first: any of the three may be "first"
    assert proc.returncode in (128 + signal.SIGHUP, 128 + signal.SIGINT, 128 + signal.SIGTERM), err
    assert _temp_files(tmp_path) == []
    assert (tmp_path / "out.irpa").read_bytes() == b"the previous output"


@pytest.mark.slow
def test_an_ignored_hangup_stays_ignored(tmp_path: Path, big_source: Path) -> None:
    # nohup: the hang-up changes nothing, the conversion goes on until the SIGTERM after it
    proc = _convert_and_signal(tmp_path, big_source, [signal.SIGHUP, signal.SIGTERM], ignore=(signal.SIGHUP,))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert _temp_files(tmp_path) == []


def test_handlers_are_restored_and_only_set_in_the_main_thread() -> None:
    from paramio.cli.signals import TERMINATING_SIGNALS, Terminated, unwinding_on_signals

    before = {s: signal.getsignal(s) for s in TERMINATING_SIGNALS}
    with unwinding_on_signals():
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
        with pytest.raises(Terminated) as info:
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(5)  # the handler raises at the next bytecode, long before this ends
        assert info.value.exit_status == 128 + signal.SIGUSR2
    assert {s: signal.getsignal(s) for s in TERMINATING_SIGNALS} == before
    seen: list[object] = []

    def in_thread() -> None:
        with unwinding_on_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert seen == [before[signal.SIGTERM]]


def test_held_signals_defer_the_handler_to_the_end_of_the_block() -> None:
    from paramio.cli.signals import Terminated, unwinding_on_signals
    from paramio.formats.interrupts import held_signals

    done = []
    with unwinding_on_signals(), pytest.raises(Terminated) as info:
        with held_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # many bytecodes: the handler has every chance to run here
                time.sleep(0.0001)
            done.append("cleanup")
    assert done == ["cleanup"] and info.value.signum == signal.SIGTERM
