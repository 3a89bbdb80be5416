"""``file://`` URLs are local paths under every rule plain paths follow: files named inside a
file (shards, external entries) must resolve, symlinks followed, inside its folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paramio.core.errors import SourceError
from paramio.formats.registry import write_path
from paramio.index.index import ParameterIndex


def _set_with_a_shard_linking_out(tmp_path: Path) -> Path:
    outside, folder = tmp_path / "outside", tmp_path / "model"
    outside.mkdir()
    folder.mkdir()
    index = ParameterIndex()
    index.add_array("w", np.arange(4, dtype=np.float32))
    write_path(outside / "secret.safetensors", list(index.entries), format="safetensors")
    (folder / "m-00001-of-00001.safetensors").symlink_to(outside / "secret.safetensors")
    manifest = folder / "m.safetensors.index.json"
    manifest.write_text(json.dumps({"metadata": {}, "weight_map": {"w": "m-00001-of-00001.safetensors"}}))
    return manifest


@pytest.mark.parametrize("as_url", [False, True])
def test_set_member_linking_out_of_its_folder_is_refused(tmp_path: Path, as_url: bool) -> None:
    manifest = _set_with_a_shard_linking_out(tmp_path)
    given = manifest.as_uri() if as_url else str(manifest)
    with pytest.raises(SourceError, match="outside"):
        ParameterIndex.open(given)
    # The folder the link points into, allowed explicitly, is read, in both spellings.
    opened = ParameterIndex.open(given, allow_external=[tmp_path / "outside"])
    assert opened["w"].to_numpy().tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("as_url", [False, True])
def test_irpa_external_entry_linking_out_is_refused(tmp_path: Path, as_url: bool) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hardening"))
    import specimens

    outside, folder = tmp_path / "outside", tmp_path / "model"
    outside.mkdir()
    folder.mkdir()
    (outside / "secret.bin").write_bytes(b"secret!!")
    (folder / "data.bin").symlink_to(outside / "secret.bin")
    irpa = specimens.irpa_external(folder / "m.irpa", b"data.bin")
    given = irpa.as_uri() if as_url else str(irpa)
    with pytest.raises(SourceError, match="outside"):
        ParameterIndex.open(given)["ext"].read()


def test_file_url_output_is_the_local_path(tmp_path: Path) -> None:
    """Writing to ``file:///dir/o.irpa`` wrote nowhere: it was taken as a relative path
    ``file:/dir/o.irpa`` whose folder does not exist."""
    index = ParameterIndex()
    index.add_array("w", np.arange(4, dtype=np.float32))
    target = tmp_path / "o.irpa"
    write_path(target.as_uri(), list(index.entries), format="irpa")
    assert ParameterIndex.open(str(target))["w"].to_numpy().tolist() == [0, 1, 2, 3]
