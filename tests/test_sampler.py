"""Hand-computed checks of eq. 2, eq. 3 (L_cls, L_ns), both saliency scores and the modules."""

import math

import pytest
import torch

from pipeline.sampler import FEM_KINDS, NSNetSampler, SamplerConfig, VideoGlimpse, frame_loss, fsm_saliency, soft_cross_entropy, video_loss, video_targets

LN2, LN3 = math.log(2.0), math.log(3.0)


def test_fsm_saliency_by_hand():
    # frame 0: softmax(ln3, 0, 0) = (3/5, 1/5, 1/5) -> max over real classes 0.6
    # frame 1: softmax(0, 0, ln2) = (1/4, 1/4, 1/2) -> 0.25 (the non-salient class is ignored)
    logits = torch.tensor([[[LN3, 0.0, 0.0], [0.0, 0.0, LN2]]])
    e = math.exp(0.6 - 0.25)
    torch.testing.assert_close(fsm_saliency(logits), torch.tensor([[e / (1 + e), 1 / (1 + e)]]))


def test_frame_loss_eq2_sums_frames_and_averages_videos():
    uniform = torch.zeros(2, 2, 3)  # 2 videos, 2 frames, C+1 = 3
    targets = torch.tensor([[0.7, 0.0, 0.3]]).expand(2, 2, 3)
    assert frame_loss(uniform, targets).item() == pytest.approx(2 * LN3)
    # softmax(ln2, 0, 0) = (1/2, 1/4, 1/4); target (0.8, 0, 0.2): 0.8 ln2 + 0.2 * 2 ln2 = 1.2 ln2
    logits = torch.tensor([[[LN2, 0.0, 0.0]]])
    assert frame_loss(logits, torch.tensor([[[0.8, 0.0, 0.2]]])).item() == pytest.approx(1.2 * LN2)
    assert soft_cross_entropy(logits, torch.tensor([[[1.0, 0.0, 0.0]]])).item() == pytest.approx(LN2)


def test_video_loss_eq3():
    labels = torch.tensor([[1, 0]])
    y_sal, y_ns = video_targets(labels)
    assert y_sal.tolist() == [[1.0, 0.0, 0.0]] and y_ns.tolist() == [[0.0, 0.0, 1.0]]
    sal = torch.tensor([[LN2, 0.0, 0.0]])  # p(class 0) = 1/2 -> L_cls = ln 2
    ns = torch.tensor([[0.0, 0.0, LN2]])  # p(non-salient) = 1/2 -> L_ns = ln 2
    total, l_cls, l_ns = video_loss(sal, ns, labels, gamma=0.2)
    assert l_cls.item() == pytest.approx(LN2) and l_ns.item() == pytest.approx(LN2)
    assert total.item() == pytest.approx(1.2 * LN2)
    multi, _ = video_targets(torch.tensor([[1, 1, 0]]))
    assert multi.tolist() == [[0.5, 0.5, 0.0, 0.0]]


def test_vgm_attention_and_representations_by_hand():
    vgm = VideoGlimpse(1, 2, SamplerConfig()).eval()
    with torch.no_grad():
        vgm.attention.weight.fill_(1.0)
        vgm.attention.bias.zero_()
    x = torch.tensor([[[0.0], [LN3]]])  # sigmoid: 1/2 and 3/4 -> alpha = (0.4, 0.6)
    alpha, _, _ = vgm(x)
    torch.testing.assert_close(alpha, torch.tensor([[0.4, 0.6]]))
    salient = (alpha[0] * x[0, :, 0]).sum()  # 0.6 ln3
    non_salient = ((1 - alpha[0]) / 2 * x[0, :, 0]).sum()  # 0.2 ln3
    assert salient.item() == pytest.approx(0.6 * LN3) and non_salient.item() == pytest.approx(0.2 * LN3)
    with torch.no_grad():
        _, sal, ns = vgm(x)
        torch.testing.assert_close(sal, vgm.classifier(torch.tensor([[0.6 * LN3]])))
        torch.testing.assert_close(ns, vgm.classifier(torch.tensor([[0.2 * LN3]])))
    alpha = vgm.attend(torch.randn(4, 7, 1) * 10)
    assert (alpha >= 0).all() and (alpha <= 1).all()
    torch.testing.assert_close(alpha.sum(dim=1), torch.ones(4))


@pytest.mark.parametrize("fem", FEM_KINDS)
def test_sampler_shapes_for_every_fem(fem):
    model = NSNetSampler(dim=64, num_frames=6, num_classes=5, cfg=SamplerConfig(fem=fem)).eval()
    out = model(torch.randn(3, 6, 64))
    assert out.frame_logits.shape == (3, 6, 6) and out.alpha.shape == (3, 6)
    assert out.video_logits_sal.shape == (3, 6) and out.video_logits_ns.shape == (3, 6)


def test_transformer_fem_matches_the_paper():
    model = NSNetSampler(dim=1280, num_frames=16, num_classes=10)
    layers = model.fem.body.layers
    assert len(layers) == 2
    attention = layers[0].self_attn
    assert attention.num_heads == 8 and attention.head_dim == 1280 // 8
    assert layers[0].linear1.out_features == 1280  # FFN dim = D
    assert model.fem.position.shape == (1, 16, 1280) and model.fem.position.requires_grad
    assert model.fem.dropout.p == 0.2
    assert model.vgm.classifier_dropout.p == 0.9 and model.vgm.attention_dropout.p == 0.2
