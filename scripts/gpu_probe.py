"""Probe on a GPU: where the torch backend's time goes for the bench's shapes, and what the
levers that are not built give, side by side in one process (one model at a time, median of
``--reps`` after warm-ups, CUDA synchronised around each call).

Variants per model and frame count:
  host-f32   float32 frames on the host, copied inside the call (what `make bench` timed before)
  device     frames already on the GPU, the backend as built (channels-last, bf16 autocast)
  nchw       the same without channels-last
  bf16       weights and input cast to bf16 once, no autocast
  bf16-graph bf16 captured in one CUDA graph and replayed (launch overhead gone)
Also the sampler heads at batch 1 and 32, eager and in a CUDA graph.

    python scripts/gpu_probe.py --out cache/bench/gpu-probe.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

from pipeline.config import WEIGHTS_NONE, FeaturesConfig, TrainConfig
from pipeline.models import encode, prepare_encoder
from stages.features import build_light, build_recognizer, output_dims
from stages.train import SamplerShape


def timed(fn, reps: int) -> float | str:
    """Median milliseconds of ``fn`` after 3 warm-ups, or the error that stopped it."""
    try:
        return round(_median_ms(fn, reps), 3)
    except Exception as exc:  # a variant that cannot run (a graph capture refused) is reported
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _median_ms(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(reps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append(1000 * (time.perf_counter() - start))
    return statistics.median(samples)


def graphed(fn, example: torch.Tensor):
    """``fn`` on a static copy of ``example``, captured in a CUDA graph: a call replays it."""
    static = example.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(3):
            fn(static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.inference_mode():
        fn(static)
    return graph.replay


def _replay(fn, example: torch.Tensor):
    """The graph's replay, or a call that raises why it could not be captured."""
    try:
        return graphed(fn, example)
    except Exception as exc:
        error = exc

        def failed():
            raise error

        return failed


def probe_model(name: str, encoder, size: int, counts: list[int], reps: int) -> list[dict]:
    cuda = torch.device("cuda")
    built = prepare_encoder(copy.deepcopy(encoder), cuda)
    nchw = copy.deepcopy(encoder).to(cuda).eval()
    half = copy.deepcopy(built).to(torch.bfloat16)
    rows = []
    for n in counts:
        host = torch.randn(n, 3, size, size)
        dev = host.to(cuda)
        dev_cl = dev.contiguous(memory_format=torch.channels_last)
        dev_bf = dev_cl.to(torch.bfloat16)
        ms = {
            "host-f32": timed(lambda: encode(built, host, cuda), reps),
            "device": timed(lambda: encode(built, dev, cuda), reps),
            "nchw": timed(lambda: _autocast(nchw, dev), reps),
            "bf16": timed(lambda: _inference(half, dev_bf), reps),
            "bf16-graph": timed(_replay(half, dev_bf), reps),
        }
        rows.append({"model": name, "frames": n, **ms})
        print(rows[-1], flush=True)
    return rows


def _autocast(model, x):
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        return model(x)


def _inference(fn, x):
    with torch.inference_mode():
        return fn(x)


def probe_heads(dim: int, t: int, num_classes: int, reps: int) -> list[dict]:
    cuda = torch.device("cuda")
    sampler = SamplerShape(dim, t, num_classes).build(TrainConfig()).to(cuda).eval()
    rows = []
    for batch in (1, 32):
        x = torch.randn(batch, t, dim, device=cuda)
        eager = timed(lambda: _inference(sampler, x), reps)
        graph = timed(_replay(sampler, x), reps)
        rows.append({"model": "heads", "frames": batch * t, "device": eager, "graph-f32": graph})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    config = FeaturesConfig().with_overrides(light_weights=WEIGHTS_NONE, recognizer_weights=WEIGHTS_NONE)
    t, k, batches = config.num_frames, 5, (1, 32)
    light, light_cfg = build_light(config)
    rec, rec_cfg = build_recognizer(config, tuple(f"class{c}" for c in range(200)))
    dim, _ = output_dims(light, light_cfg)
    rows = probe_model("light", light, light_cfg["input_size"][-1], [b * t for b in batches], args.reps)
    rows += probe_model("recognizer", rec, rec_cfg["input_size"][-1], sorted({b * n for b in batches for n in (k, t)}), args.reps)
    rows += probe_heads(dim, t, 200, args.reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
