#!/usr/bin/env bash
# Backdoor-alarm evaluation: the grid of bench/alarm_grid.toml (6 clean runs, 6 attacks
# x rates 1% / 10% x 3 seeds with targets 1 / 5 / 8, digits, width 8, 6 epochs), then the table
# and figure bench/alarm_eval.{md,csv,png}. On a 2-core CPU box the grid takes ~40-50 minutes
# with --jobs 2 (about a minute per run); a runs directory that already holds finished runs is
# reused (ibtui run skips nothing, so delete it to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-runs-alarm-eval}"
if [ ! -d "$RUNS" ]; then
  .venv/bin/ibtui run bench/alarm_grid.toml --runs-dir "$RUNS" --jobs "${JOBS:-2}"
fi
.venv/bin/ibtui alarm-eval --runs-dir "$RUNS" --out bench
