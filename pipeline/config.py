"""Typed configuration: every default of the pipeline lives here, with the paper's values.

``FeaturesConfig`` holds what determines the *content* of a feature cache (it is fingerprinted);
``RunOptions`` holds how a run is executed (workers, device, sharding), which never changes
what is computed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.sampling import check_offsets

WEIGHTS_IMAGENET = "imagenet"
WEIGHTS_NONE = "none"
# How a checkpoint file's weights identity begins (pipeline.models.weights_identity; the rest
# its SHA-256).
CHECKPOINT_WEIGHTS = "file:"
# The feature cache's storage formats (pipeline.cache).
STORAGES = ("zarr", "hdf5")


def from_checkpoint(identity: dict[str, Any]) -> bool:
    """Whether a model's identity (:func:`pipeline.models.model_identity`, as a cache stores it)
    is of a checkpoint file's weights, not random or timm's ImageNet ones."""
    return identity["weights"].startswith(CHECKPOINT_WEIGHTS)


HUB_PREFIXES = ("hf-hub:", "hf_hub:")  # timm's names of models by hub repository


def model_architecture(name: str) -> str | None:
    """timm's architecture in a model name, without a pretrained tag or timm's hub repository:
    ``resnet50`` for ``resnet50``, ``resnet50.tv_in1k`` and ``hf-hub:timm/resnet50.a1_in1k``
    (timm's ``train.py`` keeps any of these in its checkpoints); None for a repository that is
    not timm's, whose architecture its own config names."""
    for prefix in HUB_PREFIXES:
        if name.startswith(prefix):
            owner, _, name = name.removeprefix(prefix).partition("/")
            if owner != "timm":
                return None
    return name.split(".", 1)[0]


# ``nsnet bench``: a repetition at batch 1 costs a thirty-second of one at batch 32, and its figure
# is the noisier (single repetitions from 0.68 to 1.27 of the FLOP bound in one run of five; over
# 25, three runs gave 0.84, 0.86, 0.84): batch 1 takes this many times ``--reps``.
LATENCY_REPS_FACTOR = 5


def refuse_outside(config: object, rules: tuple[tuple[str, bool, str], ...], owner: str = "") -> None:
    """Raise ValueError naming the first field of ``config`` whose rule does not hold, after
    ``owner`` where given (the model a field is of); each rule is (field, holds, what it must be)."""
    for name, holds, rule in rules:
        if not holds:
            raise ValueError(f"{owner + ': ' if owner else ''}{name} must be {rule}, got {getattr(config, name)!r}")


@dataclass(frozen=True)
class ModelSpec:
    """A timm model and how its frames are preprocessed.

    ``weights``: ``imagenet`` (timm's pretrained weights), ``none`` (random init, seeded) or the
    path of a local checkpoint. ``resolution`` is the square input size; frames are resized so
    that the shorter side is ``resolution / crop_pct`` and centre-cropped (the paper: shorter
    side 256, crop 224, i.e. ``crop_pct=0.875``). ``crop_pct=None`` keeps the model's own.
    """

    name: str
    weights: str = WEIGHTS_IMAGENET
    resolution: int = 224
    crop_pct: float | None = 0.875

    def __post_init__(self) -> None:
        refuse_outside(self, (
            ("resolution", self.resolution >= 8, "at least 8 pixels"),
            ("crop_pct", self.crop_pct is None or 0.0 < self.crop_pct <= 1.0, "in (0, 1], or None for the model's own"),
        ), owner=self.name)


@dataclass(frozen=True)
class FeaturesConfig:
    """What the features stage computes. Defaults are the paper's (section 4.1-4.2, A.1)."""

    num_frames: int = 16  # T, observation frames pre-sampled per video
    light: ModelSpec = field(default_factory=lambda: ModelSpec("mobilenetv2_100"))
    recognizer: ModelSpec = field(default_factory=lambda: ModelSpec("resnet50"))
    storage: str = "zarr"  # one of STORAGES
    seed: int = 0  # seeds random-init weights
    # Candidate frames per segment cached for the training split (odd; 1: the centres alone),
    # from which sampler training draws one per segment and epoch (A.1's temporal random shift).
    offsets: int = 1

    def __post_init__(self) -> None:
        refuse_outside(self, (
            ("num_frames", self.num_frames >= 1, "at least 1 (T, the frames observed a video)"),
            ("storage", self.storage in STORAGES, f"one of {STORAGES}"),
            ("seed", self.seed >= 0, "at least 0"),
        ))
        check_offsets(self.offsets)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "FeaturesConfig":
        """The inverse of :meth:`to_dict` (as stored in a cache's attributes)."""
        return cls(**{**raw, "light": ModelSpec(**raw["light"]), "recognizer": ModelSpec(**raw["recognizer"])})

    def with_overrides(self, **changes: Any) -> "FeaturesConfig":
        """A copy with top-level fields or ``light_*`` / ``recognizer_*`` model fields changed;
        ``None`` values are ignored."""
        top: dict[str, Any] = {}
        models: dict[str, dict[str, Any]] = {"light": {}, "recognizer": {}}
        for key, value in changes.items():
            if value is None:
                continue
            prefix, _, rest = key.partition("_")
            if prefix in models and rest:
                models[prefix][rest] = value
            else:
                top[key] = value
        for role, fields_ in models.items():
            if fields_:
                top[role] = replace(getattr(self, role), **fields_)
        return replace(self, **top)




@dataclass(frozen=True)
class FinetuneConfig:
    """How a backbone is fine-tuned on a dataset's train split (the model itself, its initial
    weights and resolution come from the dataset's :class:`ModelSpec` of that role).

    ``segments=1`` is frame-wise training ("w/o TSN" in the paper's B.4: one random frame per
    video per step, the video label); ``segments=N`` is TSN-style segment consensus (one random
    frame in each of N segments, logits averaged before the loss).
    """

    segments: int = 1
    repeats: int = 1  # visits of every training video per epoch (each with new random frames)
    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "momentum"  # any timm optimizer name ("momentum": SGD with momentum)
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    scheduler: str = "cosine"  # any timm scheduler name
    warmup_epochs: int = 1
    label_smoothing: float = 0.1
    crop_scale: tuple[float, float] = (0.6, 1.0)  # RandomResizedCrop area range
    color_jitter: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        low, high = self.crop_scale
        refuse_outside(self, (
            ("segments", self.segments >= 1, "at least 1"),
            ("repeats", self.repeats >= 1, "at least 1"),
            ("epochs", self.epochs >= 1, "at least 1"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("lr", self.lr > 0, "positive"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "at least 0"),
            ("warmup_epochs", self.warmup_epochs >= 0, "at least 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("crop_scale", 0 < low <= high <= 1, "an area range (low, high) with 0 < low <= high <= 1"),
            ("color_jitter", self.color_jitter >= 0, "at least 0"),
            ("seed", self.seed >= 0, "at least 0"),
        ))


# The sampler's objectives and message-passing networks by name (Tables 6a, 6c, 6d): here, where
# the training config checks them without importing torch (pipeline.sampler and
# pipeline.sampler_training build them).
FSM_TARGETS = ("ns", "video_ns_class", "video", "baseline_plus", "regression", "ranking")
VGM_TARGETS = ("ns", "video_ns_class", "video")
FEM_KINDS = ("transformer", "conv1d", "lstm", "mlp")

# `nsnet train` scores NSNet and UNIFORM on the evaluation videos from the cache (EvalConfig's K,
# fusion and alpha) every this many epochs and after the last; 0: never. Not part of a run's
# identity: it changes what the run logs, not what it trains.
SAMPLER_VAL_EVERY = 10

# Videos `nsnet predict` runs through the models in one batch (`--batch-size`), and the most
# `TrainedPipeline.predict_batch` puts in one: each holds its T frames' crops for both backbones
# in float32 (16 x 2 x 3 x 224 x 224 x 4 bytes, about 19 MB at the paper's T and resolution).
PREDICT_BATCH = 32


@dataclass(frozen=True)
class TrainConfig:
    """Sampler training (paper 3.6, A.1): SGD, momentum 0.9, batch 64, 120 epochs, lr 0.01
    decayed x0.1 at epochs 50 and 75, gamma 0.2, temporal random shift."""

    fsm_target: str = "ns"  # ns | video_ns_class | video | baseline_plus | regression | ranking (Tables 6a, 6d)
    vgm_target: str = "ns"  # ns | video_ns_class | video (Table 6a, VGM column)
    gamma: float = 0.2  # weight of L_ns (eq. 3)
    fem: str = "transformer"  # transformer | conv1d | lstm | mlp (Table 6c)
    epochs: int = 120
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (50, 75)
    lr_decay: float = 0.1
    max_shift: int = 1  # temporal random shift, in cached frame positions, of a cache with the centres alone (offsets 1)
    # Not in the paper: eq. 2 sums L_f over the T frames, so the FSM's gradient is T times the
    # VGM's; at lr 0.01 unclipped training diverged on the demo features (L_f 600 -> NaN).
    # Clipping the norm at 1.0 starved the VGM instead (its L_cls stayed at chance, AP of s_v vs
    # the true salient frames 0.25); at 10 both heads learn (AP of s_f 0.82, s_v 0.80).
    # None turns clipping off.
    grad_clip: float | None = 10.0
    seed: int = 0
    # Not in the paper: training videos held in memory at once. Up to this many are held whole
    # and shuffled as one; more are held and shuffled a window of this many at a time
    # (pipeline.sampler_training): 16,384 videos of T=16, D_l=1280 are 0.67 GB (x S with a
    # cache of S candidates). ActivityNet's and UCF101's training splits fit one window;
    # FCVID's takes 3, Mini-Kinetics' 8.
    shuffle_window: int = 16_384

    def __post_init__(self) -> None:
        refuse_outside(self, (
            ("fsm_target", self.fsm_target in FSM_TARGETS, f"one of {FSM_TARGETS}"),
            ("vgm_target", self.vgm_target in VGM_TARGETS, f"one of {VGM_TARGETS}"),
            ("fem", self.fem in FEM_KINDS, f"one of {FEM_KINDS}"),
            ("epochs", self.epochs >= 1, "at least 1"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("shuffle_window", self.shuffle_window >= 1, "at least 1 video"),
            ("lr", self.lr > 0, "positive"),
            ("lr_decay", 0 < self.lr_decay <= 1, "in (0, 1]"),
            ("milestones", list(self.milestones) == sorted(set(self.milestones)) and min(self.milestones, default=1) >= 1, "increasing epochs from 1"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "at least 0"),
            ("gamma", self.gamma >= 0, "at least 0 (the weight of L_ns)"),
            ("grad_clip", self.grad_clip is None or self.grad_clip > 0, "positive, or None for no clipping"),
            ("max_shift", self.max_shift >= 0, "at least 0"),
            ("seed", self.seed >= 0, "at least 0"),
        ))


@dataclass(frozen=True)
class AllFramesConfig:
    """Table 1's baselines over all frames (paper 4.3, pipeline.all_frames); part of the
    fingerprint of the store that holds them."""

    budget: int = 10  # frames of UNIFORM, RANDOM and TOP-K
    seed: int = 0  # RANDOM: video ``i`` draws from ``default_rng([seed, i])``
    rate: float | None = None  # frames per second taken as "all frames"; None: every frame

    def __post_init__(self) -> None:
        refuse_outside(self, (
            ("budget", self.budget >= 1, "at least 1 frame"),
            ("seed", self.seed >= 0, "at least 0"),
            ("rate", self.rate is None or self.rate > 0, "positive frames per second, or None for every frame"),
        ), owner="all-frames baselines")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation (paper 4.1, 4.3, A.2-A.3): K of the T observed frames, index union with
    alpha 0.6, the RANDOM baseline's seed, and the budgets of the GFLOPs-mAP curve (Fig. 3)."""

    k: int = 5
    fusion: str = "union"  # add | mul | max | intersection | union | join (A.3)
    alpha: float = 0.6
    seed: int = 0  # RANDOM
    curve_k: tuple[int, ...] = tuple(range(1, 11))
    # Table 1's protocol (paper 4.3): the recognizer once over all frames of every evaluated
    # video, for UNIFORM, RANDOM and TOP-K of ``all_frames_budget`` frames from all frames and
    # DENSE over all of them (pipeline.all_frames); costly on long videos, so it can be off.
    all_frames: bool = True
    all_frames_budget: int = 10
    all_frames_rate: float | None = None  # frames per second that count as "all"; None: every frame

    def __post_init__(self) -> None:
        from pipeline.fusion import FUSION_RULES

        refuse_outside(self, (
            ("k", self.k >= 1, "at least 1 (K, the frames the recognizer sees)"),
            ("curve_k", min(self.curve_k, default=1) >= 1, "budgets of at least 1 frame"),
            ("fusion", self.fusion in FUSION_RULES, f"one of {FUSION_RULES}"),
            ("alpha", 0.0 <= self.alpha <= 1.0, "in [0, 1]"),
            ("seed", self.seed >= 0, "at least 0"),
        ))
        self.all_frames_config()  # checks the budget and the rate

    def check_k(self, t: int) -> None:
        """Refuse a K above the ``t`` frames observed a video: NSNet picks K of them (the
        budget curve's larger K are taken as all T)."""
        if self.k > t:
            raise ValueError(f"K={self.k} is more than the T={t} frames observed a video, of which NSNet picks K: give --k {t} or less")

    def all_frames_config(self) -> AllFramesConfig:
        return AllFramesConfig(self.all_frames_budget, self.seed, self.all_frames_rate)


# Seconds one video may take to decode before its decoder is taken for hung (pipeline.decode_watch,
# the features and predict stages): a long video decoded from the start (MPEG-2 program streams do
# not seek) must not be mistaken for one.
DECODE_TIMEOUT_S = 900.0

# Seconds a torchrun rank may wait for the others at a collective (the process group's timeout):
# a rank that finished its share of the features stage waits at the end for the slowest (longer
# videos, a hung decoder's timeout), and a fine-tuning epoch's ranks wait for each other. torch's
# default for NCCL is 10 minutes, after which its watchdog ends the job.
RANK_WAIT_S = 6 * 3600.0


# A new feature cache's videos a model batch and a shard, where the options give none.
NEW_CACHE_VIDEOS_PER_BATCH = 8
NEW_CACHE_VIDEOS_PER_SHARD = 256
# The shares of a cache's shards among its writers (``--shard`` jobs times torchrun ranks): an
# even split's videos a writer over the busiest writer's. Below UNEVEN_SHARES a new cache's
# run and dry run say so, naming the largest --videos-per-shard that reaches EVEN_SHARES.
UNEVEN_SHARES = 0.8
EVEN_SHARES = 0.9


@dataclass(frozen=True)
class RunOptions:
    """How a stage runs. None of this changes its results, except ``backend`` by float
    rounding (outputs agree to about 1e-5): the features stage records it in the fingerprint."""

    cache_dir: Path = Path("cache")
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    backend: str = "auto"  # auto | torch | onnxruntime: where the backbones run (pipeline.backends)
    exports: Path | None = None  # ONNX exports of the backbones (None: <cache_dir>/onnx)
    workers: int | None = None  # DataLoader decoding processes (None: pipeline.extract.decoding_workers)
    videos_per_batch: int | None = None  # videos whose frames share a model batch, fixed at a cache's creation (None: the cache's; a new one's NEW_CACHE_VIDEOS_PER_BATCH)
    videos_per_shard: int | None = None  # videos per cache file, rounded up to whole batches, fixed at creation (None: the cache's; a new one's NEW_CACHE_VIDEOS_PER_SHARD)
    shard: tuple[int, int] = (0, 1)  # (index, count) of this job's share of the videos
    allow_failures: bool = False
    retry_failed: bool = False
    verify: bool = False  # read the cache whole against its checksums first, computing damaged shards again
    progress: bool = True
    decode_timeout: float = DECODE_TIMEOUT_S  # one video's longest decode before its decoder is taken for hung

    def __post_init__(self) -> None:
        refuse_outside(self, (
            ("workers", self.workers is None or self.workers >= 0, "at least 0 (0: decoding in this process)"),
            ("videos_per_batch", self.videos_per_batch is None or self.videos_per_batch >= 1, "at least 1"),
            ("videos_per_shard", self.videos_per_shard is None or self.videos_per_shard >= 1, "at least 1"),
            ("decode_timeout", self.decode_timeout > 0, "positive"),
        ))

    def cache_layout(self, existing: dict[str, Any] | None = None) -> dict[str, int]:
        """The videos a model batch and a shard (rounded up to whole batches) that these options
        ask of a cache: those given, the others ``existing``'s (an existing cache's attributes), or
        a new cache's defaults."""
        batch = self.videos_per_batch or int((existing or {}).get("videos_per_batch", NEW_CACHE_VIDEOS_PER_BATCH))
        shard = self.videos_per_shard or int((existing or {}).get("videos_per_shard", NEW_CACHE_VIDEOS_PER_SHARD))
        return {"videos_per_batch": batch, "videos_per_shard": -(-shard // batch) * batch}

    @property
    def export_dir(self) -> Path:
        return self.exports if self.exports is not None else self.cache_dir / "onnx"
