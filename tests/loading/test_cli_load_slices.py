"""``paramio load --rank --world_size --split``: a rank's slices, the rules of ``paramio shard``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paramio.cli.main import main


@pytest.fixture
def model(tmp_path: Path) -> Path:
    import safetensors.numpy

    path = tmp_path / "m.safetensors"
    tensors = {
        "layers.0.q_proj.weight": np.zeros((8, 6), np.float32),
        "layers.0.o_proj.weight": np.zeros((6, 8), np.float16),
        "norm": np.zeros(6, np.float32),
    }
    safetensors.numpy.save_file(tensors, str(path))
    return path


def test_a_rank_loads_its_slices(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["load", f"--parameters={model}", "--json", "--rank=1", "--world_size=2"]
    assert main([*argv, "--split=*.q_proj.weight=0", "--split=*.o_proj.weight=1"]) == 0
    out = json.loads(capsys.readouterr().out)
    # Half of each split tensor, the whole norm.
    assert out["bytes"] == 8 * 6 * 4 // 2 + 6 * 8 * 2 // 2 + 6 * 4
    assert out["tensors"] == 3 and out["rank"] == 1 and out["world_size"] == 2
    assert main(["load", f"--parameters={model}", "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert whole["bytes"] == 8 * 6 * 4 + 6 * 8 * 2 + 6 * 4 and "rank" not in whole


@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        (["--split=*=0"], 2, "--split and --rank need --world_size=N"),
        (["--world_size=2"], 2, "--world_size needs at least one --split=PATTERN=AXIS"),
        (["--world_size=2", "--rank=2", "--split=*=0"], 2, "--rank=2: expected 0 to 1 for --world_size=2"),
        (["--world_size=2", "--split=oops"], 2, "--split: split rule 'oops' must be PATTERN=AXIS"),
        (
            ["--world_size=4", "--split=*proj.weight=1"],
            1,
            "'layers.0.q_proj.weight': dimension 1 of float32[8, 6] is 6, not a multiple of 4",
        ),
    ],
)
def test_bad_rank_flags_are_refused(
    model: Path, capsys: pytest.CaptureFixture[str], flags: list[str], code: int, message: str
) -> None:
    assert main(["load", f"--parameters={model}", *flags]) == code
    assert message in capsys.readouterr().err


def test_the_progress_bar_counts_the_slices_bytes(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import paramio.formats.progress as progress

    totals: list[int] = []
    real = progress.ByteProgress

    def recording(total: int, *args: object, **kwargs: object) -> object:
        totals.append(total)
        return real(total, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(progress, "ByteProgress", recording)
    argv = ["load", f"--parameters={model}", "--quiet", "--rank=0", "--world_size=2", "--split=*_proj.weight=0"]
    assert main(argv) == 0
    assert totals == [8 * 6 * 4 // 2 + 6 * 8 * 2 // 2 + 6 * 4]  # what is read, not the whole model
