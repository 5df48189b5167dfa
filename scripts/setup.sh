#!/usr/bin/env bash
# Sets up a fresh clone: npm dependencies and the build. With --peers, also the Debian packages
# the tests start as real peers (nginx, Apache, libfcgi, spawn-fcgi, fcgiwrap, uWSGI, php-cgi, php-fpm,
# gunicorn, wrk, chromium for the browser tests); that part needs root (or sudo) and Debian's package lists.
set -euo pipefail
cd "$(dirname "$0")/.."

PEER_PACKAGES=(nginx apache2 libfcgi-bin spawn-fcgi fcgiwrap uwsgi uwsgi-plugin-python3 php-cgi php8.2-fpm gunicorn wrk curl python3 chromium fonts-dejavu-core)

if [[ "${1:-}" == "--peers" ]]; then
  missing=()
  for p in "${PEER_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The Debian packages start their own daemons; the tests start their own copies instead.
    for svc in nginx apache2 fcgiwrap uwsgi php8.2-fpm; do $SUDO service "$svc" stop >/dev/null 2>&1 || true; done
  fi
fi

echo "setup: npm ci"
npm ci --no-audit --no-fund --loglevel=error
echo "setup: build"
npm run --silent build
