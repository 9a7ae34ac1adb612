#!/usr/bin/env bash
# Regenerates every output shown in README.md (run from the repository root, in the venv):
#   bash docs/readme_examples.sh > docs/readme_examples.txt 2>&1
set -euo pipefail
export BAYESCALE_QUICK=0
cd "$(mktemp -d)"
run() { echo "\$ $*"; "$@"; echo; }
run bayescale datasets
run bayescale fit --dataset chinchilla --out chinchilla.nc --no-progress
run bayescale fit --dataset chinchilla --json --no-progress
run bayescale summary chinchilla.nc --level 0.9
run bayescale predict chinchilla.nc --N 7e10 --D 1.4e12 --N 1e9 --D 2e10
run bayescale predict chinchilla.nc --compute 5.88e23 --json
run bayescale predict chinchilla.nc --N 2e12 --D 4e13
run bayescale allocate chinchilla.nc --compute 5.88e23 --compute 1e25
run bayescale allocate chinchilla.nc --compute 5.88e23 --json
run bayescale fit --dataset chinchilla --law kaplan --out kaplan.nc --no-progress
run bayescale compare chinchilla.nc kaplan.nc --lfo
run bayescale decide chinchilla.nc --compute 5.88e23 --objective quantile:0.9
run bayescale decide chinchilla.nc --compute 5.88e23 --objective cvar:0.9 --json
run bayescale decide chinchilla.nc --target-loss 2.0 --probability 0.9
run bayescale fit --dataset chinchilla --no-form-error --out exact.nc --no-progress
run bayescale decide exact.nc --target-loss 2.0 --probability 0.9
run bayescale allocate chinchilla.nc --compute 5.88e23 --max-params 3e10
run bayescale decide chinchilla.nc --compute 5.88e23 --max-params 3e10
run bayescale decide chinchilla.nc --target-loss 2.0 --max-params 3e10
run bayescale fit --dataset chinchilla --law chinchilla_tied --out tied.nc --no-progress
run bayescale compare chinchilla.nc tied.nc --lfo
run bayescale fit --dataset datablations --all-rows --law data_constrained --target-accept 0.99 --out datablations.nc --no-progress
run bayescale decide datablations.nc --compute 1e22 --unique-tokens 1e10
run bayescale fit --dataset chinchilla --method huber --bootstrap 1000
run bayescale backtest --dataset chinchilla --no-progress
run bayescale fit --dataset chinchilla --method huber --json
run bayescale fit --dataset porian2024 --config "Cosine decay" --method approach2 --bootstrap 400
run bayescale task fit --dataset olmo_ladder --task hellaswag_val --max-train-params 1e9 --N 3.2e9 --D 6.3e11 --target-accuracy 0.7 --out hellaswag.nc --no-progress
run bayescale task predict hellaswag.nc --N 7e9 --D 2e12 --target-accuracy 0.7
set +e
run bayescale fit runs_missing.csv
run bayescale decide chinchilla.nc --target-loss 1.5 --probability 0.9
exit 0
