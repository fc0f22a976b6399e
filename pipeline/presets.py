"""The paper's experiments by name: ``--preset table1|table2|table4|table6|fig3``.

A preset sets, per dataset, what the paper states for that experiment: the observation number
T and the recognizer (features), K and the baselines' protocol (evaluate), and the paper's
figures that the report quotes beside ours. A dataset the experiment was not run on (the demo,
a list dataset) keeps its own T and recognizer and gets the experiment's protocol; its report
quotes the figures of the experiment's first dataset.

From the paper: Table 1 (4.3): ResNet-101 on ActivityNet with T=100, ResNet-50 on UCF101 with
T=50, NSNet K=5, UNIFORM, RANDOM and TOP-K of 10 frames from all frames, DENSE on all frames.
Table 2 (4.3) and Table 4 (4.3): ResNet-50, T=16, K=5 (the P_total example of 3.1). Table 6
(4.4): ResNet-101 as in Table 1 ("the same as in Table 1"), hence T=100. Fig. 3 (4.3): T=50, K
swept, ResNet-101.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pipeline.config import EvalConfig, FeaturesConfig


@dataclass(frozen=True)
class PaperFigure:
    """One row of a paper table: the metric (mAP or top-1, percent) and GFLOPs per video."""

    metric: float
    gflops: float | None


@dataclass(frozen=True)
class DatasetSetting:
    """What an experiment fixes for one dataset."""

    num_frames: int  # T
    recognizer: str  # timm name
    metric: str = "mAP"  # the figure the paper reports: mAP or top-1
    all_frames_rate: float | None = None  # frames per second that count as "all frames"
    paper: dict[str, PaperFigure] = field(default_factory=dict)  # our method name -> paper figure


@dataclass(frozen=True)
class Preset:
    name: str
    source: str  # where in the paper
    stage: str  # evaluate | ablations
    settings: dict[str, DatasetSetting]  # dataset -> setting; the first is quoted for others
    k: int = 5
    all_frames: bool = False  # Table 1's baselines over all frames
    curve_k: tuple[int, ...] | None = None

    def setting(self, dataset: str) -> DatasetSetting | None:
        """The dataset's own setting, or None when the paper did not run it."""
        return self.settings.get(dataset)

    def quoted(self, dataset: str) -> tuple[str, DatasetSetting]:
        """The dataset whose paper figures the report quotes, and its setting."""
        name = dataset if dataset in self.settings else next(iter(self.settings))
        return name, self.settings[name]

    def features(self, dataset: str, config: FeaturesConfig) -> FeaturesConfig:
        """The dataset's feature config with the experiment's T and recognizer."""
        own = self.setting(dataset)
        return config if own is None else config.with_overrides(num_frames=own.num_frames, recognizer_name=own.recognizer)

    def evaluation(self, dataset: str, cfg: EvalConfig = EvalConfig()) -> EvalConfig:
        own = self.setting(dataset)
        changes = {"k": self.k, "all_frames": self.all_frames, "all_frames_rate": own.all_frames_rate if own else None}
        if self.curve_k is not None:
            changes["curve_k"] = self.curve_k
        return replace(cfg, **changes)

    def quotes(self, dataset: str) -> dict[str, object]:
        """What a report says of the preset: its name and source, and the paper's figures of
        the dataset (or of the experiment's first dataset) by our method names."""
        quoted, setting = self.quoted(dataset)
        figures = {method: {"metric": f.metric, "gflops": f.gflops} for method, f in setting.paper.items()}
        return {"name": self.name, "source": self.source, "dataset": quoted, "metric": setting.metric, "figures": figures}


def _table1_rows(uniform: float, random: float, dense: float, topk: float, ours: float, few: float, every: float, ours_gflops: float) -> dict[str, PaperFigure]:
    return {
        "UNIFORM-10 (all frames)": PaperFigure(uniform, few),
        "RANDOM-10 (all frames)": PaperFigure(random, few),
        "DENSE (all frames)": PaperFigure(dense, every),
        "TOP-K-10 (all frames)": PaperFigure(topk, every),
        "NSNet (K=5)": PaperFigure(ours, ours_gflops),
    }


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "table1",
            "Table 1 (section 4.3): hand-crafted samplers",
            "evaluate",
            {
                # ActivityNet's DENSE, 930.8 GFLOPs at about 7.8 a ResNet-101 frame, is about 119
                # frames, one a second of its 119 s average: "all frames" at 1 fps.
                "activitynet": DatasetSetting(100, "resnet101", "mAP", 1.0, _table1_rows(68.6, 68.1, 69.0, 72.5, 74.9, 195.8, 930.8, 73.2)),
                "ucf101": DatasetSetting(50, "resnet50", "top-1", None, _table1_rows(75.9, 75.7, 76.1, 74.5, 77.6, 61.7, 753.4, 37.6)),
            },
            all_frames=True,
        ),
        Preset("table2", "Table 2 (section 4.3): ResNet-50 on ActivityNet", "evaluate", {"activitynet": DatasetSetting(16, "resnet50", "mAP", None, {"NSNet (K=5)": PaperFigure(76.8, 26.0)})}),
        Preset(
            "table4",
            "Table 4 (section 4.3): FCVID and Mini-Kinetics",
            "evaluate",
            {
                "fcvid": DatasetSetting(16, "resnet50", "mAP", None, {"NSNet (K=5)": PaperFigure(83.9, 26.0)}),
                "minikinetics": DatasetSetting(16, "resnet50", "top-1", None, {"NSNet (K=5)": PaperFigure(73.6, 18.1)}),
            },
        ),
        Preset("table6", "Table 6 (section 4.4): ablations on ActivityNet", "ablations", {"activitynet": DatasetSetting(100, "resnet101", "mAP")}),
        Preset("fig3", "Fig. 3 (section 4.3): GFLOPs-mAP curve on ActivityNet", "evaluate", {"activitynet": DatasetSetting(50, "resnet101", "mAP")}, curve_k=(1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25)),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
