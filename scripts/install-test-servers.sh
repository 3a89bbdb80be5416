#!/usr/bin/env bash
# Installs the servers the remote-source tests start on loopback (nginx, from Debian's packages).
# Idempotent and quiet; returns at once when nginx is already there. Without root or apt it says
# so and returns 0: those tests then skip with the reason (outside CI) or fail (in CI).
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-servers: no apt-get here; install nginx yourself for the HTTP source tests" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "install-test-servers: not root and no sudo; install nginx for the HTTP source tests" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
# nginx-light: the static server alone; the tests never start the system service.
$sudo apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 \
  || $sudo apt-get install -y -qq --no-install-recommends nginx >/dev/null
