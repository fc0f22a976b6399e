"""Feature caches with the shape of a real dataset, without its videos (``nsnet synth-cache``).

The generator plants the structure the method relies on, so that prototypes, sampler training
and evaluation give meaningful numbers at full scale, not only timings:

* **classes** are clusters in the recognizer's feature space: centre ``mu_c`` (Gaussian);
* every video has a **background** (one of a shared pool of scene clusters ``beta_b``) and one
  **salient segment** per label, a run of consecutive observed frames (a ``salient_share`` of
  the T frames); the rest are **non-salient** frames that carry only a faint trace of the
  class (``context``);
* recognizer features of a frame: ``a (mu_c + nu) + beta_b + noise`` on salient frames (``a``
  varies per frame; ``nu`` is one direction shared by all classes, what any action looks like
  against a background), ``context mu_c + beta_b + noise`` elsewhere;
* **logits** are the Bayes posterior of those features (linear discriminant with the class
  centres), so the recognizer is right on most salient frames and guesses elsewhere;
* **light features** carry a weaker, noisier copy of the same signal: the noise-free part
  projected to D_l dimensions by a fixed random matrix, scaled by ``light_gain``, plus noise;
* the **ground truth** salient mask of every video is written beside the cache in the demo's
  ``groundtruth.json`` format, so the stages report the AP of ``g``, ``s_f`` and ``s_v``
  against it. Each video's frame count is T and its observed frames are ``0..T-1``.

Rows are generated shard by shard from seeds of (seed, shard): a killed generation resumes and
the cache does not depend on where it was interrupted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from pipeline.config import refuse_outside


@dataclass(frozen=True)
class DatasetShape:
    """Split sizes and class count of a dataset as the paper uses it (section 4.1)."""

    train: int
    val: int
    classes: int
    multi_label: float = 0.0  # share of videos with a second label


DATASET_SHAPES = {
    "activitynet": DatasetShape(10_024, 4_926, 200),
    # FCVID is multi-label; the share of videos with two labels is our assumption (the release
    # files give it, we do not have them): 5%.
    "fcvid": DatasetShape(45_611, 45_612, 239, multi_label=0.05),
    "minikinetics": DatasetShape(121_070, 9_864, 200),
    "ucf101": DatasetShape(9_537, 3_783, 101),
}


@dataclass(frozen=True)
class SynthSpec:
    """What a synthetic cache holds; part of its fingerprint."""

    like: str
    fraction: float = 1.0  # of every split, at least 2 videos a split
    seed: int = 0
    num_frames: int = 16
    light_dim: int = 1280
    rec_dim: int = 2048
    salient_share: tuple[float, float] = (0.15, 0.5)  # range of the salient part of a video
    class_scale: float = 0.07  # std of a class centre's entries (noise std 1)
    salient_amplitude: tuple[float, float] = (0.6, 1.3)  # of mu_c on a salient frame
    context: float = 0.15  # of mu_c on a non-salient frame
    action_scale: float = 0.07  # std of the entries of nu, the class-agnostic part of a salient frame
    backgrounds: int = 64
    background_scale: float = 0.09
    light_gain: float = 0.7  # of the projected signal in the light features (noise std 1)
    shape: DatasetShape = field(init=False)

    def __post_init__(self) -> None:
        refuse_outside(self, (
            ("like", self.like in DATASET_SHAPES, f"one of {tuple(DATASET_SHAPES)}"),
            ("fraction", 0 < self.fraction <= 1, "in (0, 1]"),
            ("seed", self.seed >= 0, "at least 0"),
        ))
        object.__setattr__(self, "shape", DATASET_SHAPES[self.like])

    def split_sizes(self) -> tuple[int, int]:
        return max(2, round(self.shape.train * self.fraction)), max(2, round(self.shape.val * self.fraction))

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "shape"}


@dataclass(frozen=True)
class Plan:
    """The annotations of a synthetic dataset: labels, splits and the planted salient frames."""

    labels: list[tuple[int, ...]]
    splits: list[str]
    salient: np.ndarray  # [N, T] int8: 0 non-salient, 1 + j salient for the j-th label
    background: np.ndarray  # [N]


def plan_videos(spec: SynthSpec) -> Plan:
    """Labels (a second one for a ``multi_label`` share), splits, backgrounds and salient
    segments of every video, from the spec's seed alone."""
    rng = np.random.default_rng([spec.seed, 0])
    n_train, n_val = spec.split_sizes()
    n, t, c = n_train + n_val, spec.num_frames, spec.shape.classes
    first = rng.integers(0, c, n)
    second = (first + rng.integers(1, c, n)) % c
    multi = rng.random(n) < spec.shape.multi_label
    labels = [(int(a), int(b)) if m else (int(a),) for a, b, m in zip(first, second, multi)]
    salient = np.zeros((n, t), dtype=np.int8)
    low, high = spec.salient_share
    for j in (1, 0):  # the first label's segment is drawn last and wins where they overlap
        length = np.clip(np.rint(rng.uniform(low, high, n) * t).astype(int), 1, t)
        start = rng.integers(0, t - length + 1)
        inside = (np.arange(t) >= start[:, None]) & (np.arange(t) < (start + length)[:, None])
        if j == 1:
            inside &= multi[:, None]
        salient[inside] = 1 + j
    return Plan(labels, ["train"] * n_train + ["val"] * n_val, salient, rng.integers(0, spec.backgrounds, n))


@dataclass(frozen=True)
class Centres:
    """The cluster centres of both feature spaces and the recognizer's discriminant."""

    rec_class: np.ndarray  # [C, D_r]
    rec_background: np.ndarray  # [B, D_r]
    rec_action: np.ndarray  # [D_r], nu
    light_class: np.ndarray  # [C, D_l]
    light_background: np.ndarray  # [B, D_l]
    light_action: np.ndarray  # [D_l]
    variance: float  # within-class variance of a recognizer feature entry


def make_centres(spec: SynthSpec) -> Centres:
    rng = np.random.default_rng([spec.seed, 1])
    mu = rng.normal(0.0, spec.class_scale, (spec.shape.classes, spec.rec_dim))
    beta = rng.normal(0.0, spec.background_scale, (spec.backgrounds, spec.rec_dim))
    nu = rng.normal(0.0, spec.action_scale, spec.rec_dim)
    projection = rng.normal(0.0, 1.0 / np.sqrt(spec.rec_dim), (spec.rec_dim, spec.light_dim)) * np.sqrt(spec.rec_dim / spec.light_dim)

    def light(centres: np.ndarray) -> np.ndarray:
        return (spec.light_gain * centres @ projection).astype(np.float32)

    return Centres(mu.astype(np.float32), beta.astype(np.float32), nu.astype(np.float32), light(mu), light(beta), light(nu), 1.0 + spec.background_scale**2)


def generate_rows(spec: SynthSpec, plan: Plan, centres: Centres, start: int, stop: int, shard: int) -> dict[str, np.ndarray]:
    """The cache rows of videos ``start..stop-1`` (as the features stage writes them)."""
    rng = np.random.default_rng([spec.seed, 2, shard])
    n, t = stop - start, spec.num_frames
    salient = plan.salient[start:stop]
    labels = plan.labels[start:stop]
    primary = np.array([v[0] for v in labels])
    secondary = np.array([v[-1] for v in labels])
    frame_class = np.where(salient == 2, secondary[:, None], primary[:, None])  # [n, T]
    low, high = spec.salient_amplitude
    weight = np.where(salient > 0, rng.uniform(low, high, (n, t)), spec.context)[..., None].astype(np.float32)
    background = plan.background[start:stop]

    action = np.where(salient > 0, weight[..., 0], 0.0)[..., None].astype(np.float32)

    def features(class_centres: np.ndarray, background_centres: np.ndarray, action_centre: np.ndarray, dim: int) -> np.ndarray:
        signal = weight * class_centres[frame_class] + action * action_centre + background_centres[background][:, None, :]
        return signal + rng.standard_normal((n, t, dim), dtype=np.float32)

    rec = features(centres.rec_class, centres.rec_background, centres.rec_action, spec.rec_dim)
    light = features(centres.light_class, centres.light_background, centres.light_action, spec.light_dim)
    mu = centres.rec_class
    logits = (rec.reshape(n * t, -1) @ mu.T - 0.5 * (mu * mu).sum(axis=1)) / centres.variance
    return {
        "light_features": light.astype(np.float16),
        "rec_features": rec.astype(np.float16),
        "rec_logits": logits.reshape(n, t, -1).astype(np.float32),
        "frame_indices": np.broadcast_to(np.arange(t, dtype=np.int32), (n, t)).copy(),
        "num_frames": np.full(n, t, dtype=np.int32),
    }


def ground_truth(plan: Plan, video_ids: list[str]) -> dict[str, dict]:
    """The demo's ``groundtruth.json`` form: the salient frames of every video (by its id)."""
    return {vid: {"salient": (row > 0).astype(int).tolist(), "num_frames": len(row)} for vid, row in zip(video_ids, plan.salient)}
