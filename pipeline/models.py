"""timm backbones: creation with the three kinds of weights, preprocessing, and the frame encoder."""

from __future__ import annotations

import difflib
import hashlib
import os
import socket
from dataclasses import asdict, replace
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from pipeline.cache import replacing
from pipeline.checkpoint_keys import torchvision_imagenet_file
from pipeline.checkpoints import WeightsError, load_weights, no_checkpoint, preprocessing_override, read_checkpoint
from pipeline.config import CHECKPOINT_WEIGHTS, HUB_PREFIXES, WEIGHTS_IMAGENET, WEIGHTS_NONE, ModelSpec, model_architecture
from pipeline.wording import first_few


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
        raise no_checkpoint(path)
    return f"{CHECKPOINT_WEIGHTS}{file_sha256(path)}"


# The keys of :func:`checkpoint_identity`, and what each says of how a checkpoint is taken.
CHECKPOINT_TAKEN = {"ema": "raw or averaged (EMA) weights", "preprocessing": "recorded preprocessing"}


def checkpoint_identity(spec: ModelSpec) -> dict[str, Any]:
    """What the checkpoint ``spec.weights`` gives beyond its bytes, as :func:`create_model`
    loads it, where that is not the plain case: ``ema``, the key of the averaged weights taken
    from a file that also holds raw ones, and ``preprocessing``, what it records of its frames'
    preprocessing other than timm's for the model (sequences as lists, as a cache's identity
    stores them). {} for ImageNet or random weights and for most files, so that their caches'
    identities stay as they were."""
    if spec.weights in (WEIGHTS_IMAGENET, WEIGHTS_NONE):
        return {}
    ckpt = read_checkpoint(Path(spec.weights))
    preprocessing = {k: list(v) if isinstance(v, tuple) else v for k, v in preprocessing_override(ckpt.get("preprocessing", {}), spec.name).items()}
    return {**({"ema": ckpt["ema"]} if "ema" in ckpt else {}), **({"preprocessing": preprocessing} if preprocessing else {})}


def model_identity(spec: ModelSpec) -> dict[str, Any]:
    """Everything about a model that determines its outputs on a frame: part of a feature
    cache's identity, whose checkpoint part a later stage building the cache's model checks."""
    return {**asdict(spec), "weights": weights_identity(spec), **checkpoint_identity(spec)}


def create_finetune_model(spec: ModelSpec, num_classes: int, seed: int, classes: tuple[str, ...]) -> tuple[nn.Module, str]:
    """The model fine-tuning starts from, and what it took from ``spec.weights``. A checkpoint
    trained on other classes (Kinetics' for UCF101, a local ImageNet file) gives its trunk and
    the classifier is a new one for the dataset's classes, as ``imagenet`` from the hub does; one
    trained on the dataset's classes, in any order, gives all of it."""
    if spec.weights in (WEIGHTS_IMAGENET, WEIGHTS_NONE):
        start = "ImageNet trunk, a new classifier" if spec.weights == WEIGHTS_IMAGENET else "random init"
        return create_model(spec, num_classes, seed, classes), start
    model = create_model(replace(spec, weights=WEIGHTS_NONE), num_classes, seed)
    kept = load_weights(model, spec, num_classes, classes, transfer=True)
    return model.eval(), f"{spec.weights}: " + ("trunk and classifier" if kept else f"trunk, a new classifier for the dataset's {num_classes} classes")


# How alike a name must be to one of timm's to be offered for it (difflib's ratio: resnet5 and
# ResNet50 for resnet50, mobilenet_v2 for mobilenetv2_100, efficientnet-b0 for efficientnet_b0).
NEAR_NAME = 0.7


def check_model_name(name: str) -> None:
    """A timm architecture, or one with a pretrained tag of it (``resnet50.tv_in1k``: the tag's
    ImageNet weights and preprocessing), else a :class:`WeightsError` saying what is wrong."""
    import timm

    if name.startswith(HUB_PREFIXES):
        raise WeightsError(f"{name!r}: a model named by its hub repository is read from the hub at every load; name it as timm does with its pretrained tag (resnet50.a1_in1k), or give its weights as a checkpoint file")
    architecture = model_architecture(name)
    if not timm.is_model(architecture):
        near = difflib.get_close_matches(architecture.lower(), timm.list_models(), n=3, cutoff=NEAR_NAME)
        raise WeightsError(f"unknown timm model {name!r}" + (f" (timm has {', '.join(near)}; `timm.list_models('{near[0][:4]}*')` lists its names)" if near else " (`timm.list_models()` lists its names)"))
    if name != architecture and name not in timm.list_pretrained(f"{architecture}.*"):
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{architecture}.*")]
        raise WeightsError(f"{name!r}: timm has no pretrained tag {name.split('.', 1)[1]!r} for {architecture}" + (f" (it has {first_few(tags, 5)})" if tags else " (it has no pretrained weights)"))


def imagenet_overlay(spec: ModelSpec) -> dict[str, Any] | None:
    """Where the model hub is unreachable, timm's pretrained-config overlay that loads the
    ImageNet weights of ``spec`` from the local HF cache, else a :class:`WeightsError` at once
    saying what to pass instead; None where the hub is reachable (timm fetches them)."""
    import timm

    if hub_reachable():
        return None
    cfg = timm.models.get_pretrained_cfg(spec.name)
    cached = _cached_hub_file(cfg.to_dict()) if cfg is not None else None
    if cached is None:
        torchvision = torchvision_imagenet_file(spec.name)
        raise WeightsError(
            f"{spec.name}: ImageNet weights are not in the local cache and the model hub is unreachable. "
            "Pass a local checkpoint instead (WEIGHTS=/path/to/checkpoint.pth, or --recognizer-weights / "
            "--light-weights PATH), or 'none' for random init."
            + (f" torch hub's cache holds torchvision's ImageNet weights of it, which load as such a checkpoint (other weights than timm's): {torchvision}" if torchvision else "")
        )
    return {"file": cached}


def create_model(spec: ModelSpec, num_classes: int, seed: int, classes: tuple[str, ...] | None = None) -> nn.Module:
    """Create the timm model ``spec.name`` with ``num_classes`` outputs (0: pooled features only).

    ``imagenet`` loads timm's pretrained weights (from the hub, or from the local HF cache when
    the hub is unreachable; otherwise a :class:`WeightsError` at once); ``none`` is a random
    init seeded by ``seed``; a path loads that checkpoint, whose classifier must match (and
    whose recorded normalisation and resize filter, where other than timm's, the model's data
    config takes: :func:`pipeline.checkpoints.load_weights`).
    """
    import timm

    check_model_name(spec.name)
    torch.manual_seed(seed)
    if spec.weights == WEIGHTS_IMAGENET:
        overlay = imagenet_overlay(spec)
        try:
            model = timm.create_model(spec.name, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay=overlay)
        except Exception as exc:
            raise WeightsError(f"{spec.name}: could not load the ImageNet weights ({str(exc).splitlines()[0]})") from exc
    else:
        model = timm.create_model(spec.name, pretrained=False, num_classes=num_classes)
        if spec.weights != WEIGHTS_NONE:
            load_weights(model, spec, num_classes, classes)
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
    """``torch.save`` whole or not at all (:func:`pipeline.cache.replacing`): a kill or a full
    disk never leaves half a checkpoint, and the one before stays."""
    with replacing(path) as tmp:
        torch.save(obj, tmp)


def save_resume_point(path: Path, model: nn.Module, optimizer: Any, scheduler: Any, epoch: int, history: list[dict[str, Any]], within: dict[str, Any] | None = None) -> None:
    """A training run's resume point, ``last.pth`` (read by
    :func:`~pipeline.checked_files.resume_point`): the weights, optimizer and schedule after
    ``epoch`` (from 0; -1: none finished), the epochs' log and, for a run a scheduler's signal
    stopped within the next, that part of it (:mod:`pipeline.stop_signals`)."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch, "history": history}
    save_atomic({**state, "within": within} if within is not None else state, path)
