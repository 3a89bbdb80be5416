"""Sharded checkpoints: Hugging Face's ``model.safetensors.index.json`` convention.

The index is ``{"metadata": {"total_size": N, ...}, "weight_map": {tensor: shard file}}`` next to
shards named ``model-00001-of-00003.safetensors``, as ``save_pretrained`` writes them and
``from_pretrained`` reads them. paramio adds the set's stamp (``paramio.set``) to the index's
``metadata`` and to every shard's ``__metadata__`` (string to string, as the format wants), so a
set opened while it is being replaced never mixes two saves; tools that do not know the key
ignore it. This module is only what safetensors adds to `paramio.formats.sets`, which reads,
checks, finds, writes and replaces sets for every format: `LAYOUT`.
"""

from __future__ import annotations

from collections.abc import Mapping

from paramio.core.source import ByteSource
from paramio.formats.contract import FormatContents, SetLayout
from paramio.formats.safetensors.layout import ATTRIBUTE_INDEX_METADATA, ATTRIBUTE_METADATA, FILE_SUFFIX, INDEX_SUFFIX
from paramio.formats.sets import STAMP_KEY
from paramio.sources.paths import AllowExternal

__all__ = ["LAYOUT", "file_contents"]


def file_contents(source: ByteSource, path: str | None = None, *, bulk: bool = True) -> FormatContents:
    """One safetensors file as `FormatContents` (``__metadata__`` as ``safetensors.metadata``);
    `bulk` as `paramio.formats.safetensors.reader.read_file`."""
    from paramio.formats.safetensors.reader import read_file

    f = read_file(source, bulk=bulk)
    attributes: dict[str, object] = {}
    if f.metadata is not None:
        attributes[ATTRIBUTE_METADATA] = dict(f.metadata)
    return FormatContents(f.entries, attributes, [path if path is not None else source.name])


def _read_member(
    source: ByteSource, path: str, *, writable: bool = False, allow_external: AllowExternal = None, strict: bool = False
) -> FormatContents:
    return file_contents(source, path)


def _put_stamp(attributes: Mapping[str, object] | None, stamp: str) -> dict[str, object]:
    out = dict(attributes or {})
    meta = out.get(ATTRIBUTE_METADATA)
    out[ATTRIBUTE_METADATA] = {**(meta if isinstance(meta, Mapping) else {}), STAMP_KEY: stamp}
    return out


def _take_stamp(attributes: dict[str, object]) -> str | None:
    meta = attributes.get(ATTRIBUTE_METADATA)
    if not isinstance(meta, dict) or not isinstance(meta.get(STAMP_KEY), str):
        return None
    stamp = meta.pop(STAMP_KEY)
    if not meta:
        del attributes[ATTRIBUTE_METADATA]  # only the stamp: the shard had no metadata of its own
    return str(stamp)


def _join_attributes(members: list[dict[str, object]], manifest: dict[str, object] | None) -> dict[str, object]:
    attributes: dict[str, object] = {}
    for part in members:
        if ATTRIBUTE_METADATA in part:
            attributes[ATTRIBUTE_METADATA] = part[ATTRIBUTE_METADATA]
            break
    if manifest is not None:
        attributes[ATTRIBUTE_INDEX_METADATA] = dict(manifest)
    return attributes


LAYOUT = SetLayout(
    member_suffix=FILE_SUFFIX,
    manifest_suffix=INDEX_SUFFIX,
    read_member=_read_member,
    put_stamp=_put_stamp,
    take_stamp=_take_stamp,
    join_attributes=_join_attributes,
)
