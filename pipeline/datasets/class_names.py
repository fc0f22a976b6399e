"""Class-name files: a dataset's class names in the order of its label indices, in the forms the
code bases and model zoos share them, and how names are compared across files.

* one name a line (mmaction2's ``label_map_k400.txt``, AR-Net's ``categories.txt``);
* ``index name`` lines, 0- or 1-based (UCF101's ``classInd.txt``);
* csv rows ``index,name`` or ``name,index``, with or without a header (``id,name``: the
  ``kinetics_400_labels.csv`` of X-CLIP, ActionCLIP and the video-text models after them);
* a csv of one column, with or without a header that is a column name (mmaction2's ActivityNet
  ``action_name.csv``, ``action`` then the 200 names);
* JSON: a list of names; ``{name: index}`` (PySlowFast's ``kinetics_classnames.json``, whose keys
  keep the Kinetics csv's double quotes, ``"\\"eating ice cream\\""``; Something-Something's
  labels file, whose indices are strings); ``{index: name}``; a model's
  ``config.json`` (Hugging Face's ``id2label``, timm's ``label_names``).

Indexed forms are put in the order of their index, which must run without a gap from 0 or 1:
label ``i`` is the ``i``-th class. Enclosing double quotes are not part of a name.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from pipeline.datasets.finding import folder_key
from pipeline.datasets.kinds import VIDEO_LIST, annotation_kind, json_kind, label_row, listed_video, names_video
from pipeline.datasets.manifest import ManifestError, read_annotation_text
from pipeline.wording import first_few

__all__ = ["read_class_names", "class_key", "same_classes", "numbered_classes", "first_spellings", "refuse_same_classes", "class_subset"]


def read_class_names(path: Path) -> list[str]:
    """The class names of a class-name file in any of the module's forms, in label order."""
    path = Path(path)
    text = read_annotation_text(path, "class-name file")
    is_json = path.suffix.lower() == ".json"
    data = _json_data(text) if is_json or text.lstrip()[:1] in ("[", "{") else None  # parsed once
    kind = json_kind(data) if data is not None else annotation_kind(text)
    if kind is not None and kind != VIDEO_LIST:  # a list's own message below
        raise ManifestError(f"{path}: {kind}; not class names")
    if data is not None:
        return _json_names(path, data)
    if is_json:
        _parsed_json(path, text)  # not valid JSON: said so
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and all(label_row(line) for line in lines):
        raise ManifestError(f"{path}: rows of numbers ({lines[0][:40]!r}), a label matrix as FCVID_Label.txt is, or a list of numbered videos, not class names; the class names are one a line")
    if lines and all(listed_video(line) or names_video(line) for line in lines):
        raise ManifestError(f"{path}: a list of videos ({lines[0]!r}: a video's path, then numbers or words), not class names; give it as --train-list or --val-list, and the class names, one a line, as --class-names")
    indexed = _index_rows(lines)
    if indexed is not None:
        return _in_index_order(path, indexed)
    if path.suffix.lower() == ".csv" and lines and class_key(lines[0]) in COLUMN_NAMES:
        lines = lines[1:]  # a one-column csv's header (mmaction2's ActivityNet action_name.csv: "action")
    return [_name(line) for line in lines]


# The header of a one-column csv of class names: a column name, no dataset's class.
COLUMN_NAMES = frozenset({"name", "names", "label", "labels", "class", "classes", "class name", "class names", "label name", "category", "categories", "category name", "action", "actions", "action name", "activity", "activities", "activity name"})


def class_key(name: str) -> str:
    """A class name as compared across annotation files: case, enclosing double quotes and
    spaces against underscores do not count (Kinetics' csv says ``air drumming``, class lists
    made from its folder names ``air_drumming``)."""
    return " ".join(name.strip().strip('"').replace("_", " ").split()).casefold()


def same_classes(names: Iterable[str]) -> list[str]:
    """The names, sorted, that name one class with another by :func:`class_key`."""
    names = list(names)
    counts = Counter(class_key(name) for name in names)
    return sorted({name for name in names if counts[class_key(name)] > 1})


def numbered_classes(names: Iterable[str]) -> list[str] | None:
    """The classes of labels that are all class indices written as numbers (``0``, ``2``,
    ``10``, without leading zeros): every index from 0 to the largest, in numeric order, as a
    list file's indices are read (code-point order puts ``10`` before ``2``); None for labels
    of any other kind."""
    names = set(names)
    if not names or not all(name.isascii() and name.isdigit() and str(int(name)) == name for name in names):
        return None
    return [str(i) for i in range(1 + max(int(name) for name in names))]


def first_spellings(names: Iterable[str]) -> list[str]:
    """One name a class (by :func:`class_key`), the first of its spellings in code-point order,
    in that order: the classes of labels given by name where no class file orders them."""
    spelling: dict[str, str] = {}
    for name in sorted(names):
        spelling.setdefault(class_key(name), name)
    return list(spelling.values())


def refuse_same_classes(source: Path | str, names: Iterable[str]) -> None:
    """Refuse class names (of ``source``, a file or its description) that name one class twice
    by :func:`class_key`, where names are matched to labels so: both would be one class."""
    twice = same_classes(names)
    if twice:
        raise ManifestError(f"{source}: these class names are the same class (case, quotes and underscores aside): {', '.join(twice)}")


def class_subset(path: Path, labels: dict[str, str], sources: list[str]) -> list[str]:
    """The classes of a class file, in its order and spelling (Mini-Kinetics' 200 of Kinetics'
    400, or the order a recognizer was trained with), each of which must be a label of the
    annotations (``labels``: by :func:`class_key`) when they hold labelled videos: a name that
    matches none would lose its class's videos without a word. A name that matches none so but
    one label as a renamed folder's name would (:func:`~pipeline.datasets.finding.folder_key`:
    a class file made from mmaction2's Kinetics folders, ``passing_American_football_-in_game-``)
    is that label, spelt as the annotations spell it. ``sources`` name the annotations in the
    error."""
    classes = read_class_names(path)
    refuse_same_classes(path, classes)
    keys = Counter(folder_key(label) for label in labels.values())
    loose = {folder_key(label): label for label in labels.values() if keys[folder_key(label)] == 1}  # the labels one folder_key names
    classes = [name if class_key(name) in labels else loose.get(folder_key(name), name) for name in classes]
    refuse_same_classes(path, classes)
    missing = [name for name in classes if class_key(name) not in labels]
    if labels and missing:
        raise ManifestError(f"{path}: {len(missing)} of its {len(classes)} classes are the label of no video in {', '.join(sources)}: {first_few(missing, 5)} (names are matched to the labels with case, quotes and underscores aside, or as renamed folders' names are)")
    return classes


def _name(text: str) -> str:
    """A name without surrounding spaces and enclosing double quotes."""
    text = text.strip()
    return text[1:-1].strip() if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _index(value: object) -> int | None:
    """A class index (an int or a string of digits), or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def _index_rows(lines: list[str]) -> list[tuple[int, str]] | None:
    """``(index, name)`` of every line when the lines are ``index name`` or two csv fields of
    which one is an index on every line (after a header, whose fields are none), else None."""
    spaced = [line.split(maxsplit=1) for line in lines]
    if lines and all(len(parts) == 2 and parts[0].isdigit() for parts in spaced):
        return [(int(number), _name(name)) for number, name in spaced]
    rows = [next(csv.reader([line], skipinitialspace=True), []) for line in lines]
    if rows and len(rows[0]) == 2 and all(_index(field) is None for field in rows[0]):
        rows = rows[1:]  # a header: id,name
    if not rows or any(len(row) != 2 for row in rows):
        return None
    for at in (0, 1):
        if all(_index(row[at]) is not None for row in rows):
            return [(_index(row[at]), _name(row[1 - at])) for row in rows]  # type: ignore[misc]
    return None


def _json_data(text: str) -> object | None:
    """The JSON ``text`` holds, or None where it is none (a name that starts with a bracket)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _parsed_json(path: Path, text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None


def _json_names(path: Path, data: object) -> list[str]:
    """Names of a JSON class-name file: a list, ``{name: index}``, ``{index: name}``, or a model
    config's ``id2label`` / ``label_names``."""
    if isinstance(data, dict) and isinstance(data.get("id2label"), dict):
        data = data["id2label"]
    elif isinstance(data, dict) and isinstance(data.get("label_names"), list):
        data = data["label_names"]
    if isinstance(data, list) and data and all(isinstance(name, str) for name in data):
        return [_name(name) for name in data]
    if isinstance(data, dict) and data:
        if all(_index(value) is not None for value in data.values()):
            return _in_index_order(path, [(_index(value), _name(key)) for key, value in data.items()])  # type: ignore[misc]
        if all(_index(key) is not None and isinstance(value, str) for key, value in data.items()):
            return _in_index_order(path, [(_index(key), _name(value)) for key, value in data.items()])  # type: ignore[misc]
    raise ManifestError(f"{path}: not a class-name JSON (expected a list of names, {{name: index}}, {{index: name}} or a model config with 'id2label'), got {json.dumps(data)[:80]}")


def _in_index_order(path: Path, rows: list[tuple[int, str]]) -> list[str]:
    """The names ordered by their index, which must run without a gap from 0 or 1."""
    rows = sorted(rows)
    numbers = [number for number, _ in rows]
    repeated = next((a for a, b in zip(numbers, numbers[1:]) if a == b), None)
    if repeated is not None:
        raise ManifestError(f"{path}: class index {repeated} is given twice")
    first, last = numbers[0], numbers[-1]
    if first not in (0, 1) or last - first + 1 != len(numbers):
        gap = next((a + 1 for a, b in zip(numbers, numbers[1:]) if b != a + 1), None)
        where = f"index {gap} is missing" if first in (0, 1) else f"the first index is {first}"
        raise ManifestError(f"{path}: class indices must run from 0 or 1 without a gap (label i is the i-th class), but {where} ({len(numbers)} classes, indices {first}..{last})")
    return [name for _, name in rows]
