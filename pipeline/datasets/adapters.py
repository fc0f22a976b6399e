"""Adapters from each dataset's official annotation format to a :class:`Manifest`.

Paths in the manifest are relative to the data root, so a cache stays valid when the data moves.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import warnings
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from pipeline.datasets.kinetics import ANNOTATION_FOLDER, NotKineticsError, kinetics_manifest
from pipeline.datasets.class_names import class_key, class_subset, first_spellings, numbered_classes, read_class_names, refuse_same_classes
from pipeline.datasets.finding import PathResolver, find_listed, locate
from pipeline.datasets.kinds import HMDB51_SPLIT_FILE, KINETICS_JSON, annotation_kind, json_kind
from pipeline.datasets.lists import ListLine, counted_from_one, is_header, list_entries, named_labels, read_list, table_delimiter
from pipeline.datasets.manifest import (
    AnnotationFiles,
    Manifest,
    ManifestError,
    RawEntry,
    build_manifest,
    normalise_split,
    read_annotation_text,
    read_lines,
    video_id,
)


def _first_existing(root: Path, *names: str) -> Path:
    for name in names:
        if (root / name).exists():
            return root / name
    return root / names[0]


def csv_manifest(root: Path, manifest_file: str = "manifest.csv", classes_file: str = "classes.txt", name: str = "csv") -> Manifest:
    """Generic CSV: ``path,label[,label...],split`` a row (an optional header row starting with
    ``path``, or naming its columns as a list's may, :func:`is_header`: ``video,labels,subset``;
    the fields separated by commas, or by tabs or semicolons as spreadsheets save tables:
    :func:`~pipeline.datasets.lists.table_delimiter`).
    Labels are class names, matched to the class list with case, quotes and spaces against
    underscores aside (:func:`class_key`: ``Cat`` and ``cat`` are one class); the class list is
    ``classes.txt`` beside the manifest if present (one class named twice so is refused), else
    the labels used, sorted, each class spelt as first in that order; labels may be class
    indices (``0``, ``2``, ``10``) instead (:func:`_csv_classes`). Paths are resolved as list
    files' are (:func:`find_listed`: another extension, frames, Windows separators, absolute
    paths, under the root's folders, another machine's by their last folders)."""
    path = root / manifest_file
    text = read_annotation_text(path, "manifest file")
    rows = []
    for line_no, row in enumerate(csv.reader(io.StringIO(text), delimiter=table_delimiter(text.splitlines())), start=1):
        row = [cell.strip() for cell in row]
        if not any(row) or (line_no == 1 and (row[0].lower() == "path" or is_header(",".join(row)))):
            continue
        if len(row) < 3:
            raise ManifestError(f"{path}:{line_no}: expected path,label[,label...],split, got {row}")
        rows.append((row[0], tuple(label for label in row[1:-1] if label), normalise_split(row[-1], f"{path}:{line_no}")))
    entries = []
    for (written, labels, split), rel in zip(rows, find_listed(PathResolver(root), [written for written, _, _ in rows])):
        rel = rel or written
        entries.append(RawEntry(video_id(rel), rel, labels, split))
    classes, entries = _csv_classes(path, root / classes_file, entries)
    return build_manifest(name, classes, entries)


def _csv_classes(manifest: Path, class_file: Path, entries: list[RawEntry]) -> tuple[list[str], list[RawEntry]]:
    """The csv dataset's classes and its entries labelled by them: ``class_file``'s names where
    it is there, the labels matched to them by :func:`class_key`, or, where the labels are all
    class indices (:func:`numbered_classes`) and none is a name of the file, the classes they
    index (from 0, or from 1 where they are 1 to the class count, each of them and none 0, as a
    list file's, with a warning; one beyond the classes is an error naming both files). Without
    the file, indices give the classes 0 to the largest (a warning where none is labelled 0),
    names the names sorted (:func:`first_spellings`)."""
    used = {label for e in entries for label in e.label_names}
    numbered = numbered_classes(used)
    if class_file.is_file():
        classes = read_class_names(class_file)
        refuse_same_classes(class_file, classes)
        if numbered is not None and not {class_key(label) for label in used} & {class_key(c) for c in classes}:
            indices = {int(label) for label in used}
            base = 1 if counted_from_one(indices, len(classes)) else 0
            if base:
                warnings.warn(f"{manifest}: the labels are 1 to {len(classes)} for the {len(classes)} classes of {class_file}, none 0, so they are read as class indices from 1", stacklevel=3)
            if max(indices) - base >= len(classes):
                raise ManifestError(f"{manifest}: label {max(indices)} is beyond the {len(classes)} classes of {class_file} (the labels are class indices, from {base})")
            entries = [replace(e, label_names=tuple(classes[int(label) - base] for label in e.label_names)) for e in entries]
    elif numbered is not None:
        classes = numbered
        if "0" not in used:
            warnings.warn(f"{manifest}: no video is labelled 0, so class '0' has none; the labels are read as class indices from 0 (a {class_file.name} names the classes, one a line, in their order)", stacklevel=3)
    else:
        classes = first_spellings(used)
    spelling = {class_key(c): c for c in classes}
    return classes, [replace(e, label_names=tuple(dict.fromkeys(spelling.get(class_key(n), n) for n in e.label_names))) for e in entries]


def demo_manifest(root: Path) -> Manifest:
    """The generated demo: its CSV manifest, with the sha256 of the generator's ``spec.json``
    (spec and encoder options) as the manifest's ``source``; none for a folder without one (made
    by hand in the same layout)."""
    manifest = csv_manifest(root, name="demo")
    spec = root / "spec.json"
    return replace(manifest, source=hashlib.sha256(spec.read_bytes()).hexdigest()) if spec.is_file() else manifest


FCVID_CLASS_FILE = "FCVID_Category.txt"
FCVID_SPLIT_FILE = "FCVID_VideoName_TrainTestSplit.txt"


def fcvid_manifest(root: Path, files: AnnotationFiles = AnnotationFiles()) -> Manifest:
    """FCVID's release: ``FCVID_VideoName_TrainTestSplit.txt`` (``category/video.mp4 train|test``),
    ``FCVID_Label.txt`` (one 0/1 row of 239 a video, same order: multi-label; the values
    separated by spaces, tabs or commas) and the class names one a line, in the order of the
    label columns: ``files.classes`` (``--class-names``), else ``FCVID_Category.txt``, else the
    category folders of the split file (:func:`classes_from_folders`). The files lie in the
    root or in ``materials/``. Videos lie under ``videos/`` if that folder exists, else under
    the root; one kept with another extension or in another folder (named by its YouTube id) is
    found by :func:`~pipeline.datasets.finding.locate`."""
    unused = [option for option in files.given() if option != "--class-names"]
    if unused:
        raise ManifestError(f"{', '.join(unused)}: not used by the fcvid dataset (its files lie in the data root or its materials/ folder; --class-names names the class list if it is not {FCVID_CLASS_FILE})")
    materials = root / "materials" if (root / "materials").is_dir() else root
    split_file = materials / FCVID_SPLIT_FILE
    label_file = materials / "FCVID_Label.txt"
    rows = read_lines(split_file)
    label_rows = read_lines(label_file)
    if len(rows) != len(label_rows):
        raise ManifestError(f"{label_file}: {len(label_rows)} label rows for {len(rows)} videos in {split_file}")
    parsed = [row.split() for row in rows]
    for line_no, (row, parts) in enumerate(zip(rows, parsed), start=1):
        if len(parts) != 2:
            raise ManifestError(f"{split_file}:{line_no}: expected 'path split', got {row!r}")
    labels = [_label_row(row, f"{label_file}:{line_no}") for line_no, row in enumerate(label_rows, start=1)]
    class_file = Path(files.classes) if files.classes is not None else materials / FCVID_CLASS_FILE
    if files.classes is not None or class_file.is_file():
        classes = read_class_names(class_file)
    else:
        classes = classes_from_folders([parts[0] for parts in parsed], labels, f"{class_file} not found and no --class-names given")
    prefix = "videos/" if (root / "videos").is_dir() else ""
    found = locate(root, [prefix + parts[0] for parts in parsed])
    entries = []
    for line_no, (parts, label, rel) in enumerate(zip(parsed, labels, found), start=1):
        if label.width != len(classes):
            raise ManifestError(f"{label_file}:{line_no}: {label.width} label columns, the class list has {len(classes)}")
        names = tuple(classes[j] for j in label.on)
        entries.append(RawEntry(video_id(parts[0]), rel or prefix + parts[0], names, normalise_split(parts[1], f"{split_file}:{line_no}")))
    return build_manifest("fcvid", classes, entries)


class LabelRow(NamedTuple):
    """One row of a 0/1 label matrix: how many columns it has, and which of them are 1."""

    width: int
    on: tuple[int, ...]


def _label_row(row: str, where: str) -> LabelRow:
    """A row of 0/1 label columns separated by spaces, tabs or commas (MATLAB's dlmwrite)."""
    values = row.replace(",", " ").split()
    try:
        return LabelRow(len(values), tuple(j for j, v in enumerate(values) if float(v) > 0))
    except ValueError:
        raise ManifestError(f"{where}: label columns must be 0 or 1, got {row!r}") from None


def _category_folder(path: str) -> str:
    """The first folder of a path as a list writes it ('' for a bare file name)."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return parts[0] if len(parts) > 1 else ""


def classes_from_folders(paths: list[str], labels: list[LabelRow], missing: str) -> list[str]:
    """Class names of the label columns from the folders the videos lie in (FCVID keeps each
    video in its category's folder, named as the category): column ``j`` is named by the one
    folder that holds every video labelled ``j`` alone. Where a column has no such video, or
    several folders, or the folder of another column, the error says so after ``missing`` (why
    the names are wanted)."""
    width = labels[0].width if labels else 0
    folders: list[set[str]] = [set() for _ in range(width)]
    for path, label in zip(paths, labels):
        if label.width == width and len(label.on) == 1:
            folders[label.on[0]].add(_category_folder(path))
    names: list[str] = []
    for j, found in enumerate(folders):
        name = next(iter(found), "")
        if not found:
            problem = "no video is labelled with it alone"
        elif len(found) > 1:
            problem = f"the videos labelled with it alone lie in {len(found)} folders ({', '.join(repr(f) for f in sorted(found)[:3])})"
        elif not name:
            problem = "the videos labelled with it alone lie in no folder"
        elif name in names:
            problem = f"folder {name!r} holds the videos of column {names.index(name) + 1} too"
        else:
            names.append(name)
            continue
        raise ManifestError(f"{missing}, and the category folders do not name label column {j + 1}: {problem}. Pass the class names, one a line in the order of the label columns, with --class-names")
    return names


ACTIVITYNET_FILES = ("activity_net.v1-3.min.json", "activity_net.v1-2.min.json", "anet_anno_action.json")
# mmaction2's ActivityNet (BSN's annotations): the subsets are in this csv beside the JSON, or in
# the names of the per-subset files its process_annotations.py writes.
BSN_SUBSETS_FILE = "video_info_new.csv"
BSN_SUBSET_FILES = {"anet_anno_train.json": "training", "anet_anno_val.json": "validation", "anet_anno_test.json": "testing"}


def activitynet_manifest(root: Path, files: AnnotationFiles = AnnotationFiles()) -> Manifest:
    """ActivityNet v1.3 or v1.2 JSON (``database`` of ``{id: {subset, annotations: [{label}]}}``),
    or mmaction2's form of it, BSN's (``{v_<id>: {annotations: [{label}], duration_second, ...}}``
    in ``anet_anno_action.json``, the subsets in ``video_info_new.csv`` beside it or in the
    root, :func:`bsn_database`): ``files.annotations``, else the first of
    :data:`ACTIVITYNET_FILES` in the folder it names or in the root. Classes are the distinct
    annotation labels, sorted, or those of ``files.classes`` (``--class-names``) in its order,
    as a recognizer was trained with them (:func:`~pipeline.datasets.class_names.class_subset`:
    matched to the labels with case and underscores aside; a video of a label not in it is
    rejected). The testing subset (no labels) is left out. Videos are ``videos/v_<id>.<ext>`` (or ``<id>.<ext>``, or a folder of
    frames so named), else anywhere under the root (the official download's ``v1-2/train/``,
    ``v1-3/train_val/``); a missing file is reported by the features stage, not here."""
    unused = [option for option in files.given() if option not in ("--annotations", "--class-names")]
    if unused:
        raise ManifestError(f"{', '.join(unused)}: not used by the activitynet dataset (it reads --annotations, default the JSON in the data root, and --class-names for the class order)")
    given = Path(files.annotations) if files.annotations is not None else root
    path = _first_existing(given, *ACTIVITYNET_FILES) if given.is_dir() else given
    text = read_annotation_text(path)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        kind = annotation_kind(text)
        raise ManifestError(f"{path}: not an ActivityNet v1.2/v1.3 annotation file ({exc})" + (f": {kind}" if kind else "")) from exc
    if _bsn_form(raw):
        database = bsn_database(raw, path, root)
    elif not isinstance(raw, dict) or "database" not in raw or json_kind(raw) == KINETICS_JSON:
        kind = json_kind(raw)
        raise ManifestError(f"{path}: not an ActivityNet v1.2/v1.3 annotation file " + (f"but {kind}" if kind == KINETICS_JSON else "(no 'database'), nor mmaction2's (BSN's) anet_anno_action.json ({\"v_<id>\": {\"annotations\": [...]}})"))
    else:
        database = raw["database"]
    if not isinstance(database, dict) or not all(isinstance(info, dict) for info in database.values()):
        raise ManifestError(f"{path}: not an ActivityNet v1.2/v1.3 annotation file ('database' must map video ids to objects)")
    folder = PurePosixPath("videos" if (root / "videos").is_dir() else ".")
    video_labels = {vid: _segment_labels(info, f"{path}: video {vid}") for vid, info in database.items()}
    labels = sorted({label for names in video_labels.values() for label in names})
    if files.classes is not None:
        classes = class_subset(Path(files.classes), {class_key(label): label for label in labels}, [str(path)])
        spelling = {class_key(name): name for name in classes}
        named = {label: spelling.get(class_key(label), label) for label in labels}
    else:
        classes, named = labels, {label: label for label in labels}
    videos = {vid: info for vid, info in sorted(database.items()) if info.get("subset") != "testing"}
    found = locate(root, [str(folder / f"v_{vid}") for vid in videos])
    entries = []
    for (vid, info), rel in zip(videos.items(), found):
        names = tuple(sorted({named[label] for label in video_labels[vid]}))
        rel = rel or str(folder / f"v_{vid}.mp4")
        entries.append(RawEntry(f"v_{vid}", rel, names, normalise_split(info.get("subset", ""), f"{path}: video {vid}")))
    return build_manifest("activitynet", classes, entries)


def _bsn_form(raw: object) -> bool:
    """Whether a JSON is BSN's ActivityNet annotations: ``v_<id>`` keys to objects with
    ``annotations``."""
    return isinstance(raw, dict) and bool(raw) and all(isinstance(key, str) and key.startswith("v_") and isinstance(info, dict) and "annotations" in info for key, info in raw.items())


def bsn_database(raw: dict[str, dict], path: Path, root: Path) -> dict[str, dict]:
    """BSN's ActivityNet annotations (mmaction2's ``anet_anno_action.json``, kept as its
    ``download.py`` left it: the videos downloaded) as the official ``database``: ids without
    ``v_``, each with its ``subset`` from ``video_info_new.csv`` (``video,...,subset,...``; in the
    JSON's folder, else the root), or, for one of the per-subset files mmaction2's
    ``process_annotations.py`` writes (``anet_anno_val.json``), from the file's name. A video the
    csv does not list is an error naming it."""
    subset = BSN_SUBSET_FILES.get(path.name)
    if subset is not None:
        subsets = dict.fromkeys(raw, subset)
    else:
        table = next((folder / BSN_SUBSETS_FILE for folder in (path.parent, root) if (folder / BSN_SUBSETS_FILE).is_file()), None)
        if table is None:
            raise ManifestError(f"{path}: mmaction2's (BSN's) ActivityNet annotations hold no subsets, and {BSN_SUBSETS_FILE} (fetched beside it by mmaction2's download_annotations.sh) is in neither {path.parent} nor {root}")
        rows = list(csv.DictReader(io.StringIO(read_annotation_text(table))))
        if rows and not {"video", "subset"} <= set(rows[0]):
            raise ManifestError(f"{table}: expected the columns video and subset (video,numFrame,seconds,fps,rfps,subset,featureFrame), got {', '.join(rows[0])}")
        subsets = {row["video"].strip(): row["subset"].strip() for row in rows}
        unlisted = [key for key in raw if key not in subsets]
        if unlisted:
            raise ManifestError(f"{path}: video {unlisted[0]} is not in {table} ({len(unlisted)} of {len(raw)} are not), which gives the subsets")
    return {key[2:]: {**info, "subset": subsets[key]} for key, info in raw.items()}


def _segment_labels(info: dict, where: str) -> list[str]:
    """The labels of one ActivityNet video's annotated segments (``[{"segment", "label"}]``)."""
    annotations = info.get("annotations") or []
    if not isinstance(annotations, list) or not all(isinstance(a, dict) and isinstance(a.get("label"), str) for a in annotations):
        raise ManifestError(f"{where}: 'annotations' must be a list of segments each with a 'label', got {str(annotations)[:80]}")
    return [a["label"] for a in annotations]


MINIKINETICS_CLASS_FILES = ("mini_categories.txt", "minik_classInd.txt")  # TSM's name, AdaFocus' (AR-Net's code has none)
MINIKINETICS_LISTS = {"train": "mini_train_videofolder.txt", "val": "mini_val_videofolder.txt"}  # AR-Net's and TSM's


def minikinetics_manifest(root: Path, files: AnnotationFiles = AnnotationFiles()) -> Manifest:
    """Mini-Kinetics in either form it is shared in:

    * Xie et al.'s YouTube id lists (``train_ytid_list.txt``, ``val_ytid_list.txt``, the paper's
      [27]) labelled by the Kinetics annotations: ``--train-list``/``--val-list`` with
      ``--annotations``, read by :func:`~pipeline.datasets.kinetics.kinetics_manifest`;
    * AR-Net / TSM lists, ``<path> <num_frames> <label index>`` a line (a rawframe list unless
      ``--list-format`` says otherwise, :mod:`pipeline.datasets.lists`): ``--train-list`` and
      ``--val-list``, else ``mini_train_videofolder.txt`` and ``mini_val_videofolder.txt`` in the
      root. The path is a folder of frames or a video file relative to the root, with or
      without its extension (AR-Net's lists name frame folders; the videos may be kept as
      files). Class names one a line: ``--class-names``, else the first of
      :data:`MINIKINETICS_CLASS_FILES` in the root, else none (AR-Net's code has none for
      Mini-Kinetics): the classes are named by their index (:func:`index_classes`), which a
      warning says. A label beyond the class list is an error naming the list file and line,
      as in the ``list`` dataset.

    Either way the dataset keeps its feature profile (the light model at 112², A.1)."""
    if files.annotations is not None:
        if files.list_format != "auto":
            raise ManifestError("--list-format: not used with --annotations (the YouTube id lists and Kinetics files are told apart by their content)")
        return replace(kinetics_manifest(root, files), name="minikinetics")
    class_file = Path(files.classes) if files.classes is not None else next((root / name for name in MINIKINETICS_CLASS_FILES if (root / name).exists()), None)
    lists = files.lists() or [(root / name, split) for split, name in MINIKINETICS_LISTS.items()]
    list_format = "rawframes" if files.list_format == "auto" else files.list_format
    resolver = PathResolver(root)
    read, classes = named_labels([(path, split, read_list(path, list_format, resolver)) for path, split in lists], read_class_names(class_file) if class_file else None, class_file)
    if classes is None:
        warnings.warn(f"{root}: no class-name file ({' or '.join(MINIKINETICS_CLASS_FILES)}, or --class-names): the classes are named by their index, as AR-Net's code reads Mini-Kinetics; --class-names names them", stacklevel=2)
        classes = index_classes(read)
    return build_manifest("minikinetics", classes, list_entries(read, classes, resolver))


def ucf101_manifest(root: Path, files: AnnotationFiles = AnnotationFiles()) -> Manifest:
    """UCF101's split files: ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt``
    (``Class/v_x.avi 1``, 1-based) and ``testlist0N.txt`` (``Class/v_x.avi``, class from the
    folder), each where :func:`ucf101_split_file` finds it. Split 1 unless ``files`` names lists
    (``--train-list .../trainlist02.txt``, or mmaction2's ``ucf101_train_split_1_videos.txt``,
    0-based, and ``_rawframes.txt``, ``Class/v_x num_frames index``: :func:`_ucf101_row`,
    :func:`_ucf101_first_index`) or the class file. Videos lie under the first of
    :data:`UCF101_VIDEO_FOLDERS` there is, else under the root, as the lists name them or in
    another format or as folders of frames; one that is not there is looked for by its name
    (``v_x``, unique) anywhere under the root (:func:`~pipeline.datasets.finding.locate`: frames
    in mmaction2's ``rawframes/Class/v_x/`` or a flat ``jpegs_256/v_x/``).

    Or 3D-ResNets-PyTorch's ``ucf101_0N.json`` (``--annotations``: every split of one split in
    one file, its ``labels`` the class order), read as its Kinetics JSON is
    (:func:`~pipeline.datasets.kinetics.kinetics_manifest`): videos named by their key
    (``v_ApplyEyeMakeup_g08_c01``, a file or a folder of frames) anywhere under the root."""
    if files.annotations is not None:
        if files.lists() or files.list_format != "auto":
            raise ManifestError("--annotations: 3D-ResNets' ucf101_0N.json holds every split of its split, so the ucf101 dataset reads it alone (with --class-names at most), not with --train-list/--val-list/--test-list or --list-format")
        try:
            return replace(kinetics_manifest(root, files), name="ucf101")
        except NotKineticsError as exc:
            raise ManifestError(f"{files.annotations}: not 3D-ResNets' UCF101 JSON ({{\"labels\": [...], \"database\": {{\"v_x\": {{\"subset\", \"annotations\": {{\"label\"}}}}}}}}); the official split lists are --train-list/--val-list, default split 1 in the data root") from exc
    if files.list_format != "auto":
        raise ManifestError("--list-format: not used by the ucf101 dataset (it reads --train-list, --val-list, --test-list and --class-names, default split 1 in the data root; or --annotations, 3D-ResNets' JSON)")
    classes = read_class_names(Path(files.classes) if files.classes is not None else ucf101_split_file(root, "classInd.txt"))
    prefix = next((f"{name}/" for name in UCF101_VIDEO_FOLDERS if (root / name).is_dir()), "")
    listed: list[tuple[str, tuple[str, ...], str]] = []  # (path as listed, label names, split)
    for list_path, split_name in files.lists() or [(ucf101_split_file(root, "trainlist01.txt"), "train"), (ucf101_split_file(root, "testlist01.txt"), "val")]:
        rows = [_ucf101_row(list_path, line_no, line) for line_no, line in enumerate(read_lines(list_path), start=1)]
        first = _ucf101_first_index(list_path, rows, classes)
        for line_no, rel, index in rows:
            if index is None:
                listed.append((rel, (PurePosixPath(rel).parts[0],), split_name))
                continue
            if not first <= index < first + len(classes):
                raise ManifestError(f"{list_path}:{line_no}: class index {index} is not one of the {len(classes)} classes of the class list ({first}-based, {'as in classInd.txt' if first else 'as mmaction2 numbers them'})")
            listed.append((rel, (classes[index - first],), split_name))
    found = locate(root, [prefix + rel for rel, _, _ in listed])
    entries = [RawEntry(video_id(rel), where or prefix + rel, names, split_name) for (rel, names, split_name), where in zip(listed, found)]
    return build_manifest("ucf101", classes, entries)


def _ucf101_row(list_path: Path, line_no: int, line: str) -> tuple[int, str, int | None]:
    """``(line number, path, class index or None)`` of a UCF101 split list's line: the
    official ``Class/v_x.avi [index]``, or mmaction2's ``Class/v_x.avi index`` and
    ``Class/v_x num_frames index`` (its ``ucf101_{train,val}_split_N_{videos,rawframes}.txt``)."""
    parts = line.split()
    if len(parts) > 3 or not all(part.isdigit() for part in parts[1:]):
        raise ManifestError(f"{list_path}:{line_no}: expected 'Class/v_x.avi [class index]' (or mmaction2's 'Class/v_x.avi index', 'Class/v_x num_frames index'), got {line!r}")
    return line_no, parts[0], int(parts[-1]) if len(parts) > 1 else None


# A UCF101 video's name holds its class: v_<Class>_g<group>_c<clip>.
UCF101_NAME = re.compile(r"v_(.+)_g\d+_c\d+")


def _ucf101_first_index(list_path: Path, rows: list[tuple[int, str, int | None]], classes: list[str]) -> int:
    """The index of the first class in a UCF101 split list: 1 in the official lists
    (``classInd.txt``'s numbers), 0 in mmaction2's, its ``build_file_list.py`` numbering from 0.
    Told by the classes the videos' names hold (``v_ApplyEyeMakeup_g08_c01``, case aside:
    the official files spell ``HandStandPushups``), the base under which more labels name
    their video's class; where the names tell neither, 0 where a label is 0, else 1. A list read
    from 0 is said by a warning."""
    keys = [class_key(name) for name in classes]
    named = [(index, UCF101_NAME.fullmatch(PurePosixPath(rel).stem)) for _, rel, index in rows if index is not None]
    agree = {first: sum(1 for index, name in named if name and 0 <= index - first < len(keys) and keys[index - first] == class_key(name.group(1))) for first in (0, 1)}
    first = 1 if agree[1] > agree[0] else 0 if agree[0] > agree[1] or any(index == 0 for index, _ in named) else 1
    if first == 0:
        warnings.warn(f"{list_path}: class indices read from 0, as mmaction2 numbers them (ucf101_*_split_*_videos.txt, _rawframes.txt), not from 1 as classInd.txt and the official lists do", stacklevel=3)
    return first


# Where UCF101's split files lie: the official zip's folder, mmaction2's (its
# download_annotations.sh unzips them flat into data/ucf101/annotations/), or the data root.
UCF101_SPLIT_FOLDERS = ("ucfTrainTestlist", "annotations", ".")
# Where its videos lie, as the lists name them: the official rar's folder, or mmaction2's.
UCF101_VIDEO_FOLDERS = ("UCF-101", "videos")


def ucf101_split_file(root: Path, name: str) -> Path:
    """``name`` (``classInd.txt``, ``trainlist01.txt``, ...) in the first of
    :data:`UCF101_SPLIT_FOLDERS` that holds it; an error naming the folders where none does."""
    for folder in UCF101_SPLIT_FOLDERS:
        if (root / folder / name).is_file():
            return root / folder / name
    raise ManifestError(f"{root}: no {name} in ucfTrainTestlist/, annotations/ or the data root (UCF101's split files, UCF101TrainTestSplits-RecognitionTask.zip); give them with --class-names, --train-list and --val-list")


def list_manifest(root: Path, files: AnnotationFiles = AnnotationFiles()) -> Manifest:
    """Datasets kept as list files (mmaction2 video or rawframe lists, AR-Net lists; see
    :mod:`pipeline.datasets.lists`), one per split, with an optional class-name file (without
    one, classes are named by their index)."""
    lists = files.lists()
    if not lists:
        raise ManifestError("the list dataset needs at least one of --train-list, --val-list, --test-list")
    if files.annotations is not None:
        raise ManifestError("--annotations: not used by the list dataset (its list files are --train-list, --val-list and --test-list)")
    resolver = PathResolver(root)
    read = [(path, split, read_list(path, files.list_format, resolver)) for path, split in lists]
    read, classes = named_labels(read, read_class_names(Path(files.classes)) if files.classes is not None else None, files.classes)
    classes = classes if classes is not None else index_classes(read)
    return build_manifest("list", classes, list_entries(read, classes, resolver))


def index_classes(read: list[tuple[Path, str, list[ListLine]]]) -> list[str]:
    """The classes of lists labelled by index read without class names: named by their index,
    0 to the largest label; where no video is labelled 0, a warning says that class ``0`` has
    none and how labels numbered from 1 are read."""
    labels = {label for _, _, lines in read for line in lines for label in line.labels}
    if labels and 0 not in labels:
        warnings.warn(f"{', '.join(str(path) for path, _, _ in read)}: no video is labelled 0, so class '0' has none; labels numbered from 1 (mmaction2's ActivityNet lists) are read so with --class-names", stacklevel=3)
    return numbered_classes(str(label) for label in labels) or []


# Where HMDB51's split files lie (test_train_splits.rar's folder; mmaction2's annotations/,
# where its download script moves them; their names: kinds.HMDB51_SPLIT_FILE).
HMDB51_SPLIT_FOLDERS = ("testTrainMulti_7030_splits", "annotations", ".")
# What a split file's mark says of a video: 1 training, 2 testing (read as val, as UCF101's test
# list is), 0 in neither.
HMDB51_MARKS = {"1": "train", "2": "val", "0": None}


def hmdb51_manifest(root: Path, files: AnnotationFiles = AnnotationFiles()) -> Manifest:
    """HMDB51's split files (``brush_hair_test_split1.txt``: ``<video>.avi 1`` a line, 1 train,
    2 test read as val, 0 in neither; one file a class and split) in the first of
    :data:`HMDB51_SPLIT_FOLDERS` that holds them, split 1; ``--annotations`` names another split
    by one of its files (``.../brush_hair_test_split2.txt``, the folder's 51 files of that split
    read) or their folder. The classes are the files' class names in sorted order (mmaction2's
    label indices); videos (``<class>/<video>.avi``, names unique) are found by name anywhere
    under the root (:func:`~pipeline.datasets.finding.locate`: ``hmdb51_org/``, ``videos/``,
    frames)."""
    unused = [option for option in files.given() if option != "--annotations"]
    if unused:
        raise ManifestError(f"{', '.join(unused)}: not used by the hmdb51 dataset (it reads the split files test_train_splits.rar holds; --annotations names their folder, or one file of the split wanted)")
    given = Path(files.annotations) if files.annotations is not None else None
    split = named["split"] if given is not None and (named := HMDB51_SPLIT_FILE.fullmatch(given.name)) else "1"
    folders = [given.parent if given is not None and given.is_file() else given] if given is not None else [root / folder for folder in HMDB51_SPLIT_FOLDERS]
    split_files = next((found for folder in folders if (found := sorted(folder.glob(f"*_test_split{split}.txt")))), [])
    if not split_files:
        raise ManifestError(f"{given or root}: no HMDB51 split files (<class>_test_split{split}.txt, from test_train_splits.rar) in {' or '.join(str(f) for f in folders)}; --annotations names their folder")
    by_class = sorted((HMDB51_SPLIT_FILE.fullmatch(path.name)["label"], path) for path in split_files)  # kick before kick_ball, as mmaction2 numbers them
    classes = [label for label, _ in by_class]
    listed: list[tuple[str, str, str]] = []  # (video name, class, split)
    for label, path in by_class:
        for line_no, line in enumerate(read_lines(path), start=1):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in HMDB51_MARKS:
                raise ManifestError(f"{path}:{line_no}: expected '<video>.avi 0|1|2' (HMDB51's split file), got {line!r}")
            if HMDB51_MARKS[fields[1]] is not None:
                listed.append((fields[0], label, HMDB51_MARKS[fields[1]]))
    found = locate(root, [f"{label}/{name}" for name, label, _ in listed])
    entries = [RawEntry(video_id(where or f"{label}/{name}"), where or f"{label}/{name}", (label,), split_name) for (name, label, split_name), where in zip(listed, found)]
    return build_manifest("hmdb51", classes, entries)


def datasets_in_root(root: Path) -> list[str]:
    """The datasets whose annotation files lie in ``root`` where their loaders look without
    options (HMDB51's split files, UCF101's ``classInd.txt``, ActivityNet's JSON, FCVID's split
    file, Mini-Kinetics' lists, Kinetics' ``annotations/train.csv`` as cvdfoundation's download
    holds it, the csv dataset's ``manifest.csv``), in that order: a root read as another
    dataset's (``--dataset`` left at the demo, or mistyped) is said so."""
    marks = {  # HMDB51 first: mmaction2's HMDB51 annotations/ hold a UCF101-style classInd.txt beside its split files
        "hmdb51": [Path(folder, "*_test_split1.txt") for folder in HMDB51_SPLIT_FOLDERS],
        "ucf101": [Path(folder, "classInd.txt") for folder in UCF101_SPLIT_FOLDERS],
        "activitynet": [Path(name) for name in ACTIVITYNET_FILES],
        "fcvid": [Path(FCVID_SPLIT_FILE), Path("materials", FCVID_SPLIT_FILE)],
        "minikinetics": [Path(MINIKINETICS_LISTS["train"])],
        "kinetics": [Path(ANNOTATION_FOLDER, "train.csv")],
        "csv": [Path("manifest.csv")],
    }
    return [name for name, patterns in marks.items() if any(found.is_file() for pattern in patterns for found in root.glob(str(pattern)))]
