"""P8: every tensor of a safetensors model on S3 (moto's server on loopback) into host arrays.

paramio (`paramio.load("s3://...")`: a HEAD, the header, then coalesced parallel ranged GETs
into the arrays) against (a) one whole-object GET of the same bytes with the same client
(obstore), the transfer's floor, goal <= 1.1x; and (b) what users do today: boto3's
``download_file`` then ``safetensors.numpy.load_file``, goal < 0.5x. moto serves from memory in
one Python process and slices the whole object for every ranged GET, so many ranged reads cost
it far more than one whole GET; the same model is also served by nginx (as an S3-compatible
store would serve ranges, without that cost) against one whole GET, when nginx is installed."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from cases.common import Context, Record, median_time, model_safetensors, skipped

_TESTS = Path(__file__).resolve().parents[2] / "tests" / "sources"


def run(ctx: Context) -> list[Record]:
    name = f"P8 remote safetensors -> numpy ({ctx.size_mib} MiB, moto S3 on loopback)"
    try:
        import boto3
        import obstore
        import safetensors.numpy
    except ImportError as exc:
        return [skipped(name, "boto3 + safetensors", f"{exc.name} not installed")]
    sys.path.insert(0, str(_TESTS))
    from remote_servers import put_object, run_moto

    import paramio
    from paramio.sources.objectstore import store_for

    local = model_safetensors(ctx)
    size = local.stat().st_size
    with run_moto() as moto:
        moto.create_bucket("bench")
        ctx.log(f"uploading {local.name} to moto ({size >> 20} MiB)")
        put_object(moto, "bench/model.safetensors", local.read_bytes())
        env = {
            "AWS_ENDPOINT_URL": moto.endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }
        os.environ.update(env)
        url = "s3://bench/model.safetensors"
        store, key = store_for(url)

        def ours() -> object:
            got = paramio.load(url)
            assert sum(a.nbytes for a in got.values()) > 0
            return got

        def whole_get() -> object:
            data = obstore.get(store, key).bytes()
            assert len(data) == size
            return data

        client = boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1")

        def boto_then_load() -> object:
            with tempfile.TemporaryDirectory(dir=ctx.dir) as tmp:
                path = os.path.join(tmp, "model.safetensors")
                client.download_file("bench", "model.safetensors", path)
                return safetensors.numpy.load_file(path)

        repeat = max(ctx.repeat, 3)
        ctx.log("timing paramio.load(s3://...)")
        t_ours = median_time(ours, repeat)
        ctx.log("timing one whole-object GET (obstore)")
        t_get = median_time(whole_get, repeat)
        ctx.log("timing boto3 download_file + safetensors.numpy.load_file")
        t_boto = median_time(boto_then_load, repeat)
    mib = size / 2**20
    note = f"{mib / t_ours:.0f} MiB/s for paramio"
    out = [
        Record(name, t_ours, "one whole-object GET, same client (goal <= 1.1x)", t_get, note=note),
        Record(name, t_ours, "boto3 download_file + safetensors.numpy.load_file (goal < 0.5x)", t_boto, note=note),
    ]
    return out + _nginx(ctx, local, size, repeat)


def _nginx(ctx: Context, local: Path, size: int, repeat: int) -> list[Record]:
    import shutil

    import obstore
    from remote_servers import nginx_binary, run_nginx

    import paramio
    from paramio.sources.objectstore import store_for

    name = f"P8 remote safetensors -> numpy ({ctx.size_mib} MiB, nginx on loopback)"
    binary = nginx_binary()
    if binary is None:
        return [skipped(name, "one whole-object GET", "nginx not installed")]
    with tempfile.TemporaryDirectory(dir=ctx.dir) as work, run_nginx(binary, Path(work)) as server:
        shutil.copy(local, server.root / local.name)
        url = f"{server.url}/{local.name}"
        store, key = store_for(url)
        ctx.log("timing paramio.load(http://...) and one whole GET (nginx)")
        t_ours = median_time(lambda: paramio.load(url), repeat)
        t_get = median_time(lambda: obstore.get(store, key).bytes(), repeat)
    note = f"{size / 2**20 / t_ours:.0f} MiB/s for paramio"
    return [Record(name, t_ours, "one whole-object GET, same client (goal <= 1.1x)", t_get, note=note)]
