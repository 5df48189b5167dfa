#!/usr/bin/env bash
# What a request costs the young-generation GC, behind nginx scgi_pass or uwsgi_pass:
# bytes allocated and promoted per request, and scavenge pause per request, from V8's
# --trace-gc-nvp lines over a wrk run (bench/README.md, "Per-connection cost").
#
#   bash bench/gc-per-request.sh [scgi|uwsgi] [ROUNDS]
#
# Each round runs gatewire (one process, examples/hello.mjs) and the do-nothing net.Server
# floor one after the other behind one nginx, each warmed for 2 s, then measured for 5 s
# (wrk -t1 -c64). Needs nginx, wrk and a built checkout (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."
proto=${1:-scgi}
rounds=${2:-2}
[[ "$proto" == scgi || "$proto" == uwsgi ]] || { echo "usage: $0 [scgi|uwsgi] [ROUNDS]" >&2; exit 2; }
for tool in nginx wrk; do command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }; done
[[ -f dist/src/cli.js ]] || { echo "build first: npm run build" >&2; exit 2; }

dir=$(mktemp -d)
front=18931
back=18932
cat > "$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fcgi;
  uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$front;
    location / { include /etc/nginx/${proto}_params; ${proto}_pass 127.0.0.1:$back; }
  }
}
EOF
nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
cleanup() { kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

# measure LABEL node-args...: one line of per-request figures.
measure() {
  local label=$1 log="$dir/gc.log" pid out reqs rps
  shift
  node --trace-gc-nvp "$@" >"$log" 2>&1 &
  pid=$!
  sleep 1.2
  wrk -t1 -c64 -d2 "http://127.0.0.1:$front/" >/dev/null
  : >"$log"
  out=$(wrk -t1 -c64 -d5 "http://127.0.0.1:$front/")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  awk -v n="$reqs" -v rps="$rps" -v label="$label" '
    /gc=s / {
      for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "pause") pause += kv[2]
        else if (kv[1] == "promoted") promoted += kv[2]
        else if (kv[1] == "allocated") allocated += kv[2]
      }
      scavenges++
    }
    /gc=mc / { full++ }
    END {
      printf "%-9s %8.0f req/s  %3d scavenges, %d full  allocated %6.0f B/req  promoted %5.0f B/req  scavenge pause %5.2f us/req\n",
        label, rps, scavenges, full, allocated / n, promoted / n, pause * 1000 / n
    }' <(tr -d '\0' <"$log")
}

for ((r = 1; r <= rounds; r++)); do
  echo "round $r"
  measure gatewire dist/src/cli.js serve examples/hello.mjs "--$proto" "127.0.0.1:$back" --workers 0 --log-level warn
  measure floor bench/servers/scgi-floor-net.mjs "$back" 127.0.0.1 --proto "$proto"
done
