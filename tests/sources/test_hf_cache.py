"""``hf://`` names over a local Hugging Face cache, built by hand in the layout huggingface_hub
documents (``models--org--name/{blobs,refs,snapshots}``, snapshot files symlinked to blobs named
by their hash): whole repositories (index.json sets, single files, GGUF splits), revisions,
the cache environment variables, and blobs whose content does not match their name."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from paramio import ParameterIndex
from paramio.core.errors import InvalidArgumentError, SourceError
from paramio.formats.registry import write_path
from paramio.sources import hf
from paramio.sources.hf import parse_hf_url, resolve_hf

safetensors_numpy = pytest.importorskip("safetensors.numpy")

COMMIT = "1" * 40
DEV = "2" * 40


def _blob_name(data: bytes, lfs: bool) -> str:
    if lfs:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_repo(
    cache: Path, repo: str, files: dict[str, bytes], *, commit: str = COMMIT, ref: str = "main", kind: str = "models"
) -> Path:
    """One snapshot of `repo` in `cache`: blobs by hash (SHA-256 for binaries, as LFS stores
    them; git's SHA-1 for JSON), snapshot symlinks into blobs, refs/`ref` naming `commit`."""
    root = cache / f"{kind}--{repo.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = root / "snapshots" / commit
    for name, data in files.items():
        blob = _blob_name(data, lfs=not name.endswith(".json"))
        (root / "blobs" / blob).write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(root / "blobs" / blob, link.parent))
    refs = root / "refs" / ref
    refs.parent.mkdir(parents=True, exist_ok=True)
    refs.write_text(commit)
    return snapshot


def _safetensors(tmp: Path, **arrays: np.ndarray) -> bytes:
    path = tmp / "x.safetensors"
    safetensors_numpy.save_file(arrays, str(path))
    return path.read_bytes()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache under $HF_HOME, no other Hugging Face variable set."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "PARAMIO_HF_VERIFY", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # never the real Hub
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # paramio's record of checked blobs
    hf._verified.clear()
    return tmp_path / "home" / "hub"


def test_single_file_repo_by_id_file_and_revision(cache: Path, tmp_path: Path) -> None:
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    make_repo(cache, "org/tiny", {"model.safetensors": _safetensors(tmp_path, w=w), "config.json": b"{}"})
    for name in ("hf://org/tiny", "hf://org/tiny/model.safetensors", "hf://org/tiny@main", f"hf://org/tiny@{COMMIT}"):
        np.testing.assert_array_equal(ParameterIndex.open(name)["w"].to_numpy(), w)
    # Resolved through refs/ and the snapshot's symlink, to the blob named by its SHA-256.
    path = resolve_hf("hf://org/tiny")
    assert path == str(cache / "models--org--tiny" / "snapshots" / COMMIT / "model.safetensors")
    assert os.path.basename(os.path.realpath(path)) == hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_branch_revision_reads_its_own_snapshot(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_repo(cache, "org/m", {"model.safetensors": _safetensors(tmp_path, w=np.zeros(2, np.float32))})
    make_repo(
        cache, "org/m", {"model.safetensors": _safetensors(tmp_path, w=np.ones(2, np.float32))}, commit=DEV, ref="dev"
    )
    assert ParameterIndex.open("hf://org/m")["w"].to_numpy().tolist() == [0, 0]
    assert ParameterIndex.open("hf://org/m@dev/model.safetensors")["w"].to_numpy().tolist() == [1, 1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError, match="revision 'v9' of org/m is not in the Hugging Face cache"):
        ParameterIndex.open("hf://org/m@v9")


def test_sharded_safetensors_index(cache: Path, tmp_path: Path) -> None:
    a, b = np.arange(4, dtype=np.float32), np.arange(6, dtype=np.int32)
    index = b'{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}'
    make_repo(
        cache,
        "org/big",
        {
            "model.safetensors.index.json": index,
            "model-00001-of-00002.safetensors": _safetensors(tmp_path, a=a),
            "model-00002-of-00002.safetensors": _safetensors(tmp_path, b=b),
        },
    )
    opened = ParameterIndex.open("hf://org/big")
    np.testing.assert_array_equal(opened["a"].to_numpy(), a)
    np.testing.assert_array_equal(opened["b"].to_numpy(), b)


def test_gguf_split_and_irpa(cache: Path, tmp_path: Path) -> None:
    src = ParameterIndex()
    src.add_buffer("x", np.full(1000, 3, np.float32))
    src.add_buffer("y", np.full(1000, 4, np.float32))
    (tmp_path / "g").mkdir()
    write_path(tmp_path / "g" / "model.gguf", list(src.values()), max_shard_size=5000)
    files = {p.name: p.read_bytes() for p in sorted((tmp_path / "g").iterdir())}
    assert len(files) == 2
    make_repo(cache, "org/gg", files)
    opened = ParameterIndex.open("hf://org/gg")
    assert sorted(opened.keys()) == ["x", "y"]
    assert opened["y"].to_numpy().tolist() == [4.0] * 1000
    src.create_archive_file(str(tmp_path / "w.irpa"))
    make_repo(cache, "org/ir", {"w.irpa": (tmp_path / "w.irpa").read_bytes(), "README.md": b"hi"})
    assert ParameterIndex.open("hf://org/ir")["x"].to_numpy()[0] == 3.0


def test_corrupt_blob_refused_unless_disabled(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = make_repo(cache, "org/bad", {"model.safetensors": _safetensors(tmp_path, w=np.ones(8, np.float32))})
    blob = Path(os.path.realpath(snapshot / "model.safetensors"))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit of a weight: still a valid file, wrong values
    blob.write_bytes(bytes(data))
    with pytest.raises(SourceError, match="does not match its name") as info:
        ParameterIndex.open("hf://org/bad")
    assert blob.name in str(info.value)
    monkeypatch.setenv("PARAMIO_HF_VERIFY", "0")
    assert ParameterIndex.open("hf://org/bad")["w"].to_numpy()[-1] != 1.0


def test_checked_blobs_recorded_for_later_processes(cache: Path, tmp_path: Path) -> None:
    snapshot = make_repo(cache, "org/rec", {"model.safetensors": _safetensors(tmp_path, w=np.ones(4, np.float32))})
    blob = Path(os.path.realpath(snapshot / "model.safetensors"))
    ParameterIndex.open("hf://org/rec")
    record = (tmp_path / "xdg" / "paramio" / "hf-verified").read_text().splitlines()
    st = blob.stat()
    assert record == [f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {blob.name}"]
    hf._verified.clear()  # a new process: the record spares it the hash
    ParameterIndex.open("hf://org/rec")
    assert len((tmp_path / "xdg" / "paramio" / "hf-verified").read_text().splitlines()) == 1
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))  # rewritten: a new modification time, so checked again
    hf._verified.clear()
    with pytest.raises(SourceError, match="does not match its name"):
        ParameterIndex.open("hf://org/rec")


def test_git_blob_sha1_checked(cache: Path) -> None:
    snapshot = make_repo(cache, "org/cfg", {"x.json": b'{"a": 1}'})
    blob = Path(os.path.realpath(snapshot / "x.json"))
    hf.check_blob(str(blob))  # the git object hash of the content: accepted
    blob.write_bytes(b'{"a": 2}')
    with pytest.raises(SourceError, match="git SHA-1"):
        hf.check_blob(str(blob))


def test_cache_variables(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere"
    make_repo(other, "org/e", {"model.safetensors": _safetensors(tmp_path, w=np.ones(1, np.float32))})
    with pytest.raises(SourceError, match="org/e is not in the Hugging Face cache.*over the network name a file"):
        ParameterIndex.open("hf://org/e")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError, match="org/e is not in the Hugging Face cache.*HF_HUB_OFFLINE is set"):
        ParameterIndex.open("hf://org/e")
    monkeypatch.setenv("HF_HUB_CACHE", str(other))  # wins over HF_HOME
    assert ParameterIndex.open("hf://org/e")["w"].to_numpy().tolist() == [1.0]


def test_names(cache: Path, tmp_path: Path) -> None:
    make_repo(cache, "gpt2", {"model.safetensors": _safetensors(tmp_path, w=np.ones(1, np.float32))})
    assert parse_hf_url("hf://gpt2/model.safetensors", cache=str(cache)).repo_id == "gpt2"
    assert ParameterIndex.open("hf://gpt2")["w"].to_numpy().tolist() == [1.0]
    name = parse_hf_url("hf://datasets/org/d@refs%2Fpr%2F1/sub/a.gguf")
    assert (name.repo_type, name.repo_id, name.revision, name.path) == ("datasets", "org/d", "refs/pr/1", "sub/a.gguf")
    assert name.folder == "datasets--org--d"
    with pytest.raises(InvalidArgumentError):
        parse_hf_url("hf://org/../x")
    make_repo(
        cache,
        "org/two",
        {"a.safetensors": _safetensors(tmp_path, w=np.ones(1)), "b.safetensors": _safetensors(tmp_path, v=np.ones(1))},
    )
    with pytest.raises(InvalidArgumentError, match=r"several candidates \(a.safetensors, b.safetensors\)"):
        ParameterIndex.open("hf://org/two")
    assert ParameterIndex.open("hf://org/two/b.safetensors").keys() == ["v"]


def test_cli_dump_and_convert(cache: Path, tmp_path: Path, paramio_cli: object) -> None:
    w = np.arange(5, dtype=np.float32)
    make_repo(cache, "org/cli", {"model.safetensors": _safetensors(tmp_path, w=w)})
    run = paramio_cli  # (exit code, stdout, stderr)
    code, out, err = run("dump", "hf://org/cli")  # type: ignore[operator]
    assert code == 0, err
    assert "`w`" in out
    target = tmp_path / "w.irpa"
    code, _, err = run("convert", "--parameters=hf://org/cli", f"--output={target}")  # type: ignore[operator]
    assert code == 0, err
    np.testing.assert_array_equal(ParameterIndex.open(target)["w"].to_numpy(), w)


class _Hub:
    """Two loopback servers: a Hub answering ``/{repo}/resolve/{revision}/{path}`` with a 302 to
    a storage server (a second host: another port), with the Hub's ``X-Linked-Size`` /
    ``X-Linked-Etag`` / ``ETag`` headers, refusing requests without the token; the storage
    server serves the bytes by ranges. Both record the Authorization header of each request."""

    def __init__(self, files: dict[str, bytes], token: str) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.seen: list[tuple[str, str, str | None]] = []  # (server, method path, Authorization)
        hub = self

        class Storage(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _serve(self, body: bool) -> None:
                hub.seen.append(("storage", f"{self.command} {self.path}", self.headers.get("Authorization")))
                data = files.get(self.path.lstrip("/").split("?")[0])
                if data is None:
                    self.send_error(404)
                    return
                start, end = 0, len(data) - 1
                rng = self.headers.get("Range")
                if rng:
                    a, _, b = rng.removeprefix("bytes=").partition("-")
                    start, end = int(a), min(int(b) if b else len(data) - 1, len(data) - 1)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("ETag", '"blob-etag"')
                self.send_header("Last-Modified", "Mon, 07 Dec 2026 10:00:00 GMT")
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if body:
                    self.wfile.write(data[start : end + 1])

            def do_HEAD(self) -> None:
                self._serve(False)

            def do_GET(self) -> None:
                self._serve(True)

        self.storage = ThreadingHTTPServer(("127.0.0.1", 0), Storage)
        storage_url = f"http://127.0.0.1:{self.storage.server_address[1]}"

        class Hub(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                hub.seen.append(("hub", f"{self.command} {self.path}", self.headers.get("Authorization")))
                if self.headers.get("Authorization") != f"Bearer {token}":
                    self.send_error(401, "Invalid credentials")
                    return
                repo, sep, rest = self.path.lstrip("/").partition("/resolve/")
                revision, _, name = rest.partition("/")
                data = files.get(name)
                if not sep or revision != "main" or data is None:
                    self.send_error(404, "Entry not found")
                    return
                self.send_response(302)
                self.send_header("Location", f"{storage_url}/{name}?X-Amz-Signature=abc")
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("ETag", '"pointer-etag"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self) -> None:
                self._answer()

            def do_GET(self) -> None:
                self._answer()

        self.hub = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
        self.url = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self.hub, self.storage)]
        for t in self._threads:
            t.start()

    def close(self) -> None:
        for s in (self.hub, self.storage):
            s.shutdown()
            s.server_close()


@pytest.fixture
def hub(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    pytest.importorskip("obstore", reason="reading URLs needs the remote extra")
    w = np.arange(10, dtype=np.float32)
    server = _Hub({"model.safetensors": _safetensors(tmp_path, w=w)}, token="hf_s3cret_token")
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.close()


def test_network_resolve_redirect_and_token(hub: _Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_s3cret_token")
    w = ParameterIndex.open("hf://org/net/model.safetensors")["w"].to_numpy()
    assert w.tolist() == list(range(10))
    hub_calls = [s for s in hub.seen if s[0] == "hub"]
    storage_calls = [s for s in hub.seen if s[0] == "storage"]
    assert hub_calls and all(a == "Bearer hf_s3cret_token" for _, _, a in hub_calls)
    assert hub_calls[0][1] == "HEAD /org/net/resolve/main/model.safetensors"
    # The reads went to the storage host the redirect named, without the token.
    assert any(c[1].startswith("GET /model.safetensors") for c in storage_calls)
    assert all(a is None for _, _, a in storage_calls)


def test_network_errors_never_print_the_token(hub: _Hub, monkeypatch: pytest.MonkeyPatch, paramio_cli: object) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token_value")
    code, out, err = paramio_cli("dump", "hf://org/net/model.safetensors")  # type: ignore[operator]
    assert code == 1 and "401" in err, err
    assert "hf_wrong_token_value" not in out + err
    monkeypatch.setenv("HF_TOKEN", "hf_s3cret_token")
    code, out, err = paramio_cli("dump", "hf://org/net/missing.safetensors")  # type: ignore[operator]
    assert code == 1 and "404" in err, err
    assert "hf_s3cret_token" not in out + err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError, match="HF_HUB_OFFLINE is set"):
        ParameterIndex.open("hf://org/net/model.safetensors")
