"""Counted GFLOPs: hand-computed layers, the sampler heads, and the paper's per-frame figures."""

import pytest
import torch
from torch import nn

from pipeline.config import ModelSpec
from pipeline.flops import ComputeCost, backbone_macs, count_macs, sampler_macs
from pipeline.sampler import NSNetSampler, SamplerConfig


def test_layers_by_hand():
    assert count_macs(nn.Linear(10, 3), torch.zeros(4, 10)) == 4 * 10 * 3
    # every output pixel: 2 input channels x 3x3 taps; 3 output channels, 5x5 outputs
    assert count_macs(nn.Conv2d(2, 3, 3, padding=1), torch.zeros(1, 2, 5, 5)) == 5 * 5 * 3 * 2 * 9


def test_sampler_heads_by_hand():
    d, t, c = 16, 4, 3
    sampler = NSNetSampler(d, t, c, SamplerConfig(heads=2))
    fem, vgm, fsm = sampler_macs(sampler, t, d)
    # per encoder layer: q, k, v and output projections 4 T D^2, feed-forward (width D) 2 T D^2;
    # the attention products inside scaled_dot_product_attention are not counted on the CPU
    assert fem == 2 * 6 * t * d * d
    # attention logits; the salient and non-salient weighted sums; the classifier on both
    assert vgm == t * d * 1 + 2 * t * d + 2 * d * (c + 1)
    assert fsm == t * d * (c + 1)


def test_paper_configuration_matches_section_4_1():
    sampler = NSNetSampler(1280, 16, 200)
    fem, _, _ = sampler_macs(sampler, 16, 1280)
    assert fem / 1e9 == pytest.approx(0.315, rel=0.01)  # "0.315 (... +transformer)"


def test_backbones_match_the_papers_per_frame_figures():
    resnet50 = backbone_macs(ModelSpec("resnet50", weights="none", resolution=224), 1000) / 1e9
    mobilenet = backbone_macs(ModelSpec("mobilenetv2_100", weights="none", resolution=224), 0) / 1e9
    assert resnet50 == pytest.approx(4.109, rel=0.02)
    assert mobilenet == pytest.approx(0.32, rel=0.07)  # usually quoted 0.30 G; 0.32 in section 4.1


def test_total_cost_formula():
    cost = ComputeCost(rec_per_frame=4.0, light_per_frame=0.3, fem=0.2, vgm=0.01, fsm=0.02, num_frames=16)
    assert cost.sampler == pytest.approx(0.3 * 16 + 0.2 + 0.01 + 0.02)
    assert cost.nsnet(5) == pytest.approx(4.0 * 5 + 4.83 + 0.2)
    assert cost.recognizer(16) == 64.0
