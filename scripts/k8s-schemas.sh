#!/usr/bin/env bash
# Prints the path of a directory of Kubernetes JSON schemas for kubeconform, made offline.
#
# kubeconform normally downloads its schemas; here nothing can be downloaded but modules from
# the Go module proxy. The k8s.io/kubernetes module (Apache-2.0) ships Kubernetes' own OpenAPI
# document, api/openapi-spec/swagger.json; `go mod download` fetches it (about 19 MB, sums
# checked) and scripts/k8s-schemas.ts converts it into one strict schema per kind, as the
# kubernetes-json-schema sets are made. Cached by version in
# ${TOOLMESH_CACHE:-$HOME/.cache/toolmesh}/k8s-schemas-<version>/; use the result as
#   kubeconform -strict -schema-location "$dir/{{ .ResourceKind }}{{ .KindSuffix }}.json"
# TOOLMESH_K8S_VERSION picks the Kubernetes release (default: the oldest minor still
# supported upstream when this was written, so the chart stays within what clusters run).
set -euo pipefail
K8S_VERSION="${TOOLMESH_K8S_VERSION:-v1.35.4}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE_ROOT="${TOOLMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolmesh}"
DIR="$CACHE_ROOT/k8s-schemas-$K8S_VERSION"
START=$(date +%s)
log() { printf '[k8s-schemas +%4ss] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }
die() { printf 'k8s-schemas: %s\n' "$*" >&2; exit 1; }

[ -s "$DIR/deployment-apps-v1.json" ] && [ -f "$DIR/.complete" ] && { echo "$DIR"; exit 0; }
command -v go >/dev/null 2>&1 || die "no cached schemas in $DIR and Go is not installed to fetch k8s.io/kubernetes@$K8S_VERSION."
NODE="$ROOT/node_modules/.bin/node"; [ -x "$NODE" ] || NODE=node

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.k8s-schemas-$K8S_VERSION.lock"
flock 9
[ -f "$DIR/.complete" ] && { echo "$DIR"; exit 0; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/toolmesh-k8s-schemas.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "fetching k8s.io/kubernetes@$K8S_VERSION from the Go module proxy (its OpenAPI document)"
moddir=$(cd "$WORK" && env GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" 2>"$WORK/go.log" \
  | "$NODE" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);if(j.Error){console.error(j.Error);process.exit(1)}console.log(j.Dir)})') \
  || { cat "$WORK/go.log" >&2; die "go mod download k8s.io/kubernetes@$K8S_VERSION failed (above)"; }
swagger="$moddir/api/openapi-spec/swagger.json"
[ -s "$swagger" ] || die "$swagger is missing: this k8s.io/kubernetes version does not ship api/openapi-spec/swagger.json"
rm -rf "$DIR.tmp"
"$NODE" "$ROOT/scripts/k8s-schemas.ts" "$swagger" "$DIR.tmp"
rm -rf "$DIR" && mv "$DIR.tmp" "$DIR"
echo "k8s.io/kubernetes@$K8S_VERSION api/openapi-spec/swagger.json" > "$DIR/.complete"
log "done in $(( $(date +%s) - START )) s: $DIR ($(du -sh "$DIR" | cut -f1))"
echo "$DIR"
