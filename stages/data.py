"""``nsnet data``: build the demo dataset, or check and summarise a dataset's manifest."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.datasets import AnnotationFiles, Manifest, get_dataset, load_manifest
from pipeline.demo_data import DemoSpec, generate_demo


def prepare_dataset(dataset: str, data_root: Path | None, demo: DemoSpec, progress: bool = True, files: AnnotationFiles = AnnotationFiles()) -> Manifest:
    """Generate the demo videos when ``dataset`` is ``demo``; in every case load the manifest."""
    if dataset == "demo":
        generate_demo(Path(data_root) if data_root is not None else get_dataset(dataset).default_root, demo, progress=progress)
    return load_manifest(dataset, data_root, files)[1]


def describe(manifest: Manifest) -> str:
    splits = Counter(v.split for v in manifest.videos)
    multi = sum(len(v.labels) > 1 for v in manifest.videos)
    lines = [
        f"dataset {manifest.name}: {len(manifest.videos)} videos, {manifest.num_classes} classes",
        "splits: " + ", ".join(f"{k} {n}" for k, n in sorted(splits.items())),
        f"multi-label videos: {multi}",
    ]
    segments = sum(v.segment is not None for v in manifest.videos)
    if segments:
        lines.append(f"files named by the bare YouTube id: {segments}, each read as its clip's annotated segment where the file is the whole video")
    if manifest.rejected:
        lines.append(f"rejected annotation entries: {len(manifest.rejected)}")
        lines += [f"  {r.video_id}: {r.reason}" for r in manifest.rejected[:5]]
    return "\n".join(lines)
