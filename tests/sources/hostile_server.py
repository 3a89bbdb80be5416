"""A small misbehaving HTTP server on loopback for the hostile-server tests: each behaviour is
chosen by the first path segment, and every wait in it is bounded (it never holds a test longer
than `stall_seconds`).

``/plain/NAME`` (ETag, Last-Modified, honours ``If-Match`` and ``If-Unmodified-Since``),
``/dated/NAME`` (no ETag; Last-Modified, honoured), ``/dated-deaf/NAME`` (no ETag, ignores
``If-Unmodified-Since``), ``/bare/NAME`` (neither header), ``/wrong-range/NAME`` (answers the
range one byte later than asked), ``/loop/NAME`` (redirects to itself forever), ``/throttle/NAME``
(sends its body at `rate` bytes a second), ``/stall/NAME`` (sends the headers, half the body, then
nothing for `stall_seconds`), ``/stall-data/NAME`` (the same, for ranges past the first 64 KiB
only: a model's header opens, its tensors stall), ``/presigned/NAME`` (403 without ``sig=`` `signature` in the query, and 403
to every HEAD, as a URL presigned for GET is), ``/away/NAME`` (302 to the same file under
``/plain/`` on `other_host`, another name for this server), ``/moved/NAME`` (302 to
``/plain/NAME`` on the same host).
"""

from __future__ import annotations

import contextlib
import email.utils
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class HostileServer:
    url: str
    port: int
    files: dict[str, bytes] = field(default_factory=dict)
    modified: dict[str, float] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)
    rate: int = 256 * 1024
    stall_seconds: float = 5.0
    other_host: str = "localhost"
    signature: str = "s3cr3t-SIGNATURE/value+="
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, name: str, data: bytes, *, when: float | None = None) -> None:
        with self.lock:
            self.files[name] = data
            self.modified[name] = when if when is not None else self.modified.get(name, 1.7e9) + 10

    def gets(self, name: str) -> list[str]:
        with self.lock:
            return [r for m, p, r in self.log if m == "GET" and urlsplit(p).path.endswith("/" + name)]


def _handler(state: HostileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _empty(self, status: int, **headers: str) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _serve(self, head: bool) -> None:
            rng = self.headers.get("Range", "")
            with state.lock:
                state.log.append((self.command, self.path, rng))
            parts = urlsplit(self.path)
            mode, _, name = parts.path.lstrip("/").partition("/")
            if mode == "loop":
                self._empty(302, Location=self.path)
                return
            if mode == "moved":
                self._empty(302, Location=f"/plain/{name}")
                return
            if mode == "away":
                self._empty(302, Location=f"http://{state.other_host}:{state.port}/plain/{name}")
                return
            with state.lock:
                data, when = state.files.get(name), state.modified.get(name, 0.0)
            if data is None:
                self._empty(404)
                return
            if mode == "presigned" and (head or parse_qs(parts.query).get("sig") != [state.signature]):
                self._empty(403)
                return
            headers: dict[str, str] = {"Accept-Ranges": "bytes"}
            date = email.utils.formatdate(when, usegmt=True)
            if mode in ("plain", "presigned"):
                headers["ETag"] = f'"{int(when)}"'
            if mode in ("plain", "dated", "dated-deaf", "throttle", "stall", "stall-data", "presigned", "wrong-range"):
                headers["Last-Modified"] = date
            if_match = self.headers.get("If-Match")
            since = self.headers.get("If-Unmodified-Since")
            if (if_match and "ETag" in headers and if_match != headers["ETag"]) or (
                since and mode != "dated-deaf" and email.utils.parsedate_to_datetime(since).timestamp() < int(when)
            ):
                self._empty(412)
                return
            status, body = 200, data
            found = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
            if found:
                start = int(found.group(1)) + (1 if mode == "wrong-range" else 0)
                end = min(int(found.group(2)) + 1 if found.group(2) else len(data), len(data))
                status, body = 206, data[start:end]
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if head:
                return
            try:
                if mode == "throttle":
                    step = max(1, state.rate // 20)
                    for i in range(0, len(body), step):
                        if state.stop.is_set():
                            return
                        self.wfile.write(body[i : i + step])
                        self.wfile.flush()
                        time.sleep(step / state.rate)
                elif (mode == "stall" and found) or (mode == "stall-data" and found and int(found.group(1)) >= 65536):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    state.stop.wait(state.stall_seconds)
                    self.close_connection = True
                else:
                    self.wfile.write(body)
            except OSError:  # the client gave up: that is what some tests want
                self.close_connection = True

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

    return Handler


@contextlib.contextmanager
def run_hostile_server() -> Iterator[HostileServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = int(server.server_address[1])
    state = HostileServer(f"http://127.0.0.1:{port}", port)
    server.RequestHandlerClass = _handler(state)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
