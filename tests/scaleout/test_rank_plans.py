"""One rank's load without Ray (`paramio.scaleout.load_rank`, `plan_ranks`): for every form of
placement, each rank's tensors equal NumPy's slices of the full tensors, and the data bytes it
read (every read logged by the source) are exactly the bytes of those slices."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rankload

import paramio
import paramio.sharding
from paramio.core.errors import InvalidArgumentError, ParameterNotFoundError
from paramio.scaleout import RankSplit, load_rank, plan_ranks

FULL = rankload.tensors()
ALL = slice(None)

SPLIT = {"layers.0.wq": 1, "layers.1.wq": 2, "layers.0.wo": 0}


def _split_slices(world: int) -> list[dict[str, object]]:
    """What NumPy says each rank of a `SPLIT` cut holds (the other tensors whole)."""
    out = []
    for r in range(world):
        wq0, wq1, wo = 24 // world, 6 // world, 24 // world
        out.append(
            {
                "embed": ALL,
                "layers.0.norm": ALL,
                "layers.0.wo": np.s_[r * wo : (r + 1) * wo],
                "layers.0.wq": np.s_[:, r * wq0 : (r + 1) * wq0],
                "layers.1.wq": np.s_[:, :, r * wq1 : (r + 1) * wq1],
            }
        )
    return out


KEYS = {0: ["layers.0.norm", "embed"], 1: ["layers.0.wq"], 2: ["embed"]}
BOXES = {
    0: {"embed": ((0, 16), (0, 8)), "layers.0.norm": None},
    1: {"embed": ((16, 32), (2, 6)), "layers.1.wq": ((2, 5), (1, 3), (0, 6))},
}
EXPECTED_KEYS = [{"embed": ALL, "layers.0.norm": ALL}, {"layers.0.wq": ALL}, {"embed": ALL}]
EXPECTED_BOXES = [
    {"embed": np.s_[0:16, 0:8], "layers.0.norm": ALL},
    {"embed": np.s_[16:32, 2:6], "layers.1.wq": np.s_[2:5, 1:3, 0:6]},
]


def _placements(path: Path) -> dict[str, tuple[object, list[dict[str, object]]]]:
    return {
        "split": (RankSplit(2, SPLIT), _split_slices(2)),
        "split4": (RankSplit(4, {"layers.0.wq": 1, "layers.0.wo": 0}), _split4()),
        "tp-plan": (paramio.sharding.plan(str(path), 2, split=SPLIT, replicate=["*"]), _split_slices(2)),
        "keys": (KEYS, EXPECTED_KEYS),
        "boxes": (BOXES, EXPECTED_BOXES),
    }


def _split4() -> list[dict[str, object]]:
    return [
        {
            "embed": ALL,
            "layers.0.norm": ALL,
            "layers.0.wo": np.s_[r * 6 : (r + 1) * 6],
            "layers.0.wq": np.s_[:, r * 6 : (r + 1) * 6],
            "layers.1.wq": ALL,
        }
        for r in range(4)
    ]


def expected_data(path: Path, wanted: dict[str, object]) -> np.ndarray:
    starts, _ = rankload.data_starts(path)
    parts = [rankload.slice_offsets(starts[k], FULL[k], idx) for k, idx in wanted.items()]
    return np.sort(np.concatenate(parts))


@pytest.mark.parametrize("form", ["split", "split4", "tp-plan", "keys", "boxes"])
def test_each_rank_reads_only_its_slices(form: str, tmp_path: Path) -> None:
    path = rankload.write(tmp_path / "m.safetensors")
    _, base = rankload.data_starts(path)
    placement, expected = _placements(path)[form]
    logs = tmp_path / "logs"
    logs.mkdir()
    opener = rankload.LoggedOpener(path, logs)
    plans = plan_ranks(opener, placement)  # type: ignore[arg-type]
    assert len(plans) == len(expected)
    for rank, wanted in enumerate(expected):
        log = logs / f"{os.getpid()}.reads"
        log.unlink(missing_ok=True)
        got = load_rank(opener, placement, rank)  # type: ignore[arg-type]
        assert sorted(got) == sorted(wanted), rank
        for key, idx in wanted.items():
            want = FULL[key][idx]  # type: ignore[index]
            assert got[key].dtype == want.dtype and got[key].shape == want.shape, (rank, key)
            assert got[key].tobytes() == want.tobytes(), (rank, key)
        reads = rankload.reads_of(logs, os.getpid())
        header = [(o, n) for o, n in reads if o < base]
        assert header and all(o + n <= base for o, n in header)  # the header only, no data with it
        data = rankload.read_offsets([(o, n) for o, n in reads if o >= base])
        np.testing.assert_array_equal(data, expected_data(path, wanted))
        assert plans[rank].nbytes == len(data) == got.summary.bytes


def test_a_rank_plan_is_loaded_as_planned(tmp_path: Path) -> None:
    path = rankload.write(tmp_path / "m.safetensors")
    plans = plan_ranks(str(path), BOXES)  # type: ignore[arg-type]
    got = load_rank(str(path), plans[1], 1)
    np.testing.assert_array_equal(got["embed"], FULL["embed"][16:32, 2:6])
    with pytest.raises(InvalidArgumentError, match="rank 1's, not rank 0's"):
        load_rank(str(path), plans[1], 0)


def test_load_options_reach_the_loader(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = rankload.write(tmp_path / "m.safetensors")
    got = load_rank(str(path), RankSplit(2, SPLIT), 1, into="torch", budget="4KiB", concurrency=1)
    assert isinstance(got["layers.0.wo"], torch.Tensor)
    assert got["layers.0.wo"].numpy().tobytes() == FULL["layers.0.wo"][12:24].tobytes()
    assert got.summary.budget == 4096 and got.summary.peak_in_flight <= 4096


@pytest.mark.parametrize(
    ("placement", "error", "message"),
    [
        ({0: ["embed"], 1: ["nope"]}, ParameterNotFoundError, "entry 'nope'.*rank 1 asks for a key"),
        ({0: ["embed"], 2: ["embed"]}, InvalidArgumentError, r"ranks 0\.\.1 each once, not \[0, 2\]"),
        ({0: "embed"}, InvalidArgumentError, "a list, not the string 'embed'"),
        ({-1: ["embed"]}, InvalidArgumentError, "not -1"),
        ({0: {"embed": ((0, 40), (0, 8))}}, InvalidArgumentError, "entry 'embed'.*slice 0:40 of axis 0 is outside"),
        (RankSplit(5, {"layers.0.wq": 0}), InvalidArgumentError, "entry 'layers.0.wq'.*16, not a multiple of 5"),
        (RankSplit(0, {}), InvalidArgumentError, "world_size must be a positive integer"),
        (RankSplit(2, {}, keys=["embed", "gone"]), ParameterNotFoundError, "entry 'gone'"),
        (["embed"], InvalidArgumentError, "not a list"),
    ],
)
def test_bad_placements_fail_before_any_read(
    placement: object, error: type[Exception], message: str, tmp_path: Path
) -> None:
    path = rankload.write(tmp_path / "m.safetensors")
    logs = tmp_path / "logs"
    logs.mkdir()
    with pytest.raises(error, match=message):
        plan_ranks(rankload.LoggedOpener(path, logs), placement)  # type: ignore[arg-type]
    _, base = rankload.data_starts(path)
    assert all(o < base for o, _ in rankload.reads_of(logs, os.getpid()))  # headers only


def test_a_tp_plan_of_another_world_is_checked_against_the_source(tmp_path: Path) -> None:
    path = rankload.write(tmp_path / "m.safetensors")
    other = rankload.write(tmp_path / "other.safetensors")
    plan = paramio.sharding.plan(str(other), 2, split=SPLIT, replicate=["*"])
    index = paramio.ParameterIndex()
    index.add_array("embed", FULL["embed"])  # a source without the plan's other keys
    index.create_archive_file(str(tmp_path / "small.irpa"))
    with pytest.raises(ParameterNotFoundError, match="entry 'layers.0.norm'"):
        plan_ranks(str(tmp_path / "small.irpa"), plan)
    assert [p.nbytes for p in plan_ranks(str(path), plan)] == [
        sum(FULL[k][i].nbytes for k, i in s.items())  # type: ignore[index]
        for s in _split_slices(2)
    ]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_ray_is_imported_only_to_load_on_actors(tmp_path: Path) -> None:
    path = rankload.write(tmp_path / "m.safetensors")
    done = _python(
        "import sys, paramio, paramio.scaleout as s\n"
        f"p = s.plan_ranks({str(path)!r}, s.RankSplit(2, {{'layers.0.wo': 0}}))\n"
        f"s.load_rank({str(path)!r}, p[1], 1)\n"
        "print('ray' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_without_ray_the_extra_is_named(tmp_path: Path) -> None:
    path = rankload.write(tmp_path / "m.safetensors")
    done = _python(
        "import sys; sys.modules['ray'] = None\n"
        "import paramio.scaleout as s\n"
        "from paramio.core.errors import MissingExtraError\n"
        "try:\n"
        f"    s.load_on_actors({str(path)!r}, {{0: ['embed']}})\n"
        "except MissingExtraError as exc:\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "paramio[ray]" in done.stdout, done.stdout


def test_actors_open_the_source_themselves(tmp_path: Path) -> None:
    index = paramio.ParameterIndex.open(str(rankload.write(tmp_path / "m.safetensors")))
    with pytest.raises(InvalidArgumentError, match="give a path, a URL or a callable.*not a ParameterIndex"):
        paramio.scaleout.load_on_actors(index, {0: ["embed"]})  # type: ignore[arg-type]
