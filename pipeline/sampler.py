"""The NSNet sampler heads on cached light features (paper sections 3.3-3.6, A.1).

* FEM: message passing over the T frame features — a transformer encoder (default: 2 layers,
  8 heads of D/8 dims, FFN dim D, learnable positional embedding, dropout 0.2 after it), or the
  Table 6c alternatives (1D conv, LSTM, MLP).
* FSM: a (C+1)-way classifier per frame; saliency ``s_f = softmax_t(max_{c<C} softmax(z_t)_c)``.
* VGM: temporal attention ``a_t = sigmoid(w.x_t + b)``, L1-normalised over time, so every
  ``alpha_t`` lies in [0, 1] and they sum to 1 (the sigmoid is what makes them non-negative
  before the normalisation); salient representation ``sum_t alpha_t x_t``, non-salient
  ``sum_t (1 - alpha_t) / T x_t``, one shared (C+1)-way classifier (dropout 0.9 before it,
  0.2 on the attention); saliency ``s_v = alpha``.

Losses: ``L_f`` (eq. 2, soft cross-entropy against per-frame targets, summed over frames as
written in the paper, averaged over videos), ``L_v = L_cls + gamma L_ns`` (eq. 3), ``L = L_v + L_f``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import FEM_KINDS, refuse_outside


@dataclass(frozen=True)
class SamplerConfig:
    fem: str = "transformer"
    layers: int = 2
    heads: int = 8
    fem_dropout: float = 0.2  # after the positional embedding
    vgm_attention_dropout: float = 0.2
    vgm_classifier_dropout: float = 0.9

    def __post_init__(self) -> None:
        refuse_outside(self, (
            ("fem", self.fem in FEM_KINDS, f"one of {FEM_KINDS}"),
            ("layers", self.layers >= 1, "at least 1"),
            ("heads", self.heads >= 1, "at least 1"),
            ("fem_dropout", 0 <= self.fem_dropout < 1, "in [0, 1)"),
            ("vgm_attention_dropout", 0 <= self.vgm_attention_dropout < 1, "in [0, 1)"),
            ("vgm_classifier_dropout", 0 <= self.vgm_classifier_dropout < 1, "in [0, 1)"),
        ))


class FeatureEmbedding(nn.Module):
    """FEM: [B, T, D] -> [B, T, D]."""

    def __init__(self, dim: int, num_frames: int, cfg: SamplerConfig):
        super().__init__()
        self.kind = cfg.fem
        if cfg.fem == "transformer":
            if dim % cfg.heads:
                raise ValueError(f"feature size {dim} is not divisible by {cfg.heads} heads")
            self.position = nn.Parameter(torch.zeros(1, num_frames, dim))
            nn.init.trunc_normal_(self.position, std=0.02)
            self.dropout = nn.Dropout(cfg.fem_dropout)
            layer = nn.TransformerEncoderLayer(dim, cfg.heads, dim_feedforward=dim, dropout=0.1, batch_first=True)
            self.body = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        elif cfg.fem == "conv1d":
            self.body = nn.Sequential(*[m for _ in range(cfg.layers) for m in (nn.Conv1d(dim, dim, 3, padding=1), nn.ReLU())])
        elif cfg.fem == "lstm":
            self.body = nn.LSTM(dim, dim // 2, num_layers=cfg.layers, batch_first=True, bidirectional=True)
        else:
            self.body = nn.Sequential(*[m for _ in range(cfg.layers) for m in (nn.Linear(dim, dim), nn.ReLU())])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "transformer":
            return self.body(self.dropout(x + self.position))
        if self.kind == "conv1d":
            return self.body(x.transpose(1, 2)).transpose(1, 2)
        if self.kind == "lstm":
            return self.body(x)[0]
        return self.body(x)


class FrameScrutinize(nn.Module):
    """FSM: per-frame (C+1)-way logits."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Linear(dim, num_classes + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)


class VideoGlimpse(nn.Module):
    """VGM: temporal attention, salient and non-salient representations, shared classifier."""

    def __init__(self, dim: int, num_classes: int, cfg: SamplerConfig):
        super().__init__()
        self.attention = nn.Linear(dim, 1)
        self.attention_dropout = nn.Dropout(cfg.vgm_attention_dropout)
        self.classifier_dropout = nn.Dropout(cfg.vgm_classifier_dropout)
        self.classifier = nn.Linear(dim, num_classes + 1)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """alpha [B, T]: non-negative (sigmoid), L1-normalised over time."""
        a = torch.sigmoid(self.attention(x).squeeze(-1))
        return a / a.sum(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        alpha = self.attend(x)
        weights = self.attention_dropout(alpha)
        salient = torch.einsum("bt,btd->bd", weights, x)
        non_salient = torch.einsum("bt,btd->bd", (1.0 - weights) / x.shape[1], x)
        logits_sal = self.classifier(self.classifier_dropout(salient))
        logits_ns = self.classifier(self.classifier_dropout(non_salient))
        return alpha, logits_sal, logits_ns


@dataclass
class SamplerOutput:
    frame_logits: torch.Tensor  # [B, T, C+1]
    alpha: torch.Tensor  # [B, T]
    video_logits_sal: torch.Tensor  # [B, C+1]
    video_logits_ns: torch.Tensor  # [B, C+1]


class NSNetSampler(nn.Module):
    def __init__(self, dim: int, num_frames: int, num_classes: int, cfg: SamplerConfig = SamplerConfig()):
        super().__init__()
        self.num_classes = num_classes
        self.fem = FeatureEmbedding(dim, num_frames, cfg)
        self.fsm = FrameScrutinize(dim, num_classes)
        self.vgm = VideoGlimpse(dim, num_classes, cfg)

    def forward(self, x: torch.Tensor) -> SamplerOutput:
        h = self.fem(x)
        alpha, sal, ns = self.vgm(h)
        return SamplerOutput(self.fsm(h), alpha, sal, ns)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-sum_j target_j log softmax(logits)_j`` over the last axis (no reduction)."""
    return -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1)


def frame_loss(frame_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 2: soft cross-entropy summed over the T frames, averaged over the videos."""
    return soft_cross_entropy(frame_logits, targets).sum(dim=1).mean()


def video_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``y_sal = [y_v / |y_v|, 0]`` and ``y_ns = [0, .., 0, 1]`` for multi-hot labels [B, C]."""
    y = labels.float() / labels.float().sum(dim=1, keepdim=True)
    zero = torch.zeros_like(y[:, :1])
    return torch.cat([y, zero], dim=1), torch.cat([torch.zeros_like(y), zero + 1.0], dim=1)


def video_loss(logits_sal: torch.Tensor, logits_ns: torch.Tensor, labels: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 3: ``L_v = L_cls + gamma * L_ns``; returns (L_v, L_cls, L_ns)."""
    y_sal, y_ns = video_targets(labels)
    l_cls = soft_cross_entropy(logits_sal, y_sal).mean()
    l_ns = soft_cross_entropy(logits_ns, y_ns).mean()
    return l_cls + gamma * l_ns, l_cls, l_ns


def fsm_saliency(frame_logits: torch.Tensor) -> torch.Tensor:
    """``s_f``: max over the C real classes of the frame softmax, softmax-normalised over time."""
    probs = F.softmax(frame_logits, dim=-1)[..., :-1]
    return F.softmax(probs.max(dim=-1).values, dim=-1)
