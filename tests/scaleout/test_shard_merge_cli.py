"""``paramio shard`` / ``paramio merge`` with ``--engine=ray --address=``: the same files as the
one-machine commands, the job's summary under ``--json``; what the engine does not write is a
usage error before anything runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from ray_cluster import RayCluster
from test_merge_engine import assert_same_files
from test_shard_engine import REPLICATE, SPLIT, _model, assert_same_set

Cli = Callable[..., tuple[int, str, str]]

RULES = [f"--split={p}={a}" for p, a in SPLIT.items()] + [f"--replicate={r}" for r in REPLICATE]


@pytest.mark.slow
def test_shard_and_merge_on_ray_from_the_command_line(ray_driver: RayCluster, paramio_cli: Cli, tmp_path: Path) -> None:
    _model(tmp_path / "m.irpa")
    common = ["shard", f"--parameters={tmp_path / 'm.irpa'}", "--tp=2", *RULES]
    code, _, err = paramio_cli(*common, f"--output={tmp_path / 'one'}", "--quiet")
    assert code == 0, err
    code, out, err = paramio_cli(
        *common, f"--output={tmp_path / 'ray'}", "--engine=ray", f"--address={ray_driver.address}", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc)[0] == "version" and doc["engine"] == "ray" and doc["plan"]["tp"] == 2
    assert doc["paths"][-1].endswith("m.tp.json") and doc["job"]["operation"] == "shard" and doc["job"]["tasks"] == 2
    assert_same_set(tmp_path / "ray", tmp_path / "one")

    for d in ("m1", "m2"):
        (tmp_path / d).mkdir()
    code, _, err = paramio_cli(
        "merge", f"--parameters={tmp_path / 'ray'}", f"--output={tmp_path / 'm1' / 'm.safetensors'}"
    )
    assert code == 0, err
    code, out, err = paramio_cli(
        "merge",
        f"--parameters={tmp_path / 'ray'}",
        f"--output={tmp_path / 'm2' / 'm.safetensors'}",
        "--engine=ray",
        f"--address={ray_driver.address}",
    )
    assert code == 0, err
    assert out.startswith(f"wrote {tmp_path / 'm2' / 'm.safetensors'} (6 tensors,")
    assert_same_files(tmp_path / "m2", tmp_path / "m1")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layout=vllm", "--engine=ray"], "--engine=ray writes the devices and keys layouts, not --layout=vllm"),
        (["--max_shard_size=1MB", "--engine=ray"], "--engine=ray writes each device file whole: no --max_shard_size"),
        (["--address=auto"], "--address=auto is for --engine=ray"),
        (["--engine=spark"], "--engine=spark: expected one of local, ray"),
    ],
)
def test_what_the_engine_does_not_write_is_a_usage_error(
    extra: list[str], message: str, paramio_cli: Cli, tmp_path: Path
) -> None:
    _model(tmp_path / "m.irpa")
    code, _, err = paramio_cli(
        "shard", f"--parameters={tmp_path / 'm.irpa'}", "--tp=2", *RULES, f"--output={tmp_path / 'o'}", *extra
    )
    assert code == 2 and message in err, err
    assert not (tmp_path / "o").exists()


def test_merge_json_on_this_machine(paramio_cli: Cli, tmp_path: Path) -> None:
    _model(tmp_path / "m.irpa")
    assert (
        paramio_cli("shard", f"--parameters={tmp_path / 'm.irpa'}", "--tp=2", *RULES, f"--output={tmp_path / 't'}")[0]
        == 0
    )
    code, out, err = paramio_cli(
        "merge", f"--parameters={tmp_path / 't'}", f"--output={tmp_path / 'm.safetensors'}", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["engine"], doc["entries"], doc["job"]) == ("local", 6, None) and list(doc)[0] == "version"
