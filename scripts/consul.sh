#!/usr/bin/env bash
# Prints the path of a working `consul` binary (1.16 or newer) on stdout.
#
# Order of preference:
#   1. $CONSUL_BIN, if set (must be executable and report Consul 1.16+);
#   2. a `consul` on PATH (same check);
#   3. a cached build of HashiCorp Consul v1.16.4 (the last MPL-2.0 release) in
#      ${TOOLMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolmesh}/consul-1.16.4/consul,
#      built from the Go module proxy when missing. Where the proxy cannot supply v1.16.4
#      with verified checksums, v1.14.11 is built instead (see docs/consul.md#which-version): the
#      proxy here refuses v1.16.4's source, and every 1.15/1.16 release depends on
#      consul/envoyextensions, whose checksums the proxy refuses, while 1.14.11
#      (MPL-2.0 too) predates that module. Set TOOLMESH_CONSUL_VERSION to force one.
#
# Progress goes to stderr so that `$(scripts/consul.sh)` captures only the path.
# Building is done in a throwaway wrapper module outside the checkout: consul's own
# go.mod has `replace` directives, so `go install ...@v1.16.4` refuses to build it, but as
# a dependency those directives are ignored and the submodules come from their tags.
set -euo pipefail

# MPL-2.0 releases only (1.16.5+ and 1.17+ are BSL), most preferred first.
CANDIDATES="${TOOLMESH_CONSUL_VERSION:-1.16.4 1.14.11}"
CACHE_ROOT="${TOOLMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolmesh}"
START=$(date +%s)

log() { printf '[consul.sh +%4ss] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }
die() { printf 'consul.sh: %s\n' "$*" >&2; exit 1; }

# usable BIN: true when BIN runs and reports Consul v1.14 or newer (toolmesh uses only
# the HTTP API: catalog, health, agent, KV, ACL, all stable since long before 1.14).
usable() {
  local bin="$1" out major minor
  [ -x "$bin" ] || return 1
  # No pipe into head: under pipefail, consul's SIGPIPE would fail a working binary.
  out=$("$bin" version 2>/dev/null) || return 1
  out=${out%%$'\n'*}
  [[ "$out" =~ Consul\ v([0-9]+)\.([0-9]+) ]] || return 1
  major=${BASH_REMATCH[1]}; minor=${BASH_REMATCH[2]}
  (( major > 1 || (major == 1 && minor >= 14) ))
}

if [ -n "${CONSUL_BIN:-}" ]; then
  usable "$CONSUL_BIN" || die "CONSUL_BIN=$CONSUL_BIN is not an executable Consul 1.14 or newer. Unset it to let this script build one, or point it at a working binary."
  echo "$CONSUL_BIN"; exit 0
fi
if on_path=$(command -v consul 2>/dev/null) && usable "$on_path"; then
  echo "$on_path"; exit 0
fi
for v in $CANDIDATES; do
  usable "$CACHE_ROOT/consul-$v/consul" && { echo "$CACHE_ROOT/consul-$v/consul"; exit 0; }
done

command -v go >/dev/null 2>&1 || die "no consul binary found and Go is not installed to build one. Install Go 1.21+ or set CONSUL_BIN to a Consul 1.14+ binary."

mkdir -p "$CACHE_ROOT"
# One builder at a time: parallel test workers or a second `npm start` wait for the first.
exec 9>"$CACHE_ROOT/.build.lock"
if ! flock -n 9; then
  log "another build of Consul is running; waiting for it"
  flock 9
  for v in $CANDIDATES; do
    usable "$CACHE_ROOT/consul-$v/consul" && { echo "$CACHE_ROOT/consul-$v/consul"; exit 0; }
  done
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/toolmesh-consul-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
write_wrapper() {
cat > go.mod <<MOD
module toolmesh.local/consul-build

go 1.21

// Repeated from consul's own go.mod: as a dependency its exclude lines are ignored.
exclude github.com/hashicorp/go-msgpack v1.1.5

exclude github.com/hashicorp/go-msgpack v1.1.6
MOD
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/hashicorp/consul"
GO
}

# Heartbeat while a long step runs, so the build is never minutes of silence.
# run_step NAME CMD...: runs CMD with a heartbeat; returns its exit code, keeping its output
# in $WORK/step.log.
run_step() {
  local name="$1"; shift
  log "step: $name"
  ( while sleep 20; do log "  ... still $name"; done ) &
  local hb=$!
  local rc=0
  "$@" >"$WORK/step.log" 2>&1 || rc=$?
  kill "$hb" 2>/dev/null; wait "$hb" 2>/dev/null || true
  return "$rc"
}
fail_step() { tail -n 40 "$WORK/step.log" >&2; die "step '$1' failed; output above"; }

# Resolve the first candidate whose whole dependency graph the proxy serves with
# verified checksums (sum checking stays on).
CONSUL_VERSION=""
for v in $CANDIDATES; do
  rm -f go.mod go.sum; write_wrapper
  if run_step "resolving github.com/hashicorp/consul@v$v and its dependencies" go get "github.com/hashicorp/consul@v$v"; then
    CONSUL_VERSION=$v; break
  fi
  why=$(grep -oE '(verifying module: [^:]+|v[0-9.]+[^ ]*: reading [^ ]+: [0-9]+ [A-Za-z ]+)' "$WORK/step.log" | sort -u | head -n 3 | tr '\n' ';')
  log "Consul v$v cannot be built from this module proxy (${why:-see go output}); trying the next MPL-2.0 release"
done
[ -n "$CONSUL_VERSION" ] || { tail -n 20 "$WORK/step.log" >&2; die "none of Consul v${CANDIDATES// /, v} can be built from this Go module proxy. Set CONSUL_BIN to a Consul 1.14+ binary, or put one on PATH."; }
CACHE_DIR="$CACHE_ROOT/consul-$CONSUL_VERSION"
CACHED_BIN="$CACHE_DIR/consul"
mkdir -p "$CACHE_DIR"
log "building HashiCorp Consul v$CONSUL_VERSION into $CACHE_DIR (first time only; several minutes on 2 cores)"
# Old x/net and x/sys pulled by these consul releases trip Go 1.23+'s //go:linkname check; raise them.
run_step "raising golang.org/x/sys and x/net for current Go" \
  go get golang.org/x/sys@v0.28.0 golang.org/x/net@v0.33.0 || fail_step "raising x/sys and x/net"
log "picked: $(go list -m github.com/hashicorp/consul github.com/hashicorp/consul/api github.com/hashicorp/consul/sdk 2>/dev/null | tr "\n" " ")"
run_step "compiling consul (the longest step)" \
  env CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -checklinkname=0" -o "$WORK/consul" github.com/hashicorp/consul \
  || fail_step "compiling consul"

"$WORK/consul" version >/dev/null 2>&1 || die "the built binary does not run; see $WORK"
mv "$WORK/consul" "$CACHED_BIN.tmp" && mv "$CACHED_BIN.tmp" "$CACHED_BIN"
log "done: $CACHED_BIN ($(du -h "$CACHED_BIN" | cut -f1)), $("$CACHED_BIN" version | head -n 1)"
echo "$CACHED_BIN"
