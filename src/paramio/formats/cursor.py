"""The one bounded reader every binary parse goes through.

Every read checks ``offset + n <= end`` first, and every count read from a file is checked
against the bytes that remain before anything is allocated for it. A truncated or hostile
file therefore always ends in a `TruncatedError` naming the file and offset, never in an
`IndexError`, a `struct.error` or a huge allocation.
"""

from __future__ import annotations

import struct

from paramio.core.errors import FormatError, TruncatedError

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I8 = struct.Struct("<b")
_I16 = struct.Struct("<h")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")


class Cursor:
    """A position in a read-only buffer that refuses to step outside ``[start, end)``."""

    __slots__ = ("buf", "end", "key", "path", "pos")

    def __init__(
        self,
        buf: memoryview | bytes,
        *,
        path: str | None = None,
        pos: int = 0,
        end: int | None = None,
    ) -> None:
        self.buf = memoryview(buf).cast("B") if not isinstance(buf, bytes) else memoryview(buf)
        self.end = len(self.buf) if end is None else min(end, len(self.buf))
        self.pos = pos
        self.path = path
        self.key: str | None = None

    @property
    def remaining(self) -> int:
        return max(0, self.end - self.pos)

    def error(self, message: str, *, offset: int | None = None, truncated: bool = False) -> FormatError:
        cls = TruncatedError if truncated else FormatError
        return cls(message, path=self.path, key=self.key, offset=self.pos if offset is None else offset)

    def need(self, n: int, what: str) -> None:
        """Raise unless `n` more bytes are available."""
        if n < 0 or self.pos + n > self.end:
            raise self.error(
                f"{what} needs {n} bytes but only {self.remaining} remain (data ends at {self.end:#x})",
                truncated=True,
            )

    def need_count(self, count: int, item_size: int, what: str) -> None:
        """Check a claimed element count against the bytes left, before allocating for it."""
        if count < 0 or count * max(item_size, 1) > self.remaining:
            raise self.error(
                f"{what} claims {count} items of at least {item_size} bytes but only {self.remaining} bytes remain",
                truncated=True,
            )

    def take(self, n: int, what: str = "value") -> memoryview:
        self.need(n, what)
        view = self.buf[self.pos : self.pos + n]
        self.pos += n
        return view

    def skip(self, n: int, what: str = "padding") -> None:
        self.need(n, what)
        self.pos += n

    def seek(self, pos: int, what: str = "structure") -> None:
        if pos < 0 or pos > self.end:
            raise self.error(f"{what} at {pos:#x} lies outside the data (ends at {self.end:#x})", truncated=True)
        self.pos = pos

    def _unpack(self, fmt: struct.Struct, what: str) -> int | float:
        self.need(fmt.size, what)
        (value,) = fmt.unpack_from(self.buf, self.pos)
        self.pos += fmt.size
        return value  # type: ignore[no-any-return]

    def u8(self, what: str = "u8") -> int:
        return int(self._unpack(_U8, what))

    def u16(self, what: str = "u16") -> int:
        return int(self._unpack(_U16, what))

    def u32(self, what: str = "u32") -> int:
        return int(self._unpack(_U32, what))

    def u64(self, what: str = "u64") -> int:
        return int(self._unpack(_U64, what))

    def i8(self, what: str = "i8") -> int:
        return int(self._unpack(_I8, what))

    def i16(self, what: str = "i16") -> int:
        return int(self._unpack(_I16, what))

    def i32(self, what: str = "i32") -> int:
        return int(self._unpack(_I32, what))

    def i64(self, what: str = "i64") -> int:
        return int(self._unpack(_I64, what))

    def f32(self, what: str = "f32") -> float:
        return float(self._unpack(_F32, what))

    def f64(self, what: str = "f64") -> float:
        return float(self._unpack(_F64, what))

    def sub(self, offset: int, length: int, what: str) -> Cursor:
        """A cursor over ``[offset, offset + length)`` of the same buffer, bounds-checked."""
        if offset < 0 or length < 0 or offset + length > self.end:
            raise self.error(
                f"{what} spans {offset:#x}..{offset + length:#x} but the data ends at {self.end:#x}",
                offset=offset,
                truncated=True,
            )
        c = Cursor(self.buf, path=self.path, pos=offset, end=offset + length)
        c.key = self.key
        return c
