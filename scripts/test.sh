#!/usr/bin/env bash
# Runs every Shōmei test on a fresh machine: installs what the tests need when
# it is missing (Debian packages, PyPI tools), starts PostgreSQL on a loopback
# port, runs clippy (warnings are errors), the whole test suite against one
# shared build, the fuzz smoke runs, and stops the servers again.
#
#   ./scripts/test.sh            # everything
#   SHOMEI_SKIP_FUZZ=1 ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
log() { printf '\n== %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

# ---------------------------------------------------------------- packages
need=()
command -v openssl >/dev/null || need+=(openssl)
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || need+=(postgresql)
# zbarimg scans the engagement QR code `phone present` draws.
command -v zbarimg >/dev/null || need+=(zbar-tools)
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! python3 -c 'import cryptography, sys; sys.exit(int(cryptography.__version__.split(".")[0]) < 42)' 2>/dev/null; then
  log "installing Python cryptography from PyPI"
  python3 -m pip install -q 'cryptography>=42'
fi
# A real SMTP server for the e-mail notification tests.
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  log "installing Python aiosmtpd from PyPI"
  python3 -m pip install -q aiosmtpd
fi
# A real OpenID Connect client for the relying-party tests (tests/oidc_client.py).
if ! python3 -c 'import authlib, requests' 2>/dev/null; then
  log "installing Python authlib and requests from PyPI"
  python3 -m pip install -q authlib requests
fi
# Independent ISO 18013-5 checkers of our DeviceResponse
# (crates/mdoc/tests/independent_checkers.rs): pymdoccbor from PyPI and
# @auth0/mdl from npm (pinned by tests/mdoc_checkers/package-lock.json).
if ! python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("pymdoccbor") != "1.4.0")' 2>/dev/null; then
  log "installing Python pymdoccbor 1.4.0 from PyPI"
  python3 -m pip install -q pymdoccbor==1.4.0
fi
if [ ! -f tests/mdoc_checkers/node_modules/.package-lock.json ] \
   || [ tests/mdoc_checkers/package-lock.json -nt tests/mdoc_checkers/node_modules/.package-lock.json ]; then
  # `npm install`, not `npm ci`: npm 11's `ci` refuses this lockfile for
  # the optional per-platform cbor-extract builds it leaves out, while
  # `install` keeps every locked version and only adds those.
  log "installing the npm mdoc checkers (npm install from the lockfile)"
  (cd tests/mdoc_checkers && npm install --no-audit --no-fund)
fi

# PC/SC stack for the OpenSC cross-check (pcscd, vpcd, OpenSC, pcsc-tools).
"$ROOT/scripts/opensc-check.sh" --install-only

# ---------------------------------------------------------------- postgres
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGDATA=$(mktemp -d /tmp/shomei-pg.XXXXXX)
PGPORT=${SHOMEI_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$PGDATA"; fi
stop_pg() { as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true; rm -rf "$PGDATA"; }
trap stop_pg EXIT
log "starting PostgreSQL on 127.0.0.1:$PGPORT"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/log" -w \
  -o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200" start >/dev/null
export SHOMEI_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"

# ---------------------------------------------------------------- build + lint
export CARGO_TERM_COLOR=never
# One feature set for clippy and the tests, so they share one build: PC/SC
# on (shomei's own client over pcscd; libpcsclite-dev was installed above).
FEATURES=(--features shomei/pcsc)
log "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked "${FEATURES[@]}" -- -D warnings

log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "${FEATURES[@]}"
else
  cargo test --workspace --locked --no-fail-fast "${FEATURES[@]}"
fi

# ---------------------------------------------------------------- fuzz smoke
if [ -z "${SHOMEI_SKIP_FUZZ:-}" ] && [ -d fuzz ]; then
  log "fuzz smoke runs"
  "$ROOT/scripts/fuzz-smoke.sh"
fi
log "all tests passed"
