"""Structure-aware fuzz cases for the surfaces issue 24 found holes in: sets and their manifests
(IRPA ``.irpa.index.json``, safetensors ``index.json``, tensor-parallel ``.tp.json``), URLs served
by a misbehaving loopback server, the loader's planner and engine (random entries, budgets and
concurrency), and MLIR text for ``mlir export``/``import``.

A manifest case starts from a valid set paramio wrote (built once per process) and mutates its
JSON where it matters: numbers to the u64 edges, names to paths, NULs or thousands of digits,
members removed, swapped or truncated, lists and maps grown or emptied. A URL case serves a valid
file, or a set, with one misbehaviour per request (wrong ranges, short bodies, changing sizes and
validators, redirects to itself or another host, errors, silence) under a short timeout and two
attempts. Each generator returns what to open; `ACTIONS` says what a case does with it when
reading every entry (`mutations.read_everything`) is not the whole exercise.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

#: Values a manifest field may be replaced by.
HOSTILE = (
    None,
    True,
    -1,
    0,
    1,
    2**31,
    2**63,
    2**64,
    10**30,
    1.5,
    float("1e308"),
    "",
    ".",
    "..",
    "a\x00b",
    "../escape.irpa",
    "/etc/hostname",
    "x" * 300,
    "9" * 5000,
    "model-00001-of-99999999.irpa",
    "größe",
    [],
    {},
    [[[[]]]],
)


# -- JSON mutation -----------------------------------------------------------------------------


def _nodes(doc: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _nodes(v, (*path, i))
    return out


def _get(doc: object, path: tuple[object, ...]) -> object:
    for p in path:
        doc = doc[p]  # type: ignore[index]
    return doc


def mutate_json(doc: object, rng: random.Random, names: list[str]) -> object:
    """`doc` with 1-3 structural mutations at random places (replace, delete, grow, rename,
    swap), names drawn from `names` (the set's own files) as often as from `HOSTILE`."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = _nodes(doc)
        path = rng.choice(paths)
        op = rng.random()
        if not path:
            if op < 0.2:
                return rng.choice(HOSTILE)
            continue
        parent = _get(doc, path[:-1])
        last = path[-1]
        if op < 0.4:
            value: object = rng.choice(names) if names and rng.random() < 0.5 else rng.choice(HOSTILE)
            parent[last] = value  # type: ignore[index]
        elif op < 0.55:
            del parent[last]  # type: ignore[arg-type,attr-defined]
        elif op < 0.7:
            target = parent[last]  # type: ignore[index]
            n = rng.choice((2, 100, 20_000))
            if isinstance(target, list) and target:
                parent[last] = (target * n)[: n * 2]  # type: ignore[index]
            elif isinstance(target, dict):
                extra = {f"k{i}": rng.choice(names or ["x"]) for i in range(n)}
                parent[last] = {**target, **extra}  # type: ignore[index]
            else:
                parent[last] = [target] * n  # type: ignore[index]
        elif op < 0.85 and isinstance(parent, dict):
            parent[rng.choice(HOSTILE[11:21])] = parent.pop(last)  # type: ignore[index]
        else:
            siblings = [p for p in paths if len(p) == len(path) and p[:-1] == path[:-1] and p != path]
            if siblings:
                other = rng.choice(siblings)[-1]
                parent[last], parent[other] = parent[other], parent[last]  # type: ignore[index]
    return doc


# -- sets: valid templates built once, then mutated ----------------------------------------------

_TEMPLATES: dict[str, tuple[Path, str]] = {}
_TEMPLATE_ROOT: list[Path] = []


def _entries() -> object:
    import paramio

    index = paramio.ParameterIndex()
    for i in range(6):
        index.add_array(f"blk.{i}.w", np.arange(8 * (i + 1), dtype=np.float32).reshape(2, -1))
    index.add_splat("blk.s", b"\x01\x00\x00\x00", 64)
    return index


def _template(kind: str) -> tuple[Path, str]:
    """A folder holding a valid set of `kind` and the name of the file that opens it."""
    if kind in _TEMPLATES:
        return _TEMPLATES[kind]
    import paramio

    if not _TEMPLATE_ROOT:
        import atexit

        root = Path(tempfile.mkdtemp(prefix="paramio-fuzz-templates-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)  # one per process, gone with it
        _TEMPLATE_ROOT.append(root)
    folder = _TEMPLATE_ROOT[0] / kind
    folder.mkdir()
    index = _entries()
    if kind == "irpa-set":
        paramio.write_path(folder / "model.irpa", index.values(), max_shard_size=100, durable=False)  # type: ignore[attr-defined]
        opener = "model.irpa.index.json"
    elif kind == "st-set":
        entries = [e for e in index.values() if not e.is_splat]  # type: ignore[attr-defined]
        paramio.write_path(folder / "model.safetensors", entries, max_shard_size=100, durable=False)
        opener = "model.safetensors.index.json"
    else:
        from paramio.sharding.api import shard

        src = folder.parent / "tp-source.irpa"
        index.create_archive_file(src)  # type: ignore[attr-defined]
        layout = "devices" if kind == "tp" else "keys"
        shard(str(src), folder / "model.tp.json", tp=2, split={"blk.*.w": 1}, replicate=["*"], layout=layout)
        opener = "model.tp.json"
    assert (folder / opener).exists(), sorted(p.name for p in folder.iterdir())
    _TEMPLATES[kind] = (folder, opener)
    return folder, opener


def set_case(kind: str) -> Callable[[Path, random.Random], Path]:
    def generate(folder: Path, rng: random.Random) -> Path:
        template, opener = _template(kind)
        for p in template.iterdir():
            shutil.copy(p, folder / p.name)
        members = sorted(p.name for p in folder.iterdir() if p.name != opener)
        manifest = folder / opener
        r = rng.random()
        if r < 0.7:
            doc = json.loads(manifest.read_text())
            manifest.write_text(json.dumps(mutate_json(doc, rng, members), ensure_ascii=rng.random() < 0.5))
        elif r < 0.8 and members:  # a member truncated, emptied or replaced by another
            victim = folder / rng.choice(members)
            data = victim.read_bytes()
            victim.write_bytes(data[: rng.randrange(len(data) + 1)])
        elif r < 0.9 and len(members) > 1:
            a, b = rng.sample(members, 2)
            (folder / a).rename(folder / "swap.tmp")
            (folder / b).rename(folder / a)
            (folder / "swap.tmp").rename(folder / b)
        elif members:
            (folder / rng.choice(members)).unlink()
        if rng.random() < 0.2 and members:  # open a member instead of the manifest
            return folder / rng.choice(members)
        return manifest

    return generate


# -- URLs: a misbehaving loopback server ----------------------------------------------------------

#: What the server does with a request (one chosen per request, from the case's mix).
BEHAVIOURS = (
    "ok",
    "ok",
    "error500",
    "error404",
    "wrong-range",
    "wrong-total",
    "short",
    "garbage",
    "whole",
    "no-length",
    "etag-changes",
    "grown",
    "redirect-self",
    "redirect-other-host",
    "redirect-relative",
    "silent",
    "huge-header",
    "close",
)
#: How long a "silent" answer waits: past the client's timeout.
SILENCE_S = 1.5
CLIENT_TIMEOUT_S = 0.5


class MisbehavingServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 serving `files` (name -> bytes) with Range
    support, misbehaving on each request as `pick` (set per case) says."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.mix: tuple[str, ...] = ("ok",)
        self.rng = random.Random(0)
        self.lock = threading.Lock()
        self.requests = 0
        handler = _handler(self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, name="fuzz-http", daemon=True).start()

    def pick(self) -> str:
        with self.lock:
            self.requests += 1
            return self.rng.choice(self.mix)


def _handler(state: MisbehavingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self, head: bool) -> None:  # noqa: C901 - one branch per misbehaviour
            how = state.pick()
            name = self.path.lstrip("/").split("?")[0]
            data = state.files.get(name)
            if data is None or how == "error404":
                self._plain(404, b"missing")
                return
            if how == "error500":
                self._plain(500, b"boom")
                return
            if how == "close":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if how.startswith("redirect"):
                where = {
                    "redirect-self": f"{state.url}/{name}",
                    "redirect-other-host": f"http://localhost:{state.httpd.server_address[1]}/{name}",
                    "redirect-relative": f"/{name}?again",
                }[how]
                self.send_response(rng_status(state))
                self.send_header("Location", where)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if how == "silent":
                time.sleep(SILENCE_S)
                self.close_connection = True
                return
            if how == "grown":
                data = data + b"\x00" * 4096
            if how == "garbage":
                data = bytes((b * 7 + 3) & 0xFF for b in data)
            total = len(data)
            start, end = 0, total
            rng = self.headers.get("Range", "")
            ranged = rng.startswith("bytes=") and how != "whole"
            if ranged:
                a, _, b = rng[6:].partition("-")
                try:
                    start = int(a) if a else max(0, total - int(b))
                    end = min(total, int(b) + 1) if a and b else total
                except ValueError:
                    self._plain(416, b"bad range")
                    return
                if start >= total and total:
                    self._plain(416, b"")
                    return
            body = data[start:end]
            shown_start, shown_total = start, total
            if how == "wrong-range":
                shown_start = start + 1
            if how == "wrong-total":
                shown_total = total + 17
            self.send_response(206 if ranged else 200)
            if ranged:
                self.send_header("Content-Range", f"bytes {shown_start}-{shown_start + len(body) - 1}/{shown_total}")
            self.send_header("Accept-Ranges", "bytes")
            if how != "no-length":
                self.send_header("Content-Length", str(len(body) + (64 if how == "short" else 0)))
            etag = f'"{state.requests}"' if how == "etag-changes" else '"v1"'
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", "Mon, 07 Dec 2026 10:00:00 GMT")
            if how == "huge-header":
                self.send_header("X-Filler", "f" * 60_000)
            self.end_headers()
            if head:
                return
            if how == "short":
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            self.wfile.write(body)
            if how == "no-length":
                self.close_connection = True

        def _plain(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

    return Handler


def rng_status(state: MisbehavingServer) -> int:
    with state.lock:
        return state.rng.choice((301, 302, 307, 308))


_SERVER: list[MisbehavingServer] = []


def server() -> MisbehavingServer:
    if not _SERVER:
        _SERVER.append(MisbehavingServer())
    return _SERVER[0]


def url_case(folder: Path, rng: random.Random) -> str:
    """A valid file (IRPA, safetensors or GGUF) or set behind the misbehaving server, with a mix
    of behaviours for this case."""
    import paramio

    s = server()
    kind = rng.choice(("irpa", "safetensors", "gguf", "irpa-set"))
    prefix = f"c{rng.randrange(1 << 30)}"
    if kind == "irpa-set":
        template, opener = _template("irpa-set")
        for p in template.iterdir():
            (folder / p.name).write_bytes(p.read_bytes())
            s.files[f"{prefix}/{p.name}"] = p.read_bytes()
        name = f"{prefix}/{opener}"
    else:
        path = folder / f"m.{kind}"
        entries = [e for e in _entries().values() if kind == "irpa" or not e.is_splat]  # type: ignore[attr-defined]
        paramio.write_path(path, entries, on_loss="ignore", durable=False)
        s.files[f"{prefix}/m.{kind}"] = path.read_bytes()
        name = f"{prefix}/m.{kind}"
    good = rng.random() < 0.3
    s.mix = ("ok",) if good else tuple(rng.sample(BEHAVIOURS, rng.choice((1, 2, 4))))
    s.rng.seed(rng.random())
    return f"{s.url}/{name}"


def read_url(url: str, rng: random.Random) -> None:
    """Open a URL case and read every entry, bounded: a short idle timeout and two attempts."""
    from paramio import ParameterIndex
    from paramio.sources.retry import RetryPolicy

    retry = RetryPolicy(attempts=2, first_delay=0.01, max_delay=0.02)
    index = ParameterIndex.open(url, timeout=CLIENT_TIMEOUT_S, retry=retry)
    for e in index.values():
        data = e.read()
        assert len(data) == e.length, (e.key, len(data), e.length)


# -- the loader: random entries, budgets, concurrency ---------------------------------------------


def loader_case(folder: Path, rng: random.Random) -> Path:
    """An IRPA with random tensors (dtypes, sizes from 0 to 256 KiB) and splats, some of whose
    claimed lengths are far past memory."""
    import paramio

    index = paramio.ParameterIndex()
    for i in range(rng.choice((0, 1, 3, 20, 200))):
        r = rng.random()
        if r < 0.7:
            dtype = rng.choice((np.uint8, np.float32, np.int16, np.float64))
            n = rng.choice((0, 1, 7, 1000, 65_536 // np.dtype(dtype).itemsize, 262_144 // np.dtype(dtype).itemsize))
            index.add_array(f"t{i}", (np.arange(n) % 251).astype(dtype))
        else:
            pattern = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 8, 16))))
            length = len(pattern) * rng.choice((0, 1, 1000, 1 << 16, 1 << 40, 1 << 56))
            index.add_splat(f"s{i}", pattern, length)
    path = folder / "load.irpa"
    index.create_archive_file(path)
    return path


def load_everything(path: str, rng: random.Random) -> None:
    """`paramio.load` with a random budget and concurrency; what loads equals each entry's bytes.
    Splats past memory must be refused with a paramio error; the planner is checked alone on
    random lengths up to 2**63 (O(tensors), every piece in order)."""
    import paramio
    from paramio import loading
    from paramio.loading.plan import plan_tasks

    lengths = [rng.choice((0, 1, 5, 4096, 1 << 20, 1 << 40, 2**63 - 1)) for _ in range(rng.randrange(0, 50))]
    chunk = rng.choice((1, 7, 4096, 16 << 20))
    plan = plan_tasks(lengths, chunk)
    counts = plan.pieces_per_slot()
    assert plan.remaining <= sum(counts) + 1 and counts == [max(1, -(-n // chunk)) for n in lengths]
    seen = 0
    while plan and seen < 200:
        task = plan.popleft()
        assert task.nbytes == sum(p.length for p in task.pieces) <= chunk
        seen += 1
    budget = rng.choice((1, 4096, 65_536, 1 << 20, 256 << 20))
    concurrency = rng.choice((1, 2, 8, 64))
    index = paramio.ParameterIndex.open(path)
    how = rng.choice(("load", "stream", "async", "mmap"))
    loaded: dict[str, object]
    if how == "stream":  # taken one by one, leaving early now and then
        loaded = {}
        with loading.stream(index, budget=budget, concurrency=concurrency) as it:
            for k, a in it:
                loaded[k] = a
                if rng.random() < 0.05:
                    return
    elif how == "async":
        import asyncio

        loaded = asyncio.run(loading.load_async(index, budget=budget, concurrency=concurrency))
    else:
        io = "mmap" if how == "mmap" else "auto"
        loaded = loading.load(index, budget=budget, concurrency=concurrency, io=io)
    for e in index.values():
        got = loaded[e.key]
        assert np.asarray(got).tobytes() == e.read(), e.key


# -- MLIR text ---------------------------------------------------------------------------------

_ELEMENTS = ("f32", "f16", "bf16", "i1", "i8", "i32", "i64", "f64", "complex<f32>", "f8E4M3FN", "ui8")


def _mlir_dims(rng: random.Random) -> str:
    n = rng.choice((0, 1, 1, 2, 3, 9))
    pool = (1, 2, 3, 4, 5) if rng.random() < 0.8 else (0, 1, 2**31, 2**32, 2**60, 2**62, 2**63 - 1)
    return "".join(f"{rng.choice(pool)}x" for _ in range(n))


def _scalar(el: str, rng: random.Random) -> str:
    """A literal of element type `el` (now and then of another type: MLIR must refuse it)."""
    if rng.random() < 0.05:
        return rng.choice(("1.0", "true", "7", "(1.0,2.0)"))
    if el == "i1":
        return rng.choice(("true", "false"))
    if el.startswith("complex"):
        return "(1.0,-2.0)"
    if el.startswith(("i", "ui", "index")):
        return str(rng.choice((0, 1, -1, 7, 127)))
    return rng.choice(("1.0", "-2.5", "0.0", "3.0e+00"))


def mlir_case(folder: Path, rng: random.Random) -> Path:
    """A module of globals whose values are dense, dense splats, resource blobs of right or wrong
    sizes, elided or missing blobs, or parameter references; types with edge dimensions."""
    lines: list[str] = []
    blobs: list[str] = []
    for i in range(rng.choice((1, 1, 2, 3, 6))):
        el = rng.choice(_ELEMENTS)
        r = rng.random()
        dims = _mlir_dims(rng)
        if r < 0.2:  # a 1-D literal list of the right length (or one off)
            n = rng.choice((1, 2, 3, 5))
            dims = f"{n + (rng.random() < 0.05)}x"
            value = "dense<[" + ", ".join(_scalar(el, rng) for _ in range(n)) + "]>"
        elif r < 0.45:
            value = f"dense<{_scalar(el, rng)}>"
        elif r < 0.85:
            key = f"b{i}"
            count = 1
            for d in dims.split("x")[:-1]:
                count *= int(d)
            size = {"i1": 1, "i8": 1, "ui8": 1, "f16": 2, "bf16": 2, "f32": 4, "i32": 4}.get(el, 8)
            right = count * size if count * size < 4096 else 16
            nbytes = rng.choice((right, right, right + size, max(0, right - size), 0, 3))
            data = bytes(rng.randrange(256) for _ in range(min(nbytes, 64))) * (nbytes // 64 + 1)
            header = "04000000" if rng.random() < 0.9 else rng.choice(("01000000", "08000000", "", "0400"))
            blobs.append(f'      {key}: "0x{header}{data[:nbytes].hex().upper()}"')
            value = f"dense_resource<{key if rng.random() < 0.9 else rng.choice(('__elided__', 'missing'))}>"
        elif r < 0.95:
            value = f'#flow.parameter.named<"m"::"{rng.choice(("w", "", "a b", "x" * 200))}">'
        else:
            value = rng.choice(("dense<1.0> : tensor<3xf32>", "#util.byte_pattern<1>"))
        name = rng.choice((f"g{i}", f"g{i}", f'"g {i}"', f'"{"n" * 300}{i}"'))
        mutable = "mutable " if rng.random() < 0.1 else ""
        lines.append(f"util.global private {mutable}@{name} = {value} : tensor<{dims}{el}>")
    if rng.random() < 0.3:
        lines.append(
            "func.func @f() -> tensor<4xf32> {\n  %c = arith.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>\n"
            "  return %c : tensor<4xf32>\n}"
        )
    text = "\n".join(lines) + "\n"
    if blobs:
        text += "{-#\n  dialect_resources: {\n    builtin: {\n" + ",\n".join(blobs) + "\n    }\n  }\n#-}\n"
    path = folder / "case.mlir"
    path.write_text(text)
    return path


def export_and_import(path: str, rng: random.Random) -> None:
    """``mlir export`` of the module (refusals must be paramio errors); what was exported reads
    back from the archive with the sizes the types say, and ``mlir import`` puts it back."""
    from paramio import ParameterIndex, Provider
    from paramio.mlir import MlirModule, export_parameters, import_parameters

    folder = Path(path).parent
    module = MlirModule.load(path)  # a refusal is a paramio error (counted as refused)
    archive = folder / rng.choice(("w.irpa", "w.safetensors", "w.gguf"))
    report = export_parameters(
        module, archive, scope="m", constants=rng.random() < 0.5, on_loss="ignore", keys=rng.choice(((), ("g*",)))
    )
    if not report.exported:
        return
    index = ParameterIndex.open(archive)
    for ex in report.exported:
        assert index[ex.key].length == ex.nbytes, (ex, index[ex.key].length)
    import_parameters(module, Provider.from_flags([f"m={archive}"]))
    module.verify()


def available(fmt: str) -> str | None:
    """None if `fmt`'s case can run here, else why not."""
    if fmt == "mlir":
        try:
            import iree.compiler.ir  # noqa: F401
        except ImportError:
            return "iree.compiler is not installed"
    if fmt == "url":
        try:
            import obstore  # noqa: F401
        except ImportError:
            return "obstore is not installed"
    return None


GENERATORS: dict[str, Callable[[Path, random.Random], object]] = {
    "irpa-set": set_case("irpa-set"),
    "st-set": set_case("st-set"),
    "tp-manifest": set_case("tp"),
    "tp-keys-manifest": set_case("tp-keys"),
    "url": url_case,
    "loader": loader_case,
    "mlir": mlir_case,
}
#: What a case does instead of `mutations.read_everything` (which reads every entry).
ACTIONS: dict[str, Callable[[str, random.Random], None]] = {
    "url": read_url,
    "loader": load_everything,
    "mlir": export_and_import,
}
