#!/usr/bin/env bash
# Create or update .venv with everything (test extras included), run the static checks and the whole test suite.
# Extra arguments go to pytest, e.g. ./run-tests.sh -k driving
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup-venv.sh test,rllib
scripts/check-code.sh    # ruff, import-linter (the layering), mypy on the core
exec .venv/bin/python -m pytest -n 2 --timeout 900 "$@"
