"""What an annotation file is by its content, for the errors where one was given in another's
place (a Kinetics csv as a list, a list as the class names, ActivityNet's JSON as Kinetics'):
each kind with the dataset or option that reads it."""

from __future__ import annotations

import json
import re
from itertools import islice
from pathlib import PurePosixPath

from pipeline.video import VIDEO_EXTENSIONS

# The columns that make a csv Kinetics' annotations (``label`` beside them, ``split`` or not).
KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end")
# How many of a JSON's entries, or a text's first lines, are looked at to tell its kind.
KIND_SAMPLE = 20

ACTIVITYNET_JSON = "ActivityNet's annotation JSON (a list of labelled segments a video), read by --dataset activitynet"
KINETICS_JSON = "a Kinetics annotation JSON, read by --dataset kinetics (or minikinetics) with --annotations"
KINETICS_CSV = "a Kinetics annotation csv (label,youtube_id,time_start,time_end,...), read by --dataset kinetics, or minikinetics with --annotations"
VIDEO_LIST = "a list of videos (a path, then numbers), read by --dataset list as --train-list or --val-list"
HMDB51_SPLIT = "HMDB51's split file (one class's videos, each marked 1 train, 2 test or 0 unused: no labels), read with the split's other 50 by --dataset hmdb51 (--annotations naming it or its folder)"
# How HMDB51's split files are named (``brush_hair_test_split1.txt``: one a class and split).
HMDB51_SPLIT_FILE = re.compile(r"(?P<label>.+)_test_split(?P<split>[1-3])\.txt")


def _first_lines(text: str) -> list[str]:
    """The lines that are not blank among the first :data:`KIND_SAMPLE` of ``text``."""
    return [line for line in text.split("\n", KIND_SAMPLE)[:KIND_SAMPLE] if line.strip()]


def _fields(line: str) -> list[str]:
    """A line's fields, however a list or a matrix separates them (spaces, commas, ``;``)."""
    return [field for field in re.split(r"[\s,;]+", line) if field]


def listed_video(line: str) -> bool:
    """Whether a line is a list file's (``a.mp4 0``, ``train/a 120 0``, ``v_x,300,3``): a
    first field, then numbers alone, two or more, or one after a path with a video extension
    or a folder; no class-name file's line is so (``name,index`` has one number), nor a
    Kinetics annotation's."""
    first, *numbers = _fields(line) or [""]
    path = "/" in first or "\\" in first or PurePosixPath(first).suffix.lower() in VIDEO_EXTENSIONS
    return len(numbers) >= (1 if path else 2) and all(number.isdigit() for number in numbers)


def names_video(line: str) -> bool:
    """Whether a line begins with a video file's name (``accordion/a.mp4 train``, FCVID's split
    file's line; UCF101's test list's ``Class/v_x.avi``), as no class name does."""
    first = line.split(maxsplit=1)[0] if line.strip() else ""
    return PurePosixPath(first.replace("\\", "/")).suffix.lower() in VIDEO_EXTENSIONS


def label_row(line: str) -> bool:
    """Whether a line is a row of a label matrix (FCVID_Label.txt's ``1 0 0 ...``): three
    numbers or more and nothing else."""
    fields = _fields(line)
    return len(fields) >= 3 and all(field.isdigit() for field in fields)


def json_kind(data: object) -> str | None:
    """:func:`annotation_kind` of a parsed JSON: ActivityNet's or Kinetics' annotations, by
    whether the first :data:`KIND_SAMPLE` videos' ``annotations`` are lists of segments (objects;
    a testing video's empty) or objects."""
    entries = data.get("database", data) if isinstance(data, dict) else None
    annotations = [info.get("annotations") for info in islice(entries.values(), KIND_SAMPLE) if isinstance(info, dict)] if isinstance(entries, dict) else []
    if any(annotations) and all(isinstance(a, list) and all(isinstance(segment, dict) for segment in a) for a in annotations):
        return ACTIVITYNET_JSON
    if annotations and all(isinstance(a, dict) for a in annotations):
        return KINETICS_JSON
    return None


def annotation_kind(text: str) -> str | None:
    """What an annotation file's ``text`` is, and what reads it (one of the phrases above), or
    None where it is none of them: a JSON object whose videos' ``annotations`` are lists
    (ActivityNet's, in its ``database`` or BSN's form) or objects (Kinetics', 3D-ResNets'
    ``database`` too); a csv whose header holds :data:`KINETICS_COLUMNS`; lines that are all a
    list's (:func:`listed_video`; the first :data:`KIND_SAMPLE` looked at)."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return json_kind(json.loads(text))
        except json.JSONDecodeError:
            return None
    header = {field.strip().strip('"').lower() for field in stripped.split("\n", 1)[0].split(",")}
    if header.issuperset(KINETICS_COLUMNS):
        return KINETICS_CSV
    lines = _first_lines(stripped)
    return VIDEO_LIST if lines and all(listed_video(line) for line in lines) else None


def split_file_kind(name: str, text: str) -> str | None:
    """:data:`HMDB51_SPLIT` where a file named as HMDB51's split files are holds their lines
    (a video file's name, no folder, then 0, 1 or 2: the first :data:`KIND_SAMPLE` looked at),
    which a list's reading takes for labels; else None."""
    if not HMDB51_SPLIT_FILE.fullmatch(name):
        return None
    lines = [line.split() for line in _first_lines(text)]
    return HMDB51_SPLIT if lines and all(len(f) == 2 and names_video(f[0]) and "/" not in f[0] and f[1] in ("0", "1", "2") for f in lines) else None
