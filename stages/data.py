"""``nsnet data``: build the demo dataset, or check and summarise a dataset's manifest."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from pipeline.datasets import AnnotationFiles, Manifest, get_dataset, load_manifest
from pipeline.demo_data import DemoSpec, generate_demo
from pipeline.video import looked_at, unfinished_downloads

# Missing videos named in `nsnet data`'s summary (every one is counted).
MISSING_SHOWN = 5


def prepare_dataset(dataset: str, data_root: Path | None, demo: DemoSpec, progress: bool = True, files: AnnotationFiles = AnnotationFiles()) -> tuple[Path, Manifest]:
    """Generate the demo videos when ``dataset`` is ``demo``; in every case load the manifest
    (the data root and the manifest)."""
    if dataset == "demo":
        generate_demo(Path(data_root) if data_root is not None else get_dataset(dataset).default_root, demo, progress=progress)
    return load_manifest(dataset, data_root, files)


def missing_videos(root: Path, manifest: Manifest) -> list[tuple[str, str]]:
    """(split, path) of every video of the manifest that is not on disk under ``root`` (a file or
    a folder of frames; one ``stat`` a video, in threads: :func:`~pipeline.video.looked_at`)."""
    folder = str(root)
    there = looked_at(os.path.exists, [os.path.join(folder, v.path) for v in manifest.videos])
    return [(v.split, v.path) for v, found in zip(manifest.videos, there) if not found]


def describe(manifest: Manifest, root: Path) -> str:
    """The manifest's summary, and how many of its videos are on disk under ``root``, the
    unfinished downloads among the missing counted and the first few missing named (an
    unfinished download said as such)."""
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
    lines += _on_disk(Path(root), manifest)
    return "\n".join(lines)


def _on_disk(root: Path, manifest: Manifest) -> list[str]:
    """The lines of :func:`describe` that say which videos are on disk under ``root``."""
    missing = missing_videos(root, manifest)
    total = len(manifest.videos)
    lines = [f"videos on disk under {root}: {total - len(missing):,} of {total:,}"]
    if missing:
        by_split = Counter(split for split, _ in missing)
        left = unfinished_downloads([root / path for _, path in missing])
        unfinished = len(left) - left.count(None)
        lines.append(f"missing: {len(missing):,} (" + ", ".join(f"{split} {n:,}" for split, n in sorted(by_split.items()))
                     + (f"; unfinished downloads {unfinished:,}" if unfinished else "") + "), the features stage records each as failed; the first:")
        for (_, path), what in zip(missing[:MISSING_SHOWN], left):
            lines.append(f"  {path}" + (f": unfinished download ({what})" if what else ""))
    if total and len(missing) == total:
        lines.append(f"none is under {root}: the annotations' paths are relative to --data-root (the folder that holds them as written, or a folder above it)")
    return lines
