"""``paramio create``: ``iree-create-parameters`` with the same flags and the same bytes.

Entries: every ``--splat`` first, then every ``--data``, each group in flag order (IREE's
order). Data is placed at ``--alignment`` (default 64). Without ``--typed`` the archive is
byte-identical to IREE's; ``--typed`` adds ``TENSORv0`` dtype/shape metadata where the element
type has a NumPy name. Unlike IREE 3.13, ``--data=name=SHAPExTYPE=VALUE`` fills the whole entry
with the value for every element size (IREE fails on elements wider than one byte).
"""

from __future__ import annotations

import dataclasses
import sys

from paramio import ParameterSpec, create_parameters  # the archive's own declarations (IREE's create)
from paramio.cli.create_flags import DESCRIPTION, FLAGS, main
from paramio.cli.errors import UsageError
from paramio.cli.flags import ParsedFlags
from paramio.core.splats import SPLAT_PATTERN_LENGTHS_TEXT, splat_fault
from paramio.core.tensor import TensorInfo
from paramio.formats.contract import ARCHIVE, archive_format, format_name_for_path
from paramio.formats.elements import ElementError, ShapedType, parse_element, parse_shape_and_type
from paramio.formats.targets import resolve_output
from paramio.formats.text import escape, escape_keys

__all__ = ["DESCRIPTION", "FLAGS", "CreateSpec", "main", "run", "parse_spec"]


@dataclasses.dataclass(frozen=True, slots=True)
class CreateSpec:
    """One ``--splat``/``--data`` declaration, parsed."""

    name: str
    shaped: ShapedType
    pattern: bytes  # one element, or b"\0" when no value was given

    @property
    def length(self) -> int:
        return self.shaped.nbytes

    def parameter(self, *, splat: bool, typed: bool) -> ParameterSpec:
        """The library's declaration; `typed` records dtype and shape where the element type
        has a NumPy name."""
        dtype = self.shaped.element.dtype
        tensor = TensorInfo(dtype, self.shaped.shape) if typed and dtype is not None else None
        if splat:
            return ParameterSpec.splat(self.name, self.pattern, self.length, tensor=tensor)
        return ParameterSpec.data(self.name, self.length, self.pattern, tensor=tensor)


def parse_spec(flag: str, text: str) -> CreateSpec:
    """``name=SHAPExTYPE[=value]`` split as IREE splits it (name before the first ``=``)."""
    name, sep, rest = text.partition("=")
    if not sep or not rest.strip():
        raise UsageError(f"--{flag}={text}: expected name=SHAPExTYPE[=value], e.g. --{flag}=w=4xf32=1.5")
    shape_text, has_value, value = rest.partition("=")
    try:
        shaped = parse_shape_and_type(shape_text)
        pattern = parse_element(shaped.element, value) if has_value and value != "" else b"\0"
    except ElementError as exc:
        raise UsageError(f"--{flag}={text}: {exc}") from None
    return CreateSpec(name, shaped, pattern)


def _refuse_repeated_names(declared: list[tuple[str, str]]) -> None:
    """Two entries under one name would both be written (IREE's tool does so), and every reader,
    IREE's runtime included, finds only the first: refused, as the Python index and `convert`
    refuse a repeated key."""
    seen: dict[str, str] = {}
    for flag, name in declared:
        if name in seen:
            raise UsageError(
                f"--{flag}={escape(name)}=...: '{escape(name)}' is already declared by --{seen[name]}; "
                "an archive would hold two entries under one name and readers find only the first "
                "(give each entry its own name)"
            )
        seen[name] = flag


def run(flags: ParsedFlags) -> int:
    if flags.positional:
        raise UsageError(f"unexpected argument '{flags.positional[0]}'; declare parameters with --data= or --splat=")
    output = flags.text("output")
    if not output:
        raise UsageError(f"--output=file{archive_format().extension} is required")
    if format_name_for_path(output) not in (None, ARCHIVE):  # create writes IREE's archive only
        ext = archive_format().extension
        raise UsageError(f"--output={output}: create writes {ARCHIVE.upper()}; write {ext}, then use paramio convert")
    alignment = flags.number("alignment")
    if alignment < 1 or alignment & (alignment - 1):
        raise UsageError(f"--alignment={alignment}: expected a power of two such as 64")
    typed = flags.on("typed")
    splats = [parse_spec("splat", t) for t in flags.many("splat")]
    datas = [parse_spec("data", t) for t in flags.many("data")]
    _refuse_repeated_names([("splat", s.name) for s in splats] + [("data", d.name) for d in datas])
    for s in splats:
        if splat_fault(len(s.pattern)) is not None:
            raise UsageError(
                f"--splat={s.name}=...: a {len(s.pattern)}-byte element cannot be a splat pattern "
                f"({SPLAT_PATTERN_LENGTHS_TEXT} bytes)"
            )
    # IREE's tool's order: every splat, then every data declaration, each in flag order.
    parameters = [s.parameter(splat=True, typed=typed) for s in splats]
    parameters += [d.parameter(splat=False, typed=typed) for d in datas]
    from paramio.formats.progress import ByteProgress

    streamed = resolve_output(output).streamed  # refuses a directory, socket or block device up front
    total = sum(d.length for d in datas)  # zero data is ticked at once (left sparse)
    with ByteProgress(total, f"writing {escape(output)}", quiet=flags.on("quiet")) as bar:
        create_parameters(output, parameters, alignment=alignment, progress=bar.callback)
    if not flags.on("quiet") and not streamed:  # a stream cannot be read back for the listing
        from paramio.formats.registry import read_path
        from paramio.index.dump import format_dump

        sys.stdout.write(format_dump(read_path(output, format=ARCHIVE).entries, escape=escape_keys))
    return 0
