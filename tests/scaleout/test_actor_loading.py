"""Multi-host loading on Ray actors (`paramio.scaleout.load_on_actors`): each actor holds its
rank's tensors, equal to NumPy's slices of the full tensors, and read only their bytes: counted
per actor process by a logging source, and over HTTP in nginx's access log."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rankload
from remote_servers import Nginx, S3Server, put_object
from test_rank_plans import FULL, SPLIT, _split_slices, expected_data

import paramio.sharding
from paramio.core.errors import SourceError
from paramio.scaleout import RankLoads, RankSplit, load_on_actors

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'paramio[ray]')")


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(ray_driver: object) -> None:
    """The two-node local cluster (conftest.py), its workers able to unpickle this folder's helpers."""
    import test_rank_plans

    for module in (rankload, test_rank_plans, __import__(__name__)):
        ray.cloudpickle.register_pickle_by_value(module)  # the workers cannot import tests/


def _arrays(loads: RankLoads) -> list[dict[str, np.ndarray]]:
    return loads.run(lambda tensors, rank: {k: np.asarray(v) for k, v in tensors.items()})  # type: ignore[return-value]


def _check(loads: RankLoads, expected: list[dict[str, object]]) -> None:
    got = _arrays(loads)
    assert len(got) == len(expected)
    for rank, (have, wanted) in enumerate(zip(got, expected, strict=True)):
        assert sorted(have) == sorted(wanted), rank
        for key, idx in wanted.items():
            want = FULL[key][idx]  # type: ignore[index]
            assert have[key].dtype == want.dtype and have[key].shape == want.shape, (rank, key)
            assert have[key].tobytes() == want.tobytes(), (rank, key)


def test_each_actor_reads_only_its_slices(cluster: None, tmp_path: Path) -> None:
    path = rankload.write(tmp_path / "m.safetensors")
    _, base = rankload.data_starts(path)
    logs = tmp_path / "logs"
    logs.mkdir()
    plan = paramio.sharding.plan(str(path), 2, split=SPLIT, replicate=["*"])
    expected = _split_slices(2)
    # One CPU each on nodes of one CPU: the two actors are on the two nodes (SPREAD alone is a preference).
    with load_on_actors(rankload.LoggedOpener(path, logs), plan, actor_options={"num_cpus": 1}) as loads:
        _check(loads, expected)
        pids = loads.run(lambda tensors, rank: os.getpid())
        assert len(set(pids)) == 2 and os.getpid() not in pids  # two actor processes, not the driver
        assert len({s.node for s in loads.summaries}) == 2  # spread over both nodes
        for rank, pid in enumerate(pids):
            reads = rankload.reads_of(logs, pid)  # type: ignore[arg-type]
            data = rankload.read_offsets([(o, n) for o, n in reads if o >= base])
            np.testing.assert_array_equal(data, expected_data(path, expected[rank]))
            s = loads.summaries[rank]
            assert (s.rank, s.pid, s.bytes) == (rank, pid, len(data)) == (rank, pid, loads.plans[rank].nbytes)
        # The driver read headers only.
        assert all(o < base for o, _ in rankload.reads_of(logs, os.getpid()))
    assert loads.to_dict()["bytes"] == sum(p.nbytes for p in loads.plans)


_LINE = re.compile(r"GET (\S+) bytes=(\d+)-(\d+) 206 (\d+)")


def test_over_http_each_byte_is_requested_by_the_ranks_that_need_it(
    cluster: None, nginx: Nginx, nginx_dir: Path, tmp_path: Path
) -> None:
    path = rankload.write(nginx_dir / "m.safetensors")
    starts, base = rankload.data_starts(path)
    url = f"{nginx.url}/{nginx_dir.name}/m.safetensors"
    placement = RankSplit(
        2,
        {"embed": 0, "layers.0.wo": 0, "layers.1.wq": 0},
        keys=["embed", "layers.0.wo", "layers.1.wq", "layers.0.norm"],
    )
    before = len(nginx.requests())
    with load_on_actors(url, placement) as loads:
        expected = [
            {
                "embed": np.s_[16 * r : 16 * (r + 1)],
                "layers.0.wo": np.s_[12 * r : 12 * (r + 1)],
                "layers.1.wq": np.s_[4 * r : 4 * (r + 1)],
                "layers.0.norm": ALL_,
            }
            for r in range(2)
        ]
        _check(loads, expected)
    uri = f"/{nginx_dir.name}/m.safetensors"
    ranges = [m.groups() for line in nginx.requests()[before:] if (m := _LINE.fullmatch(line)) and m.group(1) == uri]
    assert ranges
    data: Counter[int] = Counter()
    for _, a, b, sent in ranges:
        start, end = int(a), int(b) + 1
        assert int(sent) == end - start
        if start >= base:
            data.update(range(start, end))
    wanted: Counter[int] = Counter()
    for e in expected:
        wanted.update(expected_data(path, e).tolist())
    assert data == wanted  # every byte of every rank's slices, once per rank that needs it, no other
    assert loads.bytes == sum(wanted.values())


ALL_ = slice(None)


class Worker:
    """A caller's own actor: paramio loads into its `params` and leaves the rest alone."""

    def __init__(self, name: str) -> None:
        self.name = name

    def describe(self) -> tuple[str, list[str]]:
        return self.name, sorted(getattr(self, "params", {}))


def test_into_the_callers_own_actors_from_s3(cluster: None, moto: S3Server, tmp_path: Path) -> None:
    path = rankload.write(tmp_path / "m.safetensors")
    put_object(moto, f"models/{tmp_path.name}/m.safetensors", path.read_bytes())
    env = {
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": moto.key_id,
        "AWS_SECRET_ACCESS_KEY": moto.secret,
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    os.environ.update(env)  # the driver plans from the header; the actors get the same through Ray
    try:
        remote = ray.remote(Worker).options(runtime_env={"env_vars": env})
        actors = [remote.remote(f"w{r}") for r in range(2)]
        url = f"s3://models/{tmp_path.name}/m.safetensors"
        loads = load_on_actors(url, RankSplit(2, SPLIT), actors=actors, attribute="params")
        _check(loads, _split_slices(2))
        assert ray.get([a.describe.remote() for a in actors]) == [(f"w{r}", sorted(FULL)) for r in range(2)]
        loads.close()  # the caller's actors stay; paramio's tensors go
        assert ray.get([a.describe.remote() for a in actors]) == [(f"w{r}", []) for r in range(2)]
    finally:
        for k in env:
            os.environ.pop(k, None)


class Shrunk:
    """The whole file on the driver (so the plan passes), half of it in the actors."""

    def __init__(self, path: Path, half: Path, driver: int) -> None:
        self.path, self.half, self.driver = str(path), str(half), driver

    def __call__(self) -> str:
        return self.path if os.getpid() == self.driver else self.half


def test_an_actors_read_error_is_raised_with_its_rank(cluster: None, tmp_path: Path) -> None:
    path = rankload.write(tmp_path / "m.safetensors")
    half = tmp_path / "half.safetensors"
    shutil.copy(path, half)
    os.truncate(half, path.stat().st_size - 200)
    with pytest.raises(paramio.core.errors.ParamioError, match="half.safetensors") as caught:
        load_on_actors(Shrunk(path, half, os.getpid()), {0: ["embed"], 1: ["layers.1.wq"]})
    assert isinstance(caught.value, (SourceError, paramio.core.errors.FormatError))
    assert any("rank" in n and "actor while loading" in n for n in getattr(caught.value, "__notes__", []))


def test_closing_survives_a_callers_actor_that_died(cluster: None, tmp_path: Path) -> None:
    path = rankload.write(tmp_path / "m.safetensors")
    actors = [ray.remote(Worker).remote(f"w{r}") for r in range(2)]
    loads = load_on_actors(str(path), {0: ["embed"], 1: ["layers.0.norm"]}, actors=actors, attribute="params")
    assert ray.get(actors[1].describe.remote()) == ("w1", ["layers.0.norm"])
    ray.kill(actors[0])
    loads.close()  # the dead actor holds nothing; the live one is emptied
    assert ray.get(actors[1].describe.remote()) == ("w1", [])
