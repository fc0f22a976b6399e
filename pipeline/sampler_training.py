"""Training the sampler heads on cached tensors: targets, augmentation, one epoch.

Inputs per video: light features [T, D_l] (from the feature cache), guiding scores g [T] (from
the prototypes stage) and the multi-hot label [C]. Nothing is decoded.

Frame targets (``fsm_target``): ``ns`` (the paper's NS pseudo labels, [g*y_v, 1-g]) or
``video`` (Table 6a's FSM baseline: every frame gets the video label, the non-salient class
never a target).

Temporal random shift (A.1), realised on cached features: the T cached frames sit at the
centres of T equal segments, so the features of a shifted sampling are not in the cache; a shift
of ``s`` frames is realised by moving the whole sequence ``s`` positions along the time axis,
repeating the edge frame (``x'_t = x_{clip(t - s, 0, T-1)}``, the same for targets), with ``s``
uniform in ``[-max_shift, max_shift]``. The transformer's positional embedding then sees the
content at other positions, which is the point of the augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.prototypes import ns_pseudo_labels
from pipeline.sampler import NSNetSampler, frame_loss, video_loss

FSM_TARGETS = ("ns", "video")


def frame_targets(g: np.ndarray, labels: np.ndarray, kind: str) -> np.ndarray:
    """Per-frame (C+1)-way targets [V, T, C+1] for ``g`` [V, T] and multi-hot labels [V, C]."""
    if kind == "ns":
        return ns_pseudo_labels(g, labels)
    if kind == "video":
        return ns_pseudo_labels(np.ones_like(g), labels)
    raise ValueError(f"fsm_target must be one of {FSM_TARGETS}, got {kind!r}")


def temporal_shift(x: np.ndarray, shift: int) -> np.ndarray:
    """Move a [T, ...] sequence ``shift`` positions later (earlier if negative), repeating the edge."""
    t = x.shape[0]
    return x[np.clip(np.arange(t) - shift, 0, t - 1)]


class CachedClips(Dataset):
    """Item ``i``: (light features [T, D], frame targets [T, C+1], multi-hot label [C])."""

    def __init__(self, features: np.ndarray, targets: np.ndarray, labels: np.ndarray, max_shift: int = 0, seed: int = 0):
        self.features = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        self.targets = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
        self.labels = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32))
        self.max_shift, self.seed, self.epoch = max_shift, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int):
        x, y = self.features[index], self.targets[index]
        if self.max_shift:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            s = int(rng.integers(-self.max_shift, self.max_shift + 1))
            positions = torch.from_numpy(np.clip(np.arange(len(x)) - s, 0, len(x) - 1))
            x, y = x[positions], y[positions]
        return x, y, self.labels[index]


@dataclass
class StepLosses:
    total: float
    frame: float
    video: float
    cls: float
    ns: float


def train_epoch(model: NSNetSampler, loader, optimizer: torch.optim.Optimizer, gamma: float, device: torch.device, grad_clip: float | None = None) -> StepLosses:
    """One epoch of ``L = L_v + L_f`` (eq. 4), the gradient norm clipped at ``grad_clip``;
    returns the mean losses over the videos."""
    model.train()
    sums = np.zeros(5)
    count = 0
    for x, targets, labels in loader:
        x, targets, labels = x.to(device), targets.to(device), labels.to(device)
        out = model(x)
        l_f = frame_loss(out.frame_logits, targets)
        l_v, l_cls, l_ns = video_loss(out.video_logits_sal, out.video_logits_ns, labels, gamma)
        loss = l_v + l_f
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        b = x.shape[0]
        sums += b * np.array([loss.item(), l_f.item(), l_v.item(), l_cls.item(), l_ns.item()])
        count += b
    return StepLosses(*(sums / max(count, 1)))
