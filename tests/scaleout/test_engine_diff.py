"""``diff`` on the Ray engine (issue 28): the same report as the one-machine path (keys on one
side, type changes, value summaries of changed tensors, identical bytes, digests settling what
they can), the bytes compared on the workers; and ``paramio diff --engine=ray``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ray_cluster import RayCluster

import paramio
from paramio.integrity import diff
from paramio.integrity.digest import write_digests

pytestmark = pytest.mark.slow


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    base = {f"w{i}": rng.standard_normal((64, 100)).astype(np.float32) for i in range(5)}
    changed = dict(base)
    changed["w1"] = base["w1"] + np.float32(1e-3)
    changed["w3"] = base["w3"].astype(np.float16)  # a type change
    del changed["w4"]
    changed["extra"] = np.zeros(3, np.int8)
    a, b = tmp_path / "a.irpa", tmp_path / "b.irpa"
    for path, arrays in ((a, base), (b, changed)):
        index = paramio.ParameterIndex()
        for k, v in arrays.items():
            index.add_array(k, v)
        index.create_archive_file(path)
    return a, b


def test_diff_on_ray_is_the_local_report(ray_driver: RayCluster, tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    local = diff(a, b, atol=1e-2)
    on_ray = diff(a, b, atol=1e-2, engine="ray", address=ray_driver.address)
    assert on_ray.to_dict() == local.to_dict()
    assert [d.key for d in local.differences] == ["w1", "w3", "w4", "extra"]
    write_digests(a)
    write_digests(b)  # now the digests settle w0 and w2 without reading, w1 by its bytes' summary
    assert diff(a, b, engine="ray", address=ray_driver.address).to_dict() == diff(a, b).to_dict()


def test_paramio_diff_takes_the_engine(
    ray_driver: RayCluster, tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]]
) -> None:
    a, b = _pair(tmp_path)
    code, local, _ = paramio_cli("diff", str(a), str(b), "--json")
    code_ray, on_ray, err = paramio_cli(
        "diff", str(a), str(b), "--json", "--engine=ray", f"--address={ray_driver.address}"
    )
    assert code == code_ray == 1, err  # they differ
    assert json.loads(on_ray) == json.loads(local)
