"""Dataset registry: one name, one adapter, one default data root and feature profile."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipeline.config import EvalConfig, FeaturesConfig, FinetuneConfig, ModelSpec, TrainConfig, WEIGHTS_NONE
from pipeline.datasets import adapters, kinetics
from pipeline.datasets.manifest import AnnotationFiles, Manifest, ManifestError, Rejected, VideoRecord
from pipeline.video import broken_link

__all__ = ["DATASETS", "AnnotationFiles", "DatasetSpec", "Manifest", "ManifestError", "Rejected", "VideoRecord", "get_dataset", "load_manifest"]

Loader = Callable[[Path, AnnotationFiles], Manifest]


def _files_in_root(adapter: Callable[[Path], Manifest]) -> Loader:
    """A dataset whose annotation files lie at fixed places in the data root: naming files on
    the command line is a mistake, said as such."""

    def load(root: Path, files: AnnotationFiles = AnnotationFiles()) -> Manifest:
        if files.given():
            raise ManifestError(f"{', '.join(files.given())}: not used by this dataset, whose annotation files lie in the data root {root}")
        return adapter(root)

    return load


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    load: Loader
    default_root: Path
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    description: str = ""
    finetune: dict[str, FinetuneConfig] = field(default_factory=lambda: {"recognizer": FinetuneConfig(), "light": FinetuneConfig()})
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)


# The demo runs offline on 2 CPU cores: small models, low resolution, random-init or locally
# trained weights. Every other dataset keeps the paper's defaults.
DEMO_FEATURES = FeaturesConfig(
    num_frames=16,
    light=ModelSpec("mobilenetv2_050", weights=WEIGHTS_NONE, resolution=96),
    recognizer=ModelSpec("resnet18", weights=WEIGHTS_NONE, resolution=64),
)

# Sized so that fine-tuning both demo models takes under 10 minutes on 2 CPU cores. The class
# is visible in 5-20% of a demo video's frames, so most training frames carry a label they do
# not show; the non-salient scenes are shared by all classes, so the only thing to learn is
# the class object. Frame-wise training, each video visited 4 times an epoch, and AdamW (from
# scratch it learned the salient frames far faster than SGD: 50% vs 29% val accuracy after 6
# epochs) get the recognizer there within the budget.
# The light model only has to give the sampler useful features, so it gets fewer epochs.
DEMO_FINETUNE = {
    "recognizer": FinetuneConfig(segments=1, repeats=4, epochs=25, batch_size=32, optimizer="adamw", lr=2e-3, weight_decay=0.05),
    "light": FinetuneConfig(segments=1, repeats=4, epochs=6, batch_size=32, optimizer="adamw", lr=2e-3, weight_decay=0.05),
}

# 288 training videos: the paper's schedule shortened in proportion (120 -> 40 epochs).
DEMO_TRAIN = TrainConfig(epochs=40, milestones=(17, 25))

# Table 1's baselines over all frames (section 4.3), as the paper ran them: ActivityNet's "all
# frames" are one a second (its DENSE, 930.8 GFLOPs at about 7.8 a ResNet-101 frame, is about 119
# frames for 119-second videos). FCVID and Mini-Kinetics have no such rows in the paper (Table
# 4), and FCVID's every frame would be about 2.3e8 for its 45,612 evaluation videos:
# `--all-frames` turns the pass on there.
ACTIVITYNET_EVALUATION = EvalConfig(all_frames_rate=1.0)
WITHOUT_ALL_FRAMES = EvalConfig(all_frames=False)

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "demo",
            _files_in_root(adapters.demo_manifest),
            Path("data/demo"),
            DEMO_FEATURES,
            "synthetic H.264 videos made by `nsnet data` (generic CSV manifest)",
            DEMO_FINETUNE,
            DEMO_TRAIN,
        ),
        DatasetSpec("csv", _files_in_root(adapters.csv_manifest), Path("data/csv"), description="generic manifest.csv: path,label[,label...],split"),
        DatasetSpec("fcvid", adapters.fcvid_manifest, Path("data/fcvid"), description="FCVID release files (multi-label); class names from FCVID_Category.txt, --class-names or the category folders", evaluation=WITHOUT_ALL_FRAMES),
        DatasetSpec("activitynet", adapters.activitynet_manifest, Path("data/activitynet"), description="ActivityNet v1.3 or v1.2 JSON (--annotations, default: in the data root); class order from --class-names, default the labels sorted", evaluation=ACTIVITYNET_EVALUATION),
        DatasetSpec("list", adapters.list_manifest, Path("data/list"), description="mmaction2 video/rawframe lists (text or JSON), AR-Net lists, Something-Something v2's JSON or Charades' csv (--train-list/--val-list/--test-list, --class-names)"),
        DatasetSpec("kinetics", kinetics.kinetics_manifest, Path("data/kinetics"), description="Kinetics csv or JSON files (--train-list/--val-list, or --annotations alone, else the root's annotations/), YouTube id lists labelled by --annotations, optionally a class subset (--class-names)"),
        DatasetSpec(
            "minikinetics",
            adapters.minikinetics_manifest,
            Path("data/minikinetics"),
            # The paper feeds the light model 112x112 frames on Mini-Kinetics (A.1).
            FeaturesConfig(light=ModelSpec("mobilenetv2_100", resolution=112)),
            "Mini-Kinetics: AR-Net lists (in the root, or --train-list/--val-list, --class-names), or Xie et al.'s YouTube id lists with --annotations (Kinetics csv/JSON); light model at 112",
            evaluation=WITHOUT_ALL_FRAMES,
        ),
        DatasetSpec("ucf101", adapters.ucf101_manifest, Path("data/ucf101"), description="UCF101 classInd + split lists (split 1, or --train-list/--val-list; in ucfTrainTestlist/, mmaction2's annotations/ or the root), or 3D-ResNets' ucf101_0N.json (--annotations)"),
        DatasetSpec("hmdb51", adapters.hmdb51_manifest, Path("data/hmdb51"), description="HMDB51's split files <class>_test_split<k>.txt (split 1 in testTrainMulti_7030_splits/, mmaction2's annotations/ or the root; --annotations: their folder, or a file of the split wanted)"),
    )
}


def load_manifest(dataset: str, data_root: Path | None, files: AnnotationFiles = AnnotationFiles()) -> tuple[Path, Manifest]:
    """The data root (``data_root``, else the dataset's default) and the dataset's manifest. An
    error reading the annotations where the data root does not exist says so (a mistyped
    ``--data-root``, or the default where the data lies elsewhere), and one where the root holds
    another dataset's annotation files names it (:func:`~pipeline.datasets.adapters.datasets_in_root`:
    ``--dataset`` left at the demo); a root is not needed where the lists name their videos by
    absolute paths."""
    spec = get_dataset(dataset)
    root = Path(data_root) if data_root is not None else spec.default_root
    try:
        return root, spec.load(root, files)
    except ManifestError as exc:
        if root.is_dir():
            others = [] if files.given() else adapters.datasets_in_root(root)
            if others and dataset not in others and not (dataset == "demo" and "csv" in others):
                raise ManifestError(f"{exc} ({root} holds the {others[0]} dataset's annotation files: --dataset {others[0]}?)") from exc
            raise
        said = "the data root" if data_root is not None else f"the {dataset} dataset's default data root"
        why = f": {broken}" if (broken := broken_link(root)) else "" if data_root is not None else ": give --data-root"
        raise ManifestError(f"{exc} ({said} {root} does not exist{why})") from exc


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ManifestError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
