"""IREE's element types and value syntax (``SHAPExTYPE=VALUE``), byte for byte: the one parser
behind ``paramio create`` (``--data``/``--splat``), ``paramio convert --splat``, ``paramio run
--input`` and `paramio.iree`, and the one table of IREE element type names (`IREE_NAMES`) that
``mlir`` and the result printer use too.

What ``iree_hal_parse_shape_and_element_type``, ``iree_hal_parse_element`` and (for ``--input``)
``iree_hal_parse_buffer_elements`` accept, checked against the 3.13 tools
(``tests/formats/test_elements_oracle.py`` runs them on every case):

* ``SHAPExTYPE`` is split at the **last** ``x``: dims left of it (``2x4``; empty = scalar),
  the type right of it. So ``x``-typed values cannot have a shape (use ``*32``).
* types: ``i1`` (bool, 1 byte), ``iN``/``siN``/``uiN``, ``fN``, ``bfN``, ``cfN`` (N = bits of the
  whole complex number), ``xN``/``*N`` (opaque), ``f8E5M2``, ``f8E4M3FN``, ``f8E5M2FNUZ``,
  ``f8E4M3FNUZ``, ``f8E8M0FNU``. Sizes that are not whole bytes are refused.
* integers (8/16/32/64-bit) parse like C ``strtoll`` base 0: ``0x10`` = 16, ``010`` = 8, trailing
  garbage ignored (``12abc`` = 12); 8/16-bit values are range-checked (``i8``: -128..255,
  ``si8``: -128..127, ``ui8``: 0..255), 32-bit values wrap, 64-bit overflow is an error;
* ``f32``/``f64`` parse like ``strtof``/``strtod`` (hex floats, ``inf``, ``nan``, trailing
  garbage ignored), correctly rounded; ``f16``, ``bf16`` and the f8 types go through f32 and
  IREE's own round-to-nearest-even conversion (its NaN encodings included);
* everything else (bool, complex, opaque, other widths) is hex bytes **in text order**:
  ``x32=CAFEF00D`` is the bytes ``CA FE F0 0D``; the text must be exactly two digits per byte.
* a buffer (``iree-run-module --input``, `parse_buffer_elements`) is split into elements at
  spaces, commas and brackets; one element fills the whole shape, more must match its count,
  and an empty text is all zeros.

Where IREE's own tools disagree with each other (so paramio follows the tool it stands in for):
``iree-create-parameters`` parses ONE element (``i32=1,2`` is 1, ``i32=[5]`` is an error) while
``iree-run-module --input`` parses a list (``1,2`` is two elements, ``[5]`` is 5); ``i32=+5`` is
5 for ``create`` but "read the file ``5``" for ``run`` (``+`` and ``@`` both read raw bytes there);
an empty value is all zeros in both, but ``[ ]`` (separators only) is an underflow error in
``run``; ``i1`` takes hex bytes (``01``), not ``1``, in both.
"""

from __future__ import annotations

import dataclasses
import math
import re
import struct
from fractions import Fraction

from paramio.core.errors import InvalidArgumentError

__all__ = [
    "IREE_NAMES",
    "ElementError",
    "ElementName",
    "ElementType",
    "ShapedType",
    "name_of_dtype",
    "name_of_mlir",
    "parse_buffer_elements",
    "parse_element",
    "parse_element_type",
    "parse_shape_and_type",
]


class ElementError(InvalidArgumentError):
    """A type or value the IREE syntax does not accept; the message says what was expected
    (an `InvalidArgumentError`, so a `ValueError` too)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ElementName:
    """One element type's names: IREE's (``--input``, printed results), MLIR's, paramio's dtype."""

    iree: str
    mlir: str
    dtype: str


#: The one table of element type names, canonical spelling first for each dtype. IREE writes
#: signless integers (``i8``) and names complex types by total bits (``cf64``); MLIR writes
#: ``complex<f32>``; unsigned dtypes print as ``ui8`` in IREE and declare as signless ``i8``.
IREE_NAMES: tuple[ElementName, ...] = (
    ElementName("i1", "i1", "bool"),
    ElementName("i8", "i8", "int8"),
    ElementName("ui8", "ui8", "uint8"),
    ElementName("i16", "i16", "int16"),
    ElementName("ui16", "ui16", "uint16"),
    ElementName("i32", "i32", "int32"),
    ElementName("ui32", "ui32", "uint32"),
    ElementName("i64", "i64", "int64"),
    ElementName("ui64", "ui64", "uint64"),
    ElementName("f16", "f16", "float16"),
    ElementName("bf16", "bf16", "bfloat16"),
    ElementName("f32", "f32", "float32"),
    ElementName("f64", "f64", "float64"),
    ElementName("cf64", "complex<f32>", "complex64"),
    ElementName("cf128", "complex<f64>", "complex128"),
    ElementName("f8E4M3FN", "f8E4M3FN", "float8_e4m3fn"),
    ElementName("f8E5M2", "f8E5M2", "float8_e5m2"),
    ElementName("f8E4M3FNUZ", "f8E4M3FNUZ", "float8_e4m3fnuz"),
    ElementName("f8E5M2FNUZ", "f8E5M2FNUZ", "float8_e5m2fnuz"),
    ElementName("f8E8M0FNU", "f8E8M0FNU", "float8_e8m0fnu"),
    # Other spellings of the same types, read and never written.
    ElementName("si8", "si8", "int8"),
    ElementName("si16", "si16", "int16"),
    ElementName("si32", "si32", "int32"),
    ElementName("si64", "si64", "int64"),
)
_NAME_BY_DTYPE: dict[str, ElementName] = {}
for _n in IREE_NAMES:
    _NAME_BY_DTYPE.setdefault(_n.dtype, _n)
_NAME_BY_IREE = {n.iree: n for n in IREE_NAMES}
_NAME_BY_MLIR = {n.mlir: n for n in IREE_NAMES}


def name_of_dtype(dtype: str) -> ElementName | None:
    """The canonical names of paramio dtype `dtype` (``float32`` -> f32), or None."""
    return _NAME_BY_DTYPE.get(dtype)


def name_of_mlir(mlir: str) -> ElementName | None:
    """The names of the MLIR element type `mlir` (``complex<f32>``, ``si8``), or None."""
    return _NAME_BY_MLIR.get(mlir)


@dataclasses.dataclass(frozen=True, slots=True)
class ElementType:
    """One element type as written on the command line."""

    text: str
    bits: int
    kind: str  # "int", "sint", "uint", "float", "bfloat", "complex", "opaque", "bool", "f8"
    #: paramio dtype name (TENSORv0 metadata), or None where NumPy has no such type.
    dtype: str | None

    @property
    def nbytes(self) -> int:
        return self.bits // 8


@dataclasses.dataclass(frozen=True, slots=True)
class ShapedType:
    shape: tuple[int, ...]
    element: ElementType

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.element.nbytes


# f8 names -> (exp_bits, mantissa_bits, have_inf, have_nan, bias_tweak, nan_as_neg_zero)
_F8 = {
    "f8E5M2": (5, 2, True, True, 0, False),
    "f8E4M3FN": (4, 3, False, True, 0, False),
    "f8E5M2FNUZ": (5, 2, False, True, 1, True),
    "f8E4M3FNUZ": (4, 3, False, True, 1, True),
    "f8E8M0FNU": (0, 0, False, True, 0, False),
}
# Narrow IEEE-like floats converted from f32 with IREE's generic routine.
_NARROW = {"f16": (5, 10, True, True, 0, False), "bf16": (8, 7, True, True, 0, False)}
# Longest prefix first: "si" before "i", "bf"/"cf" before "f".
_PREFIXES = (
    ("si", "sint"),
    ("ui", "uint"),
    ("bf", "bfloat"),
    ("cf", "complex"),
    ("i", "int"),
    ("f", "float"),
    ("x", "opaque"),
    ("*", "opaque"),
)
_INT_WIDTHS = (8, 16, 32, 64)
_MAX_ELEMENT_BYTES = 16


def parse_element_type(text: str) -> ElementType:
    """The element type named `text` (``f32``, ``i8``, ``x32``, ``f8E4M3FN`` ...).

    Raises `ElementError` for unknown names and for sizes that are not whole bytes (IREE:
    "opaque and sub-byte aligned element types cannot currently be used").
    """
    if text in _F8:
        return ElementType(text, 8, "f8", _NAME_BY_IREE[text].dtype)
    for prefix, kind in _PREFIXES:
        if text.startswith(prefix):
            digits = text[len(prefix) :]
            if not re.fullmatch(r"[1-9][0-9]{0,5}", digits):
                break
            bits = int(digits)
            if kind == "int" and bits == 1:
                return ElementType(text, 8, "bool", "bool")
            if bits % 8:
                raise ElementError(
                    f"element type '{text}' is {bits} bits; sub-byte types cannot be used as values "
                    "(use a byte-sized type of the same storage size, e.g. 2xi4 -> 1xi8)"
                )
            name = _NAME_BY_IREE.get(text)
            return ElementType(text, bits, kind, name.dtype if name is not None else None)
    raise ElementError(
        f"unknown element type '{text}'; expected iN, siN, uiN, fN, bfN, cfN, xN, "
        "f8E5M2, f8E4M3FN, f8E5M2FNUZ, f8E4M3FNUZ or f8E8M0FNU"
    )


def parse_shape_and_type(text: str) -> ShapedType:
    """``2x4xf32`` -> shape (2, 4) and type f32, split at the last ``x`` as IREE does."""
    s = text.strip()
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        s = s[1:-1]
    dims_text, sep, type_text = s.rpartition("x")
    if not sep:
        dims_text, type_text = "", s
    shape: list[int] = []
    if dims_text:
        for d in dims_text.split("x"):
            if not d.isdigit():
                raise ElementError(f"invalid shape '{dims_text}' in '{text}'; expected dims like 2x4xf32")
            shape.append(int(d))
    if not type_text:
        raise ElementError(f"'{text}' has no element type; expected SHAPExTYPE such as 4xf32")
    element = parse_element_type(type_text)
    if element.nbytes > _MAX_ELEMENT_BYTES:
        raise ElementError(
            f"element type '{type_text}' is {element.nbytes} bytes; at most {_MAX_ELEMENT_BYTES} fit a pattern"
        )
    return ShapedType(tuple(shape), element)


def parse_element(element: ElementType, text: str) -> bytes:
    """The bytes of one element of type `element` written as `text` (IREE's rules above)."""
    kind, bits = element.kind, element.bits
    if kind in ("int", "sint", "uint") and bits in _INT_WIDTHS:
        return _parse_int(element, text)
    if kind == "float" and bits in (32, 64):
        value = _parse_c_float(text, element)
        if bits == 32:
            return _f32_bits(value, element, text).to_bytes(4, "little")
        double = _to_double(value)
        if double == 0 and isinstance(value, Fraction) and value != 0:
            raise ElementError(f"'{text}' underflows to zero in {element.text}")
        return struct.pack("<d", double)
    if (kind, bits) in (("float", 16), ("bfloat", 16)):
        f32 = _f32_bits(_parse_c_float(text, element), element, text)
        params = _NARROW["f16" if kind == "float" else "bf16"]
        return _truncate_f32(f32, *params).to_bytes(2, "little")
    if kind == "f8":
        f32 = _f32_bits(_parse_c_float(text, element), element, text)
        if element.text == "f8E8M0FNU":
            return bytes([_f32_to_e8m0(f32)])
        return bytes([_truncate_f32(f32, *_F8[element.text])])
    return _parse_hex(element, text)


_SEPARATORS = frozenset(" \t\n\v\f\r,[]")


def parse_buffer_elements(element: ElementType, text: str, count: int) -> bytes:
    """The bytes of `count` elements written as `text`, as ``iree-run-module --input`` reads a
    buffer: elements split at whitespace, commas and brackets; one element fills all `count`;
    otherwise exactly `count` are needed; an empty text is all zeros (IREE 3.13's
    ``iree_hal_parse_buffer_elements``)."""
    size = element.nbytes
    if not text.strip():  # the tool trims the value first: only spaces read as empty
        return bytes(size * count)
    tokens: list[str] = []
    start = -1
    for i, c in enumerate(text):
        if c in _SEPARATORS:
            if start >= 0:
                tokens.append(text[start:i])
                start = -1
        elif start < 0:
            start = i
    if start >= 0:
        tokens.append(text[start:])
    if len(tokens) > count:
        raise ElementError(f"'{text}' has {len(tokens)} values for {count} elements of {element.text}")
    if len(tokens) == 1:
        return parse_element(element, tokens[0]) * count
    if len(tokens) < count:
        raise ElementError(
            f"'{text}' has {len(tokens)} values for {count} elements of {element.text} "
            "(give one value for all, or one per element)"
        )
    return b"".join(parse_element(element, t) for t in tokens)


# -- integers ------------------------------------------------------------------------------

_INT_RE = re.compile(r"\s*([+-]?)(.*)", re.DOTALL)
_DIGITS = {16: "0123456789abcdefABCDEF", 8: "01234567", 10: "0123456789"}


def _c_strtol_magnitude(text: str) -> tuple[int, int] | None:
    """(sign, magnitude) of the longest prefix `strtoll(text, 0)` reads, or None if no digits."""
    m = _INT_RE.match(text)
    assert m is not None
    sign = -1 if m.group(1) == "-" else 1
    body = m.group(2)
    if body[:2] in ("0x", "0X") and body[2:3] and body[2] in _DIGITS[16]:
        base, body = 16, body[2:]
    elif body[:1] == "0":
        base = 8
    else:
        base = 10
    n = 0
    while n < len(body) and body[n] in _DIGITS[base]:
        n += 1
    if n == 0:
        return None
    return sign, int(body[:n], base)


def _parse_int(element: ElementType, text: str) -> bytes:
    """IREE 3.13's ``iree_string_view_atoi_*``: strtol/strtoul into a 16-byte scratch buffer
    (32 for 64-bit), cast to 32 bits for 8/16/32-bit types, then the narrow range checks."""
    bits, kind = element.bits, element.kind
    limit = 32 if bits == 64 else 16
    if len(text) >= limit:
        raise ElementError(f"'{text}' is too long for {element.text} (IREE reads at most {limit - 1} characters)")
    parsed = _c_strtol_magnitude(text)
    if parsed is None:
        raise ElementError(f"'{text}' is not an integer for {element.text}")
    sign, mag = parsed
    if kind == "uint":  # strtoul: "-1" wraps, the magnitude must fit 64 bits
        if mag > (1 << 64) - 1:
            raise ElementError(f"'{text}' is out of range for {element.text}")
        value = (-mag) % (1 << 64) if sign < 0 else mag
    else:  # strtol
        value = sign * mag
        if not -(1 << 63) <= value <= (1 << 63) - 1:
            raise ElementError(f"'{text}' is out of range for {element.text}")
    if bits <= 16:
        as32 = value % (1 << 32)
        if kind != "uint" and as32 >= 1 << 31:
            as32 -= 1 << 32
        hi = (1 << (bits - 1)) - 1 if kind == "sint" else (1 << bits) - 1
        lo = -(1 << (bits - 1)) if kind == "int" else 0 if kind == "uint" else None
        if as32 > hi or (lo is not None and as32 < lo):
            span = f"{lo}..{hi}" if lo is not None else f"at most {hi}"
            raise ElementError(f"'{text}' is out of range for {element.text} ({span})")
    return (value % (1 << bits)).to_bytes(bits // 8, "little")


# -- floats --------------------------------------------------------------------------------

_DEC_RE = re.compile(r"([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
_HEX_RE = re.compile(r"0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?")
_SPECIAL_RE = re.compile(r"(infinity|inf|nan(?:\([0-9A-Za-z_]*\))?)", re.IGNORECASE)


_FLOAT_TEXT_LIMIT = 32


def _parse_c_float(text: str, element: ElementType) -> float | Fraction:
    """The value of the longest prefix `strtod` reads: a Fraction (exact), or a float for
    inf/nan/negative zero. Raises `ElementError` if no number starts the text."""
    if len(text) >= _FLOAT_TEXT_LIMIT:
        raise ElementError(
            f"'{text}' is too long for {element.text} (IREE reads at most {_FLOAT_TEXT_LIMIT - 1} characters)"
        )
    s = text.lstrip()
    sign = -1 if s[:1] == "-" else 1
    if s[:1] in "+-" and s:
        s = s[1:]
    sm = _SPECIAL_RE.match(s)
    if sm:
        word = sm.group(1).lower()
        return math.copysign(math.inf, sign) if word.startswith("inf") else math.copysign(math.nan, sign)
    hm = _HEX_RE.match(s)
    if hm and (hm.group(1) or hm.group(2)):
        whole, frac = hm.group(1), hm.group(2) or ""
        mant = int((whole + frac) or "0", 16)
        exp = int(hm.group(3) or "0") - 4 * len(frac)
        value = Fraction(mant) * (Fraction(2) ** exp)
    else:
        dm = _DEC_RE.match(s)
        if dm is None or not (dm.group(1) or dm.group(2)):
            if s[:1] == "0":  # "0x" without digits reads as 0
                value = Fraction(0)
            else:
                raise ElementError(f"'{text}' is not a number for {element.text}")
        else:
            whole, frac = dm.group(1), dm.group(2) or ""
            exp = int(dm.group(3) or "0") - len(frac)
            if exp > 400 and int(whole + frac or "0"):
                return math.copysign(math.inf, sign)
            if exp < -800:
                value = Fraction(0) if exp < -1200 else Fraction(int(whole + frac or "0")) / (10**-exp)
            else:
                value = Fraction(int(whole + frac or "0")) * Fraction(10) ** exp
    if value == 0:
        return math.copysign(0.0, sign)
    return value if sign > 0 else -value


def _to_double(value: float | Fraction) -> float:
    if isinstance(value, float):
        return value
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


_F32_MAX_EDGE = Fraction(2) ** 128 - Fraction(2) ** 103  # halfway between max f32 and 2**128


def _round_to_f32_bits(value: float | Fraction) -> int:
    """The f32 nearest to `value` (ties to even), as `strtof` rounds: from the exact value,
    not through a double, so no double rounding."""
    if isinstance(value, float):
        return (
            int.from_bytes(struct.pack("<f", value), "little")
            if not math.isnan(value)
            else (0xFFC00000 if math.copysign(1.0, value) < 0 else 0x7FC00000)
        )
    neg = value < 0
    mag = -value if neg else value
    sign_bit = 0x80000000 if neg else 0
    if mag >= _F32_MAX_EDGE:
        return sign_bit | 0x7F800000
    # Scale into [2**23, 2**24) for normals; subnormals have a fixed exponent of -149.
    e = mag.numerator.bit_length() - mag.denominator.bit_length()
    if Fraction(2) ** e > mag:
        e -= 1
    e = max(e, -126)
    scaled = mag / Fraction(2) ** (e - 23)
    q, r = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * r
    if twice > scaled.denominator or (twice == scaled.denominator and q & 1):
        q += 1
    if q >= 1 << 24:
        q >>= 1
        e += 1
    if q < 1 << 23:  # subnormal (or zero)
        return sign_bit | q
    if e > 127:
        return sign_bit | 0x7F800000
    return sign_bit | ((e + 127) << 23) | (q - (1 << 23))


def _f32_bits(value: float | Fraction, element: ElementType | None = None, text: str = "") -> int:
    bits = _round_to_f32_bits(value)
    if isinstance(value, Fraction) and value != 0 and bits & 0x7FFFFFFF == 0:
        # strtof sets ERANGE on underflow to zero and IREE rejects that
        raise ElementError(f"'{text}' underflows to zero in {element.text if element else 'f32'}")
    return bits


def _truncate_f32(
    u32: int, exp_bits: int, mantissa_bits: int, have_inf: bool, have_nan: bool, bias_tweak: int, nan_as_neg_zero: bool
) -> int:
    """IREE's ``iree_math_truncate_f32_to_bits_rounding_to_nearest_even``, bit for bit."""
    d_sign_shift = exp_bits + mantissa_bits
    d_sign_mask = 1 << d_sign_shift
    d_exp_mask = ((1 << exp_bits) - 1) << mantissa_bits
    d_mant_mask = (1 << mantissa_bits) - 1
    d_bias = (1 << (exp_bits - 1)) - 1 + bias_tweak
    f_sign = u32 & 0x80000000
    d_sign = f_sign >> (31 - d_sign_shift)
    f_exp = u32 & 0x7F800000
    f_mant = u32 & 0x7FFFFF
    d_exp = 0
    d_mant = 0
    gen_nan = gen_inf = False
    if f_exp >= 0x7F800000:
        d_exp = d_exp_mask
        gen_nan, gen_inf = bool(f_mant), not f_mant
    elif f_exp == 0:
        if exp_bits == 8:
            shift = 23 - mantissa_bits
            d_mant = _bias_even(f_mant, shift) >> shift
    else:
        a_exp = (f_exp >> 23) - 127
        if a_exp > (1 << (exp_bits - 1)) - int(have_inf):
            gen_inf = True
        elif a_exp + d_bias <= 0:
            shift = 23 - mantissa_bits - a_exp + (1 - d_bias)
            if shift < 0 or shift > 23:  # IREE 3.13: a 24-bit shift is zero, not rounded
                d_mant = 0
            else:
                d_mant = _bias_even((1 << 23) + f_mant, shift) >> shift
        else:
            shift = 23 - mantissa_bits
            biased = _bias_even(f_mant, shift)
            if biased > 0x7FFFFF:
                biased = 0
                a_exp += 1
            d_exp = (a_exp + d_bias) << mantissa_bits
            d_mant = biased >> shift
            if not have_inf and d_exp > d_exp_mask:
                gen_nan = True
    if gen_inf:
        if have_inf:
            return d_sign | d_exp_mask
        if have_nan:
            gen_nan = True
        else:
            return d_sign | d_exp_mask | d_mant_mask
    if gen_nan:
        if not have_nan:
            return 0
        if nan_as_neg_zero:
            return d_sign_mask
        return d_sign | d_exp_mask | d_mant_mask
    if nan_as_neg_zero and d_exp == 0 and d_mant == 0:
        return 0
    return d_sign | d_exp | d_mant


def _bias_even(value: int, shift: int) -> int:
    even_bit = 1 << shift
    odd_bit = even_bit >> 1
    return value + (odd_bit if value & even_bit else odd_bit - 1)


def _f32_to_e8m0(u32: int) -> int:
    """IREE's ``iree_math_f32_to_f8e8m0fnu``: a power-of-two scale, rounded in the log domain."""
    value = struct.unpack("<f", u32.to_bytes(4, "little"))[0]
    if not math.isfinite(value):
        return 0xFF
    if value <= 0.0:
        return 0
    normalized, exp = math.frexp(value)
    biased = exp - (1 if normalized < 0.75 else 0) + 127
    return 0 if biased < 0 else 0xFF if biased > 0xFF else biased


# -- hex -----------------------------------------------------------------------------------


def _parse_hex(element: ElementType, text: str) -> bytes:
    want = 2 * element.nbytes
    if len(text) != want or not re.fullmatch(r"[0-9a-fA-F]*", text):
        raise ElementError(
            f"'{text}' is not a {element.text} value; expected exactly {want} hex digits (bytes in text order)"
        )
    return bytes.fromhex(text)
