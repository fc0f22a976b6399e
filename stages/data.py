"""``nsnet data``: build the demo dataset, or check and summarise a dataset's manifest."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.cache import write_text_atomic
from pipeline.datasets import AnnotationFiles, Manifest, VideoRecord, get_dataset, load_manifest
from pipeline.demo_data import DemoSpec, generate_demo
from pipeline.video import broken_link, looked_at, unfinished_downloads

# Missing videos named in `nsnet data`'s summary (every one is counted).
MISSING_SHOWN = 5


def prepare_dataset(dataset: str, data_root: Path | None, demo: DemoSpec, progress: bool = True, files: AnnotationFiles = AnnotationFiles()) -> tuple[Path, Manifest]:
    """Generate the demo videos when ``dataset`` is ``demo``; in every case load the manifest
    (the data root and the manifest)."""
    if dataset == "demo":
        generate_demo(Path(data_root) if data_root is not None else get_dataset(dataset).default_root, demo, progress=progress)
    return load_manifest(dataset, data_root, files)


@dataclass(frozen=True)
class Missing:
    """A video of the manifest not on disk, and what an unfinished download of it left (said as
    :func:`~pipeline.video.unfinished_download` says it; None where nothing), or the symbolic
    link to nothing that it, or a folder above it, is (:func:`~pipeline.video.broken_link`)."""

    video: VideoRecord
    left: str | None
    broken: str | None = None


def missing_videos(root: Path, manifest: Manifest) -> list[Missing]:
    """Every video of the manifest that is not on disk under ``root`` (a file or a folder of
    frames; one ``stat`` a video, in threads: :func:`~pipeline.video.looked_at`), with what an
    unfinished download of it left (each folder listed once)."""
    folder = str(root)
    there = looked_at(os.path.exists, [os.path.join(folder, v.path) for v in manifest.videos])
    gone = [v for v, found in zip(manifest.videos, there) if not found]
    return [Missing(v, left, broken_link(root / v.path)) for v, left in zip(gone, unfinished_downloads([root / v.path for v in gone]))]


def write_missing(path: Path, missing: list[Missing], classes: Sequence[str]) -> None:
    """The missing videos as JSON lines (``video``, ``split``, ``labels`` by name, ``path``,
    ``unfinished``: what a download left, or null; ``broken_link``: the link to nothing, or
    null), written whole or not at all: the list to download again (``jq -r .video``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rows = ({"video": m.video.video_id, "split": m.video.split, "labels": [classes[i] for i in m.video.labels], "path": m.video.path, "unfinished": m.left, "broken_link": m.broken} for m in missing)
    write_text_atomic(Path(path), "".join(json.dumps(row) + "\n" for row in rows))


def describe(manifest: Manifest, root: Path, missing: list[Missing]) -> str:
    """The manifest's summary, and how many of its videos are on disk under ``root`` (all but
    ``missing``), the unfinished downloads among the missing counted and the first few missing
    named (an unfinished download said as such)."""
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
    lines += _on_disk(Path(root), len(manifest.videos), missing)
    return "\n".join(lines)


def _on_disk(root: Path, total: int, missing: list[Missing]) -> list[str]:
    """The lines of :func:`describe` that say which of the ``total`` videos are on disk under
    ``root``."""
    lines = [f"videos on disk under {root}: {total - len(missing):,} of {total:,}"]
    if missing:
        by_split = Counter(m.video.split for m in missing)
        unfinished, broken = (sum(getattr(m, kind) is not None for m in missing) for kind in ("left", "broken"))
        lines.append(f"missing: {len(missing):,} (" + ", ".join(f"{split} {n:,}" for split, n in sorted(by_split.items()))
                     + (f"; unfinished downloads {unfinished:,}" if unfinished else "") + (f"; broken symbolic links {broken:,}" if broken else "") + "), the features stage records each as failed; the first:")
        for m in missing[:MISSING_SHOWN]:
            lines.append(f"  {m.video.path}" + (f": broken symbolic link ({m.broken})" if m.broken else f": unfinished download ({m.left})" if m.left else ""))
    if total and len(missing) == total:
        behind_links = all(m.broken for m in missing)
        lines.append(f"none is under {root}: " + (broken_link(root) or ("each lies behind a broken symbolic link (above): mount or link again the disk it pointed to" if behind_links else "the annotations' paths are relative to --data-root (the folder that holds them as written, or a folder above it)")))
    return lines
