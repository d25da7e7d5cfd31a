#!/usr/bin/env bash
# Prints the path of a Helm 3 binary: $HELM_BIN if set, else a cached build of
# helm.sh/helm/v3 (Apache-2.0) from the Go module proxy, built once into
# ${TOOLMESH_CACHE:-$HOME/.cache/toolmesh}/helm-<version>/helm (see scripts/gotool.sh).
# Used by test/integration/helm.test.ts to lint and render deploy/helm/toolmesh.
set -euo pipefail
HELM_VERSION="${TOOLMESH_HELM_VERSION:-v3.22.0}"
if [ -n "${HELM_BIN:-}" ]; then
  "$HELM_BIN" version >/dev/null 2>&1 || { echo "helm.sh: HELM_BIN=$HELM_BIN does not run; unset it to build one" >&2; exit 1; }
  echo "$HELM_BIN"; exit 0
fi
exec bash "$(dirname "$0")/gotool.sh" helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
