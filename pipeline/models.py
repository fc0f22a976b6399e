"""timm backbones: creation with the three kinds of weights, preprocessing, and the frame encoder."""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import re
import socket
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from pipeline.checkpoint_keys import timm_names, torchvision_imagenet_file
from pipeline.config import WEIGHTS_IMAGENET, WEIGHTS_NONE, ModelSpec
from pipeline.decoders import first_line
from pipeline.datasets.lists import class_key

CHECKPOINT_FORMAT = "nsnet-checkpoint-v1"
# What a checkpoint may hold besides tensors and plain data and still be read with
# weights_only: the arguments timm's train.py keeps in its checkpoints (attributes only).
CHECKPOINT_GLOBALS = [argparse.Namespace]


class WeightsError(Exception):
    """Weights that cannot be loaded; the message says which and what to do."""


def _hub_endpoint() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the model hub, so that offline runs fail at once, not after
    a minute of download retries. ``HF_HUB_OFFLINE=1`` means unreachable."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection(_hub_endpoint(), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_hub_file(pretrained_cfg: dict[str, Any]) -> str | None:
    """The locally cached weight file of a timm pretrained config, if the HF cache has one."""
    from huggingface_hub import try_to_load_from_cache

    repo = pretrained_cfg.get("hf_hub_id")
    if not repo:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin", pretrained_cfg.get("hf_hub_filename")):
        if filename:
            hit = try_to_load_from_cache(repo, filename)
            if isinstance(hit, str):
                return hit
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_identity(spec: ModelSpec) -> str:
    """A string that changes whenever the weights would: part of every cache fingerprint."""
    if spec.weights == WEIGHTS_NONE:
        return "none"
    if spec.weights == WEIGHTS_IMAGENET:
        import timm

        cfg = timm.models.get_pretrained_cfg(spec.name)
        tag = cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else spec.name
        return f"imagenet:{tag}"
    path = Path(spec.weights)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint file not found (weights must be 'imagenet', 'none' or a checkpoint path)")
    return f"file:{file_sha256(path)}"


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint file: an NSNet checkpoint (``format`` key, ``state_dict``, ``classes``,
    ``model_name``, ``data_config``), a training checkpoint with ``state_dict``/``model``, or a
    plain state dict."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return {"state_dict": load_file(str(path))}
        with torch.serialization.safe_globals(CHECKPOINT_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in str(exc):
            raise WeightsError(_pickled_objects_message(path, str(exc))) from exc
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))  # the line that says what, after torch's advice
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({detail[1] if detail else first_line(exc)})") from exc
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: checkpoint holds a {type(obj).__name__}, expected a state dict")
    if obj.get("format") == CHECKPOINT_FORMAT:
        return obj
    # timm's train.py saves its arguments beside the weights, and the model's name as "arch" then
    trained = {"model_name": obj["arch"]} if isinstance(obj.get("args"), argparse.Namespace) and isinstance(obj.get("arch"), str) else {}
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(obj.get(key), dict):
            return {"state_dict": obj[key], **trained}
    return {"state_dict": obj}


def _pickled_objects_message(path: Path, error: str) -> str:
    """Why a checkpoint holding more than tensors (mmengine's keep its trainer's log objects in
    ``meta``) is not loaded, and how to keep its weights alone."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", error)
    what = f" ({found[1]})" if found else ""
    return (
        f"{path}: holds Python objects besides its weights{what}, which are not unpickled here (that can run code); "
        f"if you trust the file, save its weights alone and pass that file: python -c \"import torch; "
        f"c = torch.load('{path}', weights_only=False); torch.save(c.get('state_dict', c), 'weights.pth')\""
    )


def _classifier_names(model: nn.Module) -> list[str]:
    name = model.pretrained_cfg.get("classifier") or "fc"
    return list(name) if isinstance(name, (list, tuple)) else [name]


def _classifier_keys(model: nn.Module) -> list[str]:
    return [f"{n}.{p}" for n in _classifier_names(model) for p in ("weight", "bias")]


def head_order(trained: tuple[str, ...], wanted: tuple[str, ...], path: Path) -> list[int] | None:
    """Which of the ``trained`` classes' classifier rows give the ``wanted`` classes, in their
    order (None: the same order already). A checkpoint trained on the same classes in another
    order (a label map's order against the dataset's sorted names) is reordered, the names
    matched as across annotation files (case, quotes and spaces against underscores aside);
    other classes are an error naming some of them."""
    if trained == wanted:
        return None
    index = {class_key(name): i for i, name in enumerate(trained)}
    keys = [class_key(name) for name in wanted]
    if len(index) == len(trained) == len(wanted) and set(keys) == set(index):
        return [index[key] for key in keys]
    missing = [name for name in wanted if class_key(name) not in index]
    extra = [name for name in trained if class_key(name) not in set(keys)]
    problems = [f"{label}: {_some(names)}" for label, names in (("not in the checkpoint", missing), ("not in the dataset", extra)) if names]
    raise WeightsError(f"{path}: checkpoint was trained on other classes than this dataset's ({len(trained)} vs {len(wanted)} classes; {'; '.join(problems) or 'a name given twice'})")


def _some(names: list[str], shown: int = 3) -> str:
    return ", ".join(repr(n) for n in names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _load_file(model: nn.Module, spec: ModelSpec, num_classes: int, classes: tuple[str, ...] | None, transfer: bool = False) -> bool:
    """Load the checkpoint ``spec.weights`` into ``model``; returns whether its classifier was
    kept. Its classifier must give the dataset's classes (reordered where it names them in
    another order); with ``transfer`` one that does not (other classes, or none) is left out and
    the model's own new classifier stays, the rest of the checkpoint loaded as strictly."""
    path = Path(spec.weights)
    ckpt = read_checkpoint(path)
    if ckpt.get("model_name") not in (None, spec.name):
        raise WeightsError(f"{path}: checkpoint is for model {ckpt['model_name']!r}, not {spec.name!r}")
    state = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}
    state = timm_names(state, _classifier_names(model)[0], model.state_dict().keys())
    head = _classifier_keys(model)
    keep = num_classes > 0 and (head[0] in state or not transfer)
    if keep and classes is not None and ckpt.get("classes") is not None:
        try:
            order = head_order(tuple(ckpt["classes"]), classes, path)
        except WeightsError:
            if not transfer:
                raise
            keep = False
        else:
            if order is not None:  # the classifier's rows put in the dataset's class order
                state = {k: v[order] if k in head else v for k, v in state.items()}
    if keep and head[0] in state and state[head[0]].shape[0] != num_classes:
        if not transfer:
            raise WeightsError(
                f"{path}: classifier has {state[head[0]].shape[0]} outputs but the dataset has {num_classes} classes; "
                "a recognizer checkpoint must be trained on the target dataset"
            )
        keep = False
    if not keep:
        state = {k: v for k, v in state.items() if k not in head}
    new_head = num_classes > 0 and not keep
    try:
        loaded = model.load_state_dict(state, strict=not new_head)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: does not fit {spec.name} ({str(exc).splitlines()[0]})") from exc
    unfit = list(loaded.unexpected_keys) + [k for k in loaded.missing_keys if k not in head]
    if unfit:
        raise WeightsError(f"{path}: does not fit {spec.name} (keys not matched: {_some(unfit)})")
    return keep


def create_finetune_model(spec: ModelSpec, num_classes: int, seed: int, classes: tuple[str, ...]) -> tuple[nn.Module, str]:
    """The model fine-tuning starts from, and what it took from ``spec.weights``. A checkpoint
    trained on other classes (Kinetics' for UCF101, a local ImageNet file) gives its trunk and
    the classifier is a new one for the dataset's classes, as ``imagenet`` from the hub does; one
    trained on the dataset's classes, in any order, gives all of it."""
    if spec.weights in (WEIGHTS_IMAGENET, WEIGHTS_NONE):
        start = "ImageNet trunk, a new classifier" if spec.weights == WEIGHTS_IMAGENET else "random init"
        return create_model(spec, num_classes, seed, classes), start
    model = create_model(replace(spec, weights=WEIGHTS_NONE), num_classes, seed)
    kept = _load_file(model, spec, num_classes, classes, transfer=True)
    return model.eval(), f"{spec.weights}: " + ("trunk and classifier" if kept else f"trunk, a new classifier for the dataset's {num_classes} classes")


def create_model(spec: ModelSpec, num_classes: int, seed: int, classes: tuple[str, ...] | None = None) -> nn.Module:
    """Create the timm model ``spec.name`` with ``num_classes`` outputs (0: pooled features only).

    ``imagenet`` loads timm's pretrained weights (from the hub, or from the local HF cache when
    the hub is unreachable; otherwise a :class:`WeightsError` at once); ``none`` is a random
    init seeded by ``seed``; a path loads that checkpoint, whose classifier must match.
    """
    import timm

    if spec.name not in timm.list_models():
        raise WeightsError(f"unknown timm model {spec.name!r}")
    torch.manual_seed(seed)
    if spec.weights == WEIGHTS_IMAGENET:
        cfg = timm.models.get_pretrained_cfg(spec.name)
        overlay: dict[str, Any] = {}
        if not hub_reachable():
            cached = _cached_hub_file(cfg.to_dict()) if cfg is not None else None
            if cached is None:
                torchvision = torchvision_imagenet_file(spec.name)
                raise WeightsError(
                    f"{spec.name}: ImageNet weights are not in the local cache and the model hub is unreachable. "
                    "Pass a local checkpoint instead (WEIGHTS=/path/to/checkpoint.pth, or --recognizer-weights / "
                    "--light-weights PATH), or 'none' for random init."
                    + (f" torch hub's cache holds torchvision's ImageNet weights of it, which load as such a checkpoint (other weights than timm's): {torchvision}" if torchvision else "")
                )
            overlay = {"file": cached}
        try:
            model = timm.create_model(spec.name, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay=overlay or None)
        except Exception as exc:
            raise WeightsError(f"{spec.name}: could not load the ImageNet weights ({str(exc).splitlines()[0]})") from exc
    else:
        model = timm.create_model(spec.name, pretrained=False, num_classes=num_classes)
        if spec.weights != WEIGHTS_NONE:
            _load_file(model, spec, num_classes, classes)
    return model.eval()


def data_config(model: nn.Module, spec: ModelSpec) -> dict[str, Any]:
    """timm's data config of ``model`` with the resolution and crop of ``spec``."""
    from timm.data import resolve_model_data_config

    cfg = dict(resolve_model_data_config(model))
    cfg["input_size"] = (3, spec.resolution, spec.resolution)
    if spec.crop_pct is not None:
        cfg["crop_pct"] = spec.crop_pct
    cfg["crop_mode"] = "center"
    return cfg


def frame_transform(cfg: dict[str, Any]):
    """timm's eval transform (resize shorter side, centre crop, normalise) for float frames in
    [0, 1] shaped [N, 3, H, W]."""
    from timm.data import create_transform

    return create_transform(**cfg, is_training=False)


def frame_transforms(light_cfg: dict[str, Any], rec_cfg: dict[str, Any]):
    """The light model's and the recognizer's eval transforms: one and the same object when
    their data configs are equal (the paper's MobileNetV2 and ResNet-50 at 224²), so that the
    decoders preprocess every frame once for both models. Preprocessing was two thirds of the
    decoders' work (demo clips: decode 1.15 ms a frame, each preprocessing 2.27 ms) before it
    resized uint8 frames (:func:`pipeline.extract.to_model_input`)."""
    light_tf = frame_transform(light_cfg)
    return light_tf, light_tf if rec_cfg == light_cfg else frame_transform(rec_cfg)


# On the CPU a backbone's time per frame grows with the batch: the activations of a large batch
# spill the caches, and fresh memory is faulted in for every batch. So on the CPU torch takes
# frames in chunks of about this many pixels (8 frames at 224², more for smaller frames); a GPU
# takes the whole batch. Measured on the 2-core CPU at 224², ms per frame at 2 / 4 / 8 / 16 /
# 32 / 256 frames a batch: ResNet-50 41 / 36 / 36-40 / 44 / 47 / 61; MobileNetV2 (8 / 16 / 32 /
# 256) 11.4 / 11.3 / 12.8 / 22.2. ONNX Runtime has its own size
# (:data:`pipeline.backends.ONNX_PIXELS_PER_RUN`).
CPU_PIXELS_PER_FORWARD = 8 * 224 * 224


def frames_per_run(height: int, width: int, pixels: int) -> int:
    """How many frames of ``height`` x ``width`` make a run of about ``pixels`` pixels (at least one)."""
    return max(1, pixels // (height * width))


class FrameEncoder(nn.Module):
    """Runs a timm model on frames and returns its pooled pre-logits features and, when it has
    a classifier, its logits — one pass, sharing the trunk."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.has_head = getattr(model, "num_classes", 0) > 0

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        chunk = frames_per_run(*frames.shape[-2:], CPU_PIXELS_PER_FORWARD)
        if frames.device.type != "cpu" or len(frames) <= chunk:
            return self.forward_frames(frames)
        parts = [self.forward_frames(part) for part in frames.split(chunk)]
        return torch.cat([f for f, _ in parts]), torch.cat([z for _, z in parts]) if self.has_head else None

    def forward_frames(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One pass over all ``frames`` at once (what the ONNX export traces)."""
        pre_logits = self.model.forward_head(self.model.forward_features(frames), pre_logits=True)
        logits = self.model.get_classifier()(pre_logits) if self.has_head else None
        return pre_logits, logits


def prepare_encoder(encoder: FrameEncoder, device: torch.device) -> FrameEncoder:
    """An encoder on ``device`` for inference: eval mode, channels-last weights."""
    return encoder.to(device).to(memory_format=torch.channels_last).eval()


def encode(encoder: FrameEncoder, frames: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inference on ``device``: channels-last input, bf16 autocast on a GPU."""
    x = frames.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return encoder(x)


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename: a kill never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def make_checkpoint(model: nn.Module, model_name: str, classes: tuple[str, ...], data_cfg: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An NSNet checkpoint: what ``--*-weights PATH`` loads, with the class list and the timm
    data config the model was trained with."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model_name": model_name,
        "classes": list(classes),
        "num_classes": len(classes),
        "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in data_cfg.items()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
