#!/usr/bin/env bash
# Installs the servers the remote-source tests start on loopback: nginx (Debian's package) for
# HTTP ranges; from npm (run by Debian's Node.js), s3rver, an S3 server that keeps objects in
# files and streams ranges from them (moto's in-memory server, from the test extra, serves the
# fault cases), and Azurite, Microsoft's Azure Blob emulator. Idempotent and quiet; returns at
# once when all are there (the first npm install takes about a minute; Azurite is most of it). Without root or apt it
# says so and returns 0: those tests then skip with the reason (outside CI) or fail (in CI).
set -euo pipefail
S3RVER_VERSION=3.7.1
AZURITE_VERSION=3.35.0  # the last release that declares support for Debian 12's Node.js 18
prefix="${PARAMIO_TEST_SERVERS:-/opt/paramio-test-servers}"

have_nginx() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }
have_npm_tools() {
  command -v node >/dev/null 2>&1 && [ -x "$prefix/node_modules/.bin/s3rver" ] \
    && [ -x "$prefix/node_modules/.bin/azurite-blob" ]
}

if have_nginx && have_npm_tools; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "install-test-servers: not root and no sudo; install nginx, and s3rver@$S3RVER_VERSION and azurite@$AZURITE_VERSION under $prefix (npm), for the remote tests" >&2
    exit 0
  fi
fi
if ! have_nginx || ! command -v npm >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-servers: no apt-get here; install nginx, Node.js and npm yourself for the remote tests" >&2
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  if ! have_nginx; then
    # nginx-light: the static server alone; the tests never start the system service.
    $sudo apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 \
      || $sudo apt-get install -y -qq --no-install-recommends nginx >/dev/null
  fi
  if ! command -v npm >/dev/null 2>&1; then
    $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
fi
if ! have_npm_tools; then
  # A folder of its own (not npm's global one): pinned versions, removable with rm -r.
  $sudo mkdir -p "$prefix"
  $sudo npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
    "s3rver@$S3RVER_VERSION" "azurite@$AZURITE_VERSION" >/dev/null
fi
