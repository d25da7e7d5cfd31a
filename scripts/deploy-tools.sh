#!/usr/bin/env bash
# Provisions what test/integration/helm.test.ts needs, each only when missing from the cache
# (${TOOLMESH_CACHE:-$HOME/.cache/toolmesh}): helm (scripts/helm.sh), kubeconform
# (scripts/kubeconform.sh) and Kubernetes' JSON schemas (scripts/k8s-schemas.sh). Prints the
# three paths, one a line; says on stderr how long each took. The two Go builds run side by
# side (together about 7 minutes of CPU on a first run; seconds once cached).
set -euo pipefail
cd "$(dirname "$0")"
START=$(date +%s)
out=$(mktemp -d "${TMPDIR:-/tmp}/toolmesh-deploy-tools.XXXXXX")
trap 'rm -rf "$out"' EXIT
bash helm.sh >"$out/helm" & helm_pid=$!
bash kubeconform.sh >"$out/kubeconform" & kc_pid=$!
bash k8s-schemas.sh >"$out/schemas"
wait "$helm_pid" || { echo "deploy-tools: building helm failed (above)" >&2; exit 1; }
wait "$kc_pid" || { echo "deploy-tools: building kubeconform failed (above)" >&2; exit 1; }
cat "$out/helm" "$out/kubeconform" "$out/schemas"
printf '[deploy-tools] ready in %ss\n' "$(( $(date +%s) - START ))" >&2
