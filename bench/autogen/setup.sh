#!/usr/bin/env bash
# Makes bench/autogen/.venv with AutoGen's distributed runtime (autogen-ext[grpc]) from PyPI.
# Run once; bench/run.ts uses it when present. The venv is git-ignored.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/python -c 'import autogen_core, autogen_ext.runtimes.grpc; print("autogen", autogen_core.__version__ if hasattr(autogen_core, "__version__") else "?", "ready")'
