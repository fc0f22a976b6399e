"""Counted (not typed) compute: ``torch.utils.flop_counter`` on the configured models.

What is counted: the operations ``FlopCounterMode`` knows — convolutions and matrix products
(linear layers, attention projections, the VGM's weighted sums). Element-wise work (batch norm,
activations, pooling, softmax, layer norm) is not counted, as in the usual multiply-add
figures; nor, on the CPU, the two attention products inside ``scaled_dot_product_attention``
(``2 T^2 D`` per layer: 0.2% of the paper's FEM at T=16, D=1280). ``FlopCounterMode`` counts a multiply-add as 2 FLOPs; like the paper we
report multiply-adds (MACs), i.e. its count halved, in "GFLOPs" = 10^9 MACs.

Per video (paper 4.1): ``P_total = P_rec * K + P_light * T + P_fem + P_vgm + P_fsm``, where
the paper's ``P_fem`` is split here into the light backbone on the T frames and the
message-passing network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pipeline.config import WEIGHTS_NONE, ModelSpec
from pipeline.models import create_model
from pipeline.sampler import NSNetSampler

GIGA = 1e9


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-adds of one forward pass of ``module`` in eval mode.

    Gradients stay enabled during the count: with them disabled, PyTorch runs transformer
    encoder layers through a fused kernel that the counter does not see.
    """
    module.eval()
    with FlopCounterMode(display=False) as counter, torch.enable_grad():
        module(*inputs)
    return counter.get_total_flops() // 2


def backbone_macs(spec: ModelSpec, num_classes: int) -> int:
    """Per-frame multiply-adds of a timm model at its configured resolution (weights do not
    change the count, so the architecture is built without them)."""
    model = create_model(replace(spec, weights=WEIGHTS_NONE), num_classes=num_classes, seed=0)
    return count_macs(model, torch.zeros(1, 3, spec.resolution, spec.resolution))


@dataclass(frozen=True)
class ComputeCost:
    """Per-video multiply-adds of every part, in units of 10^9."""

    rec_per_frame: float
    light_per_frame: float
    fem: float  # message passing over the T features (without the light backbone)
    vgm: float
    fsm: float
    num_frames: int  # T

    @property
    def sampler(self) -> float:
        """Everything NSNet spends before the recognizer: light backbone on T frames and the heads."""
        return self.light_per_frame * self.num_frames + self.fem + self.vgm + self.fsm

    def nsnet(self, k: int) -> float:
        """Paper 4.1: ``P_rec * K + P_fem + P_vgm + P_fsm`` (light backbone inside ``P_fem``)."""
        return self.rec_per_frame * k + self.sampler

    def recognizer(self, frames: float) -> float:
        """A sampler that costs nothing, then the recognizer on ``frames`` frames."""
        return self.rec_per_frame * frames

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "sampler": self.sampler}


def sampler_macs(sampler: NSNetSampler, num_frames: int, dim: int) -> tuple[int, int, int]:
    """(FEM, VGM, FSM) multiply-adds of the heads on one video of ``num_frames`` features."""
    x = torch.zeros(1, num_frames, dim)
    fem = count_macs(sampler.fem, x)
    with torch.no_grad():
        h = sampler.fem.eval()(x)
    return fem, count_macs(sampler.vgm, h), count_macs(sampler.fsm, h)


def compute_cost(light: ModelSpec, recognizer: ModelSpec, sampler: NSNetSampler, num_frames: int, light_dim: int, num_classes: int) -> ComputeCost:
    fem, vgm, fsm = sampler_macs(sampler, num_frames, light_dim)
    return ComputeCost(
        rec_per_frame=backbone_macs(recognizer, num_classes) / GIGA,
        light_per_frame=backbone_macs(light, 0) / GIGA,
        fem=fem / GIGA,
        vgm=vgm / GIGA,
        fsm=fsm / GIGA,
        num_frames=num_frames,
    )
