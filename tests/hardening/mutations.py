"""Mutation fuzzing of paramio's readers, shared by the bounded tests and `benchmarks/fuzz.py`.

Seeds are valid files written by the peers' own writers (IREE's Python `ParameterIndex`,
`safetensors.numpy.save_file`, `gguf.GGUFWriter`, a two-shard safetensors set with its
``model.safetensors.index.json``). Each case applies one or more mutations (truncation, byte
flips, an aligned integer field inflated or set to a huge count, one offset copied over another
so that ranges overlap, text edits to JSON headers) and then opens the file with
`paramio.read_path` and reads every entry. The only exceptions allowed out are
`paramio.core.errors.ParamioError`; memory (tracemalloc peak) and time are bounded per case.

`StructuredCampaign` adds whole files from `structured`'s generators (dims, nesting,
references, names, paths: issue 18's classes) for every reader, including GGUF split sets and
TENSORv0 metadata/attributes, and can also run ``dump``, ``verify`` and a conversion to each
format on a case: the CLI must answer with exit 0 or 1 and never with its catch-all
"unexpected ..." line (a foreign exception that reached the boundary).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import random
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

FORMATS = ("irpa", "safetensors", "gguf", "index.json")
#: Readers the structure-aware generators cover (`structured.GENERATORS`).
STRUCTURED_FORMATS = ("irpa", "tensorv0", "safetensors", "gguf", "gguf-split", "index.json")
#: The surfaces issue 24 added (`surfaces.GENERATORS`): sets and manifests, URLs against a
#: misbehaving server, the loader, MLIR text.
SURFACE_FORMATS = ("irpa-set", "st-set", "tp-manifest", "tp-keys-manifest", "url", "loader", "mlir")
#: A case may allocate at most this multiple of the file's size (plus a fixed allowance).
MEMORY_FACTOR = 8
TIME_LIMIT_S = 2.0
#: Splats have no storage and may claim any length; read at most this much of each.
SPLAT_READ_CAP = 1 << 20
#: Fixed allowance: 2 MiB, plus reading one capped splat (`expand_pattern` holds two copies).
MEMORY_SLACK = (2 << 20) + 3 * SPLAT_READ_CAP


def format_available(fmt: str) -> str | None:
    """None if paramio can read `fmt` here, else the reason it cannot."""
    if fmt in SURFACE_FORMATS:
        import surfaces

        return surfaces.available(fmt)
    module = {"index.json": "safetensors", "gguf-split": "gguf", "tensorv0": "irpa"}.get(fmt, fmt)
    try:
        mod = importlib.import_module(f"paramio.formats.{module}")
    except ImportError:
        return f"paramio.formats.{module} not available"
    if not callable(getattr(mod, "read_path", None)):
        return f"paramio.formats.{module} has no read_path"
    return None


# -- seeds ------------------------------------------------------------------------------------


def _arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "w0": rng.standard_normal((4, 8)).astype(np.float32),
        "b0": rng.integers(-100, 100, (16,), dtype=np.int16),
        "emb.weight": rng.standard_normal((3, 5)).astype(np.float16),
        "scalar": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def seed_irpa(folder: Path, rng: np.random.Generator) -> Path:
    """Written by IREE's own runtime (`iree.runtime.ParameterIndex.create_archive_file`)."""
    import iree.runtime as rt

    index = rt.ParameterIndex()
    for name, arr in _arrays(rng).items():
        if arr.size:
            index.add_buffer(name, np.ascontiguousarray(arr).reshape(-1).view(np.uint8).copy())
    index.add_splat("splat.f32", np.float32(1.5).tobytes(), 64)
    index.add_splat("splat.zero", b"\0", 1 << 20)
    path = folder / "seed.irpa"
    index.create_archive_file(str(path))
    return path


def seed_safetensors(folder: Path, rng: np.random.Generator) -> Path:
    import safetensors.numpy

    path = folder / "seed.safetensors"
    safetensors.numpy.save_file(_arrays(rng), str(path), metadata={"format": "np", "k": "v"})
    return path


def seed_gguf(folder: Path, rng: np.random.Generator) -> Path:
    import gguf

    path = folder / "seed.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("seed")
    w.add_uint32("llama.block_count", 2)
    w.add_array("tags", ["a", "b"])
    for name, arr in _arrays(rng).items():
        if arr.ndim and arr.size and arr.dtype != np.int64:
            w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def seed_index_json(folder: Path, rng: np.random.Generator) -> Path:
    import safetensors.numpy

    arrays = _arrays(rng)
    names = sorted(arrays)
    shards = {"model-00001-of-00002.safetensors": names[:2], "model-00002-of-00002.safetensors": names[2:]}
    weight_map: dict[str, str] = {}
    for shard, keys in shards.items():
        safetensors.numpy.save_file({k: arrays[k] for k in keys}, str(folder / shard))
        weight_map.update({k: shard for k in keys})
    path = folder / "model.safetensors.index.json"
    total = sum(a.nbytes for a in arrays.values())
    path.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return path


SEEDS: dict[str, Callable[[Path, np.random.Generator], Path]] = {
    "irpa": seed_irpa,
    "safetensors": seed_safetensors,
    "gguf": seed_gguf,
    "index.json": seed_index_json,
}


# -- mutations --------------------------------------------------------------------------------

_HUGE = (2**63, 2**64 - 1, 2**32, 2**32 - 1, 2**31, 1 << 40, 0xFFFF_FFFF_FFFF_FFF0)


#: Most mutations land in the first bytes, where headers, tables and names live.
FOCUS = 2048


def _pos(data: bytearray, rng: random.Random, width: int = 1, step: int = 1) -> int:
    top = len(data) - width + 1
    if rng.random() < 0.75:
        top = min(top, FOCUS)
    return rng.randrange(0, top, step)


def _truncate(data: bytearray, rng: random.Random) -> str:
    n = rng.randrange(len(data)) if data else 0
    del data[n:]
    return f"truncate@{n}"


def _flip(data: bytearray, rng: random.Random) -> str:
    if not data:
        return "flip-empty"
    i = _pos(data, rng)
    data[i] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
    return f"flip@{i}"


def _inflate(data: bytearray, rng: random.Random) -> str:
    """Set an aligned little-endian u64 or u32 field to a large or nearby value."""
    width = rng.choice((4, 8))
    if len(data) < width:
        return "inflate-short"
    i = _pos(data, rng, width, width if rng.random() < 0.8 else 1)
    old = int.from_bytes(data[i : i + width], "little")
    choice = rng.random()
    if choice < 0.4:
        new = rng.choice(_HUGE)
    elif choice < 0.7:
        new = old + rng.choice((1, 8, 16, 64, 4096, len(data)))
    else:
        new = old * rng.choice((2, 3, 1000))
    data[i : i + width] = (new % (1 << (8 * width))).to_bytes(width, "little")
    return f"inflate{width}@{i}"


def _overlap(data: bytearray, rng: random.Random) -> str:
    """Copy one aligned u64 over another: offsets then point into each other's ranges."""
    if len(data) < 16:
        return "overlap-short"
    a = _pos(data, rng, 8, 8)
    b = _pos(data, rng, 8, 8)
    data[b : b + 8] = data[a : a + 8]
    return f"overlap@{a}->{b}"


def _json_edit(data: bytearray, rng: random.Random) -> str:
    """Edit a number or a quote inside a JSON header (safetensors, index.json)."""
    start = data.find(b"{")
    if start < 0:
        return _flip(data, rng)
    end = data.find(b"}", start) if rng.random() < 0.2 else min(len(data), start + 4096)
    region = [i for i in range(start, max(start + 1, end)) if chr(data[i]) in '0123456789",[]:']
    if not region:
        return _flip(data, rng)
    i = rng.choice(region)
    repl = rng.choice([b"9", b"0", b"-1", b"99999999999999999999", b"", b'"', b"1e309", b"[", b"null"])
    data[i : i + 1] = repl
    return f"json@{i}={repl!r}"


MUTATORS: tuple[Callable[[bytearray, random.Random], str], ...] = (_truncate, _flip, _inflate, _overlap, _json_edit)
_WEIGHTS = (2, 3, 4, 2, 2)


def mutate(seed: bytes, rng: random.Random, fmt: str) -> tuple[bytes, list[str]]:
    data = bytearray(seed)
    steps: list[str] = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        weights = list(_WEIGHTS)
        if fmt not in ("safetensors", "index.json"):
            weights[4] = 0
        m = rng.choices(MUTATORS, weights=weights)[0]
        steps.append(m(data, rng))
    return bytes(data), steps


# -- checking ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    ok: bool  # parsed and every entry read
    error: str | None  # the ParamioError message, if one was raised
    peak_bytes: int
    seconds: float


class FuzzFailure(AssertionError):
    """Something other than a ParamioError escaped, or a bound was broken."""


def read_everything(path: str) -> int:
    """Open `path` with paramio and read every entry every way; returns the entries read."""
    from paramio.formats.registry import read_path

    contents = read_path(path)
    n = 0
    for e in contents.entries:
        if e.is_splat:
            for i, chunk in enumerate(e.iter_chunks(1 << 16)):
                if (i + 1) << 16 >= SPLAT_READ_CAP:
                    break
                bytes(chunk)
            if e.length <= SPLAT_READ_CAP:
                assert len(e.read()) == e.length
        else:
            data = e.read()
            assert len(data) == e.length, (e.key, len(data), e.length)
            e.to_numpy()
            _ = e.tensor
        n += 1
    return n


def check_file(path: str, size_hint: int, *, traced: bool = True, time_limit: float = TIME_LIMIT_S) -> Outcome:
    """Run `read_everything` under tracemalloc (unless not `traced`) and a clock; raise
    `FuzzFailure` on any foreign exception or a broken bound."""
    from paramio.core.errors import ParamioError

    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    error = None
    try:
        read_everything(path)
    except ParamioError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - the point of the exercise
        if traced:
            tracemalloc.stop()
        raise FuzzFailure(f"{type(exc).__name__} escaped: {str(exc)[:300]}") from exc
    finally:
        seconds = time.perf_counter() - t0
    peak = 0
    if traced:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    limit = MEMORY_FACTOR * size_hint + MEMORY_SLACK
    if peak > limit:
        raise FuzzFailure(f"peak traced memory {peak} bytes exceeds {limit} for a {size_hint}-byte input")
    if seconds > time_limit:
        raise FuzzFailure(f"took {seconds:.2f} s (limit {time_limit} s)")
    return Outcome(error is None, error, peak, seconds)


@dataclasses.dataclass
class Campaign:
    """A folder with one seed per format and a mutated copy written over a target name."""

    folder: Path
    fmt: str
    seed_path: Path
    seed_bytes: bytes

    @classmethod
    def make(cls, folder: Path, fmt: str, seed: int = 0) -> Campaign:
        folder.mkdir(parents=True, exist_ok=True)
        path = SEEDS[fmt](folder, np.random.default_rng(seed))
        if fmt == "index.json":  # mutate the index and one shard in turn: keep the index as target
            pass
        return cls(folder, fmt, path, path.read_bytes())

    def targets(self) -> list[Path]:
        if self.fmt == "index.json":
            return [self.seed_path, *sorted(self.folder.glob("model-*.safetensors"))]
        return [self.seed_path]

    def run_one(
        self,
        rng: random.Random,
        *,
        traced: bool = True,
        time_limit: float = TIME_LIMIT_S,
        ops: tuple[str, ...] = (),
    ) -> tuple[Outcome, list[str]]:
        """One mutated case: read in full (and, with `ops`, dumped, verified, converted)."""
        targets = self.targets()
        target = rng.choice(targets)
        original = target.read_bytes()
        data, steps = mutate(original, rng, self.fmt if target.suffix != ".safetensors" else "safetensors")
        target.write_bytes(data)
        try:
            size = sum(os.path.getsize(t) for t in targets)
            outcome = check_file(str(self.seed_path), size, traced=traced, time_limit=time_limit)
            if ops:
                scratch = self.folder / "scratch"
                scratch.mkdir(exist_ok=True)
                t0 = time.perf_counter()
                exercise(str(self.seed_path), ops, scratch, rng)
                outcome.seconds += time.perf_counter() - t0
                if outcome.seconds > time_limit:
                    raise FuzzFailure(f"took {outcome.seconds:.2f} s with {ops} (limit {time_limit} s)")
        except FuzzFailure as exc:
            raise FuzzFailure(f"{self.fmt} {target.name} {steps}: {exc}") from exc
        finally:
            target.write_bytes(original)
        return outcome, [f"{target.name}:{s}" for s in steps]


# -- structure-aware cases and the CLI paths ------------------------------------------------

#: Memory a structured case may use per byte of its files, plus a fixed allowance: generous for
#: the slowest legitimate expansion (a bool array becomes a list of Python objects: 8 bytes per
#: byte) and far below what the unbounded code needed (hundreds per byte).
STRUCTURED_MEMORY_FACTOR = 16
STRUCTURED_SLACK = 16 << 20
#: Per case in the suite, where tracemalloc slows everything about twice.
STRUCTURED_TIME_LIMIT_S = 5.0
CONVERT_TARGETS = ("irpa", "safetensors", "gguf")
#: A conversion writes splats as data in safetensors and GGUF: work proportional to the claimed
#: length, not to the header. Cases claiming more than this convert to IRPA only.
CONVERT_DATA_CAP = 16 << 20


class _Sink:
    """A text stream that keeps nothing; `encoding` "ascii" plays a strict C-locale terminal."""

    def __init__(self, encoding: str) -> None:
        import io

        self._buffer = io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors="strict", write_through=True)

    def __getattr__(self, name: str) -> object:
        return getattr(self._buffer, name)

    def write(self, text: str) -> int:
        n = self._buffer.write(text)
        self._buffer.buffer.seek(0)  # type: ignore[attr-defined]
        self._buffer.buffer.truncate()  # type: ignore[attr-defined]
        return n


def run_cli(argv: list[str], *, encoding: str = "utf-8") -> tuple[int, str]:
    """`paramio.cli.main.main(argv)` with stdout discarded (a strict `encoding`) and stderr
    kept; raises `FuzzFailure` if the CLI lets anything escape or reports a foreign error."""
    import contextlib
    import io

    from paramio.cli.main import main

    err = io.StringIO()
    out = _Sink(encoding)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):  # type: ignore[type-var]
            rc = main(argv)
    except BaseException as exc:  # noqa: BLE001
        raise FuzzFailure(f"paramio {' '.join(argv[:1])}: {type(exc).__name__} escaped the CLI: {exc}") from exc
    text = err.getvalue()
    if rc not in (0, 1) or ": unexpected " in text or "Traceback" in text:
        raise FuzzFailure(f"paramio {argv[0]} exit {rc}: {text[-400:]}")
    return rc, text


def exercise(path: str, ops: tuple[str, ...], scratch: Path, rng: random.Random) -> None:
    """The CLI and conversion paths over `path`: ``dump`` (text or JSON, to a strict ASCII or
    UTF-8 stdout), ``verify``, and a conversion to a random format read back in full."""
    from paramio.core.errors import ParamioError
    from paramio.formats.registry import read_path, write_path

    if "dump" in ops:
        extra = ["--json"] if rng.random() < 0.3 else []
        run_cli(["dump", f"--parameters={path}", *extra], encoding=rng.choice(("ascii", "utf-8")))
    if "verify" in ops:
        run_cli(["verify", path, *(["--json"] if rng.random() < 0.3 else [])], encoding=rng.choice(("ascii", "utf-8")))
    if "convert" in ops:
        fmt = rng.choice(CONVERT_TARGETS)
        try:
            contents = read_path(path)
            if sum(e.length for e in contents.entries) > CONVERT_DATA_CAP:
                fmt = "irpa"  # splats stay splats: no output proportional to a claimed length
            out = scratch / f"converted.{fmt}"
            write_path(
                str(out), contents.entries, format=fmt, attributes=contents.attributes, on_loss="ignore", durable=False
            )
            read_everything(str(out))
        except ParamioError:
            pass
        finally:
            for p in scratch.glob("converted*"):
                p.unlink()


@dataclasses.dataclass
class StructuredCampaign:
    """One reader's structure-aware cases, each written afresh into `folder`."""

    folder: Path
    fmt: str

    def run_one(
        self, rng: random.Random, *, ops: tuple[str, ...] = (), traced: bool = True, time_limit: float | None = None
    ) -> tuple[Outcome, list[str]]:
        import shutil

        import structured
        import surfaces

        from paramio.core.errors import ParamioError

        case = self.folder / "case"
        scratch = self.folder / "scratch"
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir(parents=True)
        scratch.mkdir(parents=True, exist_ok=True)
        generators = {**structured.GENERATORS, **surfaces.GENERATORS}
        path = generators[self.fmt](case, rng)
        act = surfaces.ACTIONS.get(self.fmt)
        size = sum(p.stat().st_size for p in case.iterdir())
        steps = [f"{self.fmt}:{size}B"]
        if traced:
            tracemalloc.start()
        t0 = time.perf_counter()
        error = None
        try:
            try:
                if act is not None:
                    act(str(path), rng)
                else:
                    read_everything(str(path))
            except ParamioError as exc:
                error = str(exc)
            if act is None:
                exercise(str(path), ops, scratch, rng)
        except FuzzFailure as exc:
            raise FuzzFailure(f"{self.fmt} {steps}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - the point of the exercise
            raise FuzzFailure(f"{self.fmt} {steps}: {type(exc).__name__} escaped: {str(exc)[:300]}") from exc
        finally:
            seconds = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1] if traced else 0
            if traced:
                tracemalloc.stop()
        limit = STRUCTURED_MEMORY_FACTOR * size + STRUCTURED_SLACK
        if traced and peak > limit:
            raise FuzzFailure(f"{self.fmt} {steps}: peak traced memory {peak} bytes exceeds {limit}")
        cap = STRUCTURED_TIME_LIMIT_S if time_limit is None else time_limit
        if seconds > cap:
            raise FuzzFailure(f"{self.fmt} {steps}: took {seconds:.2f} s (limit {cap} s)")
        return Outcome(error is None, error, peak, seconds), steps
