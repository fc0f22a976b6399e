"""Checkpoints of other trainers, their keys made timm's (:func:`timm_names`).

**mmaction2**, the usual trainer of TSN recognizers (its model zoo's
``tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb_*.pth``), saves a ``Recognizer2D``:
the backbone under ``backbone.``, the classifier as ``cls_head.fc_cls``, and buffers of its data
preprocessor beside them. Its own ResNet (mmcv's ``ConvModule``) names a convolution and its batch
norm ``conv1.conv`` / ``conv1.bn`` and a shortcut ``downsample.conv`` / ``downsample.bn``, where
timm's ResNet (torchvision's names) says ``conv1`` / ``bn1`` and ``downsample.0`` / ``downsample.1``;
its ``torchvision.*`` and ``timm.*`` backbones keep timm's names under the prefix. Its
MobileNetV2 (a light model trained on the dataset as a TSN recognizer) names the
stem ``conv1``, the inverted residual blocks ``layer1`` to ``layer7`` (timm's ``blocks.0`` to
``blocks.6``), each block's layers ``conv.0`` to ``conv.2`` (mmcv's ConvModules) and the last
1×1 convolution ``conv2``.

Its checkpoints keep the config they were trained with as text (``meta["cfg"]``, mmengine;
``meta["config"]``, mmaction2 0.x), which tells what the weights cannot: a ResNet of
``style='caffe'`` (the stride in a block's first 1×1 convolution, where timm's and mmaction2's
default put it in the 3×3 one: the same shapes, other features) and backbones that mix frames
along time (TSM's, TIN's temporal shift, TANet's temporal modules), whose single frames a
recognizer of frames does not see as they were trained (:func:`mmaction_refusal`), and the mean and
std its frames were normalised with (its data preprocessor's on pixels of 0-255; mmaction2's model
zoo uses ImageNet's, a CLIP backbone's config CLIP's: :func:`mmaction_preprocessing`).

**The TSN code bases** (yjxiong's tsn-pytorch; MIT's temporal-shift-module, from which AR-Net's
``main_base.py`` trained its ResNet recognizers of ActivityNet, FCVID and Mini-Kinetics, saved
as ``ckpt.best.pth.tar`` with the network's name as ``arch``) keep a TSN model: its torchvision
backbone under ``base_model.`` (its ``fc`` replaced by dropout) and its classifier as ``new_fc``
(:func:`from_tsn`; a MobileNetV2 backbone is tonylins' pytorch-mobilenet-v2, below). TSM's
temporal shift wraps each block's first convolution, ``conv1.net`` in a ResNet, ``conv.0.net``
in a MobileNetV2 (:func:`temporal_shift_refusal`). Their frames are resized with PIL's bilinear
filter (``GroupScale``) and normalised with ImageNet's mean and std.

**torchvision's MobileNetV2** (``mobilenet_v2-b0353104.pth``, where a cluster's torch hub cache
has it) and **tonylins' pytorch-mobilenet-v2** (the temporal-shift-module's and AR-Net's, whose
ImageNet file is ``mobilenetv2_1.0-f2a8633.pth.tar``): ``features.0`` the stem, ``features.1``
to ``features.17`` the inverted residual blocks in order, ``features.18`` the last 1×1
convolution, the classifier ``classifier.1`` (torchvision) or ``classifier``; timm's
``mobilenetv2_*`` is the same network (ReLU6, the same paddings) with its blocks grouped by
stage (:func:`from_features_mobilenet`). torchvision's ResNets
already use timm's names.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from pipeline.config import model_architecture

_BACKBONE, _MMACTION_CLASSIFIER = "backbone.", "cls_head.fc_cls."
_CONV_MODULE = re.compile(r"(^|\.)conv(\d+)\.(conv|bn)\.")


def _timm_name(backbone_key: str) -> str:
    """A key of an mmaction2 backbone (without its prefix) as timm's ResNet names it."""
    name = _CONV_MODULE.sub(lambda m: f"{m[1]}{'conv' if m[3] == 'conv' else 'bn'}{m[2]}.", backbone_key)
    return name.replace("downsample.conv.", "downsample.0.").replace("downsample.bn.", "downsample.1.")


_MM_MOBILENET_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.conv\.(\d)\.(conv|bn)\.(.+)$")
# mmaction2 MobileNetV2's stem and last convolution (ConvModules) as timm's convolution and norm.
_MM_MOBILENET_ENDS = {"conv1": ("conv_stem", "bn1"), "conv2": ("conv_head", "bn2")}
# A block's ConvModules conv.0, conv.1, conv.2 as timm's layers: with an expansion, and without
# (the first block: depthwise, then pointwise).
_MM_EXPANDED = (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3"))
_MM_SEPARABLE = (("conv_dw", "bn1"), ("conv_pw", "bn2"))


def _timm_mobilenet_name(backbone_key: str, backbone_keys: AbstractSet[str]) -> str:
    """A key of an mmaction2 MobileNetV2 backbone (without its prefix) as timm's MobileNetV2
    names it; ``backbone_keys`` tell a block with an expansion (its ``conv.2``)."""
    block = _MM_MOBILENET_BLOCK.match(backbone_key)
    if block:
        stage, index, layer, kind, param = block.groups()
        layers = _MM_EXPANDED if f"layer{stage}.{index}.conv.2.conv.weight" in backbone_keys else _MM_SEPARABLE
        return f"blocks.{int(stage) - 1}.{index}.{layers[int(layer)][kind == 'bn']}.{param}"
    module, _, rest = backbone_key.partition(".")
    kind, _, param = rest.partition(".")
    if module in _MM_MOBILENET_ENDS and kind in ("conv", "bn"):
        return f"{_MM_MOBILENET_ENDS[module][kind == 'bn']}.{param}"
    return backbone_key


def from_mmaction(state: dict[str, Any], classifier: str) -> dict[str, Any] | None:
    """timm's names for the state dict of an mmaction2 recognizer whose model's classifier is
    ``classifier`` (timm's ``pretrained_cfg["classifier"]``, ``fc`` for a ResNet); None where
    ``state`` is not one. Keys of neither the backbone nor the classifier (the data
    preprocessor's mean and std) are left out."""
    backbone_keys = {key.removeprefix(_BACKBONE) for key in state if key.startswith(_BACKBONE)}
    if not backbone_keys:
        return None
    mobilenet = "layer1.0.conv.0.conv.weight" in backbone_keys
    out: dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith(_BACKBONE):
            backbone_key = key.removeprefix(_BACKBONE)
            out[_timm_mobilenet_name(backbone_key, backbone_keys) if mobilenet else _timm_name(backbone_key)] = value
        elif key.startswith(_MMACTION_CLASSIFIER):
            out[f"{classifier}.{key.removeprefix(_MMACTION_CLASSIFIER)}"] = value
    return out


_TSN_BACKBONE, _TSN_CLASSIFIER = "base_model.", "new_fc."
# TSM's temporal shift in a ResNet's blocks and in a MobileNetV2's
_TEMPORAL_SHIFT = re.compile(r"^base_model\.(layer\d+\.\d+\.conv1|features\.\d+\.conv\.0)\.net\.")
# How the TSN code bases resize frames (PIL's bilinear filter in GroupScale); their mean and std
# are ImageNet's, timm's own.
TSN_PREPROCESSING = {"interpolation": "bilinear"}
# The TSN code bases' ``arch`` (torchvision's names) where timm names the network otherwise.
TSN_ARCHITECTURES = {"mobilenet_v2": "mobilenetv2_100"}


def is_tsn(state: dict[str, Any]) -> bool:
    """Whether ``state`` (with or without DataParallel's ``module.``) is a TSN code base's model:
    a ``base_model.`` backbone and its classifier ``new_fc``, or, trained with dropout 0, the
    backbone alone with its own classifier in it."""
    in_backbone = [key.removeprefix("module.").startswith(_TSN_BACKBONE) for key in state]
    return any(in_backbone) and (all(in_backbone) or f"module.{_TSN_CLASSIFIER}weight" in state or f"{_TSN_CLASSIFIER}weight" in state)


def from_tsn(state: dict[str, Any], classifier: str) -> dict[str, Any] | None:
    """timm's names for a TSN code base's state dict (:func:`is_tsn`): the backbone's keys without
    ``base_model.``, ``new_fc`` as the model's ``classifier``; None where ``state`` is not one."""
    if not is_tsn(state):
        return None
    out: dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith(_TSN_CLASSIFIER):
            out[f"{classifier}.{key.removeprefix(_TSN_CLASSIFIER)}"] = value
        else:
            out[key.removeprefix(_TSN_BACKBONE)] = value  # anything else left as it is: the load names it
    return out


def temporal_shift_refusal(state: dict[str, Any]) -> str | None:
    """Why a TSN code base's TSM network (its blocks' ``conv1.net`` or ``conv.0.net``) is not
    one of single frames, or None for any other state dict."""
    if any(_TEMPORAL_SHIFT.match(key) for key in state):
        return "its network shifts features along time (TSM's temporal shift, base_model.layerN.M.conv1.net or features.N.conv.0.net): a recognizer that sees one frame at a time does not compute what it was trained to"
    return None


_CAFFE_STYLE = re.compile(r"""\bstyle\s*=\s*['"]caffe['"]""")
_TEMPORAL_BACKBONE = re.compile(r"""\btype\s*=\s*['"](ResNetTSM|ResNetTIN|TANet|MobileNetV2TSM|MobileOneTSM)['"]""")


def mmaction_refusal(config: str) -> str | None:
    """Why an mmaction2 checkpoint trained with the config text ``config`` does not give a
    frame recognizer timm's ResNet would be, or None where nothing in it says so."""
    if _CAFFE_STYLE.search(config):
        return "its ResNet is mmcv's style='caffe' (the stride in each block's first 1x1 convolution, where timm's ResNet has it in the 3x3 one): its weights fit by shape and would compute other features"
    temporal = _TEMPORAL_BACKBONE.search(config)
    if temporal:
        return f"its backbone is a {temporal[1]}, which mixes the frames of a clip along time: a recognizer that sees one frame at a time does not compute what it was trained to"
    return None


# ``mean=[123.675, 116.28, 103.53]`` as mmengine writes a config (one number a line) or as typed
_NORMALISATION = re.compile(r"\b(mean|std)\s*=\s*\[\s*([-+.\deE]+)\s*,\s*([-+.\deE]+)\s*,\s*([-+.\deE]+)\s*,?\s*\]")
# mmaction2's Resize resizes with mmcv's imresize, bilinear unless the step names another filter;
# of mmcv's filters, those torchvision resizes uint8 frames with (area and lanczos are not).
MMACTION_RESIZE_DEFAULT = "bilinear"
MMACTION_RESIZE_FILTERS = ("nearest", "bilinear", "bicubic")


def mmaction_preprocessing(config: str) -> dict[str, Any]:
    """The ``mean`` and ``std`` an mmaction2 config text normalises frames with (the first of
    each: its data preprocessor's, or mmaction2 0.x's ``img_norm_cfg``), on pixels of 0-1 as
    timm states them, and the ``interpolation`` of its pipelines' first ``Resize`` (mmaction2's
    default, bilinear, where the step names none; left out where it names a filter torchvision
    does not resize frames with); {} where it states none of them."""
    found: dict[str, Any] = {}
    for key, *numbers in _NORMALISATION.findall(config):
        try:
            found.setdefault(key, tuple(float(v) / 255 for v in numbers))
        except ValueError:  # not numbers after all ("1e", "..")
            continue
    interpolation = _resize_filter(config)
    if interpolation in MMACTION_RESIZE_FILTERS:
        found["interpolation"] = interpolation
    return found


def _resize_filter(config: str) -> str | None:
    """The filter of the first ``dict(type='Resize', ...)`` step in a config's Python text (its
    ``interpolation``, else mmcv's default); None where it has no such step, names its filter by
    a variable, or is not Python."""
    try:
        tree = ast.parse(config)
    except (SyntaxError, ValueError):
        return None
    steps = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            arguments = {k.arg: k.value for k in node.keywords if k.arg is not None}
            kind = arguments.get("type")
            if isinstance(kind, ast.Constant) and kind.value == "Resize":
                steps.append((node.lineno, node.col_offset, arguments.get("interpolation")))
    if not steps:
        return None
    named = min(steps, key=lambda step: step[:2])[2]
    if named is None:
        return MMACTION_RESIZE_DEFAULT
    return named.value if isinstance(named, ast.Constant) and isinstance(named.value, str) else None


_FEATURES_BLOCK = re.compile(r"^features\.(\d+)\.conv\.(.+)$")


@dataclass(frozen=True)
class _MobileNetLayout:
    """How a MobileNetV2 keeps its blocks as ``features.1`` on: the key that tells the layout,
    the layer of a block with an expansion that a block without one lacks, each block's layers
    with an expansion and without (the first block: depthwise, then pointwise) against timm's,
    and the classifier's prefix."""

    marker: str
    expanded_only: str
    expanded: dict[str, str]
    separable: dict[str, str]
    classifier: str


_MOBILENET_LAYOUTS = (
    # torchvision's: a block's layers are ConvBNReLU pairs, then the linear convolution and its norm
    _MobileNetLayout("features.1.conv.0.0.weight", "3", {"0.0": "conv_pw", "0.1": "bn1", "1.0": "conv_dw", "1.1": "bn2", "2": "conv_pwl", "3": "bn3"}, {"0.0": "conv_dw", "0.1": "bn1", "1": "conv_pw", "2": "bn2"}, "classifier.1."),
    # tonylins' pytorch-mobilenet-v2, which MIT's temporal-shift-module copies: one flat Sequential
    # a block, its ReLU6s numbered too
    _MobileNetLayout("features.1.conv.0.weight", "6", {"0": "conv_pw", "1": "bn1", "3": "conv_dw", "4": "bn2", "6": "conv_pwl", "7": "bn3"}, {"0": "conv_dw", "1": "bn1", "3": "conv_pw", "4": "bn2"}, "classifier."),
)


def from_features_mobilenet(state: dict[str, Any], target_keys: Iterable[str]) -> dict[str, Any] | None:
    """timm's names for a MobileNetV2 state dict of a layout of :data:`_MOBILENET_LAYOUTS`
    (``features.0`` the stem, ``features.1`` on the blocks, then the last 1×1 convolution), for
    the timm model whose state keys are ``target_keys`` (its blocks, in order, take
    ``features.1`` on); None where ``state`` is not one."""
    layout = next((layout for layout in _MOBILENET_LAYOUTS if layout.marker in state), None)
    if layout is None or "features.0.0.weight" not in state:
        return None
    blocks = list(dict.fromkeys(".".join(k.split(".")[:3]) for k in target_keys if k.startswith("blocks.")))
    last = len(blocks) + 1  # features.N: the 1x1 convolution to the head
    out: dict[str, Any] = {}
    for key, value in state.items():
        block = _FEATURES_BLOCK.match(key)
        if block and 1 <= int(block[1]) <= len(blocks):
            layer, _, param = block[2].rpartition(".")
            layers = layout.expanded if f"features.{block[1]}.conv.{layout.expanded_only}.weight" in state else layout.separable
            out[f"{blocks[int(block[1]) - 1]}.{layers.get(layer, layer)}.{param}"] = value
        elif key.startswith("features.0."):
            out[{"0": "conv_stem", "1": "bn1"}[key.split(".")[2]] + "." + key.split(".", 3)[3]] = value
        elif key.startswith(f"features.{last}."):
            out[{"0": "conv_head", "1": "bn2"}[key.split(".")[2]] + "." + key.split(".", 3)[3]] = value
        elif key.startswith(layout.classifier):
            out["classifier." + key.removeprefix(layout.classifier)] = value
        else:
            out[key] = value  # left as it is: the load names it as not matched
    return out


def without_wrapper(state: dict[str, Any], target_keys: Iterable[str]) -> dict[str, Any] | None:
    """``state`` without the attribute name that a training wrapper put before the model's keys
    (a LightningModule's ``model.`` or ``net.``), where no key is the model's as it is and one
    such first name makes at least half of the model's keys; None otherwise. Keys outside it (a
    loss's buffers) are not the model's."""
    target = set(target_keys)
    if any(key in target for key in state):
        return None
    for name in sorted({key.split(".", 1)[0] for key in state if "." in key}):
        inner = {key.removeprefix(name + "."): value for key, value in state.items() if key.startswith(name + ".")}
        if 2 * len(target & inner.keys()) >= len(target):
            return inner
    return None


def timm_names(state: dict[str, Any], classifier: str, target_keys: Iterable[str]) -> dict[str, Any]:
    """``state`` with timm's names where it comes from a trainer above (or a wrapper's attribute
    around timm's names), else as it is."""
    target_keys = list(target_keys)
    state = from_tsn(state, classifier) or state
    return from_mmaction(state, classifier) or from_features_mobilenet(state, target_keys) or without_wrapper(state, target_keys) or state


# torchvision's file names of its ImageNet weights (``<name>-<hash>.pth`` in torch hub's cache), by
# the timm model they fit.
TORCHVISION_FILES = {"mobilenetv2_100": "mobilenet_v2", **{f"resnet{n}": f"resnet{n}" for n in (18, 34, 50, 101, 152)}}


def torchvision_imagenet_file(model_name: str) -> Path | None:
    """torchvision's ImageNet weights of the timm model ``model_name`` where torch hub's cache
    holds them (the first by name), else None."""
    import torch

    prefix = TORCHVISION_FILES.get(model_architecture(model_name) or "")
    if prefix is None:
        return None
    found = sorted((Path(torch.hub.get_dir()) / "checkpoints").glob(f"{prefix}-*.pth"))
    return found[0] if found else None
