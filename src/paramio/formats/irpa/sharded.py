"""IRPA sets: ``model-00001-of-00004.irpa`` ... plus a manifest ``model.irpa.index.json``.

IREE has no sharding of its own beyond merging several files into one scope at load time
(``--parameters=model=a.irpa --parameters=model=b.irpa``). A set is exactly that, plus a
manifest shaped like Hugging Face's safetensors index, so tools can find every member::

    {"metadata": {"total_size": N, "format": "irpa", "paramio.set": STAMP}, "weight_map": {key: file}}

Each member is an ordinary archive IREE loads on its own. File-level attributes live in the
first member; every member holds the set's stamp in its attributes record (a SKIP entry that
IREE's parser drops, so IREE sees only the model's entries). This module is only what the
IRPA format adds to `paramio.formats.sets`, which reads, checks, finds, writes and replaces
sets for every format: `LAYOUT`.
"""

from __future__ import annotations

from collections.abc import Mapping

from paramio.core.source import ByteSource
from paramio.formats.contract import FormatContents, SetLayout
from paramio.formats.sets import STAMP_KEY
from paramio.sources.paths import AllowExternal

__all__ = ["LAYOUT", "MANIFEST_SUFFIX", "is_manifest_path"]

MANIFEST_SUFFIX = ".irpa.index.json"
FILE_SUFFIX = ".irpa"


def is_manifest_path(path: str) -> bool:
    return path.lower().endswith(MANIFEST_SUFFIX)


def _read_member(
    source: ByteSource, path: str, *, writable: bool = False, allow_external: AllowExternal = None, strict: bool = False
) -> FormatContents:
    from paramio.formats.irpa.reader import read_source

    return read_source(source, path, writable=writable, allow_external=allow_external)


def _put_stamp(attributes: Mapping[str, object] | None, stamp: str) -> dict[str, object]:
    return {**(attributes or {}), STAMP_KEY: stamp}


def _take_stamp(attributes: dict[str, object]) -> str | None:
    stamp = attributes.get(STAMP_KEY)
    if not isinstance(stamp, str):
        return None
    del attributes[STAMP_KEY]
    return stamp


def _join_attributes(members: list[dict[str, object]], manifest: dict[str, object] | None) -> dict[str, object]:
    attributes: dict[str, object] = {}
    for part in members:
        for k, v in part.items():
            attributes.setdefault(k, v)
    return attributes


LAYOUT = SetLayout(
    member_suffix=FILE_SUFFIX,
    manifest_suffix=MANIFEST_SUFFIX,
    read_member=_read_member,
    put_stamp=_put_stamp,
    take_stamp=_take_stamp,
    join_attributes=_join_attributes,
    manifest_metadata={"format": "irpa"},
)
