"""Where the backbones run: torch (eager, CPU or GPU) or ONNX Runtime (CPU), behind one call.

A *runner* takes preprocessed frames ``[N, 3, H, W]`` and returns the encoder's pooled
features ``[N, D]`` and, for a model with a classifier, its logits ``[N, C]``. The ONNX Runtime
runner runs an export of the very same timm model and weights (:class:`FrameEncoder`), made
once with torch's exporter and kept in ``<export dir>/<model>-<key>.onnx``; the key hashes the
weights' bytes, the input size, the head, the opset and the exporter's version, so a changed
checkpoint or resolution gets a new export and a re-run loads the old one. The batch dimension
is dynamic.

Why: PyTorch's eager CPU kernels run MobileNetV2's depthwise convolutions slowly; on the
2-core development CPU ONNX Runtime runs the light model about twice as fast (README,
Benchmarks). On a GPU torch stays (bf16 autocast).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from pipeline.models import FrameEncoder, encode, prepare_encoder

BACKENDS = ("auto", "torch", "onnxruntime")
ONNX_OPSET = 18
DEFAULT_EXPORT_DIR = Path("cache") / "onnx"  # <cache-dir>/onnx for the default cache dir
INPUT_NAME = "frames"
# ONNX Runtime's CPU kernels keep getting faster per frame up to large batches (MobileNetV2 at
# 224²: 7.6 ms a frame at 16 frames a run, 5.7 at 80; ResNet-50 flat at 40-44), but its memory
# grows with the batch: DENSE at batch 32 (512 ResNet-50 frames in one run) took 16 GiB. So
# frames go through in runs of at most this many pixels (64 frames at 224², about 2.3 GiB).
ONNX_PIXELS_PER_RUN = 64 * 224 * 224


class Runner(Protocol):
    """A backbone ready for inference (see the module docstring)."""

    backend: str

    def __call__(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto``: ONNX Runtime on the CPU when it is installed, torch otherwise (a GPU)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    device = torch.device(device)
    if backend == "auto":
        return "onnxruntime" if device.type == "cpu" and onnxruntime_available() else "torch"
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise ValueError(f"the onnxruntime backend runs on the CPU; on {device} use --backend torch (or auto)")
        if not onnxruntime_available():
            raise ValueError("the onnxruntime backend needs the onnxruntime package (pip install onnxruntime onnx onnxscript)")
    return backend


def compared_backends(device: torch.device) -> tuple[str, ...]:
    """What the benchmarks measure side by side: torch, and ONNX Runtime where ``auto`` takes it."""
    return ("torch", "onnxruntime") if resolve_backend("auto", device) == "onnxruntime" else ("torch",)


class TorchRunner:
    """The encoder in torch on ``device``: channels-last, bf16 autocast on a GPU, CPU chunks."""

    backend = "torch"

    def __init__(self, encoder: FrameEncoder, device: torch.device):
        self.device = torch.device(device)
        self.encoder = prepare_encoder(encoder, self.device)

    def __call__(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return encode(self.encoder, frames, self.device)


class _ExportGraph(nn.Module):
    """The encoder's unchunked forward with tensor outputs only (what the exporter traces)."""

    def __init__(self, encoder: FrameEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features, logits = self.encoder.forward_frames(frames)
        return (features,) if logits is None else (features, logits)


def _first_line(exc: Exception) -> str:
    """The first line of an error's message (the exporter's and the runtime's run long)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def export_key(encoder: FrameEncoder, input_size: tuple[int, int, int]) -> str:
    """What an export depends on: the architecture, every parameter and buffer (bytes, shape,
    dtype), the input size, the opset and the exporter's version."""
    digest = hashlib.sha256()
    digest.update(repr((type(encoder.model).__qualname__, tuple(input_size), encoder.has_head, ONNX_OPSET, torch.__version__)).encode())
    for name, tensor in encoder.model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def export_onnx(encoder: FrameEncoder, input_size: tuple[int, int, int], export_dir: Path) -> Path:
    """The ONNX export of ``encoder`` for frames of ``input_size`` (C, H, W), made if missing.
    Written to a temporary file and renamed, so an interrupted export leaves nothing behind and
    two processes exporting together both end with a whole file."""
    model_name = getattr(encoder.model, "default_cfg", {}).get("architecture") or type(encoder.model).__name__
    path = Path(export_dir) / f"{model_name}-{export_key(encoder, input_size)[:20]}.onnx"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    graph = _ExportGraph(encoder.cpu().eval())
    example = torch.zeros((2, *input_size))
    outputs = ["features", "logits"] if encoder.has_head else ["features"]
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    graph, (example,), str(tmp), dynamo=True, external_data=False, opset_version=ONNX_OPSET, verbose=False,
                    input_names=[INPUT_NAME], output_names=outputs, dynamic_shapes=({0: torch.export.Dim("batch")},),
                )
            except Exception as exc:
                raise ValueError(f"{model_name}: could not be exported to ONNX ({_first_line(exc)}); run it with --backend torch") from exc
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class OnnxRunner:
    """An exported encoder in an ONNX Runtime CPU session with as many intra-op threads as
    torch uses. Its threads do not spin while they wait: alone, spinning made small runs faster
    (MobileNetV2 on 16 frames 7.1 -> 5.7 ms a frame), but in NSNet's path the torch heads that
    run next lost the cores to the spinning threads (25 -> 31 ms at batch 1) and the whole path
    was no faster (349 vs 356 ms); stopping the spin after each run was slower still (393 ms).
    The CLI keeps torch's OpenMP threads passive for the same reason (decoding workers)."""

    backend = "onnxruntime"

    def __init__(self, path: Path, has_head: bool):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.path, self.has_head = Path(path), has_head
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ValueError(f"{path}: not a loadable ONNX model ({_first_line(exc)}); delete it and it is exported again") from exc

    def __call__(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = frames.detach().to("cpu", torch.float32).numpy()
        step = max(1, ONNX_PIXELS_PER_RUN // (x.shape[-2] * x.shape[-1]))
        runs = [self.session.run(None, {INPUT_NAME: np.ascontiguousarray(x[i : i + step])}) for i in range(0, len(x), step)]
        features = torch.from_numpy(np.concatenate([r[0] for r in runs]))
        return features, torch.from_numpy(np.concatenate([r[1] for r in runs])) if self.has_head else None


def make_runner(encoder: FrameEncoder, input_size: tuple[int, ...], device: torch.device, backend: str, export_dir: Path) -> Runner:
    """``encoder`` ready for inference with ``backend`` (resolved: torch | onnxruntime)."""
    if resolve_backend(backend, device) == "torch":
        return TorchRunner(encoder, device)
    return OnnxRunner(export_onnx(encoder, tuple(input_size), export_dir), encoder.has_head)
