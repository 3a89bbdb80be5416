"""P11: every tensor of a ~2 GiB safetensors model into CPU torch tensors the caller keeps,
against the loaders serving stacks offer: `safetensors.torch.load_file`, Run:ai's
`SafetensorsStreamer` (``runai-model-streamer``), fastsafetensors (``nogds=True``, CPU) and
tensorizer; warm (file in the page cache), cold (page cache dropped before each run, with
``dd bs=16M`` of the same file as the physical limit) and from S3 on loopback (s3rver): paramio,
Run:ai's S3 streamer, boto3 ``download_file`` + ``load_file``.

Every run is its own process (imports done before the clock starts; a cold run drops the page
cache itself, after its imports), contenders in turns, median of the timed rounds. Every run
touches one byte of every page of every tensor inside the timed region (a mapped tensor's pages
are read then, as a model's first forward pass would); the garbage the imports left is
collected before the clock (`PARAMIO_P11_GC=0`: not); the untimed first round checks every byte
of every tensor against a CRC computed from the file. Peers are installed by
``scripts/install-bench-peers.sh``; a missing one is reported as skipped.

The model: llama-like (hidden 2048, MLP 5632, vocab 32000), bf16 matrices, an f32 output head,
f32 norms and q/k/v biases, layers added until `--size-mib` (default 2048) is reached.

    python benchmarks/run.py --only P11 [--size-mib 2048] [--repeat 3]
    PARAMIO_P11_MODES=warm,cold,s3   (default all three)
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the child
from cases.common import Context, Record, settle, skipped  # noqa: E402

MiB = 1 << 20
_HERE = Path(__file__).resolve()
_TESTS = _HERE.parents[2] / "tests" / "sources"
_DROP = "/proc/sys/vm/drop_caches"

# -- the model --------------------------------------------------------------------------------


def llama_layout(total_mib: int) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, safetensors dtype, shape) of a llama-like model of about `total_mib`."""
    h, m, vocab = 2048, 5632, 32000
    if total_mib < 512:  # --quick sizes: the same mix, smaller
        h, m, vocab = 512, 1408, 8000
    out: list[tuple[str, str, tuple[int, ...]]] = [("model.embed_tokens.weight", "BF16", (vocab, h))]
    total = vocab * h * 2 + vocab * h * 4 + h * 4
    layer = 0
    per_layer = (4 * h * h + 3 * h * m) * 2 + 5 * h * 4
    while total + per_layer <= total_mib * MiB or layer == 0:
        p = f"model.layers.{layer}."
        out += [
            (p + "input_layernorm.weight", "F32", (h,)),
            (p + "self_attn.q_proj.weight", "BF16", (h, h)),
            (p + "self_attn.q_proj.bias", "F32", (h,)),
            (p + "self_attn.k_proj.weight", "BF16", (h, h)),
            (p + "self_attn.k_proj.bias", "F32", (h,)),
            (p + "self_attn.v_proj.weight", "BF16", (h, h)),
            (p + "self_attn.v_proj.bias", "F32", (h,)),
            (p + "self_attn.o_proj.weight", "BF16", (h, h)),
            (p + "post_attention_layernorm.weight", "F32", (h,)),
            (p + "mlp.gate_proj.weight", "BF16", (m, h)),
            (p + "mlp.up_proj.weight", "BF16", (m, h)),
            (p + "mlp.down_proj.weight", "BF16", (h, m)),
        ]
        total += per_layer
        layer += 1
    out += [("model.norm.weight", "F32", (h,)), ("lm_head.weight", "F32", (vocab, h))]
    return out


_SIZES = {"BF16": 2, "F32": 4}


def write_model(path: Path, layout: list[tuple[str, str, tuple[int, ...]]]) -> dict[str, int]:
    """Stream a safetensors file of `layout` (pseudo-random bytes, different per tensor);
    returns each tensor's CRC-32 for the byte checks."""
    import numpy as np

    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    pos = 0
    sizes = []
    for name, dtype, shape in layout:
        n = _SIZES[dtype] * int(np.prod(shape))
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + n]}
        sizes.append(n)
        pos += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    rng = np.random.default_rng(11)
    # bf16/f32 values that are finite (random bytes would make NaNs, which is fine for loading
    # but not for a reader that checks values): small exponents.
    block = rng.standard_normal(4 * MiB, dtype=np.float32)
    crcs: dict[str, int] = {}
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for i, ((name, _dtype, _shape), n) in enumerate(zip(layout, sizes, strict=True)):
            data = (block * (1 + (i % 17) / 8)).view(np.uint8)
            crc, left = 0, n
            while left > 0:
                chunk = data[: min(left, len(data))].tobytes()
                f.write(chunk)
                crc = zlib.crc32(chunk, crc)
                left -= len(chunk)
            crcs[name] = crc
    os.replace(tmp, path)
    return crcs


# -- one run, in its own process ----------------------------------------------------------------


def _drop_cache() -> None:
    os.sync()
    with open(_DROP, "w") as f:
        f.write("1\n")


def can_drop_cache() -> str | None:
    """None when this process may drop the page cache, else why not."""
    try:
        _drop_cache()
    except OSError as exc:
        return f"cannot write {_DROP}: {exc.strerror} (needs root, outside a container that hides it)"
    return None


def _touch(tensors: dict[str, Any]) -> int:
    """One byte of every page of every tensor (faults in mapped ones); returns a small sum."""
    import torch

    total = 0
    for t in tensors.values():
        flat = t.reshape(-1).view(torch.uint8)
        if flat.numel():
            total += int(flat[::4096].sum())
    return total


def _crcs(tensors: dict[str, Any]) -> dict[str, int]:
    import torch

    return {k: zlib.crc32(t.reshape(-1).view(torch.uint8).numpy()) for k, t in tensors.items()}


def _load(contender: str, path: str) -> dict[str, Any]:
    """The tensors, as the contender gives them to a caller who keeps them."""
    if contender.startswith("paramio"):
        import paramio

        kw: dict[str, Any] = {}
        for part in contender.split(":")[1:]:
            k, _, v = part.partition("=")
            kw[k] = int(v) if v.isdigit() else (v == "True" if v in ("True", "False") else v)
        pages = kw.pop("hugepages", None)
        if pages is not None:  # A/B of hostmem's huge-page placement (its default depends on the host)
            import paramio.loading.hostmem as hostmem

            os.environ["PARAMIO_HUGE_PAGES"] = str(pages)
            hostmem.huge_page_size.cache_clear()
            hostmem.direct_huge_page_size.cache_clear()
        return dict(paramio.load(path, into="torch", **kw))
    if contender == "load_file":
        import safetensors.torch

        return safetensors.torch.load_file(path)
    if contender.startswith("runai"):
        from runai_model_streamer import SafetensorsStreamer

        out = {}
        with SafetensorsStreamer() as s:
            s.stream_file(path)  # owned=True (the default): the caller keeps each tensor
            for name, t in s.get_tensors():
                out[name] = t
        return out
    if contender.startswith("fastsafetensors"):
        from fastsafetensors import SafeTensorsFileLoader

        threads = int(contender.partition(":")[2] or 16)
        loader = SafeTensorsFileLoader(None, "cpu", nogds=True, max_threads=threads)
        try:
            loader.add_filenames({0: [path]})
            fb = loader.copy_files_to_device()
            out = {k: fb.get_tensor(k) for k in loader.get_keys()}  # they own their buffer (0.5)
            fb.close()
        finally:
            loader.close()
        return out
    if contender.startswith("tensorizer"):
        from tensorizer import TensorDeserializer

        readers = contender.partition(":")[2]
        kw = {"num_readers": int(readers)} if readers else {}
        with TensorDeserializer(path + ".tensors", device="cpu", **kw) as d:
            return dict(d.items())
    if contender == "boto3":
        return _boto3(path)
    raise ValueError(contender)


def child(argv: list[str]) -> None:
    """``p11_load.py CONTENDER PATH MODE [CRC_JSON]``: one timed run, one JSON line out."""
    contender, path, mode = argv[:3]
    crcs = json.loads(Path(argv[3]).read_text()) if len(argv) > 3 else None
    # Imports outside the clock, as a server has them before it loads.
    import torch  # noqa: F401

    import paramio  # noqa: F401

    if contender.startswith("paramio"):
        import paramio.formats.safetensors.reader  # noqa: F401
        import paramio.loading.api  # noqa: F401  (`paramio.load`, as `from paramio import load` has it)
        import paramio.loading.targets  # noqa: F401
    if contender.startswith("runai"):
        import runai_model_streamer  # noqa: F401
    elif contender.startswith("fastsafetensors"):
        import fastsafetensors  # noqa: F401
    elif contender.startswith("tensorizer"):
        import tensorizer  # noqa: F401
    elif contender == "load_file":
        import safetensors.torch  # noqa: F401
    # The collection that importing torch leaves owing (~10^5 new objects), run now for every
    # contender: otherwise whichever code allocates a few hundred Python objects first pays it
    # (30-150 ms here), which a native loader returning 200 tensors never does, and a server
    # long since has. PARAMIO_P11_GC=0 leaves it owed (the figure of a first call in a fresh
    # process).
    if os.environ.get("PARAMIO_P11_GC", "1") != "0":
        gc.collect()
    if mode == "cold":
        _drop_cache()
    if contender == "dd":
        c0 = _cpu(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=16M"], check=True, capture_output=True)
        seconds = time.perf_counter() - t0
        print(json.dumps({"s": seconds, "cpu": _cpu(resource.RUSAGE_CHILDREN) - c0}))
        return
    c0 = _cpu(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    tensors = _load(contender, path)
    _touch(tensors)
    seconds = time.perf_counter() - t0
    cpu = _cpu(resource.RUSAGE_SELF) - c0
    bad = []
    if crcs is not None:
        got = _crcs(tensors)
        bad = [k for k, v in crcs.items() if got.get(k) != v]
        if len(got) != len(crcs):
            bad.append(f"{len(got)} tensors, expected {len(crcs)}")
    print(json.dumps({"s": seconds, "cpu": cpu, "bad": bad[:5]}))


def _cpu(who: int) -> float:
    """User + system CPU seconds of this process's threads (or its waited-for children)."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


# -- the parent ---------------------------------------------------------------------------------


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("paramio", "torch", "safetensors", "runai-model-streamer", "runai-model-streamer-s3",
                "fastsafetensors", "tensorizer", "boto3"):  # fmt: skip
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _run_one(contender: str, path: str, mode: str, env: dict[str, str], crc_file: Path | None) -> tuple[float, float]:
    args = [sys.executable, str(_HERE), contender, path, mode]
    if crc_file is not None:
        args.append(str(crc_file))
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{contender} ({mode}) failed: {proc.stderr.strip()[-800:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if got.get("bad"):
        raise RuntimeError(f"{contender} ({mode}) returned wrong bytes: {got['bad']}")
    return float(got["s"]), float(got["cpu"])


def _warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(16 * MiB):
            pass


def _turns(
    ctx: Context,
    contenders: dict[str, tuple[str, dict[str, str]]],
    path: str,
    mode: str,
    crc_file: Path,
    repeat: int,
) -> dict[str, float | str]:
    """Median wall seconds per contender (or the error that stopped it), in turns; round 0
    untimed and byte-checked. The median CPU seconds go under ``label + " [cpu]"``."""
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in contenders}
    failed: dict[str, str] = {}
    for r in range(repeat + 1):
        for label, (contender, env) in contenders.items():
            if label in failed:
                continue
            if mode != "s3":
                settle(os.path.getsize(path))  # warm free memory for the tensors (see settle)
            if mode == "warm":
                _warm(Path(path))
            try:
                s, cpu = _run_one(contender, path, mode, env, crc_file if r == 0 and contender != "dd" else None)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                failed[label] = str(exc).splitlines()[-1][:300]
                ctx.log(f"{label}: {failed[label]}")
                continue
            if r:
                times[label].append((s, cpu))
            ctx.log(f"{mode} round {r} {label}: {s * 1e3:.0f} ms (cpu {cpu * 1e3:.0f} ms)")
    out: dict[str, float | str] = dict(failed)
    for k, v in times.items():
        if v and k not in failed:
            out[k] = sorted(x[0] for x in v)[len(v) // 2]
            out[k + " [cpu]"] = sorted(x[1] for x in v)[len(v) // 2]
    return out


def _contenders(ctx: Context, mode: str) -> dict[str, tuple[str, dict[str, str]]]:
    base = dict(os.environ)
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    base["RUNAI_STREAMER_LOG_LEVEL"] = "ERROR"
    c: dict[str, tuple[str, dict[str, str]]] = {
        OURS: ("paramio", base),
        OURS_MAPPED: ("paramio:io=mmap", base),
    }
    c[OURS_SMALL] = ("paramio:hugepages=0", base)
    c[OURS_HUGE] = ("paramio:hugepages=1", base)
    if mode == "cold":
        c[OURS_DIRECT] = ("paramio:io=direct", base)
    extra = os.environ.get("PARAMIO_P11_OURS", "")
    for spec in filter(None, extra.split(";")):  # e.g. paramio:io=pread:concurrency=4
        c[spec] = (spec, base)
    c["safetensors.torch.load_file"] = ("load_file", base)
    if _have("runai_model_streamer"):
        c["Run:ai SafetensorsStreamer (defaults)"] = ("runai", base)
        c["Run:ai SafetensorsStreamer (RUNAI_STREAMER_CONCURRENCY=4)"] = (
            "runai",
            {**base, "RUNAI_STREAMER_CONCURRENCY": "4"},
        )
    if _have("fastsafetensors"):
        c["fastsafetensors nogds (max_threads=16, default)"] = ("fastsafetensors:16", base)
        c["fastsafetensors nogds (max_threads=2)"] = ("fastsafetensors:2", base)
    if _have("tensorizer"):
        c["tensorizer TensorDeserializer (defaults)"] = ("tensorizer", base)
    if mode == "cold":
        c["dd bs=16M (buffered read)"] = ("dd", base)
    only = os.environ.get("PARAMIO_P11_PEERS")  # substrings of labels to keep (paramio's always)
    if only:
        c = {k: v for k, v in c.items() if k.startswith("paramio") or any(w in k for w in only.split(","))}
    return c


OURS = "paramio.load(into='torch')"
OURS_MAPPED = "paramio.load(into='torch', io='mmap')"
OURS_DIRECT = "paramio.load(into='torch', io='direct')"
OURS_SMALL = "paramio.load(into='torch'), host memory in small pages (PARAMIO_HUGE_PAGES=0)"
OURS_HUGE = "paramio.load(into='torch'), host memory in huge pages (PARAMIO_HUGE_PAGES=1)"
#: Peers whose tensors are views of the file (compared with io="mmap"), not memory of their own.
MAPPING_PEERS = ("safetensors.torch.load_file",)


def _tensorize(path: Path) -> str | None:
    """The same tensors in tensorizer's format (its deserializer reads only that)."""
    try:
        import safetensors.torch
        from tensorizer import TensorSerializer
    except ImportError as exc:
        return f"{exc.name} not installed"
    out = Path(str(path) + ".tensors")
    s = TensorSerializer(str(out))
    s.write_state_dict(safetensors.torch.load_file(str(path)))
    s.close()
    return None


def run(ctx: Context) -> list[Record]:
    modes = os.environ.get("PARAMIO_P11_MODES", "warm,cold,s3").split(",")
    repeat = ctx.repeat
    size = ctx.size_mib
    given = os.environ.get("PARAMIO_P11_MODEL")  # a model made by an earlier run, CRCs beside it
    if given:
        path = Path(given)
        crc_file = path.with_name("p11.crc.json")
    else:
        path = ctx.dir / "p11.safetensors"
        ctx.log(f"P11: generating {path.name} (~{size} MiB)")
        crcs = write_model(path, llama_layout(size))
        crc_file = ctx.dir / "p11.crc.json"
        crc_file.write_text(json.dumps(crcs))
    nbytes = path.stat().st_size
    if _have("tensorizer") and not Path(str(path) + ".tensors").exists():
        ctx.log("P11: writing the tensorizer copy")
        why = _tensorize(path)
        if why:
            ctx.log(f"tensorizer: {why}")
    versions = _versions()
    ctx.log("P11 versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    out: list[Record] = []
    title = f"P11 {nbytes / MiB:.0f} MiB safetensors -> torch CPU"
    results: dict[str, dict[str, float | str]] = {}
    for mode in modes:
        if mode == "cold":
            why = can_drop_cache()
            if why:
                out.append(skipped(f"{title}, cold", "-", why))
                continue
        if mode in ("warm", "cold"):
            results[mode] = _turns(ctx, _contenders(ctx, mode), str(path), mode, crc_file, repeat)
        elif mode == "s3":
            results[mode] = _s3(ctx, path, crc_file, repeat)
    for mode, t in results.items():
        for label, v in t.items():
            if label.startswith("paramio") or label.endswith(" [cpu]"):
                continue
            mine = OURS_MAPPED if label in MAPPING_PEERS and mode != "s3" else OURS
            ours = t.get(mine)
            name = f"{title}, {mode}, {mine}"
            if isinstance(v, str):
                out.append(skipped(name, label, v))
            elif isinstance(ours, float):
                cpu, peer_cpu = t.get(mine + " [cpu]"), t.get(label + " [cpu]")
                note = f"{nbytes / v / 1e9:.2f} GB/s for the peer"
                if isinstance(cpu, float) and isinstance(peer_cpu, float) and peer_cpu > 0:
                    note += f"; CPU {cpu:.2f} s / {peer_cpu:.2f} s = {cpu / peer_cpu:.2f}x"
                out.append(Record(name, ours, label, v, note=note))
    # Every contender's own figure (a table of times, for results/p11-load.md).
    (Path(os.environ.get("PARAMIO_P11_JSON", ctx.dir.parent / "p11-last.json"))).write_text(
        json.dumps({"bytes": nbytes, "versions": versions, "results": results}, indent=1)
    )
    return out


# -- S3 --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _server(ctx: Context) -> Iterator[Any]:
    sys.path.insert(0, str(_TESTS))
    from remote_servers import run_s3rver, s3rver_binary

    binary = s3rver_binary()
    if binary is None:
        raise RuntimeError("s3rver not installed (scripts/install-test-servers.sh)")
    with tempfile.TemporaryDirectory(dir=ctx.dir) as work, run_s3rver(binary, Path(work)) as server:
        yield server


def _s3(ctx: Context, path: Path, crc_file: Path, repeat: int) -> dict[str, float | str]:
    try:
        import boto3  # noqa: F401
    except ImportError:
        return {"boto3 download_file + load_file": "boto3 not installed"}
    with _server(ctx) as server:
        from remote_servers import put_object

        server.create_bucket("bench")
        ctx.log(f"P11: uploading {path.name} to s3rver")
        put_object(server, "bench/model.safetensors", path.read_bytes())
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            {
                "AWS_ENDPOINT_URL": server.endpoint,
                "AWS_ACCESS_KEY_ID": server.key_id,
                "AWS_SECRET_ACCESS_KEY": server.secret,
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ALLOW_HTTP": "true",
                "AWS_EC2_METADATA_DISABLED": "true",
                # Run:ai's S3 client: path-style requests (s3rver has no virtual hosts on loopback)
                "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING": "0",
                "RUNAI_STREAMER_LOG_LEVEL": "ERROR",
                "P11_TMP": str(ctx.dir),
            }
        )
        url = "s3://bench/model.safetensors"
        contenders: dict[str, tuple[str, dict[str, str]]] = {
            OURS: ("paramio", env),
            "boto3 download_file + load_file": ("boto3", env),
        }
        if _have("runai_model_streamer_s3"):
            contenders["Run:ai SafetensorsStreamer s3:// (defaults)"] = ("runai", env)
            # The AWS CRT closes a connection whose throughput stays under its floor
            # ("failure to meet throughput minimum", not retried: Run:ai's "File access
            # error"); s3rver on a loaded 2-core machine serves 16 streams slower than that.
            contenders["Run:ai SafetensorsStreamer s3:// (RUNAI_STREAMER_S3_LOW_SPEED_LIMIT=1)"] = (
                "runai",
                {**env, "RUNAI_STREAMER_S3_LOW_SPEED_LIMIT": "1"},
            )
        return _turns(ctx, contenders, url, "s3", crc_file, repeat)


def _boto3(url: str) -> dict[str, Any]:
    import boto3
    import safetensors.torch

    bucket, _, key = url[len("s3://") :].partition("/")
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    with tempfile.TemporaryDirectory(dir=os.environ.get("P11_TMP")) as tmp:
        local = os.path.join(tmp, "model.safetensors")
        client.download_file(bucket, key, local)
        # The file goes when this returns: the tensors must be copies (load_file maps the file,
        # which stays readable after the unlink while mapped, so this is what a user gets).
        return safetensors.torch.load_file(local)


def table(doc: dict[str, Any]) -> str:
    """The markdown table of a run's JSON (``PARAMIO_P11_JSON``): every contender's median wall
    and CPU seconds per mode, and its ratio to paramio's matching contender."""
    nbytes = doc["bytes"]
    lines = []
    for mode, t in doc["results"].items():
        lines += [f"\n### {mode}\n", "| contender | wall | CPU | GB/s | paramio / this (wall) | paramio / this (CPU) |",
                  "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for label, v in t.items():
            if label.endswith(" [cpu]"):
                continue
            if isinstance(v, str):
                lines.append(f"| {label} | failed: {v} | | | | |")
                continue
            cpu = t.get(label + " [cpu]")
            mine = OURS_MAPPED if label in MAPPING_PEERS and mode != "s3" else OURS
            ours, ours_cpu = t.get(mine), t.get(mine + " [cpu]")
            ratio = f"{ours / v:.2f}x" if isinstance(ours, float) and not label.startswith("paramio") else ""
            cratio = (
                f"{ours_cpu / cpu:.2f}x"
                if isinstance(ours_cpu, float) and isinstance(cpu, float) and cpu and not label.startswith("paramio")
                else ""
            )
            cpu_s = f"{cpu:.2f} s" if isinstance(cpu, float) else ""
            lines.append(f"| {label} | {v:.2f} s | {cpu_s} | {nbytes / v / 1e9:.2f} | {ratio} | {cratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--table"]:
        print(table(json.loads(Path(sys.argv[2]).read_text())))
    else:
        child(sys.argv[1:])
