#!/usr/bin/env bash
# One command from a fresh clone to a trained driving agent: installs everything into .venv, trains PPO on
# driving/obstacle-avoid for a short budget, evaluates it and the scripted baseline on the held-out test split of
# the driving/standard suite, and writes a report, a learning curve and a rollout video.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup-venv.sh test,rllib
export PATH="$PWD/.venv/bin:$PATH"

SCENARIO="${SCENARIO:-driving/obstacle-avoid}"
STEPS="${STEPS:-600000}"
OUT="runs/quickstart-$(date +%Y%m%d-%H%M%S)"

lepton-sim train "$SCENARIO" --algo ppo --steps "$STEPS" --out "$OUT/ppo"
lepton-sim evaluate "$OUT/ppo" --suite driving/standard --split test --out "$OUT/eval-ppo"
lepton-sim evaluate scripted --suite driving/standard --split test --out "$OUT/eval-scripted"
lepton-sim plot "$OUT/ppo" --out "$OUT/learning_curves.png"
lepton-sim rollout "$OUT/ppo" --scenario "$SCENARIO" --episodes 2 --out "$OUT/rollout.mp4"

echo
echo "Done. Everything is in $OUT/:"
echo "  trained run      $OUT/ppo  (model.zip, best_model.zip, checkpoints/, logs/, config.yaml, meta.json)"
echo "  reports          $OUT/eval-ppo/report.md  $OUT/eval-scripted/report.md"
echo "  learning curve   $OUT/learning_curves.png"
echo "  rollout video    $OUT/rollout.mp4  (trajectory plot: $OUT/rollout.png)"
