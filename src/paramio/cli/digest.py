"""``paramio digest PATH|URL ... [--algorithm=xxh3|blake3|sha256] [--json] [--write [--sidecar]]``:
a digest of every entry, in one streaming pass, entries side by side (`paramio.digest`).

``--write`` stores them in the file (rewritten atomically; IREE's runtime and dump, the
safetensors library and gguf-py still see only the model's entries), ``--write --sidecar`` beside
it (``model.safetensors.digests.json``) for a file that must stay byte-identical.
"""

from __future__ import annotations

from collections.abc import Sequence

from paramio.cli.engine_flags import ENGINE_FLAGS, engine_of
from paramio.cli.errors import EXIT_OK, UsageError, escape
from paramio.cli.flags import ALLOW_EXTERNAL, Flag, FlagKind, ParsedFlags, files_from, run_command
from paramio.cli.jsonout import print_json

__all__ = ["DESCRIPTION", "FLAGS", "main"]

FLAGS = (
    Flag("parameters", FlagKind.LIST, "A file, set or URL to digest (also as bare FILE arguments).", None, "file"),
    ALLOW_EXTERNAL,
    Flag(
        "algorithm",
        FlagKind.STRING,
        "xxh3 (the default: fastest, catches accidents, not attacks), blake3 (cryptographic) or sha256.",
        "xxh3",
    ),
    Flag("write", FlagKind.BOOL, "Stores the digests in the file (rewritten atomically).", False),
    Flag(
        "sidecar",
        FlagKind.BOOL,
        "With --write: beside the file instead (FILE.digests.json), leaving it byte-identical.",
        False,
    ),
    Flag("json", FlagKind.BOOL, 'Prints one JSON object {"version": 1, "files": [...]}.', False),
    Flag("quiet", FlagKind.BOOL, "Prints nothing but errors (with --write).", False),
    *ENGINE_FLAGS,
)

DESCRIPTION = """\
Prints a digest of every entry of each file: the bytes a reader gets (a splat's expanded),
hashed in one streaming pass, entries side by side, from a local file, a sharded set or a URL.
The same tensor has the same digest in every format; b3sum / sha256sum / xxhsum of the
extracted bytes give it too.

Examples:
  paramio digest model.safetensors
  paramio digest https://host/model.irpa --algorithm=sha256 --json
  paramio digest model.irpa --write            # then: paramio verify model.irpa --digests
  paramio digest model.safetensors --write --sidecar
  paramio digest s3://bucket/model.safetensors.index.json --engine=ray --address=auto
"""


def main(argv: Sequence[str]) -> int:
    return run_command("digest", argv, FLAGS, DESCRIPTION, _digest)


def _write_mode(parsed: ParsedFlags) -> str | None:
    if parsed.on("sidecar") and not parsed.on("write"):
        raise UsageError("--sidecar says where --write stores the digests: give --write too")
    if not parsed.on("write"):
        return None
    return "sidecar" if parsed.on("sidecar") else "file"


def _digest(parsed: ParsedFlags) -> int:
    from paramio.formats.digests import ALGORITHMS
    from paramio.formats.progress import ByteProgress
    from paramio.index.index import DuplicatePolicy, ParameterIndex
    from paramio.index.scopes import parse_parameters_flag
    from paramio.integrity import digest, write_digests

    paths = [parse_parameters_flag(v).path for v in files_from(parsed)]
    if not paths:
        raise UsageError("no files: paramio digest FILE... (or --parameters=FILE)")
    algorithm = parsed.text("algorithm")
    if algorithm not in ALGORITHMS:
        raise UsageError(f"--algorithm={algorithm}: expected one of {', '.join(ALGORITHMS)}")
    mode = _write_mode(parsed)
    engine, address = engine_of(parsed)
    docs: list[dict[str, object]] = []
    for path in paths:
        index = ParameterIndex.open(path, duplicates=DuplicatePolicy.KEEP)
        total = sum(e.length for e in index.values())
        quiet = parsed.on("quiet") or parsed.on("json")
        with ByteProgress(total, f"digest {escape(path)}", quiet=quiet) as bar:
            report = digest(index, algorithm, progress=bar.callback, engine=engine, address=address)
        doc = {"path": path, **{k: v for k, v in report.to_dict().items() if k != "source"}}
        if mode is not None:
            # The digests just printed are stored as they are: no second pass over the bytes.
            doc["written"] = write_digests(path, algorithm, sidecar=mode == "sidecar", record=report.record())
        docs.append(doc)
        if parsed.on("json"):
            continue
        if mode is not None:
            if not parsed.on("quiet"):
                print(f"wrote {len(report.entries)} {algorithm} digests to {escape(str(doc['written']))}")
            continue
        for key, value in report.entries.items():
            # One line per entry, as b3sum/sha256sum print theirs: digest, two spaces, name.
            print(f"{value}  {escape(path)}::{escape(key)}")
    if parsed.on("json"):
        print_json({"files": docs})
    return EXIT_OK
