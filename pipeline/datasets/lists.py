"""The list files the action-recognition code bases keep their datasets in (their class-name
files are read by :mod:`pipeline.datasets.class_names`).

* mmaction2 video lists: ``path label [label ...]``;
* mmaction2 rawframe lists: ``path num_frames label [label ...]``;
* AR-Net style lists: ``path,num_frames,label[,label ...]`` (its ActivityNet and FCVID lists);
* frame-range lists: ``path start_frame end_frame label [label ...]`` (the VideoFrameDataset
  loader's format, IBM's AdaMML code), for whole videos (start 0 or 1);
* any of these but AR-Net's with ``;`` between the fields (IBM's action-recognition-pytorch
  writes its Kinetics lists so, ``images/train/air drumming/x_000010_000020;1;300;5``, as the
  class folders hold spaces);
* csv lists of paths and labels, ``path,label[,label ...]``, by class index or name (a table
  saved by pandas or a spreadsheet; told from AR-Net's by a line of two fields or a second field
  that is no number, or by ``--list-format csv``); tables whose fields are separated by tabs
  or ``;`` (a spreadsheet's "Text (Tab delimited)", its "CSV" where the decimal mark is a
  comma) read as any list of those marks, their labels class names where no label is a number;
* mmaction2's JSON form of its lists (``[{"filename": "a.mp4", "label": 3}, ...]``, or
  ``frame_dir`` and ``total_frames`` for frames);

A first line naming the columns (``path,label``) is passed over (:func:`is_header`).

Labels are 0-based class indices; several on a line make a multi-label video. A path may come
with or without its extension and with or without ActivityNet's ``v_`` prefix: it is resolved
against the data root (a video file or a folder of frames: :mod:`pipeline.datasets.finding`).
A path may hold spaces (Kinetics'
class folders as downloaded, ``train/air drumming/x.mp4 3``: :func:`line_fields`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections.abc import Iterable, Set as AbstractSet
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from pipeline.datasets.class_names import class_key, first_spellings, refuse_same_classes
from pipeline.datasets.finding import YOUTUBE_ID, PathResolver, find_beside, find_listed
from pipeline.datasets.kinetics import bare_id_files
from pipeline.datasets.kinds import VIDEO_LIST, annotation_kind, json_kind, listed_video, split_file_kind
from pipeline.datasets.manifest import ManifestError, RawEntry, read_annotation_text, video_id
from pipeline.video import VIDEO_EXTENSIONS

LIST_FORMATS = ("auto", "video", "rawframes", "arnet", "startend", "csv")
_NUMBER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class ListLine:
    """One line of a list file: the path as written and the 0-based labels, or (a csv list's
    line that labels by name) the class names, turned into labels by :func:`named_labels`."""

    line_no: int
    path: str
    labels: tuple[int, ...]
    names: tuple[str, ...] = ()


def _integer(text: str, what: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ManifestError(f"{where}: {what} {text!r} is not an integer") from None
    if value < 0:
        unlabelled = " (mmaction2's lists mark an unlabelled video so, as its Kinetics test list: a split without labels has no use here, leave its list out)" if (what, value) == ("label", -1) else ""
        raise ManifestError(f"{where}: {what} {value} is negative{unlabelled}")
    return value


# Each format: the fields before the labels, and what a line looks like.
_LAYOUTS = {
    "video": (1, "'path label [label ...]'"),
    "rawframes": (2, "'path num_frames label [label ...]'"),
    "arnet": (2, "'path,num_frames,label[,label ...]'"),
    "startend": (3, "'path start_frame end_frame label [label ...]'"),
    "csv": (1, "'path,label[,label ...]'"),
}
# The words of a list's header line (a table saved with its column names: pandas' to_csv, a
# spreadsheet): a column's name is words of these, joined by "_", "-", "." or a space or written
# in camel case (``video_path``, ``clipName``, ``class index``), the path's column first.
PATH_WORDS = frozenset({"path", "paths", "file", "files", "filename", "filepath", "fname", "name", "video", "videos", "vid", "clip", "clips", "frame", "frames", "dir", "folder", "id", "youtube", "ytid", "url", "relative", "rel", "full", "abs", "absolute", "src", "source", "input"})
OTHER_WORDS = frozenset({"label", "labels", "class", "classes", "cls", "category", "categories", "action", "actions", "activity", "activities", "target", "targets", "gt", "index", "idx", "id", "name", "names", "num", "number", "total", "count", "frame", "frames", "start", "end", "split", "subset"})
_NAME_PARTS = re.compile(r"[_\-.\s]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def line_fields(line: str, resolver: PathResolver, numbers: int = 1) -> list[str]:
    """The whitespace-separated fields of a list line, its path first. A path with spaces
    (``train/air drumming/x.mp4 3``) runs to the line's last field that is not a number. It is
    taken whole where the ``numbers`` a line of its format has after the path, or more, follow
    it (split at its spaces, no format could read the line: every field after a path is a
    number), so that a video kept under a per-split folder, or missing, is found or reported as
    any other; where the data root holds it; and where its last field names a path (a folder
    or a video file: ``air drumming/x.mp4`` lacks its label, which the caller says). Otherwise
    the line splits at every space, and a field that should be a number is reported as such
    (``a 12x 0``: frame count '12x')."""
    fields = line.split()
    last_text = len(fields) - 1  # the last field that is not a number, 0 where only the first is not
    while last_text > 0 and _NUMBER.fullmatch(fields[last_text]):
        last_text -= 1
    if last_text > 0:
        path = " ".join(fields[: last_text + 1])
        if len(fields) - 1 - last_text >= numbers or _names_a_path(fields[last_text]) or resolver.resolve(path) is not None:
            return [path, *fields[last_text + 1 :]]
    return fields


def _names_a_path(field: str) -> bool:
    """Whether a list line's field is a path's end: it holds a folder or a video extension."""
    return "/" in field or "\\" in field or PurePosixPath(field).suffix.lower() in VIDEO_EXTENSIONS


def split_fields(line: str, resolver: PathResolver, numbers: int = 1) -> list[str]:
    """The fields of a list line that is not AR-Net's: separated by ``;`` where the line has
    one; by tabs where it has one (a spreadsheet's "Text (Tab delimited)" or pandas'
    ``sep="\t"``: a path or class name may hold spaces), a cell of numbers alone split at its
    spaces too (``path<TAB>300 5``); by spaces where the line holds a double quote (a field
    with spaces quoted, as Python's ``csv.writer(delimiter=" ")`` and pandas' ``sep=" "``
    write ``"train/air drumming/x.mp4" 3``); else by whitespace (:func:`line_fields`). A field
    in double quotes may hold the separator (:func:`csv_fields`)."""
    if ";" in line:
        return csv_fields(line, ";")
    if "\t" in line:
        path, *cells = csv_fields(line, "\t")
        fields = [path]
        for cell in cells:
            parts = cell.split()
            fields.extend(parts if len(parts) < 2 or all(_NUMBER.fullmatch(part) for part in parts) else [cell])
        return fields
    if '"' in line:
        return [cell for cell in csv_fields(line, " ") if cell]
    return line_fields(line, resolver, numbers)


def delimited(line: str) -> bool:
    """Whether a list line's fields may hold spaces, so that a field may be a class name with
    them: separated by a mark that no space is (``;`` or a tab), or quoted (:func:`split_fields`)."""
    return ";" in line or "\t" in line or '"' in line


# The marks a table's fields are separated by, in the order they are looked for.
TABLE_MARKS = ("\t", ",", ";")


def table_delimiter(lines: Iterable[str]) -> str:
    """The field separator of a table's lines (blank ones aside): the first of a tab, a comma
    and a semicolon that every line holds (Excel's "Text (Tab delimited)" and "Unicode Text";
    a csv; Excel's "CSV" where the decimal mark is a comma, as in German or French), else a
    comma. Every line, not the first alone: a name with a comma in a tab table, or a header
    without the mark, does not decide it."""
    lines = [line for line in lines if line.strip()]
    return next((mark for mark in TABLE_MARKS if all(mark in line for line in lines)), ",") if lines else ","


def csv_fields(line: str, delimiter: str = ",") -> list[str]:
    """The fields of a line split at ``delimiter``, stripped; where it holds a double quote, as
    the csv module reads them (a quoted field may hold the delimiter, its quotes no part of it;
    spaces after a delimiter passed over, so that ``a.mp4, "x, y"`` is two fields); a line
    without quotes split at its delimiters, the same fields at about a third of the cost
    (every line of an AR-Net list is looked at so, to tell it from a csv list)."""
    fields = line.split(delimiter) if '"' not in line else next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))
    return [field.strip() for field in fields]


def parse_list_line(line: str, line_no: int, list_format: str, source: Path, resolver: PathResolver, delimiter: str = ",") -> ListLine:
    """One line of a list file in ``list_format`` (one of :data:`LIST_FORMATS` but auto; a csv
    list's fields separated by ``delimiter``). Its labels are class names where no label field
    is a number and the fields may hold spaces (:func:`delimited`: a tab or ``;`` table made by
    hand, quoted fields), or where any is not a number in a csv list."""
    where = f"{source}:{line_no}"
    skip, expected = _LAYOUTS[list_format]  # the path and skip - 1 numbers before the labels: skip numbers or more after the path
    fields = [f.strip() for f in line.split(",")] if list_format == "arnet" else csv_fields(line, delimiter) if list_format == "csv" else split_fields(line, resolver, numbers=skip)
    if len(fields) <= skip or not fields[0]:
        hint = ""
        if len(fields) == 1 and listed_video(line):
            hint = f"; its fields are separated otherwise than the '{list_format}' format's: leave --list-format auto, or name the format the list is in"
        elif len(fields) == 1 and not _names_a_path(fields[0]):
            hint = "; a list of bare YouTube ids (Mini-Kinetics-200's train_ytid_list.txt) is read by --dataset kinetics or minikinetics with --annotations" if YOUTUBE_ID.fullmatch(fields[0]) else "; a file of class names, one a line, is --class-names"
        raise ManifestError(f"{where}: expected {expected}, got {line!r}{hint}")
    if list_format in ("rawframes", "arnet"):
        _integer(fields[1], "frame count", where)
    if list_format == "startend":
        start, end = _integer(fields[1], "start frame", where), _integer(fields[2], "end frame", where)
        if start > 1 or end < start:
            raise ManifestError(f"{where}: frames {start}-{end} are a part of the video; only whole videos (start frame 0 or 1) are read, so list each video once")
    spaced = list_format != "arnet" and delimited(line)  # fields that may be names with spaces
    if list_format == "csv" or spaced:
        numbers = [bool(_NUMBER.fullmatch(f)) for f in fields[skip:]]
        if not all(numbers) if list_format == "csv" else not any(numbers):
            return ListLine(line_no, fields[0], (), tuple(dict.fromkeys(f.strip('"') for f in fields[skip:])))
        if not all(numbers):
            name = fields[skip + numbers.index(False)]
            raise ManifestError(f"{where}: label {name!r} is a class name beside numbers; label a line by index or by name alone, or give --list-format rawframes for 'path num_frames name' (read as {expected})")
    labels = tuple(sorted({_integer(f, "label", where) for f in fields[skip:]}))
    return ListLine(line_no, fields[0], labels)


def detect_format(lines: list[tuple[int, str]], resolver: PathResolver, source: Path | None = None) -> str:
    """The format of a list file: with commas and no ``;``, AR-Net's (``path,num_frames,label``)
    where every line has three fields or more and a number second, else a csv list
    (``path,label``, the label a class index or name); else a video list when
    each line has two fields or its first path that exists is a video file, a rawframe list when
    that path is a folder; with nothing on disk, a path with a video extension means a video
    list and three or more fields on every line a rawframe list. A rawframe list whose second
    field is 0 or 1 on every line, before a larger third, is a frame-range list (a frame count
    of 0 or 1 is no video). A list of video files whose lines all hold a path and two numbers
    or more, the second field the largest of the line's on nine lines in ten or more, is
    ``path num_frames label`` (:func:`_counts_frames`; OCSampler's and FrameExit's lists, read
    beside the videos rather than their frames), which a warning naming ``source`` says."""
    texts = [text for _, text in lines]
    if any("," in text for text in texts) and not any(";" in text for text in texts) and table_delimiter(texts) != "\t":
        rows = [csv_fields(text) for text in texts]
        arnet = all(len(row) >= 3 and _NUMBER.fullmatch(row[1]) for row in rows)  # a frame count second
        return "arnet" if arnet else "csv"
    fields = [split_fields(text, resolver) for text in texts]
    if all(len(f) == 2 for f in fields):
        return "video"
    for parts in fields:
        found = resolver.resolve(parts[0])
        if found is not None and (resolver.root / found).is_dir():
            return _frames_format(fields)
        if found is not None:
            if not _counts_frames(fields):
                return "video"
            warnings.warn(f"{source}: read as 'path num_frames label', its videos' frame counts second (every line a path and two numbers or more, the second the largest on most lines, as in OCSampler's and FrameExit's lists); if the numbers are all labels of videos with several, give --list-format video", stacklevel=3)
            return "rawframes"
    if PurePosixPath(fields[0][0]).suffix.lower() in VIDEO_EXTENSIONS:
        return "video"
    return _frames_format(fields) if all(len(f) >= 3 for f in fields) else "video"


def _counts_frames(fields: list[list[str]]) -> bool:
    """Whether a list's lines (split into fields) hold a frame count second, before the labels:
    a path and two numbers or more on every line, and the second field larger than each later
    one on nine lines in ten or more (frame counts run to hundreds or thousands, labels below
    the class count: a multi-label video list, ``v.mp4 3 17``, has its labels in no such order)."""
    if not all(len(f) >= 3 and all(_NUMBER.fullmatch(n) for n in f[1:]) for f in fields):
        return False
    largest_second = sum(int(f[1]) > max(int(n) for n in f[2:]) for f in fields)
    return largest_second >= 0.9 * len(fields)


def _frames_format(fields: list[list[str]]) -> str:
    """``startend`` or ``rawframes`` for the lines of a list of frame folders."""
    ranges = all(len(f) >= 4 and f[1] in ("0", "1") and f[2].isdigit() and int(f[2]) > 1 for f in fields)
    return "startend" if ranges else "rawframes"


def is_header(line: str) -> bool:
    """Whether a list's first line names its columns (``path,label``, ``clipName;cls``,
    ``frame_dir num_frames label``): a path's column name (words of :data:`PATH_WORDS`), then
    names of label or frame columns (words of :data:`OTHER_WORDS`) alone, so that a first video
    named ``video`` and labelled ``abseiling`` or ``0`` stays an entry."""
    fields = [field.strip().strip('"') for field in re.split(r"[,;\t]", line)]
    fields = [field for field in fields if field] if len(fields) > 1 else line.split()
    return len(fields) >= 2 and _column_name(fields[0], PATH_WORDS) and all(_column_name(field, OTHER_WORDS) for field in fields[1:])


def _column_name(field: str, words: AbstractSet[str]) -> bool:
    """Whether ``field`` is made of ``words`` alone (case aside), as a column's name is."""
    parts = [part for part in _NAME_PARTS.split(_CAMEL.sub(" ", field).lower()) if part]
    return bool(parts) and all(part in words for part in parts)


def entry_lines(text: str) -> list[tuple[int, str]]:
    """The lines of a list's text that are neither blank nor ``#`` comments, stripped, each
    with its number (from 1) for messages."""
    numbered = ((n, line.strip()) for n, line in enumerate(text.splitlines(), start=1))
    return [(n, line) for n, line in numbered if line and not line.startswith("#")]


def read_list(path: Path, list_format: str, resolver: PathResolver) -> list[ListLine]:
    """Every line of a list file (``#`` comments and blank lines skipped), every entry of
    mmaction2's JSON form of one (:func:`read_json_list`), or every row of Charades' annotation
    csv (:func:`read_charades`)."""
    if list_format not in LIST_FORMATS:
        raise ManifestError(f"unknown list format {list_format!r}; known: {', '.join(LIST_FORMATS)}")
    path = Path(path)
    text = read_annotation_text(path, "list file")
    if text.lstrip().startswith("["):
        return read_json_list(path, text)
    if {field.strip().lower() for field in text.split("\n", 1)[0].split(",")}.issuperset(CHARADES_COLUMNS):
        return read_charades(path, text)
    _refuse_annotations(path, text)
    numbered = entry_lines(text)
    if numbered and is_header(numbered[0][1]):
        numbered = numbered[1:]
    if not numbered:
        raise ManifestError(f"{path}: the list file has no entries")
    fmt = detect_format(numbered, resolver, path) if list_format == "auto" else list_format
    if list_format == "auto" and fmt == "arnet" and path.suffix.lower() == ".csv":  # AR-Net's lists are .txt files
        warnings.warn(f"{path}: read as AR-Net's 'path,num_frames,label' (three fields or more a line, a number second); if its second field is a label, as in a csv of videos with several labels, give --list-format csv", stacklevel=2)
    delimiter = table_delimiter(text for _, text in numbered) if fmt == "csv" else ","
    return [parse_list_line(text, n, fmt, path, resolver, delimiter) for n, text in numbered]


def _refuse_annotations(path: Path, text: str) -> None:
    """Refuse a dataset's annotation file given as a list, which its lines would otherwise make
    videos of (a JSON object's first line, a csv's header and rows as paths and class names):
    ActivityNet's or Kinetics' (:func:`~pipeline.datasets.kinds.annotation_kind`), HMDB51's split
    files, whose train/test marks would be read as labels (:func:`~pipeline.datasets.kinds.split_file_kind`),
    or any other JSON object."""
    if text.lstrip().startswith("{"):  # parsed once, here
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return  # a list whose first path begins with a brace
        kind = json_kind(data)
        raise ManifestError(f"{path}: {kind}; not a list of videos" if kind else f"{path}: a JSON object, not a list of videos (mmaction2's JSON lists are arrays, [...])")
    kind = split_file_kind(path.name, text) or annotation_kind(text)
    if kind is not None and kind != VIDEO_LIST:
        raise ManifestError(f"{path}: {kind}; not a list of videos")


# The columns of Charades' annotation csv (Charades_v1_train.csv, Charades_v1_test.csv), beside
# subject, scene, script, ..., length: a video a row, ``actions`` its labelled segments.
CHARADES_COLUMNS = ("id", "actions")
# An action of a Charades video: its class code (``c092``: the 93rd line of
# Charades_v1_classes.txt, ``c092 Cooking something``), then its start and end in seconds.
_CHARADES_ACTION = re.compile(r"c(\d{3})(\s+[\d.]+\s+[\d.]+)?")


def read_charades(path: Path, text: str) -> list[ListLine]:
    """Charades' annotation csv as a multi-label list: a video by its ``id`` (``46GP8``, found as
    ``46GP8.mp4``), labelled by the classes of its ``actions`` (``c092 11.90 21.20;c147 0.00
    12.60``: classes 92 and 147 of ``Charades_v1_classes.txt``, given as ``--class-names``), as
    Charades' video-level mAP counts them; a video without actions has no label (rejected by
    the manifest). Messages number the rows as the file's lines."""
    lines = []
    for line_no, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        actions = [action.strip() for action in (row.get("actions") or "").split(";") if action.strip()]
        codes = [_CHARADES_ACTION.fullmatch(action) for action in actions]
        if not row.get("id") or not all(codes):
            raise ManifestError(f"{path}:{line_no}: expected Charades' id and actions ('c092 11.90 21.20;...'), got id {row.get('id')!r}, actions {row.get('actions')!r}")
        lines.append(ListLine(line_no, row["id"], tuple(sorted({int(code[1]) for code in codes}))))
    if not lines:
        raise ManifestError(f"{path}: the list file has no entries")
    return lines


def read_json_list(path: Path, text: str) -> list[ListLine]:
    """mmaction2's JSON form of a list (its ``anno_txt2json.py``): ``[{"filename": "a.mp4",
    "label": 3}, {"frame_dir": "b", "total_frames": 300, "label": [1, 5]}, ...]``; or
    Something-Something v2's (``something-something-v2-train.json``: ``[{"id": "78687",
    "template": "Holding [something] next to [something]", ...}]``), the video named by its id
    (``78687.webm``) and labelled by its template without the brackets, the class's name in
    ``something-something-v2-labels.json`` (``--class-names``). An entry's number (from 1)
    stands for its line in messages."""
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    lines = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path}:{number}"
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and isinstance(entry.get("template"), str):  # Something-Something v2's
            lines.append(ListLine(number, entry["id"], (), (entry["template"].replace("[", "").replace("]", ""),)))
            continue
        video = entry.get("filename", entry.get("frame_dir")) if isinstance(entry, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and "label" not in entry and video is None:
            raise ManifestError(f"{where}: a video without its label (Something-Something v2's test list, {{\"id\": ...}}: its labels are not public); give a labelled list")
        if not isinstance(video, str) or "label" not in entry:
            raise ManifestError(f"{where}: expected {{\"filename\" or \"frame_dir\": path, \"label\": index or [indices]}}, or Something-Something v2's {{\"id\", \"template\"}}, got {entry!r}")
        labels = entry["label"] if isinstance(entry["label"], list) else [entry["label"]]
        lines.append(ListLine(number, video, tuple(sorted({_integer(str(label), "label", where) for label in labels}))))
    if not lines:
        raise ManifestError(f"{path}: the list file has no entries")
    return lines


def one_based(read: list[tuple[Path, str, list[ListLine]]], num_classes: int) -> bool:
    """Whether the labels of the lists read together are 1 to ``num_classes``, each of them,
    and none 0: 1-based, as mmaction2's ActivityNet lists are (its
    ``generate_rawframes_filelist.py`` numbers a label by its line in ``action_name.csv``,
    counting the header ``action``). Read 0-based, such labels name a class beyond the list, an
    error; so only lists that would fail are read otherwise, and only where every class is
    there to tell."""
    return counted_from_one({label for _, _, lines in read for item in lines for label in item.labels}, num_classes)


def counted_from_one(labels: set[int], num_classes: int) -> bool:
    """Whether class indices are 1 to ``num_classes``, each of them, and none 0 (:func:`one_based`)."""
    return labels == set(range(1, num_classes + 1))


def named_labels(read: list[tuple[Path, str, list[ListLine]]], classes: list[str] | None, class_file: Path | None = None) -> tuple[list[tuple[Path, str, list[ListLine]]], list[str] | None]:
    """The read list files with the class names of csv lines that label by name turned into
    0-based labels, and the classes: ``classes`` (a class-name file's, names matched with case,
    double quotes and spaces against underscores aside, :func:`class_key`), else the names
    sorted. Lists that label by index are returned as they are (``classes`` too); a dataset
    labelled both ways, or a name the class file lacks, is an error naming the file and line."""
    named = [(path, item) for path, _, lines in read for item in lines if item.names]
    if not named:
        return read, classes
    by_index = next(((path, item) for path, _, lines in read for item in lines if not item.names), None)
    if by_index is not None:
        raise ManifestError(f"{by_index[0]}:{by_index[1].line_no} labels by class index and {named[0][0]}:{named[0][1].line_no} by class name; label every line one way")
    if classes is not None:
        refuse_same_classes(class_file or "the class list", classes)
    else:
        classes = sorted(first_spellings(name for _, item in named for name in item.names), key=class_key)
    index = {class_key(name): i for i, name in enumerate(classes)}
    for path, item in named:
        unknown = [name for name in item.names if class_key(name) not in index]
        if unknown:
            raise ManifestError(f"{path}:{item.line_no}: class {unknown[0]!r} is not in {class_file or 'the class list'}")
    turned = [(path, split, [replace(item, labels=tuple(sorted({index[class_key(name)] for name in item.names})), names=()) for item in lines]) for path, split, lines in read]
    return turned, classes


def checked_labels(read: list[tuple[Path, str, list[ListLine]]], num_classes: int) -> list[tuple[Path, str, list[ListLine]]]:
    """The read list files (``(file, split, lines)``) with 0-based labels: as they are, or less
    one where they are 1-based (:func:`one_based`, said by a warning). A label beyond the class
    list is an error naming the file and line; labels that are 0 to U - 1, each of them, for a
    class list of 2U classes or more (U at least :data:`FEW_CLASSES`) are said by a warning: the
    class list of a dataset that holds the one labelled (Kinetics-400's for Mini-Kinetics' lists)
    names their classes wrongly without an error."""
    if one_based(read, num_classes):
        warnings.warn(f"{', '.join(str(path) for path, _, _ in read)}: the labels are 1 to {num_classes} for the {num_classes} classes, none 0, so they are read as 1-based (mmaction2's ActivityNet lists number the classes as the lines of action_name.csv, its header line first)", stacklevel=3)
        read = [(path, split, [replace(item, labels=tuple(label - 1 for label in item.labels)) for item in lines]) for path, split, lines in read]
    labels = {label for _, _, lines in read for item in lines for label in item.labels}
    hint = f"; these have no 0 and reach {num_classes}, as 1-based lists do, but the base cannot be told while a class has no video in them: {num_classes - len(labels)} of the {num_classes}" if 0 not in labels and max(labels, default=0) == num_classes else ""
    for path, _, lines in read:
        for item in lines:
            beyond = [label for label in item.labels if label >= num_classes]
            if beyond:
                raise ManifestError(f"{path}:{item.line_no}: label {beyond[0]} is beyond the {num_classes} classes of the class list (labels are 0-based{hint})")
    if len(labels) >= FEW_CLASSES and labels == set(range(len(labels))) and 2 * len(labels) <= num_classes:
        warnings.warn(f"{', '.join(str(path) for path, _, _ in read)}: the labels are 0 to {len(labels) - 1}, each of them, so the class list's first {len(labels)} of its {num_classes} classes name them: is it the dataset's own (Mini-Kinetics' 200 classes are not Kinetics-400's first 200)?", stacklevel=3)
    return read


# Below this many classes used, labels that fill only the start of a longer class list are no sign
# of the wrong list (a small subset made for a test).
FEW_CLASSES = 20


def list_entries(read: list[tuple[Path, str, list[ListLine]]], classes: list[str], resolver: PathResolver) -> list[RawEntry]:
    """The entries of read list files (``(file, split, lines)``), labels checked
    (:func:`checked_labels`), paths resolved against the data root (:func:`find_listed`), else
    against the list's own folder (:func:`~pipeline.datasets.finding.find_beside`); a
    Kinetics clip's path not found, in the file named by the bare YouTube id with the clip's
    segment (:func:`~pipeline.datasets.kinetics.bare_id_files`, the id as the list names the
    clip); else kept as written (the features stage reports the missing file)."""
    read = checked_labels(read, len(classes))
    items = [(split, item) for _, split, lines in read for item in lines]
    paths = [item.path for _, item in items]
    found = find_listed(resolver, paths)
    start = 0
    for list_file, _, lines in read:  # not under the root: relative to the list's own folder?
        lost = [i for i in range(start, start + len(lines)) if found[i] is None]
        for i, rel in zip(lost, find_beside(resolver, list_file.parent, [paths[i] for i in lost])):
            found[i] = rel
        start += len(lines)
    bare = bare_id_files(resolver.root, [path for path, rel in zip(paths, found) if rel is None])
    entries = []
    for (split, item), rel in zip(items, found):
        labels = tuple(classes[label] for label in item.labels)
        if rel is None and item.path in bare:
            file, segment = bare[item.path]
            entries.append(RawEntry(video_id(item.path), file, labels, split, segment))
        else:
            rel = rel or item.path
            entries.append(RawEntry(video_id(rel), rel, labels, split))
    return entries
