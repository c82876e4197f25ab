#!/usr/bin/env bash
# Install everything the tests need on a fresh machine, then run lint and the test suite.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use for real (the gpg binary; Dovecot for IMAP; the sqlite3 shell).
need=()
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
# The tests run Dovecot with a config of their own; the package's own service is not used.
[ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd)
# The sqlite3 shell: the backup test takes a backup with `.backup`, as docs/operations.md says.
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
# Chromium opens the digest's HTML as a recipient would (tests/browser.py). It is big, so it
# is installed only when missing; if that fails the browser tests skip and say why.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    { $SUDO apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } ||
        echo "warning: could not install chromium; the browser tests will be skipped" >&2
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

.venv/bin/ruff check mailbot tests bench
.venv/bin/mypy mailbot
.venv/bin/python -m pytest "$@"
