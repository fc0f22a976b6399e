"""Checkpoints of other video trainers, their keys made timm's.

mmaction2, the usual trainer of TSN recognizers (its model zoo's
``tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb_*.pth``), saves a ``Recognizer2D``:
the backbone under ``backbone.``, the classifier as ``cls_head.fc_cls``, and buffers of its data
preprocessor beside them. Its own ResNet (mmcv's ``ConvModule``) names a convolution and its batch
norm ``conv1.conv`` / ``conv1.bn`` and a shortcut ``downsample.conv`` / ``downsample.bn``, where
timm's ResNet (torchvision's names) says ``conv1`` / ``bn1`` and ``downsample.0`` / ``downsample.1``;
its ``torchvision.*`` and ``timm.*`` backbones keep timm's names under the prefix.
"""

from __future__ import annotations

import re
from typing import Any

_BACKBONE, _MMACTION_CLASSIFIER = "backbone.", "cls_head.fc_cls."
_CONV_MODULE = re.compile(r"(^|\.)conv(\d+)\.(conv|bn)\.")


def _timm_name(backbone_key: str) -> str:
    """A key of an mmaction2 backbone (without its prefix) as timm's ResNet names it."""
    name = _CONV_MODULE.sub(lambda m: f"{m[1]}{'conv' if m[3] == 'conv' else 'bn'}{m[2]}.", backbone_key)
    return name.replace("downsample.conv.", "downsample.0.").replace("downsample.bn.", "downsample.1.")


def from_mmaction(state: dict[str, Any], classifier: str) -> dict[str, Any] | None:
    """timm's names for the state dict of an mmaction2 recognizer whose model's classifier is
    ``classifier`` (timm's ``pretrained_cfg["classifier"]``, ``fc`` for a ResNet); None where
    ``state`` is not one. Keys of neither the backbone nor the classifier (the data
    preprocessor's mean and std) are left out."""
    if not any(key.startswith(_BACKBONE) for key in state):
        return None
    out: dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith(_BACKBONE):
            out[_timm_name(key.removeprefix(_BACKBONE))] = value
        elif key.startswith(_MMACTION_CLASSIFIER):
            out[f"{classifier}.{key.removeprefix(_MMACTION_CLASSIFIER)}"] = value
    return out
