#!/usr/bin/env bash
# Builds gatewire's native spawner (native/spawn.c), used by the CGI host on Linux, and installs
# it as the package's prebuild:
#
#   build/gatewire_spawn.node                                    the compiler's output
#   prebuilds/linux-<arch>/gatewire_spawn.napi.uv1.<libc>.node   what src/cgi-host/spawn.ts loads
#                                                                (through node-gyp-build)
#
# The tags are node-gyp-build's: `napi` (N-API, any Node version), `uv1` (it drives libuv
# handles itself, ABI-stable within libuv 1.x), `glibc` or `musl` (the C library it was linked
# against). npm pack ships prebuilds/, so an installed gatewire needs no compiler.
#
# Without a C compiler or Node's headers it says so and exits 0: the CGI host then falls back to
# child_process.spawn (slower, same behaviour). GATEWIRE_NATIVE=0 skips it; GATEWIRE_NATIVE=require
# (npm pack's prepack) makes every such case an error, so no tarball goes out without the prebuild.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=${GATEWIRE_NATIVE:-1}
out=build/gatewire_spawn.node

# Not building: fine for a development checkout, an error when the prebuild is required.
give_up() {
  if [[ "$mode" == "require" ]]; then
    echo "native: $1; GATEWIRE_NATIVE=require: failing (the package would ship without its prebuild)" >&2
    exit 1
  fi
  echo "native: $1; the CGI host uses child_process.spawn" >&2
  exit 0
}

[[ "$mode" == "0" ]] && { echo "native: skipped (GATEWIRE_NATIVE=0)"; exit 0; }
[[ "$(uname -s)" == "Linux" ]] || give_up "not Linux"

arch=$(node -p process.arch) || give_up "node not found"
libc=glibc
[[ -f /etc/alpine-release ]] && libc=musl # node-gyp-build's own test for musl
prebuild="prebuilds/linux-$arch/gatewire_spawn.napi.uv1.$libc.node"

cc=${CC:-cc}
headers=$(node -p 'require("path").resolve(process.execPath, "../../include/node")')
if [[ -n "${npm_config_nodedir:-}" && -f "$npm_config_nodedir/include/node/node_api.h" ]]; then
  headers="$npm_config_nodedir/include/node"
fi

if [[ ! -f "$out" || native/spawn.c -nt "$out" ]]; then
  command -v "$cc" >/dev/null || give_up "no C compiler ($cc)"
  [[ -f "$headers/node_api.h" ]] || give_up "Node's headers not found at $headers"
  mkdir -p build
  # -z nodelete: libuv may still run a handle's close callback of ours after the last environment
  # using the addon is gone (a worker_thread ending), so the code must stay mapped.
  if "$cc" -O2 -std=gnu11 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden -Wl,-z,nodelete \
      -I"$headers" native/spawn.c -o "$out.tmp"; then
    mv "$out.tmp" "$out"
    echo "native: built $out"
  else
    rm -f "$out.tmp"
    give_up "compiling native/spawn.c failed"
  fi
fi

if ! cmp -s "$out" "$prebuild"; then
  mkdir -p "$(dirname "$prebuild")"
  # Through a temporary name: a process loading the prebuild now never sees half a file.
  cp "$out" "$prebuild.tmp" && mv "$prebuild.tmp" "$prebuild" || give_up "cannot write $prebuild"
  echo "native: installed $prebuild"
fi
exit 0
