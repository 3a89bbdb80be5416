#!/usr/bin/env bash
# The main job on a built-in example: a real published model converted, inspected and checked.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup-venv.sh" example
cd "$root"
exec .venv/bin/paramio example "$@"
