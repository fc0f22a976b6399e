"""Kinetics' annotations in the forms they are shared in, and the Kinetics manifest.

* csv (DeepMind, cvdfoundation): ``label,youtube_id,time_start,time_end,split[,is_cc]``;
* JSON of DeepMind's release (``kinetics_train.json``, ``kinetics_700_validate.json``):
  ``{youtube_id: {"annotations": {"label", "segment": [start s, end s]}, "subset", ...}}``;
* JSON of 3D-ResNets-PyTorch (``kinetics.json``, and its UCF101 and HMDB51 files of the same
  form): ``{"labels": [...], "database": {clip or youtube_id: {"subset": "training",
  "annotations": {"label"}}}}``, every split in one file, ``labels`` the class order its
  recognizers are trained with;
* lists of YouTube ids, one a line (Mini-Kinetics-200's ``train_ytid_list.txt`` of Xie et al.),
  labelled by annotation files of the forms above.

A clip's file is named ``<youtube_id>_<start:06d>_<end:06d>.<ext>``, as the common downloaders
write it (or by the bare id, or by a 3D-ResNets key), anywhere under the data root.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.datasets.class_names import class_key, class_subset, numbered_classes, refuse_same_classes
from pipeline.datasets.finding import CLIP_NAME, Found, find_under, name_aliases
from pipeline.datasets.kinds import ACTIVITYNET_JSON, KINETICS_COLUMNS, VIDEO_LIST, annotation_kind, json_kind
from pipeline.datasets.manifest import (
    AnnotationFiles,
    Manifest,
    ManifestError,
    SPLIT_ALIASES,
    RawEntry,
    Rejected,
    build_manifest,
    normalise_split,
    read_annotation_text,
)
from pipeline.video import hidden

ANNOTATION_SUFFIXES = (".csv", ".json")
_ID_LINE = re.compile(r"[A-Za-z0-9_-]+")


class NotKineticsError(ManifestError):
    """A csv or JSON file that is not Kinetics annotations at all (rather than a broken one)."""


@dataclass(frozen=True)
class Clip:
    """One clip of the annotations: ``name`` is its file's stem, ``label`` empty where the file
    gives none (test sets), ``subset`` the split the file says (``""`` where it says none),
    ``where`` the file and line or key, for messages."""

    youtube_id: str
    name: str
    label: str
    subset: str
    where: str
    segment: tuple[float, float] | None = None  # seconds in the YouTube video, where known


def clip_segment(start: str | float, end: str | float, where: str) -> tuple[float, float]:
    """The clip's (start, end) in seconds from the annotation's times (``14``, ``14.0``)."""
    try:
        return float(start), float(end)
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: time_start/time_end must be numbers, got {start!r}, {end!r}") from None


def clip_name(youtube_id: str, segment: tuple[float, float]) -> str:
    """``<youtube_id>_<start:06d>_<end:06d>``, as the downloaders name a cut clip."""
    return f"{youtube_id}_{int(segment[0]):06d}_{int(segment[1]):06d}"


def bare_id_files(root: Path, paths: Sequence[str]) -> dict[str, tuple[str, tuple[float, float]]]:
    """For list paths named as Kinetics clips (``abseiling/<id>_000010_000020.mp4``, mmaction2's
    lists) whose files are not there, the file named by the bare YouTube id (``<id>.mp4``, as
    Showmax's kinetics-downloader names its cut clips, or the whole video; a downloader's titled
    name too: :func:`find_under`) and the clip's segment in seconds, by one walk of the root:
    ``{path: (file, segment)}``, the paths found so alone."""
    wanted: dict[str, tuple[str, tuple[float, float]]] = {}
    for path in paths:
        match = CLIP_NAME.fullmatch(name_aliases(path)[0])
        if match:
            wanted[path] = (match["youtube_id"], clip_segment(match["start"], match["end"], path))
    if not wanted:
        return {}
    on_disk = find_under(root, {youtube_id for youtube_id, _ in wanted.values()})
    found = {}
    for path, (youtube_id, segment) in wanted.items():
        hit = on_disk.first((youtube_id,))
        if hit is not None:
            found[path] = (hit[1], segment)
    return found


def _subset(value: object) -> str:
    key = str(value or "").strip().lower()
    return SPLIT_ALIASES.get(key, key)


def _csv_clips(path: Path, text: str) -> list[Clip]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in KINETICS_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        hint = f": {VIDEO_LIST}" if annotation_kind(text) == VIDEO_LIST else ""
        raise NotKineticsError(f"{path}: not a Kinetics csv (no column {', '.join(missing)}; expected label,youtube_id,time_start,time_end,split){hint}")
    clips = []
    for line_no, row in enumerate(reader, start=2):
        where = f"{path}:{line_no}"
        segment = clip_segment(row["time_start"], row["time_end"], where)
        clips.append(Clip(row["youtube_id"], clip_name(row["youtube_id"], segment), (row.get("label") or "").strip(), _subset(row.get("split")), where, segment))
    return clips


@dataclass(frozen=True)
class Annotations:
    """The clips of one or more annotation files, and the class order they declare (3D-ResNets'
    ``labels``; empty where they declare none)."""

    clips: list[Clip]
    classes: tuple[str, ...] = ()


def _declared_classes(path: Path, data: dict) -> tuple[str, ...]:
    """3D-ResNets' ``labels``: the class names in the order of its recognizers' outputs."""
    labels = data.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(name, str) for name in labels):
        raise ManifestError(f"{path}: 'labels' must be a list of class names, got {str(labels)[:80]}")
    refuse_same_classes(f"{path}: 'labels'", labels)
    return tuple(name.strip() for name in labels)


def _json_clips(path: Path, text: str) -> Annotations:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    if json_kind(data) == ACTIVITYNET_JSON:
        raise NotKineticsError(f"{path}: {ACTIVITYNET_JSON}; not a Kinetics JSON")
    by_key = data.get("database") if isinstance(data, dict) else None
    resnets = isinstance(by_key, dict)  # 3D-ResNets: its segments are frame ranges, not times
    by_key = by_key if resnets else data
    if not isinstance(by_key, dict) or not all(isinstance(v, dict) for v in by_key.values()):
        raise NotKineticsError(f"{path}: not a Kinetics JSON (expected {{youtube_id: {{\"annotations\": {{\"label\", \"segment\"}}, \"subset\"}}}} or 3D-ResNets' {{\"database\": ...}})")
    clips = []
    for key, info in by_key.items():
        where = f"{path}: {key}"
        annotations = info.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise ManifestError(f"{where}: 'annotations' must be an object with a 'label', got {annotations!r}")
        match = CLIP_NAME.fullmatch(key)
        times = annotations.get("segment")
        if match:
            youtube_id, name, segment = match["youtube_id"], key, clip_segment(match["start"], match["end"], where)
        elif not resnets and isinstance(times, (list, tuple)) and len(times) == 2:
            segment = clip_segment(times[0], times[1], where)
            youtube_id, name = key, clip_name(key, segment)
        else:
            youtube_id, name, segment = key, key, None
        clips.append(Clip(youtube_id, name, str(annotations.get("label") or "").strip(), _subset(info.get("subset")), where, segment))
    return Annotations(clips, _declared_classes(path, data) if resnets else ())


def _read(path: Path) -> str:
    return read_annotation_text(path, "Kinetics annotation file")


def clips_of(path: Path, text: str) -> Annotations:
    """The clips of one Kinetics csv or JSON file (``text``, read from ``path``), told apart by
    their content."""
    return _json_clips(path, text) if text.lstrip()[:1] in ("{", "[") else Annotations(_csv_clips(path, text))


def declared_by(files: list[tuple[Path, Annotations]]) -> tuple[str, ...]:
    """The class order several files declare (empty where none does): files that declare one
    must declare the same."""
    declaring = [(path, a.classes) for path, a in files if a.classes]
    for path, classes in declaring[1:]:
        if classes != declaring[0][1]:
            raise ManifestError(f"{path} and {declaring[0][0]} declare different class lists ('labels'); name one of them, or the class order with --class-names")
    return declaring[0][1] if declaring else ()


def youtube_ids(text: str) -> list[tuple[int, str]] | None:
    """(line number, id) of a file of YouTube ids or clip names, one a line, else ``None``."""
    lines = [(no, line.strip()) for no, line in enumerate(text.splitlines(), start=1) if line.strip()]
    return lines if lines and all(_ID_LINE.fullmatch(line) for _, line in lines) else None


def read_annotations(path: Path) -> Annotations:
    """The clips of an annotation file, or of the Kinetics csv and JSON files of a folder, in
    name order. Other files in a folder (a class list, a downloader's ``categories.json``) are
    passed over, as are hidden ones (macOS's ``._train.csv``, :func:`~pipeline.video.hidden`);
    a folder without a Kinetics file is an error saying what each file is."""
    path = Path(path)
    if not path.is_dir():
        return clips_of(path, _read(path))
    read: list[tuple[Path, Annotations]] = []
    passed_over: list[str] = []
    for file in sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in ANNOTATION_SUFFIXES and not hidden(p.name)):
        try:
            read.append((file, clips_of(file, _read(file))))
        except NotKineticsError as exc:
            passed_over.append(str(exc))
    if not read:
        raise ManifestError(f"{path}: no Kinetics annotation file (.csv or .json) in this folder" + (f" ({'; '.join(passed_over)})" if passed_over else ""))
    return Annotations([clip for _, a in read for clip in a.clips], declared_by(read))


def _of_split(clips: list[Clip], split: str) -> list[Clip]:
    """A file that holds several subsets (3D-ResNets' one JSON) gives a split its own clips;
    a file of one subset gives all of them to the split it is named for."""
    subsets = {c.subset for c in clips if c.subset}
    return [c for c in clips if c.subset == split] if len(subsets) > 1 else clips


def _by_id(clips: list[Clip]) -> dict[str, Clip]:
    """Every clip by its YouTube id and by its name. One id labelled two ways (annotations of
    two Kinetics versions in one folder) is an error naming both places."""
    index: dict[str, Clip] = {}
    for clip in clips:
        for key in dict.fromkeys((clip.youtube_id, clip.name)):
            seen = index.setdefault(key, clip)
            if seen.label != clip.label:
                raise ManifestError(f"{key} is labelled {seen.label!r} at {seen.where} and {clip.label!r} at {clip.where}; name one of the files with --annotations")
    return index


def _listed_clips(files: AnnotationFiles) -> tuple[list[tuple[Clip, str]], list[Rejected], tuple[str, ...]]:
    """(clip, split) for every clip the split files give, the listed ids that no annotation
    file knows, and the class order the split files declare (none for id lists: they take a
    subset of the annotations' classes)."""
    split_files = []
    for path, split in files.lists():
        text = _read(path)
        split_files.append((path, split, text, youtube_ids(text)))
    id_lists = [path for path, _, _, ids in split_files if ids is not None]
    if id_lists and files.annotations is None:
        raise ManifestError(f"{id_lists[0]}: a list of YouTube ids (as Mini-Kinetics-200's train_ytid_list.txt) is labelled by --annotations: the Kinetics csv or JSON files, or their folder")
    if files.annotations is not None and not id_lists:
        raise ManifestError("--annotations: the kinetics dataset reads it alone (every split in its files) or to label lists of YouTube ids; here --train-list/--val-list/--test-list are annotation files themselves")
    index = _by_id(read_annotations(files.annotations).clips) if id_lists else {}
    clips: list[tuple[Clip, str]] = []
    unknown: list[Rejected] = []
    annotated: list[tuple[Path, Annotations]] = []
    for path, split, text, ids in split_files:
        if ids is None:
            read = clips_of(path, text)
            annotated.append((path, read))
            clips += [(clip, split) for clip in _of_split(read.clips, split)]
            continue
        for line_no, key in ids:
            if key in index:
                clips.append((replace(index[key], where=f"{path}:{line_no}"), split))
            else:
                unknown.append(Rejected(key, key, f"{path}:{line_no}: in no annotation file under {files.annotations}"))
    return clips, unknown, declared_by(annotated)


def _annotated_clips(annotations: Path) -> tuple[list[tuple[Clip, str]], tuple[str, ...]]:
    """Every labelled clip of the annotation files, in the split its own row says, and the
    class order the files declare."""
    read = read_annotations(annotations)
    clips = [(clip, normalise_split(clip.subset, f"{clip.where} (its split, read from its 'split' or 'subset'; or name the files with --train-list/--val-list)")) for clip in read.clips if clip.label]
    return clips, read.classes


def declared_order(declared: tuple[str, ...], clips: list[Clip]) -> list[str]:
    """The class order the annotation files declare, which every clip's label must be in (by
    :func:`class_key`); classes that no clip has stay, as outputs of the recognizer."""
    keys = {class_key(name) for name in declared}
    for clip in clips:
        if class_key(clip.label) not in keys:
            raise ManifestError(f"{clip.where}: label {clip.label!r} is not one of the {len(declared)} classes of the file's 'labels'")
    return list(declared)


def _entry(clip: Clip, label: str, split: str, on_disk: Found) -> RawEntry:
    """A clip's manifest entry: its file named by the clip (cut), else by the bare YouTube id,
    which may be the whole video and so carries the clip's segment
    (:func:`pipeline.video.open_record` decides from its length), else the file an unfinished
    download of either is to make, else the file it would be."""
    hit = on_disk.first((clip.name, clip.youtube_id))
    if hit is None:
        return RawEntry(clip.name, f"{clip.name}.mp4", (label,), split)
    name, path = hit
    return RawEntry(clip.name, path, (label,), split, None if name == clip.name else clip.segment)


# Where the annotation files lie under the data root when no option names them: cvdfoundation's
# download (k400/annotations/{train,val,test}.csv) and mmaction2's (data/kinetics400/annotations/).
ANNOTATION_FOLDER = "annotations"


def kinetics_manifest(root: Path, files: AnnotationFiles = AnnotationFiles()) -> Manifest:
    """Kinetics from its annotations (see the module): the split files (``--train-list``,
    ``--val-list``, ``--test-list``), each a csv, a JSON or a list of YouTube ids labelled by
    ``files.annotations``; or ``files.annotations`` alone (a file or a folder), every clip in
    the split its row says; with neither, the root's :data:`ANNOTATION_FOLDER`, read as that
    option reads a folder. Labels are compared by :func:`class_key`. ``files.classes``
    restricts the dataset to a subset of the classes (Mini-Kinetics' 200): clips of the other
    classes are left out, and a subset name that is no clip's label is an error; without it
    the classes are those the annotation files declare (3D-ResNets' ``labels``, in its order),
    else the labels, sorted. Clips without a label (test sets) are left out, as are
    listed ids no annotation file knows (rejected, with the line)."""
    if files.list_format != "auto":
        raise ManifestError("--list-format: not used by the kinetics dataset (its files are told apart by their content)")
    if files.lists():
        clips, unknown, declared = _listed_clips(files)
    elif files.annotations is not None:
        (clips, declared), unknown = _annotated_clips(files.annotations), []
    elif (root / ANNOTATION_FOLDER).is_dir():
        (clips, declared), unknown = _annotated_clips(root / ANNOTATION_FOLDER), []
    else:
        raise ManifestError(f"the kinetics dataset needs its annotations: --train-list/--val-list/--test-list (csv, JSON or YouTube id lists), or --annotations (a file or folder holding every split), or them in {root / ANNOTATION_FOLDER}/")
    clips = [(clip, split) for clip, split in clips if clip.label]
    key_of = {label: class_key(label) for label in {clip.label for clip, _ in clips}}
    spellings: dict[str, str] = {}
    for clip, _ in clips:
        spellings.setdefault(key_of[clip.label], clip.label)
    sources = [str(p) for p, _ in files.lists()] or [str(files.annotations)]
    if files.classes is not None:
        classes = class_subset(Path(files.classes), spellings, sources)
    else:
        classes = declared_order(declared, [clip for clip, _ in clips]) if declared else numbered_classes(spellings.values()) or sorted(spellings.values())
    by_key = {class_key(name): name for name in classes}
    kept = [(clip, by_key[key_of[clip.label]], split) for clip, split in clips if key_of[clip.label] in by_key]
    on_disk = find_under(root, {clip.name for clip, _, _ in kept} | {clip.youtube_id for clip, _, _ in kept})
    entries = [_entry(clip, name, split, on_disk) for clip, name, split in kept]
    manifest = build_manifest("kinetics", classes, entries)
    return replace(manifest, rejected=manifest.rejected + tuple(unknown))


