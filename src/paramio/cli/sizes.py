"""Byte sizes on the command line: ``5GB``, ``500MiB``, ``4096``."""

from __future__ import annotations

import re

from paramio.cli.errors import UsageError

__all__ = ["parse_size"]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
    "k": 1 << 10,
    "m": 1 << 20,
    "g": 1 << 30,
    "t": 1 << 40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(flag: str, text: str) -> int:
    """Bytes in `text`: decimal units as Hugging Face (``5GB`` = 5*10**9), binary ``GiB``, and
    gguf-split's single letters (``M``, ``G``: binary). Raises `UsageError` naming `flag`."""
    m = _SIZE.match(text)
    unit = _UNITS.get(m[2].lower()) if m else None
    if m is None or unit is None:
        raise UsageError(f"--{flag}={text}: expected a size such as 4096, 500MB, 2GiB or 5G")
    value = int(float(m[1]) * unit)
    if value < 1:
        raise UsageError(f"--{flag}={text}: the size must be at least one byte")
    return value
