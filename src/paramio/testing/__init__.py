"""Test suites shipped with paramio, for code that extends it (zarr's ``StoreTests`` idea).

`SourceTests` is the byte-source conformance suite: subclass it in a pytest module, give it a
`make_source`, and every behaviour the format readers rely on is checked against your source.
`FormatTests` is the format conformance suite: subclass it, set `format_name` to a registered
format, and everything conversion, the index and the CLI rely on is checked through its contract.
`check_bulk_agrees` and `damaged` hold a reader's bulk path equal to its reference reader
(`FormatTests` runs them where a format declares `read_reference`).
Needs pytest; hypothesis for the bulk-path property test only.
"""

from __future__ import annotations

from paramio.testing.bulk import check_bulk_agrees, damaged
from paramio.testing.formats import FormatTests
from paramio.testing.sources import SourceTests

__all__ = ["FormatTests", "SourceTests", "check_bulk_agrees", "damaged"]
