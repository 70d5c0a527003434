#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install lepton-sim into it.
# torch goes in first: a CPU build where no NVIDIA GPU is present, so pip never pulls a multi-GB CUDA build.
# Usage: scripts/setup-venv.sh [EXTRAS]   (default test,rllib; e.g. test,rllib,bench)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LEPTON_VENV:-.venv}"
EXTRAS="${1:-test,rllib}"
PY="${PYTHON:-python3}"

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip setuptools wheel

if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    echo "[setup] NVIDIA GPU found: installing torch with CUDA"
    $PIP install -q "torch>=2.3"
  else
    echo "[setup] no NVIDIA GPU: installing a CPU build of torch"
    # a CPU wheel from pip's configured sources first (a local wheel cache or mirror), else PyTorch's CPU index
    $PIP install -q "torch==2.13.0+cpu" 2>/dev/null \
      || $PIP install -q "torch>=2.3" --index-url https://download.pytorch.org/whl/cpu
  fi
fi

# envs/, agents/ and scenarios/ install as lepton_sim.envs / .agents / .scenarios (package-dir). Static tools that
# read packages from disk (import-linter's grimp, mypy) cannot follow that mapping, so the installed layout is
# mirrored with links inside lepton_sim/ (git-ignored; the same files, not copies).
for sub in envs agents scenarios; do ln -sfn "../$sub" "lepton_sim/$sub"; done

echo "[setup] installing lepton-sim[$EXTRAS] (editable)"
$PIP install -q -e ".[$EXTRAS]"
echo "[setup] ready: $VENV ($("$VENV/bin/python" -c 'import lepton_sim, torch; print("lepton-sim", lepton_sim.__version__, "torch", torch.__version__)'))"
