#!/usr/bin/env bash
# Everything a session lent a GPU machine (the `device` tool; /work/.library/device/README.md)
# checks there, as one prepared command inside one lease:
#   check  the GPU inference bench of issue 15 (scripts/device-check.sh);
#   probe  where the torch backend's GPU time goes, and the levers not built (scripts/gpu_probe.py);
#   tests  the test suite with CUDA present (what runs through the CLI takes the GPU: --device auto);
#   scale  `nsnet bench-scale --like activitynet` on the GPU: the cached stages at full dataset shape.
# PARTS picks some (default: all, in that order).
#
# That machine has torch, timm, h5py, scikit-learn, ONNX Runtime but not zarr, decord or PyAV, and
# no network: carry them as cp312 wheels in .whl (ignored through .git/info/exclude), fetched here:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux2010_x86_64 -d .whl zarr==3.1.6 donfig==0.8.1.post1 numcodecs==0.16.6 \
#     google-crc32c==1.9.0 av==18.1.0 decord==0.6.0
#   run(command="bash scripts/device-suite.sh", carry=[".whl"], timeout_s=590)
# (all four: about 7 minutes on the H200, 2026-12-04; tests and scale need the wheels)
# Each part has its own time limit, so that one slow part leaves the others their turn; the logs and
# JSON land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-cache/bench}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

parts=${PARTS:-check probe tests scale}
for part in $parts; do
    case $part in
    check) OUT=$out timeout 120 bash scripts/device-check.sh ;;
    probe) timeout 100 python3 scripts/gpu_probe.py --out "$out/gpu-probe.json" 2>&1 | tee "$out/gpu-probe.log" ;;
    # 6 workers of 2 threads on the 16 cores; a test stuck past 150 s is failed, not waited for.
    tests) OMP_NUM_THREADS=2 timeout 190 python3 -m pytest -q -p no:cacheprovider -n 6 --timeout 150 \
        --junitxml="$out/junit.xml" 2>&1 | tee "$out/tests.log" | tail -60 ;;
    scale) timeout 200 python3 -m stages.cli bench-scale --like activitynet --epochs "${SCALE_EPOCHS:-2}" \
        --cache-dir /tmp/scale --no-progress 2>&1 | tee "$out/scale.log"
        cp /tmp/scale/bench/scale-activitynet.json "$out/" 2>/dev/null ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
    esac
    echo "$part exit $?"
done
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
