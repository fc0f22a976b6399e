"""Where the backbones and the sampler heads run: torch (eager, CPU or GPU) or ONNX Runtime
(CPU), behind one call.

A *runner* takes preprocessed frames ``[N, 3, H, W]`` and returns the encoder's pooled
features ``[N, D]`` and, for a model with a classifier, its logits ``[N, C]``. The ONNX Runtime
runner runs an export of the very same timm model and weights (:class:`FrameEncoder`), made
once with torch's exporter and kept in ``<export dir>/<model>-<key>.onnx``; the key hashes the
weights' bytes, the input size, the head, the opset and the exporter's version, so a changed
checkpoint or resolution gets a new export and a re-run loads the old one. The batch dimension
is dynamic.

A *heads runner* takes light features ``[B, T, D]`` and returns the trained heads' saliency
``(s_f, s_v)``, each ``[B, T]``; with ONNX Runtime it runs an export of the sampler and its
objective's saliency, keyed the same way by the heads' weights and structure.

Why: PyTorch's eager CPU kernels run MobileNetV2's depthwise convolutions slowly; on the
2-core development CPU ONNX Runtime runs the light model about twice as fast (README,
Benchmarks). The heads follow the backbones, so that the hot path uses one thread pool (torch's
and ONNX Runtime's took the cores from each other) and the FEM's small operators do not wait on
torch's sleeping threads. On a GPU torch stays (bf16 autocast).
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from pipeline.cache import CacheError, out_of_space, replacing, write_text_atomic, writing_alone
from pipeline.file_rights import can_write_in, owner_said
from pipeline.models import FrameEncoder, encode, frames_per_run, prepare_encoder
from pipeline.sampler import NSNetSampler
from pipeline.sampler_training import FrameObjective, frame_objective, sampler_saliency
from pipeline.wording import message_line

BACKENDS = ("auto", "torch", "onnxruntime")
# Opset 23 has the Attention operator: the FEM's self-attention is exported as one node instead
# of some twenty reshapes, transposes and products (the heads' graph 99 -> 77 nodes after ONNX
# Runtime's fusions; at batch 1 with cold caches 5.07 -> 4.84 ms, median of 140 in turns,
# 2-core CPU, 2026-12-02). ONNX Runtime runs it on the CPU since 1.23.
ONNX_OPSET = 23
DEFAULT_EXPORT_DIR = Path("cache") / "onnx"  # <cache-dir>/onnx for the default cache dir
INPUT_NAME = "frames"
# ONNX Runtime takes frames in runs of about this many pixels (2 frames at 224², more for smaller
# frames). With the threads spinning inside a run (see _session) small runs keep the activations
# of MobileNetV2's wide early layers in the caches without paying a wake-up per operator: on the
# 2-core CPU, ms per frame at 1 / 2 / 3 / 4 / 8 frames a run (2026-12-02, median of 9 in turns):
# MobileNetV2 2.88 / 2.65 / 2.90 / 3.08 / 3.17, ResNet-50 (1 / 2 / 4 / 8) 21.9 / 20.6 / 20.6 /
# 21.1. In ``make bench``'s path runs of 2 instead of 8 took the light model from 59 to 49 ms a
# video at batch 32 (same run, interleaved).
ONNX_PIXELS_PER_RUN = 2 * 224 * 224
# The heads run with their weights as the left operand of each product (:mod:`pipeline.onnx_products`)
# up to this many rows (videos x frames: batch 1 and 2 at T=16), as exported above it: at batch 1
# 4.0-6.2 -> 3.3-4.7 ms, from batch 4 the exported form as fast or faster (2-core CPU, 2026-12-02).
WEIGHTS_FIRST_MAX_ROWS = 32


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


def backend_identity(backend: str) -> dict[str, str]:
    """What a fingerprint records of a (resolved) backend: nothing for torch, so the caches and
    outputs made before there was a choice keep their fingerprints; its name otherwise."""
    return {} if backend == "torch" else {"backend": backend}


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
    return message_line(str(exc)) or type(exc).__name__


def state_key(module: nn.Module, context: tuple) -> str:
    """What an export of ``module`` depends on: ``context`` (architecture, input size, ...),
    every parameter and buffer (bytes, shape, dtype), the opset and the exporter's version."""
    digest = hashlib.sha256()
    digest.update(repr(tuple(context) + (ONNX_OPSET, torch.__version__)).encode())
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def export_key(encoder: FrameEncoder, input_size: tuple[int, int, int]) -> str:
    """The key of an encoder's export: its architecture, head, weights and input size."""
    return state_key(encoder.model, (type(encoder.model).__qualname__, tuple(input_size), encoder.has_head))


def _export(graph: nn.Module, example: torch.Tensor, input_name: str, outputs: list[str], path: Path, what: str) -> Path:
    """``graph`` exported to ``path`` with a dynamic first (batch) axis, made if missing or
    damaged (:func:`_intact`). Exported by one process at a time, holding the export's lock
    (:func:`writing_alone`): torchrun ranks starting together export once, the others then take
    the file. Written to a temporary file and renamed, so an export stopped by an error leaves
    nothing behind, and what a killed one left (``<name>.onnx.<pid>.tmp``, up to the model's
    size) goes with the next; its digest is written after it."""
    if _intact(path):
        return path
    if path.parent.is_dir() and not can_write_in(path.parent):
        raise CacheError(f"{path.parent}: no export of {what} for these weights and input size in this folder of ONNX exports, {owner_said(path.parent)}, which this process cannot write (a group's shared --cache-dir); "
                         f"give --onnx-dir a folder of yours, or run again once its owner has run `chmod g+w {path.parent}`, or run with --backend torch")
    with writing_alone(path):
        if not _intact(path, said=False):  # another process may have exported it meanwhile
            _export_whole(graph, example, input_name, outputs, path, what)
            write_text_atomic(_digest_path(path), _digest(path) + "\n")
    return path


def _digest_path(export: Path) -> Path:
    """Where an export's sha256, written once it is whole, lies: a hidden file beside it."""
    return export.with_name(f".{export.name}.sha256")


def _digest(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _intact(path: Path, said: bool = True) -> bool:
    """Whether the export at ``path`` is there with the digest written at its export and its bytes
    match it. ONNX files carry no checksum, and ONNX Runtime ran an export with a byte changed on
    disk as other weights (a features run's cache keyed by the checkpoint's bytes, computed
    through another model); such an export is made again, ``said`` with a warning (since
    2026-12-07, fifty-fifth session: an export made before, without its digest, is made again
    once, seconds to a minute)."""
    digest = _digest_path(path)
    if not (path.is_file() and digest.is_file()):
        return False
    if _digest(path).encode() == digest.read_bytes().strip():  # a damaged digest file is no match, not an error
        return True
    if said:
        warnings.warn(f"{path}: damaged (its bytes do not match the digest written at its export: a copy cut short, or a disk error); exported again", stacklevel=3)
    return False


def _export_whole(graph: nn.Module, example: torch.Tensor, input_name: str, outputs: list[str], path: Path, what: str) -> None:
    """:func:`_export`'s writing: through a temporary file, renamed to ``path`` once whole."""
    with replacing(path) as tmp, warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                graph.eval(), (example,), str(tmp), dynamo=True, external_data=False, opset_version=ONNX_OPSET, verbose=False,
                input_names=[input_name], output_names=outputs, dynamic_shapes=({0: torch.export.Dim("batch")},),
            )
        except Exception as exc:
            if out_of_space(exc):
                raise  # replacing's clear error
            raise ValueError(f"{what}: could not be exported to ONNX ({_first_line(exc)}); run it with --backend torch") from exc


def export_onnx(encoder: FrameEncoder, input_size: tuple[int, int, int], export_dir: Path) -> Path:
    """The ONNX export of ``encoder`` for frames of ``input_size`` (C, H, W), made if missing."""
    model_name = getattr(encoder.model, "default_cfg", {}).get("architecture") or type(encoder.model).__name__
    path = Path(export_dir) / f"{model_name}-{export_key(encoder, input_size)[:20]}.onnx"
    outputs = ["features", "logits"] if encoder.has_head else ["features"]
    return _export(_ExportGraph(encoder.cpu()), torch.zeros((2, *input_size)), INPUT_NAME, outputs, path, model_name)


def _session(path: Path, model: bytes | None = None):
    """An ONNX Runtime CPU session of ``path`` (or of ``model``, a rewrite of it, serialized)
    with as many intra-op threads as torch uses. Its
    threads spin between the operators of a run and stop spinning as soon as the run returns
    (``session.force_spinning_stop``): a sleeping worker is woken for every operator otherwise,
    and MobileNetV2's 52 small convolutions paid for that (runs of 8 frames in ``make bench``'s
    path, same run: light model 56.8 -> 47.8 ms a video at batch 32; at batch 1 in another run
    light 52.1 -> 43.7 ms, heads 5.5 -> 4.5 ms), while threads left spinning after a run took
    the cores from the next session or the decoders (a spinning heads session made the
    recognizer after it 101 -> 131 ms a video)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path) if model is None else model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        if model is not None:  # the file loaded; what was refused is this program's rewrite of it
            raise ValueError(f"{path}: ONNX Runtime refused the rewrite of it made at load ({_first_line(exc)}); run with --backend torch and report it") from exc
        raise ValueError(f"{path}: not a loadable ONNX model ({_first_line(exc)}); delete it and it is exported again") from exc


def run_count(frames: int, step: int) -> int:
    """In how many runs ONNX Runtime takes ``frames`` frames for runs of about ``step``: as many
    as hold ``step`` each, the rest spread over them, so a run holds ``step`` to ``2 step - 1``
    frames (5 at 2 a run: 3 + 2, not 2 + 2 + 1). A run of one frame is the slowest per frame
    (ResNet-50 on 5 frames: 98.7 ms in 2 + 2 + 1, 97.8 in 3 + 2, median of 15 in turns; 21.9
    against 20.6 ms a frame alone; 2-core CPU, 2026-12-02)."""
    return max(1, frames // step)


class OnnxRunner:
    """An exported encoder in an ONNX Runtime CPU session (see :func:`_session`), fed runs of
    about :data:`ONNX_PIXELS_PER_RUN` pixels (:func:`run_count`)."""

    backend = "onnxruntime"

    def __init__(self, path: Path, has_head: bool):
        self.path, self.has_head = Path(path), has_head
        self.session = _session(path)

    def __call__(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = frames.detach().to("cpu", torch.float32).numpy()
        parts = np.array_split(x, run_count(len(x), frames_per_run(*x.shape[-2:], ONNX_PIXELS_PER_RUN)))
        runs = [self.session.run(None, {INPUT_NAME: np.ascontiguousarray(part)}) for part in parts]
        features = torch.from_numpy(np.concatenate([r[0] for r in runs]))
        return features, torch.from_numpy(np.concatenate([r[1] for r in runs])) if self.has_head else None


def make_runner(encoder: FrameEncoder, input_size: tuple[int, ...], device: torch.device, backend: str, export_dir: Path) -> Runner:
    """``encoder`` ready for inference with ``backend`` (resolved: torch | onnxruntime)."""
    if resolve_backend(backend, device) == "torch":
        return TorchRunner(encoder, device)
    return OnnxRunner(export_onnx(encoder, tuple(input_size), export_dir), encoder.has_head)


class HeadsRunner(Protocol):
    """Trained sampler heads ready for inference: light features [B, T, D] -> (s_f, s_v) [B, T]."""

    backend: str

    def __call__(self, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]: ...


class TorchHeads:
    """The heads in torch on ``device`` (what evaluate scores the cache with)."""

    backend = "torch"

    def __init__(self, sampler: NSNetSampler, objective: FrameObjective, device: torch.device):
        self.device = torch.device(device)
        self.sampler, self.objective = sampler.to(self.device).eval(), objective

    def __call__(self, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        return sampler_saliency(self.sampler, self.objective, features, self.device)


class _SaliencyGraph(nn.Module):
    """The sampler and its objective's saliency as one graph (what the exporter traces)."""

    def __init__(self, sampler: NSNetSampler, objective: FrameObjective):
        super().__init__()
        self.sampler, self.objective = sampler, objective

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.sampler(features)
        return self.objective.saliency(out.frame_logits), out.alpha


class OnnxHeads:
    """An export of the heads in two ONNX Runtime CPU sessions, float32 in and out: as exported,
    and with the weights first (:func:`~pipeline.onnx_products.weights_first`) for calls of up to
    :data:`WEIGHTS_FIRST_MAX_ROWS` frames."""

    backend = "onnxruntime"

    def __init__(self, path: Path):
        import onnx

        from pipeline.onnx_products import weights_first

        self.path = Path(path)
        self.session = _session(path)
        self.few_rows_session = _session(path, weights_first(onnx.load(path)).SerializeToString())

    def __call__(self, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(features.detach().to("cpu", torch.float32).numpy())
        session = self.few_rows_session if x.shape[0] * x.shape[1] <= WEIGHTS_FIRST_MAX_ROWS else self.session
        s_f, s_v = session.run(None, {"features": x})
        return s_f, s_v


def export_heads(sampler: NSNetSampler, fsm_target: str, num_frames: int, dim: int, export_dir: Path) -> Path:
    """The ONNX export of trained heads and the saliency of their FSM objective, made if missing."""
    sampler = sampler.cpu().eval()
    path = Path(export_dir) / f"nsnet-heads-{state_key(sampler, ('heads', repr(sampler), fsm_target, num_frames, dim))[:20]}.onnx"
    graph = _SaliencyGraph(sampler, frame_objective(fsm_target))
    return _export(graph, torch.zeros((2, num_frames, dim)), "features", ["s_f", "s_v"], path, f"the sampler heads ({fsm_target})")


def make_heads(sampler: NSNetSampler, fsm_target: str, num_frames: int, dim: int, device: torch.device, backend: str, export_dir: Path) -> HeadsRunner:
    """Trained heads ready for inference with ``backend`` (as the backbones: ONNX Runtime on the
    CPU under ``auto``), for light features of ``num_frames`` x ``dim``."""
    if resolve_backend(backend, device) == "torch":
        return TorchHeads(sampler, frame_objective(fsm_target), device)
    return OnnxHeads(export_heads(sampler, fsm_target, num_frames, dim, export_dir))
