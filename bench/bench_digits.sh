#!/usr/bin/env bash
# The embedded benchmark end to end: the preset digits-bench (6 attacks x 5 seeds), then the
# alarm grid bench/bench_digits_alarm.toml into the same runs directory (10 clean runs; every
# attack at 1% / LC 10%; the dirty-label attacks with balance = true at 8% and 1%), then
#   bench/digits_bench_asr.md      ASR and clean accuracy per attack over seeds (bench_digits.py)
#   bench/digits_bench_paper.md    the comparison with the paper's Table I (ibtui report --paper)
#   bench/digits_bench_alarm/      the alarm, normal and balanced (ibtui alarm-eval)
# Each stage runs once: a stage already run in RUNS (marker file RUNS/.stage-NAME) is skipped,
# so the command can be repeated after an interruption (`ibtui resume` continues its runs).
# STAGES picks stages (default all, in priority order; STAGES= only writes the tables from what
# RUNS holds); JOBS workers at once (default 2); OUT the tables' prefix (default bench/digits_bench:
# a RUNS with other stages, e.g. STAGES="clean low ballow", writes its own, e.g. OUT=bench/digits_bench_1pct).
# Measured on the shared 2-core box with --jobs 2: a run finishes every ~1.7 minutes (25 runs in
# ~43 min), so the 120 runs take ~3.5 h there; an idle box is ~2x faster.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-runs-digits-bench}"
JOBS="${JOBS:-2}"
STAGES="${STAGES-bench clean bal low ballow}"
IBTUI=.venv/bin/ibtui
mkdir -p "$RUNS"
for stage in $STAGES; do
  [ -e "$RUNS/.stage-$stage" ] && continue
  if [ "$stage" = bench ]; then
    $IBTUI run --preset digits-bench --runs-dir "$RUNS" --jobs "$JOBS" || true
  else
    $IBTUI run bench/bench_digits_alarm.toml --only "$stage" --runs-dir "$RUNS" --jobs "$JOBS" || true
  fi
  touch "$RUNS/.stage-$stage"
done
OUT="${OUT:-bench/digits_bench}"
.venv/bin/python bench/bench_digits.py "$RUNS" --out "${OUT}_asr.md"
$IBTUI report --paper --runs-dir "$RUNS" > "${OUT}_paper.md" && cat "${OUT}_paper.md" || rm -f "${OUT}_paper.md"  # no 10% runs: no table
$IBTUI alarm-eval --runs-dir "$RUNS" --out "${OUT}_alarm"
