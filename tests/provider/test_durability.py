"""What a crash can tear, and what concurrent readers see (docs/training-loops.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from paramio.index.index import ParameterIndex
from paramio.index.provider import Provider

KEYS = [f"layer{i}.weight" for i in range(6)]
N = 1 << 18  # float32 elements per entry: 1 MiB, so a kill often lands inside a copy

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from paramio.index.provider import Provider

    base, overlay, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    keys = [f"layer{i}.weight" for i in range(6)]
    N = int(sys.argv[4])
    p = Provider.from_flags([base], overlays=[overlay])
    step = start
    while True:
        step += 1
        for k in keys:
            p.write(k, np.full(N, step, np.float32))
            print(step, k, flush=True)
        p.flush()
    """
)


def _uniform(entry_values: np.ndarray) -> bool:
    return bool((entry_values == entry_values[0]).all())


@pytest.mark.slow
def test_sigkill_mid_write_leaves_index_intact_and_at_most_one_torn_entry(tmp_path: Path) -> None:
    base = tmp_path / "base.irpa"
    index = ParameterIndex()
    for k in KEYS:
        index.add_array(k, np.zeros(N, np.float32))
    index.create_archive_file(base)
    base_bytes = base.read_bytes()
    overlay = tmp_path / "overlay.irpa"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    last_step = 0
    for round_, writes_before_kill in enumerate((3, 9, 17, 26)):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(base), str(overlay), str(last_step), str(N)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        seen = 0
        last_line = ""
        while seen < writes_before_kill:
            line = proc.stdout.readline()
            assert line, f"child died early (rc {proc.poll()})"
            last_line, seen = line, seen + 1
        time.sleep(0.0007 * round_)  # vary where in the next write the kill lands
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # The child may have run ahead of our reading (a loaded machine): its last printed line,
        # not the last one we read, bounds what the overlay can hold.
        rest = [line for line in proc.stdout.read().splitlines() if line.strip()]
        proc.stdout.close()
        if rest and len(rest[-1].split()) == 2:
            last_line = rest[-1]
        step = int(last_line.split()[0])

        ov = ParameterIndex.open(overlay)  # parses: the tables are never torn
        assert set(ov.keys()) <= set(KEYS) and len(ov.keys()) == len(set(ov.keys()))
        torn = []
        for k in ov:
            values = ov[k].to_numpy()
            assert values.shape == (N,) and values.dtype == np.float32
            if not _uniform(values):
                torn.append(k)
                assert set(np.unique(values).tolist()) <= {float(step), float(step + 1), float(step - 1)}
            else:
                assert last_step <= values[0] <= step + 1
        assert len(torn) <= 1, f"round {round_}: torn entries {torn}"
        assert base.read_bytes() == base_bytes
        # Stale temporaries of an interrupted rewrite may remain; they never replace the overlay.
        last_step = step + 1
        if torn:  # repair the torn entry as a restarted training loop would
            p = Provider.from_flags([str(base)], overlays=[str(overlay)])
            p.write(torn[0], np.full(N, step, np.float32))
            p.close()  # flushes, and lets the next round's writer take the overlay's lock


def test_readers_see_old_or_new_values_and_a_sound_index_while_one_thread_writes(tmp_path: Path) -> None:
    n = 1 << 14
    keys = [f"k{i}" for i in range(4)]
    index = ParameterIndex()
    for k in keys:
        index.add_array(k, np.zeros(n, np.float32))
    index.create_archive_file(tmp_path / "base.irpa")
    p = Provider.from_flags([str(tmp_path / "base.irpa")], overlays=[str(tmp_path / "ov.irpa")])
    readers = 3
    generations = 6
    barrier = threading.Barrier(readers + 1, timeout=60)
    written = threading.Event()
    errors: list[str] = []
    reads = [0]

    def reader() -> None:
        try:
            for gen in range(1, generations + 1):
                while not written.is_set():  # the writer is busy: old or new bytes, no errors
                    for k in keys:
                        vals = np.unique(p[k].to_numpy())
                        if not set(vals.tolist()) <= {float(gen - 1), float(gen)}:
                            errors.append(f"gen {gen} {k}: {vals}")
                        reads[0] += 1
                barrier.wait()
                for k in keys:  # after flush, quiescent: exactly the new value
                    vals = np.unique(p[k].to_numpy())
                    if vals.tolist() != [float(gen)]:
                        errors.append(f"after flush gen {gen} {k}: {vals}")
                barrier.wait()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
            barrier.abort()

    threads = [threading.Thread(target=reader) for _ in range(readers)]
    for t in threads:
        t.start()
    for gen in range(1, generations + 1):
        for k in keys:  # the first generation adds keys one at a time: overlay rewrites
            p.write(k, np.full(n, gen, np.float32))
        p.flush()
        written.set()
        barrier.wait()
        written.clear()
        barrier.wait()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert reads[0] > 0
    assert ParameterIndex.open(tmp_path / "ov.irpa").keys() == keys
