"""IRPA's `check_structure` for `paramio.formats.verify`: data sharing bytes with the archive.

IREE's parser accepts an archive whose data entries cover its own header, entry table or
metadata segment (`paramio.formats.overlaps`); reading it is harmless, an in-place write into
such an entry destroys the archive. Each archive the contents were read from (one file, or
every shard of a sharded set; the set's JSON manifest has no such structure) is checked
against its own entries.
"""

from __future__ import annotations

from paramio.formats.inputs import open_input
from paramio.formats.irpa.reader import structure_regions
from paramio.formats.irpa.sharded import is_manifest_path
from paramio.formats.overlaps import find_overlaps
from paramio.formats.registry import FormatContents
from paramio.formats.verify import Check, Problem

__all__ = ["check_structure"]


def check_structure(contents: FormatContents) -> list[Problem]:
    """Data entries sharing bytes with the header, entry table or metadata segment of the
    archive holding them. Raises `FormatError` when an archive's headers do not parse."""
    problems: list[Problem] = []
    # The archives are read through the sources the entries hold: a URL's path in `contents`
    # is the one shown (a presigned URL's query redacted), which cannot be opened again.
    held = {e.source.name: e.source for e in contents.entries if e.source is not None}
    for path in contents.paths:
        if is_manifest_path(path):
            continue
        source = held.get(path)
        opened = source is None
        if source is None:
            source = open_input(path)  # `structure_regions` reads the headers only, also from a URL
        try:
            found = find_overlaps(source, contents.entries, structure_regions(source), with_entries=False)
        finally:
            if opened:
                source.close()
        problems += [
            Problem(
                Check.STRUCTURE,
                o.message + "; an in-place write into it would corrupt the archive",
                path,
                o.key,
                o.offset,
            )
            for o in found
        ]
    return problems
