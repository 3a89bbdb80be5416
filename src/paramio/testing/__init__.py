"""Test suites shipped with paramio, for code that extends it (zarr's ``StoreTests`` idea).

`SourceTests` is the byte-source conformance suite: subclass it in a pytest module, give it a
`make_source`, and every behaviour the format readers rely on is checked against your source.
Needs pytest (and hypothesis for nothing: the data are fixed and deterministic).
"""

from __future__ import annotations

from paramio.testing.sources import SourceTests

__all__ = ["SourceTests"]
