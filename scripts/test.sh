#!/usr/bin/env bash
# Runs the whole test suite, IREE/safetensors/gguf interop included, on a fresh machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup-venv.sh"
# nginx for the HTTP source tests (Debian package); quick when already there.
bash "$root/scripts/install-test-servers.sh"
cd "$root"
exec .venv/bin/python -m pytest "$@"
