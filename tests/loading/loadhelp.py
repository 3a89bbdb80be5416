"""Helpers the loader tests share: a staged test target and the loader's live threads."""

from __future__ import annotations

import sys
import threading

from paramio.core.entry import ParameterEntry
from paramio.loading import Slot
from paramio.loading.engine import THREAD_PREFIX
from paramio.loading.targets import NumpyTarget


def loader_threads() -> list[threading.Thread]:
    """Loader workers that are inside a task now (reading, filling or uploading), from their
    live stacks: idle pool workers wait for the next load and do not count."""
    frames = sys._current_frames()
    busy = []
    for t in threading.enumerate():
        if not t.name.startswith(THREAD_PREFIX) or t.ident is None:
            continue
        f = frames.get(t.ident)
        while f is not None:
            if f.f_code.co_name == "run_task" and f.f_code.co_filename.endswith("engine.py"):
                busy.append(t)
                break
            f = f.f_back
    return busy


class StagedNumpy(NumpyTarget):
    """NumPy arrays filled through staging buffers, as device targets are: the test double for
    CUDA (same engine path, host memory standing in for the device). Records every event."""

    name = "staged-numpy"

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.gate = gate
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.uploading = 0

    def allocate(self, key: str, entry: ParameterEntry) -> Slot:
        s = super().allocate(key, entry)
        s.extra, s.host = s.host, None  # keep the destination aside: every piece is staged
        return s

    def upload(self, slot: Slot, offset: int, data: memoryview, owner: object) -> None:
        with self.lock:
            self.uploading += 1
            self.events.append(("upload", slot.key))
        try:
            if self.gate is not None:
                self.gate.wait(10)
            dst = slot.extra
            assert isinstance(dst, memoryview)
            dst[offset : offset + len(data)] = data
        finally:
            with self.lock:
                self.uploading -= 1

    def finish(self, slot: Slot) -> object:
        with self.lock:
            self.events.append(("finish", slot.key))
        return slot.handle
