#!/usr/bin/env bash
# Builds gatewire's optional native spawner (native/spawn.c → build/gatewire_spawn.node), used by
# the CGI host on Linux. Without a C compiler or Node's headers it says so and exits 0: the CGI
# host then falls back to child_process.spawn (slower, same behaviour). GATEWIRE_NATIVE=0 skips it.
set -uo pipefail
cd "$(dirname "$0")/.."

out=build/gatewire_spawn.node
[[ "${GATEWIRE_NATIVE:-1}" == "0" ]] && { echo "native: skipped (GATEWIRE_NATIVE=0)"; exit 0; }
[[ "$(uname -s)" == "Linux" ]] || { echo "native: not Linux, the CGI host uses child_process.spawn"; exit 0; }

cc=${CC:-cc}
headers=$(node -p 'require("path").resolve(process.execPath, "../../include/node")')
if [[ -n "${npm_config_nodedir:-}" && -f "$npm_config_nodedir/include/node/node_api.h" ]]; then
  headers="$npm_config_nodedir/include/node"
fi
if ! command -v "$cc" >/dev/null; then
  echo "native: no C compiler ($cc); the CGI host uses child_process.spawn" >&2
  exit 0
fi
if [[ ! -f "$headers/node_api.h" ]]; then
  echo "native: Node's headers not found at $headers; the CGI host uses child_process.spawn" >&2
  exit 0
fi
[[ -f "$out" && "$out" -nt native/spawn.c ]] && exit 0

mkdir -p build
# -z nodelete: libuv may still run a handle's close callback of ours after the last environment
# using the addon is gone (a worker_thread ending), so the code must stay mapped.
if "$cc" -O2 -std=gnu11 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden -Wl,-z,nodelete \
    -I"$headers" native/spawn.c -o "$out.tmp"; then
  mv "$out.tmp" "$out"
  echo "native: built $out"
else
  rm -f "$out.tmp"
  echo "native: compiling native/spawn.c failed; the CGI host uses child_process.spawn" >&2
fi
exit 0
