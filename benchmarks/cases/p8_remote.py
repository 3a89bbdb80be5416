"""P8: every tensor of a safetensors model on a loopback S3 server into host arrays.

paramio (`paramio.load("s3://...")`: a HEAD, the header, then parallel ranged GETs into the
arrays) against (a) one whole-object GET of the same bytes with the same client (obstore), the
transfer's floor, goal <= 1.1x; and (b) what users do today: boto3's ``download_file`` then
``safetensors.numpy.load_file``, goal < 0.5x. Contenders run in turns (`round_robin`), so a slow
spell of this shared VM hits all of them.

Servers: s3rver (Node; objects in files, each range streamed from its file, as a production
store serves them), the main figures; moto (Python; objects in memory, and every ranged GET
copies the stored object), labelled, and only up to 512 MiB (past that its per-range copies
take minutes; ``PARAMIO_P8_MOTO=1`` forces it); nginx (plain HTTP ranges) for paramio against
one whole GET. ``PARAMIO_P8_SWEEP=1`` adds the sweep that chose `ObjectStoreSource`'s request
size and concurrency: one object read with `readinto` at each setting, against one whole GET.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cases.common import Context, Record, model_safetensors, round_robin, settle, skipped

_TESTS = Path(__file__).resolve().parents[2] / "tests" / "sources"
_MOTO_MAX_MIB = 512


def run(ctx: Context) -> list[Record]:
    title = f"P8 remote safetensors -> numpy ({ctx.size_mib} MiB"
    try:
        import boto3  # noqa: F401
        import obstore  # noqa: F401
        import safetensors.numpy  # noqa: F401
    except ImportError as exc:
        return [skipped(f"{title})", "boto3 + safetensors", f"{exc.name} not installed")]
    sys.path.insert(0, str(_TESTS))
    from remote_servers import run_moto, run_s3rver, s3rver_binary

    local = model_safetensors(ctx)
    repeat = max(ctx.repeat, 3)
    out: list[Record] = []
    binary = s3rver_binary()
    if binary is None:
        out.append(
            skipped(f"{title}, s3rver on loopback)", "-", "s3rver not installed (scripts/install-test-servers.sh)")
        )
    else:
        with tempfile.TemporaryDirectory(dir=ctx.dir) as work, run_s3rver(binary, Path(work)) as server:
            out += _s3(ctx, f"{title}, s3rver S3 on loopback)", server, local, repeat)
            if os.environ.get("PARAMIO_P8_SWEEP"):
                out += _sweep(ctx, server, local.stat().st_size, repeat)
    if ctx.size_mib <= _MOTO_MAX_MIB or os.environ.get("PARAMIO_P8_MOTO"):
        with run_moto() as moto:
            out += _s3(ctx, f"{title}, moto S3 on loopback)", moto, local, repeat)
    else:
        why = f"moto copies the whole object for every ranged GET; run only up to {_MOTO_MAX_MIB} MiB"
        out.append(skipped(f"{title}, moto S3 on loopback)", "-", why))
    return out + _nginx(ctx, f"{title}, nginx on loopback)", local, repeat)


@contextlib.contextmanager
def _aws_env(server: Any) -> Iterator[None]:
    env = {
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_ACCESS_KEY_ID": server.key_id,
        "AWS_SECRET_ACCESS_KEY": server.secret,
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _s3(ctx: Context, name: str, server: Any, local: Path, repeat: int) -> list[Record]:
    import boto3
    import obstore
    import safetensors.numpy
    from remote_servers import put_object

    import paramio
    from paramio.sources.objectstore import open_object, store_for

    size = local.stat().st_size
    server.create_bucket("bench")
    ctx.log(f"uploading {local.name} to {server.kind} ({size >> 20} MiB)")
    put_object(server, "bench/model.safetensors", local.read_bytes())
    with _aws_env(server):
        url = "s3://bench/model.safetensors"
        store, key = store_for(url)
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id=server.key_id,
            aws_secret_access_key=server.secret,
        )

        def ours() -> None:
            got = paramio.load(url)
            assert sum(a.nbytes for a in got.values()) > 0

        def ours_wide() -> None:
            paramio.load(url, concurrency=8)

        def source_alone() -> None:  # the source's own transfer, defaults, no loader
            open_object(url).readinto(0, bytearray(size))

        def whole_get() -> None:
            assert len(obstore.get(store, key).bytes()) == size

        def boto_then_load() -> None:
            with tempfile.TemporaryDirectory(dir=ctx.dir) as tmp:
                path = os.path.join(tmp, "model.safetensors")
                client.download_file("bench", "model.safetensors", path)
                safetensors.numpy.load_file(path)

        ctx.log(f"timing paramio.load, one whole GET, boto3 + load_file in turns ({server.kind})")
        fns: dict[str, Callable[[], object]] = {
            "ours": ours,
            "ours_wide": ours_wide,
            "source": source_alone,
            "get": whole_get,
            "boto": boto_then_load,
        }
        t = round_robin(fns, repeat, lambda: settle(size))
    note = f"{size / 2**20 / t['ours']:.0f} MiB/s for paramio"
    wide = f"{size / 2**20 / t['ours_wide']:.0f} MiB/s for paramio"
    return [
        Record(name, t["ours"], "one whole-object GET, same client (goal <= 1.1x)", t["get"], note=note),
        Record(
            name, t["ours"], "boto3 download_file + safetensors.numpy.load_file (goal < 0.5x)", t["boto"], note=note
        ),
        Record(f"{name} load(concurrency=8)", t["ours_wide"], "one whole-object GET, same client", t["get"], note=wide),
        Record(f"{name} the source alone: readinto", t["source"], "one whole-object GET, same client", t["get"]),
    ]


def _sweep(ctx: Context, server: Any, size: int, repeat: int) -> list[Record]:
    """`readinto` of the whole object at each request size and concurrency, in turns with one GET."""
    import obstore

    from paramio.sources.objectstore import open_object, store_for

    out: list[Record] = []
    buf = bytearray(size)
    with _aws_env(server):
        url = "s3://bench/model.safetensors"
        store, key = store_for(url)
        fns: dict[str, Callable[[], object]] = {"get": lambda: obstore.get(store, key).bytes()}
        for mib in (8, 16, 32, 64):
            for conc in (4, 8, 16):
                src = open_object(url, max_request=mib << 20, max_concurrency=conc)
                fns[f"{mib}/{conc}"] = lambda src=src: src.readinto(0, buf)
        ctx.log(f"sweeping request size x concurrency ({len(fns) - 1} settings)")
        t = round_robin(fns, repeat, lambda: None)
    for k, v in t.items():
        if k != "get":
            mib, conc = k.split("/")
            name = f"P8 sweep: readinto of {size >> 20} MiB, {mib} MiB requests, {conc} in flight (s3rver)"
            out.append(Record(name, v, "one whole-object GET", t["get"]))
    return out


def _nginx(ctx: Context, name: str, local: Path, repeat: int) -> list[Record]:
    import obstore
    from remote_servers import nginx_binary, run_nginx

    import paramio
    from paramio.sources.objectstore import store_for

    binary = nginx_binary()
    if binary is None:
        return [skipped(name, "one whole-object GET", "nginx not installed")]
    size = local.stat().st_size
    with tempfile.TemporaryDirectory(dir=ctx.dir) as work, run_nginx(binary, Path(work)) as server:
        shutil.copy(local, server.root / local.name)
        url = f"{server.url}/{local.name}"
        store, key = store_for(url)
        ctx.log("timing paramio.load(http://...) and one whole GET in turns (nginx)")
        t = round_robin(
            {"ours": lambda: paramio.load(url), "get": lambda: obstore.get(store, key).bytes()},
            repeat,
            lambda: settle(size),
        )
    note = f"{size / 2**20 / t['ours']:.0f} MiB/s for paramio"
    return [Record(name, t["ours"], "one whole-object GET, same client (goal <= 1.1x)", t["get"], note=note)]
