#!/usr/bin/env bash
# Static checks that CI runs before the tests: ruff (lint + format), import-linter (the layering
# envs <- core <- agents <- CLI, contracts in pyproject.toml) and mypy on the core. import-linter and mypy read
# lepton_sim.envs / .agents through the links scripts/setup-venv.sh makes inside lepton_sim/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${LEPTON_VENV:-.venv}/bin"

for sub in envs agents scenarios; do
  [ -e "lepton_sim/$sub" ] || { echo "lepton_sim/$sub is missing: run scripts/setup-venv.sh first" >&2; exit 1; }
done
"$BIN/ruff" check .
"$BIN/ruff" format --check .
"$BIN/lint-imports"
CORE=$(cd lepton_sim && ls ./*.py | sed 's#^\./##; s/\.py$//; s/^__init__$//; s/^/-m lepton_sim./; s/\.$//' | tr '\n' ' ')
# the core's own subpackages (lepton_sim/perception); envs/agents/scenarios are links to the layers below, not core
for pkg in lepton_sim/*/; do
  pkg=${pkg%/}
  [ -L "$pkg" ] || [ ! -f "$pkg/__init__.py" ] || CORE="$CORE -p lepton_sim.${pkg#lepton_sim/}"
done
"$BIN/mypy" $CORE
echo "[check-code] ruff, import-linter and mypy: OK"
