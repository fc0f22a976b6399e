#!/usr/bin/env bash
# The GPU check of issue 15, as one prepared command for a session lent a device machine
# (the `device` tool; /work/.library/device/README.md): Table 5 with the torch backend on the GPU
# (bf16 autocast, decode excluded), the paper's backbones at 224², random init.
#
#   run(command="bash scripts/device-check.sh", timeout_s=480)
#
# That machine has torch, timm, scikit-learn, matplotlib, click and tqdm but no network, so
# nothing is installed: the toolkit runs from the working tree (PYTHONPATH). Decoding needs decord
# and PyAV, which it lacks, hence --no-decode. Results land in $OUT (inference-gpu.json and .png,
# the log). Try it on the CPU with tiny models (--backends torch, the GPU's default; on the CPU
# the bench adds ONNX Runtime, which that machine lacks):
#   DEVICE=cpu BENCH_ARGS="--backends torch --light-model test_efficientnet --recognizer-model test_resnet \
#     --light-resolution 32 --recognizer-resolution 32 --reps 1" OUT=/tmp/out bash scripts/device-check.sh
# Checked so on 2026-12-04 with decord, PyAV, ONNX Runtime, onnx, onnxscript, zarr and h5py made
# unimportable (modules that raise ImportError, first on PYTHONPATH): it imports none of them.
# Run on the H200 twice on 2026-12-04 through scripts/device-suite.sh (about 50 s each; README,
# "On a GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-cache/bench}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
{
    if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
    "$python" -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())"
    # shellcheck disable=SC2086  # BENCH_ARGS holds several options
    "$python" -m stages.cli bench --device "${DEVICE:-cuda}" --no-decode --no-progress --out "$out/inference-gpu.json" ${BENCH_ARGS:-}
} 2>&1 | tee "$out/device-check.log"
