"""One URL named like a member of a huge set, on a server that answers every path.

Before, opening ``m-00001-of-02000.irpa`` sent about three requests per claimed member, one after
another (a HEAD for each sibling, then each one opened), before checking any two members against
each other: 6,001 requests and 158 s. Members are now read in order and each is checked against
those before it, so the open fails at the second member, after a handful of requests.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio import ParameterIndex
from paramio.core.errors import FormatError, ParamioError
from paramio.formats.registry import read_path


class _Everything:
    """Answers every path (HEAD, ranged GET) with `body`; JSON paths are 404 (no manifest)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests = 0
        self.lock = threading.Lock()
        self.url = ""


@contextlib.contextmanager
def _serve(body: bytes) -> Iterator[_Everything]:
    state = _Everything(body)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, head: bool) -> None:
            with state.lock:
                state.requests += 1
            if self.path.endswith(".json"):
                self.send_error(404)
                return
            data, status, extra = state.body, 200, {}
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes="):
                first, _, last = rng[6:].partition("-")
                start = int(first)
                end = min(int(last) + 1 if last else len(data), len(data))
                data, status = data[start:end], 206
                extra["Content-Range"] = f"bytes {start}-{end - 1}/{len(state.body)}"
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", '"same"')
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(False)

        def do_HEAD(self) -> None:
            self._answer(True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _member_bytes(tmp_path: Path, ext: str) -> bytes:
    index = ParameterIndex()
    for i in range(2):
        index.add_array(f"w{i}", np.full(16, i, np.float32))
    if ext == ".gguf":  # a real split member (member 1 of 2), as llama.cpp's gguf-split writes
        paramio.write_path(tmp_path / "s.gguf", list(index.values()), max_shard_size=64, durable=False)
        return (tmp_path / "s-00001-of-00002.gguf").read_bytes()
    paramio.write_path(tmp_path / f"one{ext}", list(index.values()), durable=False)
    return (tmp_path / f"one{ext}").read_bytes()


@pytest.mark.parametrize("ext", [".irpa", ".safetensors", ".gguf"])
def test_a_url_claiming_2000_members_fails_after_a_few_requests(tmp_path: Path, ext: str) -> None:
    with _serve(_member_bytes(tmp_path, ext)) as server:
        started = time.monotonic()
        with pytest.raises(ParamioError) as info:
            read_path(f"{server.url}/models/m-00001-of-02000{ext}", source_options={"retry": None})
        took = time.monotonic() - started
        requests = server.requests
    print(ext, requests, round(took, 2), info.value)
    assert isinstance(info.value, FormatError), info.value
    # Member 2 is the same file as member 1: its keys are member 1's (IRPA, safetensors), or it
    # says it is member 1 of 2 (GGUF); either is found before member 3 is asked for.
    assert requests <= 12, (requests, str(info.value))
    assert took < 30
