#!/usr/bin/env bash
# One GPU benchmark pass (BENCHMARKS.md, "GPU" section), sized to fit one ~450 s device call.
#
#   bash benchmarks/gpu.sh                       # on the GPU machine; logs under $OUT
#   GPU_BENCH_QUICK=1 PYTHON=.venv/bin/python OUT=/tmp/gpu_out bash benchmarks/gpu.sh
#                                                # tiny sizes: a CPU dry run of this script
#
# Runs the repo from source (PYTHONPATH=repo root, no install). Every step has its own timeout
# (they sum to ~380 s) and its own log; a failed or timed-out step is reported and the script
# goes on. The per-row lines the benchmarks print as they go survive a timeout in the log.
# At most 8 log files (the device tool returns 8): summary.log + one per step.

set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_bench_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
QUICK=${GPU_BENCH_QUICK:-0}
SUMMARY="$OUT/summary.log"

# deer.py, scan.py and ab_plus_c.py print `uptime`; fall back to /proc/loadavg where it is missing.
if ! command -v uptime >/dev/null 2>&1; then
  mkdir -p /tmp/gpu_bench_shim
  printf '#!/bin/sh\necho "loadavg: $(cat /proc/loadavg)"\n' >/tmp/gpu_bench_shim/uptime
  chmod +x /tmp/gpu_bench_shim/uptime
  export PATH="/tmp/gpu_bench_shim:$PATH"
fi

step() {  # step NAME BUDGET_S CMD...: run CMD under timeout, log to $OUT/NAME.log
  local name=$1 budget=$2 start rc
  shift 2
  echo "=== $name (timeout ${budget}s): $*" | tee -a "$SUMMARY"
  start=$(date +%s)
  timeout -k 5 "$budget" "$@" 2>&1 | tee "$OUT/$name.log"
  rc=${PIPESTATUS[0]}
  echo "=== $name rc=$rc in $(($(date +%s) - start)) s" | tee -a "$SUMMARY"
  [ "$rc" = 0 ] || echo "FAILED $name (rc $rc$([ "$rc" = 124 ] && echo ', timed out'))" | tee -a "$SUMMARY"
}

{
  date -u
  nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  "$PY" -c 'import jax, jaxlib; print("jax", jax.__version__, "jaxlib", jaxlib.__version__, jax.devices())' 2>&1
} | tee -a "$SUMMARY"

if [ "$QUICK" = 1 ]; then
  DEER_FWD=(--lengths 100,300 --hiddens 1,2 --repeats 1)
  DEER_GRAD=(--lengths 100 --hiddens 1,2 --repeats 1)
  DEER_BIG=(--lengths 100 --hiddens 4 --repeats 1)
  SCAN=(--quick) ROPE=(--quick) ABC=(--quick --num 8000)
else
  # Longest T first: the headline rows (T=1e5) are printed before a timeout could cut the run.
  DEER_FWD=(--lengths 100000,10000,1000 --hiddens 1,4,16 --repeats 3)
  DEER_GRAD=(--lengths 100000,10000 --hiddens 1,16 --repeats 3)
  DEER_BIG=(--lengths 10000,100000 --hiddens 64 --repeats 3)
  SCAN=() ROPE=() ABC=(--quick --num 200000)
fi

step deer_fwd 110 "$PY" benchmarks/deer.py "${DEER_FWD[@]}"
step deer_grad 65 "$PY" benchmarks/deer.py --grad "${DEER_GRAD[@]}"
step scan 70 "$PY" benchmarks/scan.py "${SCAN[@]}"
step rope 20 "$PY" benchmarks/rope.py "${ROPE[@]}"
step quanta 50 "$PY" benchmarks/quanta.py --quick
step abc 25 "$PY" benchmarks/ab_plus_c.py "${ABC[@]}"
# Largest last: Newton's dense 64 x 64 Jacobians at T=1e5, batch 16 are ~26 GB per copy.
step deer_h64 40 env XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 "$PY" benchmarks/deer.py "${DEER_BIG[@]}"
echo "=== done $(date -u)" | tee -a "$SUMMARY"
