"""Training the sampler heads on cached tensors: FSM objectives, augmentation, one epoch.

Inputs per video: light features [T, D_l] (from the feature cache), guiding scores g [T] (from
the prototypes stage) and the multi-hot label y [C]. Nothing is decoded.

FSM objectives (``fsm_target``, Tables 6a and 6d), each a loss on the FSM's (C+1) logits and
the frame saliency it implies:

* ``ns`` — the paper: soft cross-entropy (eq. 2) against ``[g*y, 1-g]``; saliency
  ``softmax_t(max_{c<C} p_c)``.
* ``video_ns_class`` — Table 6a "+ non-salient class": (C+1)-way, target ``[y, 0]``.
* ``video`` — the baseline: C-way (the non-salient logit left out), target ``y``.
* ``baseline_plus`` — Table 6d "baseline+": C-way soft one-hot, ``g`` on the video's
  class(es) and ``1-g`` spread evenly over the other classes.
* ``regression`` — class-agnostic: ``r_t = sigmoid(z_t[C])`` regressed onto ``g`` by binary
  cross-entropy with the soft target ``g`` (minimised at ``r_t = g_t``), summed over frames;
  saliency ``softmax_t(r)``. Squared error through the sigmoid (the first version) never
  learned on the demo: the sigmoid saturated early and its gradient vanished (frame loss 2.24 ->
  2.07 in 40 epochs, AP of ``s_f`` against the true salient frames 0.144, i.e. chance); the
  cross-entropy's gradient ``r_t - g_t`` does not vanish.
* ``ranking`` — class-agnostic: for every pair of frames with ``g_i > g_j``, a margin loss
  ``max(0, margin - (z_i[C] - z_j[C]))``; saliency ``softmax_t(sigmoid(z[C]))``.

For the C-way and class-agnostic objectives, y is normalised to sum 1 for multi-label videos,
and the losses are summed over frames and averaged over videos like eq. 2.

Temporal random shift (A.1), on cached features. With a cache of S candidate frames per
segment (``nsnet features --offsets S``), every training video draws, every epoch, one of the S
candidates in each segment independently (seeded by the seed, the epoch and the video), as TSN
samples a random frame per segment: the sampler sees S^T views of a video instead of one.
With the centres alone (S=1) a shift of ``s`` frames is realised by moving the whole sequence
``s`` positions along the time axis, repeating the edge frame (``x'_t = x_{clip(t - s, 0, T-1)}``,
the same for ``g``), with ``s`` uniform in ``[-max_shift, max_shift]``: the transformer's
positional embedding then sees the content at other positions, but the frames stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from pipeline.config import FSM_TARGETS, VGM_TARGETS
from pipeline.sampler import NSNetSampler, frame_loss, fsm_saliency, soft_cross_entropy, video_loss
from pipeline.stop_signals import StopSignals

RANKING_MARGIN = 0.1


def _normalised(labels: torch.Tensor) -> torch.Tensor:
    y = labels.float()
    return y / y.sum(dim=-1, keepdim=True)


def ns_targets(g: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[g*y, 1-g]`` per frame: g [B, T], labels [B, C] -> [B, T, C+1]."""
    y = _normalised(labels)[:, None, :]
    return torch.cat([g[..., None] * y, (1.0 - g)[..., None]], dim=-1)


def baseline_plus_targets(g: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """C-way soft one-hot: ``g`` shared by the video's classes, ``1-g`` by the others."""
    positive = labels.float()[:, None, :]
    negative = 1.0 - positive
    return g[..., None] * positive / positive.sum(-1, keepdim=True) + (1.0 - g)[..., None] * negative / negative.sum(-1, keepdim=True).clamp(min=1.0)


def ranking_loss(scores: torch.Tensor, g: torch.Tensor, margin: float = RANKING_MARGIN) -> torch.Tensor:
    """Mean over videos of the summed hinge ``max(0, margin - (s_i - s_j))`` over the pairs with
    ``g_i > g_j``, divided by T (so it scales like the per-frame losses)."""
    better = (g[:, :, None] > g[:, None, :]).float()
    hinge = F.relu(margin - (scores[:, :, None] - scores[:, None, :]))
    return ((hinge * better).sum(dim=(1, 2)) / g.shape[1]).mean()


@dataclass(frozen=True)
class FrameObjective:
    loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, g, labels)
    saliency: Callable[[torch.Tensor], torch.Tensor]  # logits [B, T, C+1] -> [B, T]


def _class_agnostic_saliency(frame_logits: torch.Tensor) -> torch.Tensor:
    return F.softmax(torch.sigmoid(frame_logits[..., -1]), dim=-1)


def frame_objective(kind: str) -> FrameObjective:
    if kind == "ns":
        return FrameObjective(lambda z, g, y: frame_loss(z, ns_targets(g, y)), fsm_saliency)
    if kind == "video_ns_class":
        return FrameObjective(lambda z, g, y: frame_loss(z, ns_targets(torch.ones_like(g), y)), fsm_saliency)
    if kind == "video":
        return FrameObjective(lambda z, g, y: frame_loss(z[..., :-1], _normalised(y)[:, None, :].expand(-1, g.shape[1], -1)), _c_way_saliency)
    if kind == "baseline_plus":
        return FrameObjective(lambda z, g, y: frame_loss(z[..., :-1], baseline_plus_targets(g, y)), _c_way_saliency)
    if kind == "regression":
        return FrameObjective(lambda z, g, y: F.binary_cross_entropy_with_logits(z[..., -1], g, reduction="none").sum(dim=1).mean(), _class_agnostic_saliency)
    if kind == "ranking":
        return FrameObjective(lambda z, g, y: ranking_loss(z[..., -1], g), _class_agnostic_saliency)
    raise ValueError(f"fsm_target must be one of {FSM_TARGETS}, got {kind!r}")


def _c_way_saliency(frame_logits: torch.Tensor) -> torch.Tensor:
    """``softmax_t(max_c p_c)`` of a C-way classifier (the non-salient logit left out)."""
    return F.softmax(F.softmax(frame_logits[..., :-1], dim=-1).max(dim=-1).values, dim=-1)


def vgm_loss(kind: str, logits_sal: torch.Tensor, logits_ns: torch.Tensor, labels: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Table 6a's VGM variants; returns (L_v, L_cls, L_ns). ``ns``: eq. 3, ``L_cls + gamma L_ns``;
    ``video_ns_class``: the (C+1)-way classifier with ``L_cls`` alone; ``video``: the baseline,
    a C-way classifier (the non-salient logit left out) with ``L_cls`` alone. ``L_ns`` is always
    reported."""
    l_v, l_cls, l_ns = video_loss(logits_sal, logits_ns, labels, gamma)
    if kind == "ns":
        return l_v, l_cls, l_ns
    if kind == "video_ns_class":
        return l_cls, l_cls, l_ns
    if kind == "video":
        c_way = soft_cross_entropy(logits_sal[:, :-1], _normalised(labels)).mean()
        return c_way, c_way, l_ns
    raise ValueError(f"vgm_target must be one of {VGM_TARGETS}, got {kind!r}")


def shift_positions(t: int, shift: int) -> np.ndarray:
    """Source position of each of ``t`` positions after moving the sequence ``shift`` later."""
    return np.clip(np.arange(t) - shift, 0, t - 1)


def shuffle_windows(blocks: np.ndarray, window: int, generator: torch.Generator) -> list[np.ndarray]:
    """One epoch's order of M items held ``window`` at a time. ``blocks`` [M], non-decreasing,
    is the block (of rows read together) of each item. The blocks are shuffled and cut, in
    that order, into windows of at most ``window`` items (a block never split: one larger than
    ``window`` is a window of its own), and each window's items are shuffled. Returns the
    windows in visiting order, each its items in visiting order; every item is in one."""
    blocks = np.asarray(blocks)
    if np.any(np.diff(blocks) < 0):
        raise ValueError("the items' blocks must be non-decreasing")
    starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]]) if len(blocks) else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], len(blocks)].astype(np.int64)
    windows, current, size = [], [], 0
    for b in torch.randperm(len(starts), generator=generator).tolist():
        if current and size + ends[b] - starts[b] > window:
            windows.append(np.concatenate(current))
            current, size = [], 0
        current.append(np.arange(starts[b], ends[b]))
        size += ends[b] - starts[b]
    if current:
        windows.append(np.concatenate(current))
    return [items[torch.randperm(len(items), generator=generator).numpy()] for items in windows]


class WindowedRows:
    """The rows of M items, item ``i`` being row ``rows[i]`` of a cached array read through
    ``read(rows) -> [len(rows), *row_shape]`` (sorted rows), held one window at a time: an
    item is read with the rest of its window of the plan (:meth:`plan`), and the window held
    before is let go first. Until a plan is given, all items are one window."""

    def __init__(self, read: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, row_shape: tuple[int, ...]):
        self.read, self.rows = read, np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *row_shape)
        self.plan([np.arange(len(self.rows))])

    def plan(self, windows: list[np.ndarray]) -> None:
        """Hold the items by these windows (each item in exactly one) from now on."""
        self._windows = [np.sort(items) for items in windows]
        self._window_of = np.full(len(self.rows), -1, dtype=np.int64)
        for k, items in enumerate(self._windows):
            self._window_of[items] = k
        if sum(map(len, self._windows)) != len(self.rows) or (self._window_of < 0).any():
            raise ValueError("every item must be in exactly one window")
        self._held, self._held_window = None, -1

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> np.ndarray:
        k = int(self._window_of[index])
        if k != self._held_window:
            self._held = None  # the window before is let go before the next is read
            self._held, self._held_window = self.read(self.rows[self._windows[k]]), k
        return self._held[np.searchsorted(self._windows[k], index)]


class CachedClips(Dataset):
    """Item ``i``: (light features [T, D], guiding scores g [T], multi-hot label [C]) of video
    ``i``, as float32. The arrays are used as they are (the light features stay float16, as the
    cache stores them): no copy of the dataset.

    ``features`` (and ``shift_features``) may be :class:`WindowedRows`, held by the windows that
    :meth:`visit_in_windows` plans.

    ``shift_features`` [N, S-1, T, D] and ``shift_g`` [N, S-1, T], aligned with the videos, are
    the other candidate frames of every segment: each item then takes one of the
    S candidates per segment (the centre is candidate 0), drawn anew every epoch, and
    ``max_shift`` is not used."""

    def __init__(self, features: np.ndarray | WindowedRows, g: np.ndarray, labels: np.ndarray, max_shift: int = 0, seed: int = 0, shift_features: np.ndarray | WindowedRows | None = None, shift_g: np.ndarray | None = None):
        self.features, self.g, self.labels = features, g, labels
        if (shift_features is None) != (shift_g is None) or (shift_features is not None and not len(shift_features) == len(shift_g) == len(features)):
            raise ValueError("shift_features and shift_g go together, one row per item")
        self.shift_features, self.shift_g = shift_features, shift_g
        self.max_shift, self.seed, self.epoch = max_shift, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def windowed(self) -> bool:
        """Whether the features are held a window at a time (else all of them, in memory)."""
        return isinstance(self.features, WindowedRows)

    def visit_in_windows(self, windows: list[np.ndarray]) -> None:
        """Hold the items by these windows (:func:`shuffle_windows`), which the epoch visits in turn."""
        for rows in (self.features, self.shift_features):
            if isinstance(rows, WindowedRows):
                rows.plan(windows)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int):
        x = torch.from_numpy(np.asarray(self.features[index], dtype=np.float32))
        g = torch.from_numpy(np.asarray(self.g[index], dtype=np.float32))
        if self.shift_features is not None:
            x, g = self._draw_candidates(index, x, g)
        elif self.max_shift:
            positions = torch.from_numpy(shift_positions(len(x), int(self._rng(index).integers(-self.max_shift, self.max_shift + 1))))
            x, g = x[positions], g[positions]
        return x, g, torch.from_numpy(np.asarray(self.labels[index], dtype=np.float32))

    def _rng(self, index: int) -> np.random.Generator:
        """The augmentation's draws of item ``index`` in this epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def _draw_candidates(self, index: int, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One of the S candidates in each segment: 0 the centre (``x``, ``g``), s > 0 the
        cached candidate s-1."""
        t = len(x)
        choice = self._rng(index).integers(0, self.shift_features.shape[1] + 1, size=t)
        views_x = torch.cat([x[None], torch.from_numpy(np.asarray(self.shift_features[index], dtype=np.float32))])
        views_g = torch.cat([g[None], torch.from_numpy(np.asarray(self.shift_g[index], dtype=np.float32))])
        segments = torch.arange(t)
        at = torch.from_numpy(choice)
        return views_x[at, segments], views_g[at, segments]


@dataclass
class StepLosses:
    total: float
    frame: float
    video: float
    cls: float
    ns: float


@dataclass
class EpochLosses:
    """An epoch's losses as far as it went: ``L``, ``L_f``, ``L_v``, ``L_cls`` and ``L_ns``
    summed over its ``videos``, and the batches of its loader given."""

    sums: np.ndarray = field(default_factory=lambda: np.zeros(5))
    videos: int = 0
    batches: int = 0

    def means(self) -> StepLosses:
        """The mean losses over the videos."""
        return StepLosses(*(self.sums / max(self.videos, 1)))


def train_epoch(
    model: NSNetSampler,
    loader,
    optimizer: torch.optim.Optimizer,
    objective: FrameObjective,
    gamma: float,
    device: torch.device,
    grad_clip: float | None = None,
    vgm_target: str = "ns",
    *,
    done: EpochLosses | None = None,
    stops: StopSignals | None = None,
) -> EpochLosses:
    """One epoch of ``L = L_v + L_f`` (eq. 4), the gradient norm clipped at ``grad_clip``, going
    on from ``done`` (the part of the epoch a stopped run saved; the loader gives the rest);
    ended early after the step at which ``stops`` has a stop signal."""
    model.train()
    losses = EpochLosses(done.sums.copy(), done.videos, done.batches) if done is not None else EpochLosses()
    for x, g, labels in loader:
        x, g, labels = x.to(device), g.to(device), labels.to(device)
        out = model(x)
        l_f = objective.loss(out.frame_logits, g, labels)
        l_v, l_cls, l_ns = vgm_loss(vgm_target, out.video_logits_sal, out.video_logits_ns, labels, gamma)
        loss = l_v + l_f
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        b = x.shape[0]
        losses.sums += b * np.array([loss.item(), l_f.item(), l_v.item(), l_cls.item(), l_ns.item()])
        losses.videos += b
        losses.batches += 1
        if stops is not None and stops.after_step(True):
            break
    return losses


# Videos per forward pass when scoring cached videos (the report after training, the validation
# while training, evaluate and the ablations): at ActivityNet's shape (T=16, D=1280, 4,926 val
# videos) a validation rose 0.32-0.42 GiB above training's memory at 256 against 0.81-0.83 GiB
# at 1,024, in 17-19 s against 19-20 s on the 2-core CPU.
SALIENCY_BATCH = 256


@torch.no_grad()
def sampler_saliency(model: NSNetSampler, objective: FrameObjective, light: np.ndarray | torch.Tensor, device: torch.device, batch_videos: int = SALIENCY_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """(s_f, s_v) [N, T] of the trained heads on the light features [N, T, D] of N videos,
    ``batch_videos`` at a time (float16 features are widened per batch)."""
    model.eval()
    s_f, s_v = [np.zeros((0, light.shape[1]), dtype=np.float32)], [np.zeros((0, light.shape[1]), dtype=np.float32)]
    for start in range(0, len(light), batch_videos):
        x = torch.as_tensor(light[start : start + batch_videos]).to(device=device, dtype=torch.float32)
        out = model(x)
        s_f.append(objective.saliency(out.frame_logits).cpu().numpy())
        s_v.append(out.alpha.cpu().numpy())
    return np.concatenate(s_f), np.concatenate(s_v)
