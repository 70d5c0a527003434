#!/usr/bin/env bash
# Static checks that CI runs before the tests: ruff (lint + format), import-linter (the layering
# envs <- core <- agents <- CLI) and mypy on the core. envs/, agents/ and scenarios/ install as subpackages of
# lepton_sim (setuptools package-dir), which neither grimp nor mypy can follow through an editable install, so
# both run on a throwaway copy of the installed layout.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${LEPTON_VENV:-.venv}/bin"

"$BIN/ruff" check .
"$BIN/ruff" format --check .

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
cp -r lepton_sim "$STAGE/lepton_sim"
cp -r envs "$STAGE/lepton_sim/envs"
cp -r agents "$STAGE/lepton_sim/agents"
cp -r scenarios "$STAGE/lepton_sim/scenarios"
find "$STAGE" -name __pycache__ -prune -exec rm -rf {} +

(cd "$STAGE" && PYTHONPATH="$STAGE" "$OLDPWD/$BIN/lint-imports" --config "$OLDPWD/pyproject.toml")
CORE=$(cd lepton_sim && ls ./*.py | sed 's#^\./##; s/\.py$//; s/^__init__$//; s/^/-m lepton_sim./; s/\.$//' | tr '\n' ' ')
(cd "$STAGE" && PYTHONPATH="$STAGE" "$OLDPWD/$BIN/mypy" --config-file "$OLDPWD/pyproject.toml" $CORE)
echo "[check-code] ruff, import-linter and mypy: OK"
