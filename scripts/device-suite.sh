#!/usr/bin/env bash
# Everything a session lent a GPU machine (the `device` tool; /work/.library/device/README.md)
# checks there, as one prepared command inside one lease:
#   check  the GPU inference bench of issue 15 (scripts/device-check.sh);
#   probe  where the torch backend's GPU time goes, and the levers not built (scripts/gpu_probe.py);
#   tests  the test suite with CUDA present (what runs through the CLI takes the GPU: --device auto);
#   scale  `nsnet bench-scale --like activitynet` on the GPU: the cached stages at full dataset shape;
#   train  `nsnet bench-train` on scale's cache: the share of a GPU training step spent waiting for data;
#   features  `nsnet bench-features` on the demo videos (made first): decoding against the models on
#          the GPU, with the decoders' default there (every core but two).
# PARTS picks some (default: check probe tests scale train features, in that order).
#
# That machine has torch, timm, h5py, scikit-learn, ONNX Runtime but not zarr, decord or PyAV, and
# no network: carry them as cp312 wheels in .whl (ignored through .git/info/exclude), fetched here:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux2010_x86_64 -d .whl zarr==3.1.6 donfig==0.8.1.post1 numcodecs==0.16.6 \
#     google-crc32c==1.9.0 av==18.1.0 decord==0.6.0
#   run(command="PARTS='scale train' bash scripts/device-suite.sh", carry=[".whl"], timeout_s=480)
#   run(command="PARTS='features' bash scripts/device-suite.sh", carry=[".whl"], timeout_s=300)
# All but check and probe need the wheels. On the H200 (2026-12-04) check took about 50 s, probe
# about 40 s, tests 150 s; scale ran past its 200 s twice (its training then ran on the CPU, since
# fixed), so it has 300 s now; train and features were added after that lease and are untimed.
# A session has 15 minutes of device time, each start (about 30 s there) included: check, probe
# and tests were run on 2026-12-04, so the next lease is best spent on the two calls above.
# Each part has its own time limit, so that one slow part leaves the others their turn; the logs and
# JSON land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-cache/bench}
mkdir -p "$out"
python=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

parts=${PARTS:-check probe tests scale train features}
# At most 8 files come back from $OUT: the JSON reports, the plots, device-check's log and one log
# of everything else (suite.log).
for part in $parts; do
    case $part in
    check) OUT=$out PYTHON=$python timeout 120 bash scripts/device-check.sh >/dev/null ;;
    probe) timeout 100 "$python" scripts/gpu_probe.py --out "$out/gpu-probe.json" ;;
    # 6 workers of 2 threads on the 16 cores; a test stuck past 150 s is failed, not waited for.
    tests) OMP_NUM_THREADS=2 timeout 190 "$python" -m pytest -q -p no:cacheprovider -n 6 --timeout 150 | tail -40 ;;
    scale) timeout 300 "$python" -m stages.cli bench-scale --like activitynet --epochs "${SCALE_EPOCHS:-2}" --cache-dir /tmp/scale --no-progress
        cp /tmp/scale/bench/scale-activitynet.json "$out/" ;;
    train) timeout 150 "$python" -m stages.cli bench-train --dataset activitynet --cache-dir /tmp/scale \
        --features "$(ls -d /tmp/scale/synth-activitynet/features-*.zarr | head -1)" --epochs 3 --no-progress ;;
    features) timeout 240 "$python" -m stages.cli data --dataset demo --no-progress >/dev/null &&
        timeout 240 "$python" -m stages.cli bench-features --dataset demo --videos "${FEATURES_VIDEOS:-96}" \
            --no-progress --out "$out/features-gpu.json" ;;
    *) echo "unknown part $part"; exit 2 ;;
    esac 2>&1 | tee -a "$out/suite.log"
    echo "$part exit ${PIPESTATUS[0]}" | tee -a "$out/suite.log"
done
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null | tee -a "$out/suite.log"
