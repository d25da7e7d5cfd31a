#!/usr/bin/env bash
# gotool.sh NAME PACKAGE VERSION [CHECK_ARG]: prints the path of a Go-built tool, building it only when missing.
#
#   bash scripts/gotool.sh helm helm.sh/helm/v3/cmd/helm v3.22.0
#
# The binary lives in ${TOOLMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolmesh}/NAME-VERSION/NAME,
# outside the checkout, and is built with `go install PACKAGE@VERSION` from the Go module proxy
# (sum checking on) the first time. Used by scripts/helm.sh and scripts/kubeconform.sh; modelled
# on scripts/consul.sh. Progress goes to stderr so that `$(...)` captures only the path.
set -euo pipefail

[ $# -eq 3 ] || [ $# -eq 4 ] || { echo "usage: gotool.sh NAME PACKAGE VERSION [CHECK_ARG]" >&2; exit 2; }
NAME=$1 PKG=$2 VERSION=$3 CHECK_ARG=${4:-version}
CACHE_ROOT="${TOOLMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolmesh}"
DIR="$CACHE_ROOT/$NAME-$VERSION"
BIN="$DIR/$NAME"
START=$(date +%s)

log() { printf '[%s +%4ss] %s\n' "$NAME" "$(( $(date +%s) - START ))" "$*" >&2; }
die() { printf '%s: %s\n' "$NAME" "$*" >&2; exit 1; }

# A cached binary counts only if it runs (`NAME CHECK_ARG`, by default `NAME version`).
usable() { [ -x "$BIN" ] && "$BIN" "$CHECK_ARG" >/dev/null 2>&1; }

usable && { echo "$BIN"; exit 0; }
command -v go >/dev/null 2>&1 || die "no cached $NAME in $DIR and Go is not installed to build one. Install Go 1.26+ or build $PKG@$VERSION yourself into $DIR."

mkdir -p "$DIR"
# One builder at a time: parallel test workers wait for the first.
exec 9>"$DIR/.build.lock"
if ! flock -n 9; then
  log "another build of $NAME $VERSION is running; waiting for it"
  flock 9
  usable && { echo "$BIN"; exit 0; }
fi

log "building $PKG@$VERSION into $DIR (first time only; a few minutes on 2 cores)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/toolmesh-$NAME-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
( while sleep 20; do log "  ... still building"; done ) &
HEARTBEAT=$!
rc=0
# GOFLAGS from the caller (e.g. -mod=vendor in some checkout) must not leak into an install from the proxy.
(cd "$WORK" && env GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN="$WORK" go install -trimpath -ldflags="-s -w" "$PKG@$VERSION") >"$WORK/build.log" 2>&1 || rc=$?
kill "$HEARTBEAT" 2>/dev/null; wait "$HEARTBEAT" 2>/dev/null || true
[ "$rc" -eq 0 ] || { tail -n 30 "$WORK/build.log" >&2; die "go install $PKG@$VERSION failed (output above)"; }
mv "$WORK/$NAME" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
usable || die "the built $BIN does not run '$NAME $CHECK_ARG'"
log "done in $(( $(date +%s) - START )) s: $BIN ($(du -h "$BIN" | cut -f1))"
echo "$BIN"
