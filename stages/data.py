"""``nsnet data``: build the demo dataset, or check and summarise a dataset's manifest."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.cache import write_text_atomic
from pipeline.datasets import AnnotationFiles, Manifest, VideoRecord, get_dataset, load_manifest
from pipeline.decoders import decord_installed, looked_into, misread_now_and_then
from pipeline.demo_data import DemoSpec, generate_demo
from pipeline.video import broken_link, failure_summary, looked_at, unfinished_downloads

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
    link to nothing that it, or a folder above it, is (:func:`~pipeline.video.broken_link`); or
    (``empty``) one there as an empty file, a download that failed, which the features stage
    fails as it fails a missing one."""

    video: VideoRecord
    left: str | None
    broken: str | None = None
    empty: bool = False


# What :func:`_file_size` says of a folder (of frames): there, its emptiness not looked at.
FOLDER = -1


def _file_size(path: str) -> int | None:
    """A file's bytes, :data:`FOLDER` for a folder, None where nothing is there: one ``stat``."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return FOLDER if stat.S_ISDIR(found.st_mode) else found.st_size


def missing_videos(root: Path, manifest: Manifest) -> list[Missing]:
    """Every video of the manifest that is not on disk under ``root`` (a file or a folder of
    frames), with what an unfinished download of it left (each folder listed once), and every
    one that is an empty file; in the manifest's order. One ``stat`` a video, in threads
    (:func:`~pipeline.video.looked_at`)."""
    folder = str(root)
    sizes = looked_at(_file_size, [os.path.join(folder, v.path) for v in manifest.videos])
    gone = [i for i, size in enumerate(sizes) if size is None]
    left = dict(zip(gone, unfinished_downloads([root / manifest.videos[i].path for i in gone])))
    return [Missing(v, left[i], broken_link(root / v.path)) if sizes[i] is None else Missing(v, None, empty=True) for i, v in enumerate(manifest.videos) if sizes[i] in (None, 0)]


def write_missing(path: Path, missing: list[Missing], classes: Sequence[str]) -> None:
    """The missing and empty videos as JSON lines (``video``, ``split``, ``labels`` by name,
    ``path``, ``unfinished``: what a download left, or null; ``broken_link``: the link to
    nothing, or null; ``empty``: there as an empty file), written whole or not at all: the list
    to download again (``jq -r .video``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rows = ({"video": m.video.video_id, "split": m.video.split, "labels": [classes[i] for i in m.video.labels], "path": m.video.path, "unfinished": m.left, "broken_link": m.broken, "empty": m.empty} for m in missing)
    write_text_atomic(Path(path), "".join(json.dumps(row) + "\n" for row in rows))


def describe(manifest: Manifest, root: Path, missing: list[Missing]) -> str:
    """The manifest's summary, and how many of its videos are on disk under ``root`` (all but
    the ``missing``, which also holds the empty files), the unfinished downloads and broken
    links among the missing counted, the first few missing named (an unfinished download said
    as such), and the empty files counted and the first few named."""
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


def _on_disk(root: Path, total: int, looked: list[Missing]) -> list[str]:
    """The lines of :func:`describe` that say which of the ``total`` videos are on disk under
    ``root``, and which of those are empty files."""
    missing, empty = [m for m in looked if not m.empty], [m for m in looked if m.empty]
    lines = [f"videos on disk under {root}: {total - len(missing):,} of {total:,}"]
    if missing:
        by_split = Counter(m.video.split for m in missing)
        unfinished, broken = (sum(getattr(m, kind) is not None for m in missing) for kind in ("left", "broken"))
        lines.append(f"missing: {len(missing):,} (" + ", ".join(f"{split} {n:,}" for split, n in sorted(by_split.items()))
                     + (f"; unfinished downloads {unfinished:,}" if unfinished else "") + (f"; broken symbolic links {broken:,}" if broken else "") + "), the features stage records each as failed; the first:")
        for m in missing[:MISSING_SHOWN]:
            lines.append(f"  {m.video.path}" + (f": broken symbolic link ({m.broken})" if m.broken else f": unfinished download ({m.left})" if m.left else ""))
    if empty:
        lines.append(f"empty files: {len(empty):,} (0 bytes: downloads that failed), the features stage records each as failed; the first: " + ", ".join(m.video.path for m in empty[:MISSING_SHOWN]))
    if total and len(missing) == total:
        behind_links = all(m.broken for m in missing)
        lines.append(f"none is under {root}: " + (broken_link(root) or ("each lies behind a broken symbolic link (above): mount or link again the disk it pointed to" if behind_links else "the annotations' paths are relative to --data-root (the folder that holds them as written, or a folder above it)")))
    return lines


def misread_by_decord(root: Path, manifest: Manifest, progress: bool = True) -> tuple[int, list[tuple[VideoRecord, str, bool]]]:
    """How many of the manifest's videos are files on disk under ``root``, and those of them
    that decord would misread, each with why and whether decord read it before 2026-12-06
    (night) all the same (:func:`~pipeline.decoders.misread_now_and_then`): PyAV reads them
    since; a feature cache built before holds the frames decord gave for the second kind. A look
    at each file's container and first packets, and a decord open of each file it names
    (:func:`~pipeline.decoders.looked_into`)."""
    folder = str(root)
    files = [v for v in manifest.videos if os.path.isfile(os.path.join(folder, v.path))]
    looks = looked_into([os.path.join(folder, v.path) for v in files], misread_now_and_then, progress)
    return len(files), [(v, reason, then) for v, (reason, then) in zip(files, looks) if reason]


def describe_misread(files: int, misread: list[tuple[VideoRecord, str, bool]]) -> str:
    """:func:`misread_by_decord`'s finding as the summary says it."""
    if not misread:
        none = "(no transport stream, ASF, edit-list cut or open groups of pictures)"
        if decord_installed():
            return f"decord reads the {files:,} video file(s) as asked {none}"
        return f"decord would read the {files:,} video file(s) as asked {none}; it is not installed here: PyAV reads every file"
    then = sum(read_then for _, _, read_then in misread)
    if not decord_installed():
        before = "decord is not installed here, so which of them it read before 2026-12-06 (night) cannot be told: the next features run on a feature cache built before, where it was, computes them all again"
    elif then:
        before = f"{then:,} of them decord read before 2026-12-06 (night) all the same: a feature cache built before holds their frames as decord gave them, which its next features run computes again"
    else:
        before = "decord refused them before 2026-12-06 (night) too: a feature cache built before holds PyAV's frames of them"
    lines = [f"decord would misread {len(misread):,} of {files:,} video files, which PyAV reads ({failure_summary([reason for _, reason, _ in misread])}); {before}; the first:"]
    lines += [f"  {video.path}: {reason}" + ("" if read_then else " (refused by decord before as well)") for video, reason, read_then in misread[:MISSING_SHOWN]]
    return "\n".join(lines)
