"""``paramio dump --metadata`` / ``--json``: file-level metadata, with gguf-py and safetensors
as the oracles for what the files hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def vocab_gguf(tmp_path: Path) -> Path:
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "vocab.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("g.weight", np.arange(8, dtype=np.float32))
    w.add_token_list([f"t{i}" for i in range(100)])
    w.add_uint32("x.count", 7)
    w.add_string("x.evil", "a\nb\x1b[31m")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.interop
def test_gguf_key_values_in_text(vocab_gguf: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    import gguf

    plain = paramio_cli("dump", str(vocab_gguf))[1]
    code, out, err = paramio_cli("dump", str(vocab_gguf), "--metadata")
    assert (code, err) == (0, "") and out.startswith(plain)  # the listing first, unchanged
    meta = out[len(plain) :].splitlines()
    oracle = [k for k in gguf.GGUFReader(str(vocab_gguf)).fields if not k.startswith("GGUF.")]
    assert meta[0] == f"// GGUF metadata of scope <global> ({len(oracle)} key/values)"
    assert [line.split(":")[0].split(" = ")[0] for line in meta[1:-1]] == oracle
    assert "general.architecture: string = 'llama'" in meta and "x.count: u32 = 7" in meta
    tokens = next(line for line in meta if line.startswith("tokenizer.ggml.tokens"))
    assert (
        tokens
        == "tokenizer.ggml.tokens: array[string] (100 items) = [" + ", ".join(f"'t{i}'" for i in range(16)) + ", ...]"
    )
    assert "x.evil: string = 'a\\nb\\x1b[31m'" in meta and "\x1b" not in out
    full = paramio_cli("dump", str(vocab_gguf), "--metadata", "--metadata_items=0")[1]
    assert "'t99'" in full and "'t99'" not in out


@pytest.mark.interop
def test_json_carries_attributes_summarised(vocab_gguf: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(paramio_cli("dump", f"--parameters=m={vocab_gguf}", "--json", "--metadata_items=4")[1])
    assert doc["version"] == 1 and [s["scope"] for s in doc["scopes"]] == ["m"]
    kv = doc["scopes"][0]["attributes"]["gguf.kv"]
    assert kv["x.count"] == {"type": "u32", "value": 7}
    assert kv["tokenizer.ggml.tokens"]["value"] == {"count": 100, "head": ["t0", "t1", "t2", "t3"], "truncated": True}
    full = json.loads(paramio_cli("dump", str(vocab_gguf), "--json", "--metadata_items=0")[1])
    assert len(full["scopes"][0]["attributes"]["gguf.kv"]["tokenizer.ggml.tokens"]["value"]) == 100


@pytest.mark.interop
def test_safetensors_metadata(tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    from safetensors.numpy import save_file

    path = tmp_path / "m.safetensors"
    save_file({"a": np.ones(2, np.float32)}, str(path), metadata={"format": "pt", "note": "x"})
    out = paramio_cli("dump", f"--parameters=s={path}", "--metadata")[1]
    meta = out[out.index("// safetensors") :].splitlines()
    assert meta[0] == "// safetensors __metadata__ of scope `s` (2 keys)"
    assert sorted(meta[1:-1]) == ["format = 'pt'", "note = 'x'"] and meta[-1] == ""
    doc = json.loads(paramio_cli("dump", str(path), "--json")[1])
    assert doc["scopes"][0]["attributes"] == {"safetensors.metadata": {"format": "pt", "note": "x"}}


@pytest.mark.interop
def test_irpa_text_stays_irees_without_the_flag(
    tmp_path: Path, vocab_gguf: Path, paramio_cli, run_tool, iree_tool
) -> None:  # type: ignore[no-untyped-def]
    gguf_listing = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={vocab_gguf}"]).stdout
    assert paramio_cli("dump", str(vocab_gguf)) == (0, gguf_listing, "")  # GGUF: IREE's text too
    exact = tmp_path / "exact.irpa"  # IREE's own bytes: no attributes entry
    assert paramio_cli("convert", str(vocab_gguf), f"--output={exact}", "--quiet", "--typed=false")[0] == 0
    r = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={exact}"])
    assert paramio_cli("dump", str(exact)) == (0, r.stdout, "")
    assert paramio_cli("dump", str(exact), "--metadata") == (0, r.stdout, "")  # nothing to add
    # paramio's default conversion keeps the key/values in a SKIP entry IREE drops: IREE lists
    # the same rows as paramio, which folds the record back and shows it with --metadata.
    carried = tmp_path / "carried.irpa"
    assert paramio_cli("convert", str(vocab_gguf), f"--output={carried}", "--quiet")[0] == 0
    theirs = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={carried}"]).stdout
    mine = paramio_cli("dump", str(carried))[1]
    assert mine == theirs and "__paramio_attributes__" not in theirs
    out = paramio_cli("dump", str(carried), "--metadata")[1]
    assert out.startswith(mine) and "x.count: u32 = 7" in out


def test_a_registered_format_s_metadata_is_listed_by_its_contract() -> None:
    """Where a format's file-level metadata lives is its contract's `file_metadata`, not a key
    the listing knows: a new format's metadata is listed as GGUF's is, others stay attributes."""
    from paramio.cli.metadata import format_metadata
    from paramio.formats.contract import FileMetadata, Format, register_format, unregister_format
    from paramio.formats.conversion import Prepared

    def unused(*args: object, **kwargs: object) -> None:
        raise AssertionError("not called")

    register_format(
        Format(
            name="kvfmt",
            extensions=(".kvfmt",),
            read_path=unused,  # type: ignore[arg-type]
            write_path=unused,
            prepare=lambda entries, attributes, options: Prepared(entries, attributes, []),
            file_metadata=FileMetadata("kvfmt.pairs", "kvfmt pairs", "pairs"),
        )
    )
    try:
        text = format_metadata(
            "", {"kvfmt.pairs": {"a": "x", "n": {"type": "u32", "value": 3}}, "kvfmt.other": {"b": 1}}
        )
    finally:
        unregister_format("kvfmt")
    assert text.splitlines() == [
        "// kvfmt pairs of scope <global> (2 pairs)",
        "a = 'x'",
        "n: u32 = 3",
        "// attribute `kvfmt.other` of scope <global>",
        '{"b": 1}',
        "",
    ]
