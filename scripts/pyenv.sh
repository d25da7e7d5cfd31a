#!/usr/bin/env bash
# Prints the path of a Python interpreter in a virtualenv with the packages of a pinned
# requirements file installed (for the interoperability tests: the Python MCP SDK, AutoGen).
#
#   scripts/pyenv.sh test/python/requirements-mcp.txt
#
# The virtualenv lives in ${TOOLMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolmesh}/py/,
# named after the requirements file and a hash of its contents, and is made only when
# missing (python3 ≥ 3.10 and PyPI needed then; about 10 s). Progress goes to stderr.
set -euo pipefail

REQ="${1:?usage: scripts/pyenv.sh <requirements.txt>}"
[ -f "$REQ" ] || { echo "pyenv.sh: no such requirements file: $REQ" >&2; exit 2; }
CACHE_ROOT="${TOOLMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolmesh}"
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || { echo "pyenv.sh: $PYTHON not found; the interoperability tests need Python 3.10 or newer" >&2; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
  { echo "pyenv.sh: $("$PYTHON" --version 2>&1) is too old; the interoperability tests need Python 3.10 or newer" >&2; exit 1; }

HASH=$(sha256sum "$REQ" | cut -c1-12)
VENV="$CACHE_ROOT/py/$(basename "$REQ" .txt)-$HASH"
mkdir -p "$CACHE_ROOT/py"
# One installer at a time per environment (parallel test files ask for the same one).
exec 9>"$VENV.lock"
flock 9
if [ ! -f "$VENV/.ready" ]; then
  echo "pyenv.sh: making $VENV from $REQ (once)" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ" >&2
  touch "$VENV/.ready"
fi
echo "$VENV/bin/python"
