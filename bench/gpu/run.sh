#!/usr/bin/env bash
# The GPU check of the model and kernels, in one run of at most ~9 minutes on a CUDA machine:
#   1. the model's CUDA tests (float32 and bf16 parity with transformers, FP8 parity, a GPU/host layer split,
#      attention without score matrices) and the Triton kernels' tests against their references, on the GPU;
#   2. kernel benchmarks against their references (gated delta rule, attention with log-sum-exp);
#   3. a prefill of a mid-size random model with Qwen3-Next-80B's head layout, to as many tokens as fit.
# Every stage has its own time limit and a failing stage does not stop the others. Writes $OUT/gpu-results.md
# (also copied to bench/gpu/results.md, except in SMOKE runs) and the whole log to $OUT/run.log.
#
#   bash bench/gpu/run.sh           # from anywhere; OUT defaults to bench/out/gpu
#   SMOKE=1 bash bench/gpu/run.sh   # a CPU machine: the same stages at tiny sizes (checks the script itself)
#
# Python: $PYTHON if set, else python3 when it already has torch (CUDA), triton and transformers (GPU images
# usually do; offline machines must), else a venv created here with torch==2.13.0 and the project's gpu extra
# from PyPI (only where PyPI is reachable). The repository runs from its checkout (PYTHONPATH), not installed.
set -u
cd "$(dirname "$0")/../.."
REPO=$PWD
OUT=${OUT:-$REPO/bench/out/gpu}
mkdir -p "$OUT" "$REPO/bench/out"
LOG=$OUT/run.log
RESULTS=$OUT/gpu-results.md
: >"$LOG"
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
STAGES=()

log() { echo "[$(date +%T)] $*" | tee -a "$LOG"; }

# stage NAME SECONDS COMMAND...: runs COMMAND under `timeout`, logs its output, records status and time.
stage() {
    local name=$1 limit=$2 start rc
    shift 2
    log "== $name (limit ${limit}s): $*"
    start=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    local took=$(($(date +%s) - start)) verdict=ok
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && verdict="timed out"
    [ $rc -ne 0 ] && [ "$verdict" = ok ] && verdict="failed (rc $rc)"
    STAGES+=("| $name | $verdict | $took |")
    log "== $name: $verdict in ${took}s"
    return $rc
}

has_stack() { "$1" -c "import torch, triton, transformers, safetensors, tokenizers, pytest" >/dev/null 2>&1; }

PY=${PYTHON:-python3}
if ! has_stack "$PY"; then
    log "python3 lacks torch/triton/transformers: making .venv-gpu (needs PyPI)"
    timeout 300 python3 -m venv --system-site-packages "$REPO/.venv-gpu" >>"$LOG" 2>&1 &&
        timeout 300 "$REPO/.venv-gpu/bin/pip" install -q "torch==2.13.0" "triton>=3.2" transformers safetensors \
            tokenizers pytest pytest-timeout >>"$LOG" 2>&1
    PY=$REPO/.venv-gpu/bin/python
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
    "$PY" -c "import torch, triton, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'available', torch.cuda.is_available(), '| triton', triton.__version__, '| transformers', transformers.__version__)" 2>&1
} | tee -a "$LOG" >"$OUT/environment.txt"

PYTEST=("$PY" -m pytest -q -p no:cacheprovider -rfEs --durations=10)
# --confcutdir: tests/conftest.py (service fixtures: PostgreSQL, Redis) is not needed and not loadable here.
stage "model tests on CUDA" 120 "${PYTEST[@]}" --confcutdir=tests/model tests/model/test_cuda.py
stage "kernel tests on CUDA" 100 "${PYTEST[@]}" --confcutdir=tests/kernels \
    tests/kernels/test_kernels_triton.py tests/kernels/test_flash_attention.py
SMALL=()
PREFILL=(--budget-s 145)
if [ "${SMOKE:-0}" = 1 ]; then
    SMALL=(--smoke)
    PREFILL=(--device cpu --layers 4 --experts 16 --start 32 --chunk 32 --max-tokens 64 --budget-s 60)
fi
stage "bench: gated delta rule" 75 "$PY" bench/kernels/bench_gated_delta_rule.py "${SMALL[@]}" --out "$OUT/gdr.md"
stage "bench: attention" 40 "$PY" bench/kernels/bench_flash_attention.py "${SMALL[@]}" --out "$OUT/attention.md"
if ! stage "bench: prefill" 180 "$PY" bench/gpu/prefill.py "${PREFILL[@]}" --out "$OUT/prefill.md" &&
    [ ! -s "$OUT/prefill.md" ]; then
    # A failing Triton kernel must not cost the whole table: the same run on the PyTorch references.
    stage "bench: prefill, reference kernels" 90 env DOCPROC_KERNELS=reference "$PY" bench/gpu/prefill.py \
        "${PREFILL[@]}" --budget-s 50 --out "$OUT/prefill.md"
fi

{
    echo "# GPU run ($(date -u +%F), bench/gpu/run.sh)"
    echo
    echo '```'
    cat "$OUT/environment.txt"
    echo '```'
    echo
    echo "| stage | result | seconds |"
    echo "|---|---|---|"
    printf '%s\n' "${STAGES[@]}"
    echo
    echo "## Test summaries"
    echo
    echo '```'
    grep -E "^(FAILED|ERROR|SKIPPED)|(passed|failed|skipped|error)[^a-z]* in [0-9.]+s" "$LOG" || echo "(none found)"
    echo '```'
    for part in prefill attention gdr; do
        if [ -s "$OUT/$part.md" ]; then
            echo
            sed 's/^# /## /' "$OUT/$part.md"
        fi
    done
} >"$RESULTS"
rm -f "$OUT/environment.txt"
[ "${SMOKE:-0}" = 1 ] || cp "$RESULTS" "$REPO/bench/gpu/results.md"
log "wrote $RESULTS"
