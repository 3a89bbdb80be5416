#!/usr/bin/env bash
# The loaders P11 compares paramio with (benchmarks/cases/p11_load.py), installed into the venv
# only when pip's dry run shows they change none of torch, numpy, jax, iree (a peer pulling another
# torch would change what every other benchmark measures). Versions measured: runai-model-streamer
# 0.17.1 (+ -s3), fastsafetensors 0.5.0, tensorizer 2.12.1, boto3 1.44.
#   scripts/install-bench-peers.sh [path/to/python]
set -euo pipefail
PY="${1:-.venv/bin/python}"
PEERS=(safetensors boto3 runai-model-streamer runai-model-streamer-s3 fastsafetensors tensorizer)
plan="$("$PY" -m pip install --dry-run "${PEERS[@]}" 2>&1 | grep '^Would install' || true)"
echo "${plan:-nothing to install}"
for guarded in torch numpy jax jaxlib iree-base-runtime iree-base-compiler; do
  if grep -qiE "(^| )${guarded}-[0-9]" <<<"$plan"; then
    echo "refusing: installing the peers would change ${guarded}" >&2
    exit 1
  fi
done
"$PY" -m pip install -q "${PEERS[@]}"
"$PY" - <<'PY'
from importlib.metadata import version
for p in ("torch", "numpy", "safetensors", "runai-model-streamer", "runai-model-streamer-s3",
          "fastsafetensors", "tensorizer", "boto3"):
    print(f"{p} {version(p)}")
PY
