"""``nsnet data``: build the demo dataset, or check and summarise a dataset's manifest."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.datasets import Manifest, get_dataset
from pipeline.demo_data import DemoSpec, generate_demo


def prepare_dataset(dataset: str, data_root: Path | None, demo: DemoSpec, progress: bool = True) -> Manifest:
    """Generate the demo videos when ``dataset`` is ``demo``; in every case load the manifest."""
    spec = get_dataset(dataset)
    root = Path(data_root) if data_root is not None else spec.default_root
    if dataset == "demo":
        generate_demo(root, demo, progress=progress)
    return spec.load(root)


def describe(manifest: Manifest) -> str:
    splits = Counter(v.split for v in manifest.videos)
    multi = sum(len(v.labels) > 1 for v in manifest.videos)
    lines = [
        f"dataset {manifest.name}: {len(manifest.videos)} videos, {manifest.num_classes} classes",
        "splits: " + ", ".join(f"{k} {n}" for k, n in sorted(splits.items())),
        f"multi-label videos: {multi}",
    ]
    if manifest.rejected:
        lines.append(f"rejected annotation entries: {len(manifest.rejected)}")
        lines += [f"  {r.video_id}: {r.reason}" for r in manifest.rejected[:5]]
    return "\n".join(lines)
