#!/usr/bin/env bash
# Keeps CPU cores busy for a bounded time, to run the tests as on a busy laptop:
#   bash scripts/cpuhog.sh & npm test; kill %1
# Usage: cpuhog.sh [cores (default: all)] [seconds (default: 3600)]
# It stops by itself after the given seconds, or at once on SIGTERM/SIGINT (kill %1, Ctrl-C).
set -euo pipefail
cores="${1:-$(nproc)}"
seconds="${2:-3600}"
if ! [[ "$cores" =~ ^[1-9][0-9]*$ && "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: cpuhog.sh [cores (default: all, $(nproc) here)] [seconds (default: 3600)]; got '$*'" >&2
  exit 2
fi
pids=()
stop() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT
for _ in $(seq "$cores"); do
  timeout "$seconds" sh -c 'while :; do :; done' &
  pids+=("$!")
done
echo "cpuhog: $cores busy loop(s) for at most $seconds s (pid $$; stop with: kill $$)" >&2
wait
