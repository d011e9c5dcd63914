#!/usr/bin/env bash
# The one GPU script (issue 18; BENCHMARKS.md, "GPU"): set-up on a bare machine, the benchmarks,
# then `jaxlab reproduce --gpu`, inside one 10-minute device call (deadline GPU_DEADLINE_S=585 s).
#
#   bash benchmarks/gpu.sh          # on the GPU machine (device `run`, timeout_s 600); files in $OUT
#   GPU_DEER_GRID=1 bash benchmarks/gpu.sh   # a second call: the DEER grid alone (item 4)
#   GPU_BENCH_QUICK=1 PYTHON=/work/main/.venv/bin/python OUT=/tmp/gpu_out bash benchmarks/gpu.sh
#                                   # CPU dry run of this script: tiny benchmarks, then
#                                   # `reproduce --gpu --dry-run` (compiles, runs nothing)
#
# Set-up: the image's python3 is used if its jax has a GPU backend (the 'cuda' image has jax
# 0.11.2 with the CUDA 13 plugin); else the jax wheels carried in .gpu_wheels/jax/ are installed
# (see BENCHMARKS.md for how to fill it). Pure-Python dependencies the image lacks
# (ml_collections) are installed from .gpu_wheels/*.whl. Nothing is fetched: the machine is
# offline. The commit goes into REPORT.md from git, or from $JAXLAB_COMMIT (the device's copy of
# the tree has no .git: pass JAXLAB_COMMIT=$(git rev-parse --short HEAD) in the command).
#
# Time: set-up ~15 s; benchmarks 85 s in all (each step its own timeout; the per-row lines they
# print survive a timeout in the log); `reproduce --gpu` gets what is left before the deadline
# (~480 s: jaxlab.gpu_tier.BUDGET_S); if it is cut, the runs finished so far are still packed.
# Files back under $OUT (the device returns at most 8): summary.log, benchmarks.log,
# reproduce.log, REPORT.md, jaxlab-gpu-<commit>.tar.gz (the whole run directory).

set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT=${OUT:-/tmp/gpu_bench_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
QUICK=${GPU_BENCH_QUICK:-0}
DEADLINE=${GPU_DEADLINE_S:-585}
SKIP_BENCH=${GPU_SKIP_BENCH:-0}
SUMMARY="$OUT/summary.log" BENCH="$OUT/benchmarks.log"
REPRO=${GPU_REPRODUCE_DIR:-/tmp/gpu_reproduce}
: >"$SUMMARY"
: >"$BENCH"

# deer.py, scan.py and ab_plus_c.py print `uptime`; fall back to /proc/loadavg where it is missing.
if ! command -v uptime >/dev/null 2>&1; then
  mkdir -p /tmp/gpu_bench_shim
  printf '#!/bin/sh\necho "loadavg: $(cat /proc/loadavg)"\n' >/tmp/gpu_bench_shim/uptime
  chmod +x /tmp/gpu_bench_shim/uptime
  export PATH="/tmp/gpu_bench_shim:$PATH"
fi

say() { echo "$*" | tee -a "$SUMMARY"; }

# --- set-up -----------------------------------------------------------------------------------
SITE=/tmp/gpu_site
if [ "$QUICK" != 1 ] && ! "$PY" -c 'import sys, jax; sys.exit(jax.default_backend() != "gpu")' 2>/dev/null; then
  if ls .gpu_wheels/jax/*.whl >/dev/null 2>&1; then
    say "set-up: the image's jax has no GPU backend; installing .gpu_wheels/jax/*.whl"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" .gpu_wheels/jax/*.whl 2>&1 | tee -a "$SUMMARY"
  else
    say "set-up: the image's jax has no GPU backend and .gpu_wheels/jax/ is empty (see BENCHMARKS.md)"
  fi
fi
if ls .gpu_wheels/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .gpu_wheels/*.whl 2>&1 | tee -a "$SUMMARY"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
[ -d "$SITE" ] && export PYTHONPATH="$PYTHONPATH:$SITE"
{
  date -u
  nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  "$PY" -c 'import jax, jaxlib; print("jax", jax.__version__, "jaxlib", jaxlib.__version__, jax.devices())' 2>&1
  "$PY" - <<'EOF' 2>&1
import importlib.util
need = ["ml_collections", "flax", "optax", "chex", "orbax.checkpoint", "jaxtyping", "scipy",
        "matplotlib", "sentencepiece", "absl"]
missing = [n for n in need if importlib.util.find_spec(n) is None]
print("set-up: missing packages:", ", ".join(missing) if missing else "none")
EOF
} | tee -a "$SUMMARY"
say "=== set-up done in $(($(date +%s) - START)) s"

left() { echo $((DEADLINE - ($(date +%s) - START))); }

step() {  # step NAME BUDGET_S CMD...: CMD under timeout (never past the deadline), into $BENCH
  local name=$1 budget=$2 start rc room
  shift 2
  room=$(($(left) - 10))
  [ "$budget" -gt "$room" ] && budget=$room
  if [ "$budget" -le 0 ]; then say "SKIPPED $name (deadline)"; return; fi
  say "=== $name (timeout ${budget}s): $*"
  echo "=== $name (timeout ${budget}s): $*" >>"$BENCH"
  start=$(date +%s)
  timeout -k 5 "$budget" "$@" >>"$BENCH" 2>&1
  rc=$?
  say "=== $name rc=$rc in $(($(date +%s) - start)) s"
  [ "$rc" = 0 ] || say "FAILED $name (rc $rc$([ "$rc" = 124 ] && echo ', timed out'))"
}

# --- DEER at every hidden size (issue 18 item 4): a call of its own, GPU_DEER_GRID=1 ----------
# n in {1,4,16,64} x T in {1e3,1e4,1e5}, batch 16: lax.scan, Newton, quasi and (when a checkout of
# machine-discovery/deer is carried in the ignored .deer_ref/) the reference, side by side. A row
# that cannot fit says so with XLA's memory estimate. Takes the whole deadline; no reproduce.
if [ "${GPU_DEER_GRID:-0}" = 1 ]; then
  REF=()
  [ -d .deer_ref ] && REF=(--reference .deer_ref)
  GRID=(--gpu-grid --repeats 3)
  [ "$QUICK" = 1 ] && GRID=(--gpu-grid --lengths 100 --hiddens 1,4 --batch 2 --repeats 1)
  step deer_grid $(($(left) - 15)) "$PY" benchmarks/deer.py "${GRID[@]}" "${REF[@]}"
  say "=== done in $(($(date +%s) - START)) s, $(date -u)"
  exit 0
fi

# --- benchmarks (85 s in all on the GPU) ------------------------------------------------------
if [ "$QUICK" = 1 ]; then
  DEER_FWD=(--lengths 100,300 --hiddens 1,2 --repeats 1)
  DEER_GRAD=(--lengths 100 --hiddens 1,2 --repeats 1)
  DEER_BIG=(--lengths 100 --hiddens 4 --repeats 1)
  SCAN=(--quick) ROPE=(--quick) ABC=(--quick --num 8000)
  T_FWD=90 T_GRAD=90 T_SCAN=90 T_ROPE=90 T_QUANTA=90 T_ABC=90 T_BIG=90  # CPU: not timed
else
  # Longest T first: the headline rows (T=1e5) are printed before a timeout could cut the run.
  DEER_FWD=(--lengths 100000,10000,1000 --hiddens 1,4,16 --repeats 3)
  DEER_GRAD=(--lengths 100000,10000 --hiddens 1,16 --repeats 3)
  DEER_BIG=(--lengths 10000,100000 --hiddens 64 --repeats 3)
  SCAN=() ROPE=() ABC=(--quick --num 200000)
  T_FWD=25 T_GRAD=12 T_SCAN=12 T_ROPE=8 T_QUANTA=8 T_ABC=8 T_BIG=12
fi
if [ "$SKIP_BENCH" != 1 ]; then
  step deer_fwd $T_FWD "$PY" benchmarks/deer.py "${DEER_FWD[@]}"
  step deer_grad $T_GRAD "$PY" benchmarks/deer.py --grad "${DEER_GRAD[@]}"
  step scan $T_SCAN "$PY" benchmarks/scan.py "${SCAN[@]}"
  step rope $T_ROPE "$PY" benchmarks/rope.py "${ROPE[@]}"
  step quanta $T_QUANTA "$PY" benchmarks/quanta.py --quick
  step abc $T_ABC "$PY" benchmarks/ab_plus_c.py "${ABC[@]}"
  # Largest last: Newton's dense 64 x 64 Jacobians at T=1e5, batch 16 are ~26 GB per copy.
  step deer_h64 $T_BIG env XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 "$PY" benchmarks/deer.py "${DEER_BIG[@]}"
fi

# --- jaxlab reproduce --gpu -------------------------------------------------------------------
room=$(($(left) - 15))  # keep 15 s to pack and copy
if [ "$QUICK" = 1 ]; then
  CMD=("$PY" -m jaxlab.main reproduce --gpu --dry-run --only "${GPU_DRY_ONLY:-lm_baseline,deer_train}")
  room=600
else
  CMD=("$PY" -m jaxlab.main reproduce --gpu --out "$REPRO")
fi
say "=== reproduce (timeout ${room}s): ${CMD[*]}"
start=$(date +%s)
timeout -k 5 "$room" "${CMD[@]}" >"$OUT/reproduce.log" 2>&1
rc=$?
say "=== reproduce rc=$rc in $(($(date +%s) - start)) s"
if [ "$QUICK" != 1 ]; then
  if [ ! -f "$REPRO/REPORT.md" ] && [ -d "$REPRO/gpu" ]; then  # cut: report what finished
    "$PY" -c "import sys; from jaxlab import gpu_tier; print(gpu_tier.partial_report(sys.argv[1]))" \
      "$REPRO" 2>&1 | tee -a "$SUMMARY"
  fi
  [ -f "$REPRO/REPORT.md" ] && cp "$REPRO/REPORT.md" "$OUT/REPORT.md"
  archive=$(ls -t "$REPRO"/jaxlab-gpu-*.tar.gz 2>/dev/null | head -1)
  if [ -z "$archive" ]; then  # cut before packing: bring back what finished
    archive="$(dirname "$REPRO")/jaxlab-gpu-partial.tar.gz"  # outside the folder it packs
    tar czf "$archive" --exclude=ckpt --exclude=.lock -C "$(dirname "$REPRO")" "$(basename "$REPRO")" 2>&1 | tee -a "$SUMMARY"
    say "reproduce did not pack its archive (rc $rc): packed the partial run directory"
  fi
  cp "$archive" "$OUT/" && say "archive: $(basename "$archive") ($(du -h "$archive" | cut -f1))"
fi
say "=== done in $(($(date +%s) - START)) s, $(date -u)"
