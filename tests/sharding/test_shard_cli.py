"""``paramio shard`` and ``paramio merge``: flags, the plan, one-line errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tp_models import model_tensors

import paramio
from paramio import ParameterIndex

RULES = (
    "--split=*.attn_q.weight=0",
    "--split=*.ffn_down.weight=1",
    "--split=*.attn_k.weight=1",
    "--split=*.ffn_up.weight=0",
    "--split=*.conv=1",
    "--replicate=*",
)


def test_plan_prints_and_writes_nothing(st_model: Path, tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = paramio_cli("shard", f"--parameters={st_model}", "--tp=2", *RULES, "--plan")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "tp=2 layout=devices"
    assert any(
        line.split()
        == [
            "blk.0.ffn_down.weight",
            "split",
            "axis",
            "1:",
            "float32[8,",
            "12]",
            "->",
            "2",
            "x",
            "[8,",
            "6]",
            "[*.ffn_down.weight=1]",
        ]
        for line in lines
    )
    assert any(line.split()[:3] == ["output_norm.weight", "replicate", "to"] for line in lines)
    code, out, _ = paramio_cli("shard", f"--parameters={st_model}", "--tp=2", *RULES, "--plan", "--json")
    doc = json.loads(out)
    assert doc["version"] == 1
    assert doc["plan"]["tp"] == 2 and len(doc["plan"]["tensors"]) == len(model_tensors())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_shard_then_merge_round_trip(st_model: Path, tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = paramio_cli(
        "shard",
        f"--parameters={st_model}",
        "--tp=2",
        *RULES,
        f"--output={tmp_path / 'tp2'}",
        "--layout=keys",
        "--format=safetensors",
    )
    assert code == 0, err
    assert out.splitlines()[-1] == f"wrote {tmp_path / 'tp2' / 'model.tp.json'}"
    one = ParameterIndex.open(tmp_path / "tp2" / "model.tp2.safetensors")
    assert one["blk.0.conv.shard.1"].shape == (2, 2, 6)
    code, out, err = paramio_cli(
        "merge", f"--parameters={tmp_path / 'tp2'}", f"--output={tmp_path / 'back.safetensors'}"
    )
    assert code == 0, err
    assert (tmp_path / "back.safetensors").read_bytes() == st_model.read_bytes()
    code, _, err = paramio_cli(
        "merge",
        f"--parameters={tmp_path / 'tp2' / 'model.tp.json'}",
        f"--output={tmp_path / 'set.irpa'}",
        "--max-shard-size=1KB",
    )
    assert code == 0, err
    assert len(list(tmp_path.glob("set-*-of-*.irpa"))) > 1


def test_usage_errors_exit_2(st_model: Path, tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (("--tp=2", "--replicate=*", "--plan"), "--parameters=file is required"),
        ((f"--parameters={st_model}", "--replicate=*", "--plan"), "--tp=N (N >= 1) is required"),
        ((f"--parameters={st_model}", "--tp=2", "--split=*.w", "--plan"), "split rule '*.w' must be PATTERN=AXIS"),
        (
            (f"--parameters={st_model}", "--tp=2", "--layout=rows", "--plan"),
            "--layout=rows: expected devices, keys, vllm or sharktank",
        ),
        ((f"--parameters={st_model}", "--tp=2", "--replicate=*"), "--output=folder is required"),
        (
            (f"--parameters={st_model}", "--tp=2", "--replicate=*", "--max-shard-size=lots", "--plan"),
            "--max_shard_size=lots: expected a size",
        ),
    ]
    for args, message in cases:
        code, _, err = paramio_cli("shard", *args)
        assert code == 2, args
        assert message in err and err.count("\n") == 1, err


def test_library_errors_are_one_line_exit_1(st_model: Path, tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = paramio_cli(
        "shard",
        f"--parameters={st_model}",
        "--tp=5",
        "--split=*.ffn_down.weight=1",
        "--replicate=*",
        f"--output={tmp_path / 'o'}",
    )
    assert code == 1
    assert err == (
        "paramio shard: entry 'blk.0.ffn_down.weight': dimension 1 of float32[8, 12] is 12, not a multiple of 5\n"
    )
    (tmp_path / "empty").mkdir()
    code, _, err = paramio_cli("merge", f"--parameters={tmp_path / 'empty'}", f"--output={tmp_path / 'x.irpa'}")
    assert code == 1
    assert err == f"paramio merge: {tmp_path / 'empty'}: folder has no *.tp.json manifests; name one\n"


def test_commands_are_listed(paramio_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = paramio_cli("--help")
    assert code == 0
    assert "  shard " in out and "  merge " in out


def test_losses_of_the_files_format_are_said_once(tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    index = ParameterIndex()
    index.add_splat("z", b"\x01", 64)
    index.add_array("u", np.arange(8, dtype=np.uint8).reshape(2, 4))
    paramio.write_path(tmp_path / "m.irpa", index.values())
    code, _, err = paramio_cli(
        "shard",
        f"--parameters={tmp_path / 'm.irpa'}",
        "--tp=2",
        "--split=u=1",
        "--replicate=*",
        "--format=safetensors",
        f"--output={tmp_path / 'o'}",
    )
    assert code == 0
    assert err.count("warning") == 1 and "'z'" in err and "splat" in err
    code, _, err = paramio_cli(
        "shard",
        f"--parameters={tmp_path / 'm.irpa'}",
        "--tp=2",
        "--split=u=1",
        "--replicate=*",
        "--format=safetensors",
        "--on-loss=error",
        f"--output={tmp_path / 'p'}",
    )
    assert code == 1 and "on_loss='error'" in err
    assert not (tmp_path / "p").exists()
