"""Real servers on loopback for the remote-source tests: nginx (static files with Range), two S3
servers (moto's and s3rver), Azurite (Azure Blob), and a small fault-injecting HTTP server.

Each is started on 127.0.0.1 on a free port by a fixture in ``conftest.py`` and stopped after.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pytest import MonkeyPatch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )


@dataclass
class Nginx:
    url: str
    root: Path
    access_log: Path

    def requests(self) -> list[str]:
        """The access log's request lines with their Range header, e.g. ``GET /a.bin bytes=0-9``."""
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []


@contextlib.contextmanager
def run_nginx(binary: str, work: Path) -> Iterator[Nginx]:
    root, conf, port = work / "www", work / "nginx.conf", free_port()
    root.mkdir()
    log = work / "access.log"
    # As root, nginx's workers would drop to "nobody" and could not read pytest's 0700 tmp dirs.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf.write_text(f"""daemon off;
{user}worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 256; }}
http {{
  log_format ranges '$request_method $uri $http_range $status $body_bytes_sent';
  access_log {log} ranges;
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fcgi;
  uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
""")
    proc = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, proc, "nginx")
        yield Nginx(f"http://127.0.0.1:{port}", root, log)
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class S3Server:
    """A real S3-compatible server on loopback: moto's (Python, objects in memory) or s3rver
    (Node, objects in files, ranges streamed from them). Unsigned requests (the helpers below)
    are served by both; `key_id`/`secret` are what signed clients (obstore) are given."""

    endpoint: str
    kind: str = "moto"
    key_id: str = "test-key-id"
    secret: str = "test-secret-value"
    #: s3rver's data folder: it lists no multipart uploads over HTTP, so they are read from here.
    data_dir: Path | None = None

    def create_bucket(self, name: str) -> None:
        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/{name}", data=b"", method="PUT"), timeout=10
        ).read()

    def get(self, path: str) -> bytes:
        return bytes(urllib.request.urlopen(f"{self.endpoint}/{path}", timeout=10).read())

    def pending_uploads(self, bucket: str) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        if self.data_dir is not None:
            uploads = self.data_dir / bucket / "._S3rver_uploads"
            return sorted((d / "key").read_text() for d in uploads.iterdir()) if uploads.is_dir() else []
        xml = self.get(f"{bucket}?uploads").decode()
        return re.findall(r"<Upload>.*?<Key>(.*?)</Key>", xml, re.S)

    def keys(self, bucket: str) -> list[str]:
        return re.findall(r"<Key>(.*?)</Key>", self.get(f"{bucket}?list-type=2").decode())

    def config(self, **extra: str) -> dict[str, str]:
        return {
            "endpoint": self.endpoint,
            "access_key_id": self.key_id,
            "secret_access_key": self.secret,
            "region": "us-east-1",
            **extra,
        }


#: The name the tests were written with; every S3 server has its interface.
Moto = S3Server


def put_object(server: S3Server, path: str, data: bytes) -> None:
    """Store an object with a plain PUT (both servers without auth take unsigned requests)."""
    urllib.request.urlopen(
        urllib.request.Request(
            f"{server.endpoint}/{path}", data=data, method="PUT", headers={"Content-Type": "application/octet-stream"}
        ),
        timeout=60,
    ).read()


def aws_env(server: S3Server, monkeypatch: MonkeyPatch) -> S3Server:
    """`server` configured the ecosystem's way: the AWS environment variables (its key id; a
    secret the tests look for in outputs, which neither server checks)."""
    for k, v in {
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_ACCESS_KEY_ID": server.key_id,
        "AWS_SECRET_ACCESS_KEY": "env-secret-do-not-show",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(k, v)
    return server


@contextlib.contextmanager
def run_moto(*, auth: bool = False) -> Iterator[S3Server]:
    exe = Path(sys.executable).parent / "moto_server"
    port = free_port()
    env = dict(os.environ)
    if auth:  # every request is checked against moto's IAM, which knows no keys: all are refused
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, proc, "moto_server")
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(10)


#: Where ``scripts/install-test-servers.sh`` puts s3rver and Azurite (npm packages).
S3RVER_PREFIX = Path(os.environ.get("PARAMIO_TEST_SERVERS", "/opt/paramio-test-servers"))


def s3rver_binary() -> str | None:
    """s3rver's launcher, and only when Node is there to run it."""
    if shutil.which("node") is None:
        return None
    found = shutil.which("s3rver")
    local = S3RVER_PREFIX / "node_modules" / ".bin" / "s3rver"
    return found or (str(local) if local.exists() else None)


@contextlib.contextmanager
def run_s3rver(binary: str, work: Path) -> Iterator[S3Server]:
    """s3rver on 127.0.0.1 with its objects under `work`. It knows one key pair, ``S3RVER`` /
    ``S3RVER``, and refuses other key ids (403); it does not check V4 signatures' secrets, honours
    no ``If-Match``, and cannot abort a multipart upload (moto serves those cases)."""
    data, port = work / "data", free_port()
    data.mkdir()
    proc = subprocess.Popen(
        [binary, "-d", str(data), "-a", "127.0.0.1", "-p", str(port), "-s", "--no-vhost-buckets"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, "s3rver")
        yield S3Server(f"http://127.0.0.1:{port}", kind="s3rver", key_id="S3RVER", secret="S3RVER", data_dir=data)
    finally:
        proc.terminate()
        proc.wait(10)


#: Azurite's development account: a well-known name and key, published with the emulator.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    """Azurite's Blob service on loopback (Microsoft's emulator, from npm): containers of blobs
    at ``{endpoint}/{account}/{container}/{name}``, every request signed with the account key."""

    endpoint: str

    @property
    def account_url(self) -> str:
        return f"{self.endpoint}/{AZURITE_ACCOUNT}"

    def create_container(self, name: str) -> None:
        """PUT ``?restype=container``, signed with Shared Key (obstore creates no containers)."""
        import base64
        import email.utils
        import hashlib
        import hmac

        date, version, ctype = email.utils.formatdate(usegmt=True), "2021-08-06", "application/octet-stream"
        to_sign = (
            f"PUT\n\n\n\n\n{ctype}\n\n\n\n\n\n\n"
            f"x-ms-date:{date}\nx-ms-version:{version}\n"
            f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}\nrestype:container"
        )
        mac = hmac.new(base64.b64decode(AZURITE_KEY), to_sign.encode(), hashlib.sha256).digest()
        headers = {
            "x-ms-date": date,
            "x-ms-version": version,
            "Content-Type": ctype,
            "Authorization": f"SharedKey {AZURITE_ACCOUNT}:{base64.b64encode(mac).decode()}",
        }
        request = urllib.request.Request(f"{self.account_url}/{name}?restype=container", b"", headers, method="PUT")
        urllib.request.urlopen(request, timeout=10).read()

    def config(self) -> dict[str, str]:
        return {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY, "endpoint": self.account_url}

    def put(self, path: str, data: bytes) -> None:
        """Store `data` as ``az://{path}`` (container first) through obstore."""
        import obstore
        from obstore.store import from_url

        container, _, name = path.partition("/")
        store = from_url(f"az://{container}", config=self.config(), client_options={"allow_http": True})
        obstore.put(store, name, data)


def azurite_binary() -> str | None:
    """Azurite's Blob-only launcher, and only when Node is there to run it."""
    if shutil.which("node") is None:
        return None
    local = S3RVER_PREFIX / "node_modules" / ".bin" / "azurite-blob"
    return shutil.which("azurite-blob") or (str(local) if local.exists() else None)


@contextlib.contextmanager
def run_azurite(binary: str, work: Path) -> Iterator[Azurite]:
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(work), "--silent"]
        + ["--skipApiVersionCheck", "--disableProductStyleUrl"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, "azurite-blob")
        yield Azurite(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class FaultServer:
    """Serves `files` with Range support, misbehaving by the first path segment:

    ``/ok/``, ``/drop/`` (closes the connection without answering the first try of each range),
    ``/flaky/`` (503 on the first try of each range), ``/whole/`` (200 and the whole body for a
    range request), ``/short/`` (a 206 whose body stops early and the connection closes),
    ``/slow/`` (answers after `slow_seconds`), ``/forbidden/`` (403 for every GET).
    """

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, range)
    slow_seconds: float = 3.0
    _tries: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def first_try(self, path: str, rng: str) -> bool:
        with self.lock:
            n = self._tries.get((path, rng), 0)
            self._tries[(path, rng)] = n + 1
            return n == 0


def _handler(state: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self, head: bool) -> None:
            rng = self.headers.get("Range", "")
            with state.lock:
                state.log.append((self.command, self.path, rng))
            mode, _, name = self.path.lstrip("/").partition("/")
            data = state.files.get(name)
            if data is None:
                self.send_error(404)
                return
            if mode == "slow":
                time.sleep(state.slow_seconds)
            if not head and mode == "forbidden":
                self.send_error(403)
                return
            if not head and rng and mode in ("drop", "flaky") and state.first_try(self.path, rng):
                if mode == "flaky":
                    self.send_error(503)
                else:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            status, body, extra = 200, data, {}
            found = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
            if found and mode != "whole":
                start = int(found.group(1))
                end = min(int(found.group(2)) + 1 if found.group(2) else len(data), len(data))
                status, body = 206, data[start:end]
                extra["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", '"v1"')
            self.send_header("Last-Modified", "Tue, 01 Dec 2026 00:00:00 GMT")
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            if head:
                return
            if mode == "short" and status == 206:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

    return Handler


@contextlib.contextmanager
def run_fault_server() -> Iterator[FaultServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = FaultServer(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(state)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
