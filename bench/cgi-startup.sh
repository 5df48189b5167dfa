#!/bin/bash
# One `gatewire cgi` request end to end (the process a web server spawns per request), against
# `node -e ''` started the same way in the same loop: the difference is gatewire's own start-up.
# Alternates the two, N runs each (default 60), prints the medians with min and max.
#
# Usage: npm run build && bash bench/cgi-startup.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-60}
export REQUEST_METHOD=GET SCRIPT_NAME=/hello PATH_INFO= QUERY_STRING= SERVER_PROTOCOL=HTTP/1.1 \
  SERVER_NAME=localhost SERVER_PORT=80 GATEWAY_INTERFACE=CGI/1.1 REMOTE_ADDR=127.0.0.1
if ! node dist/src/cli.js cgi examples/hello.mjs </dev/null | head -1 | grep -q '^Status: 200'; then
  echo "gatewire cgi examples/hello.mjs did not answer 200 (run npm run build first)" >&2
  exit 1
fi
us() { echo $(( ($(date +%s%N) - $1) / 1000 )); }
gw=() nd=()
for _ in $(seq "$n"); do
  t=$(date +%s%N); node dist/src/cli.js cgi examples/hello.mjs </dev/null >/dev/null; gw+=("$(us "$t")")
  t=$(date +%s%N); node -e '' </dev/null >/dev/null; nd+=("$(us "$t")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.1f ms (min %.1f, max %.1f)", a[int((NR+1)/2)]/1000, a[1]/1000, a[NR]/1000}'; }
echo "node $(node -v), $n runs each, alternating"
echo "gatewire cgi examples/hello.mjs: $(median "${gw[@]}")"
echo "node -e '':                      $(median "${nd[@]}")"
