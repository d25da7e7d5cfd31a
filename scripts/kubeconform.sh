#!/usr/bin/env bash
# Prints the path of a kubeconform binary: $KUBECONFORM_BIN if set, else a cached build of
# github.com/yannh/kubeconform (Apache-2.0) from the Go module proxy, built once into
# ${TOOLMESH_CACHE:-$HOME/.cache/toolmesh}/kubeconform-<version>/kubeconform (see scripts/gotool.sh).
# Its schemas come from scripts/k8s-schemas.sh (offline; kubeconform never downloads here).
set -euo pipefail
KUBECONFORM_VERSION="${TOOLMESH_KUBECONFORM_VERSION:-v0.8.0}"
if [ -n "${KUBECONFORM_BIN:-}" ]; then
  "$KUBECONFORM_BIN" -v >/dev/null 2>&1 || { echo "kubeconform.sh: KUBECONFORM_BIN=$KUBECONFORM_BIN does not run; unset it to build one" >&2; exit 1; }
  echo "$KUBECONFORM_BIN"; exit 0
fi
exec bash "$(dirname "$0")/gotool.sh" kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" -v
