"""``paramio create``: ``iree-create-parameters`` with the same flags and the same bytes.

Entries: every ``--splat`` first, then every ``--data``, each group in flag order (IREE's
order). Data is placed at ``--alignment`` (default 64). Without ``--typed`` the archive is
byte-identical to IREE's; ``--typed`` adds ``TENSORv0`` dtype/shape metadata where the element
type has a NumPy name. Unlike IREE 3.13, ``--data=name=SHAPExTYPE=VALUE`` fills the whole entry
with the value for every element size (IREE fails on elements wider than one byte).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence

from paramio.cli.create_flags import DESCRIPTION, FLAGS, main
from paramio.cli.elements import ElementError, ShapedType, parse_element, parse_shape_and_type
from paramio.cli.errors import UsageError
from paramio.cli.flags import ParsedFlags
from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.tensor import TensorInfo, encode_tensor_metadata
from paramio.core.text import escape, escape_keys
from paramio.formats.irpa.writer import plan_archive
from paramio.formats.output import AtomicOutput, copy_entry
from paramio.formats.targets import resolve_output

__all__ = ["DESCRIPTION", "FLAGS", "CreateSpec", "main", "run", "parse_spec"]


@dataclasses.dataclass(frozen=True, slots=True)
class CreateSpec:
    """One ``--splat``/``--data`` declaration, parsed."""

    name: str
    shaped: ShapedType
    pattern: bytes  # one element, or b"\\0" when no value was given

    @property
    def length(self) -> int:
        return self.shaped.nbytes

    def metadata(self, typed: bool) -> bytes:
        dtype = self.shaped.element.dtype
        if not typed or dtype is None:
            return b""
        return encode_tensor_metadata(TensorInfo(dtype, self.shaped.shape))


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


def run(flags: ParsedFlags) -> int:
    if flags.positional:
        raise UsageError(f"unexpected argument '{flags.positional[0]}'; declare parameters with --data= or --splat=")
    output = flags.text("output")
    if not output:
        raise UsageError("--output=file.irpa is required")
    if output.lower().endswith((".safetensors", ".gguf")):
        raise UsageError(f"--output={output}: create writes IRPA; write .irpa, then use paramio convert")
    alignment = flags.number("alignment")
    if alignment < 1 or alignment & (alignment - 1):
        raise UsageError(f"--alignment={alignment}: expected a power of two such as 64")
    typed = flags.on("typed")
    splats = [parse_spec("splat", t) for t in flags.many("splat")]
    datas = [parse_spec("data", t) for t in flags.many("data")]
    for s in splats:
        if len(s.pattern) not in (1, 2, 4, 8, 16):
            raise UsageError(
                f"--splat={s.name}=...: a {len(s.pattern)}-byte element cannot be a splat pattern "
                "(1, 2, 4, 8 or 16 bytes)"
            )
    from paramio.core.progress import ByteProgress

    streamed = resolve_output(output).streamed  # refuses a directory, socket or block device up front
    total = sum(d.length for d in datas)  # zero data is ticked at once (left sparse)
    with ByteProgress(total, f"writing {escape(output)}", quiet=flags.on("quiet")) as bar:
        write_created(output, splats, datas, alignment=alignment, typed=typed, progress=bar.callback)
    if not flags.on("quiet") and not streamed:  # a stream cannot be read back for the listing
        from paramio.formats.irpa.reader import read_path
        from paramio.index.dump import format_dump

        sys.stdout.write(format_dump(read_path(output).entries, escape=escape_keys))
    return 0


def write_created(
    path: str | os.PathLike[str],
    splats: Sequence[CreateSpec],
    datas: Sequence[CreateSpec],
    *,
    alignment: int = 64,
    typed: bool = False,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write the archive: the layout from the shared IRPA planner, data filled with each
    pattern (all-zero data is left as the file's sparse zeros, as IREE leaves it).
    `progress` is called with each count of bytes written."""
    layout = [ParameterEntry.splat(s.name, s.pattern, s.length, metadata=s.metadata(typed)) for s in splats]
    layout += [
        ParameterEntry(key=d.name, kind=EntryKind.DATA, length=d.length, metadata=d.metadata(typed)) for d in datas
    ]
    plan = plan_archive(layout, alignment=alignment)
    with AtomicOutput(path) as out:
        out.truncate(plan.total_size)
        out.pwrite(plan.header_and_tables, 0)
        for d, off in zip(datas, plan.data_offsets[len(splats) :], strict=True):
            assert off is not None
            copy_entry(ParameterEntry.splat(d.name, d.pattern, d.length), out, off, progress=progress)
        out.commit()
