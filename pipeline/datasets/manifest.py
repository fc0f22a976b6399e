"""The one manifest every dataset adapter produces: videos, their labels and splits, and the class list."""

from __future__ import annotations

import codecs
import hashlib
import json
import posixpath
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

from pipeline.output_kinds import named
from pipeline.video import VIDEO_EXTENSIONS
from pipeline.wording import first_few

SPLITS = ("train", "val", "test")
EVALUATION_SPLITS = SPLITS[1:]  # evaluated on, one at a time: val by default where there is one


def evaluation_splits(splits: Iterable[str]) -> list[str]:
    """The evaluation splits among the videos' ``splits``, in :data:`EVALUATION_SPLITS` order."""
    present = set(splits)
    return [split for split in EVALUATION_SPLITS if split in present]


def identity_split(splits: Iterable[str], split: str | None = None) -> str | None:
    """The evaluation split ``split`` (default: the first of them) as an evaluation output's
    identity names it, given the videos' ``splits``: only where there are two evaluation
    splits, so that outputs of manifests with one keep the identities they had before there was
    a choice."""
    present = evaluation_splits(splits)
    return (split or present[0]) if len(present) > 1 else None


class ManifestError(Exception):
    """An annotation file that cannot be turned into a manifest; the message names the file."""


@dataclass(frozen=True)
class AnnotationFiles:
    """Annotation files named on the command line, for datasets whose files lie anywhere (list
    files) or come in several versions (ActivityNet's JSON). Relative paths are taken from the
    working directory; the videos' paths inside them from the data root."""

    train: Path | None = None
    val: Path | None = None
    test: Path | None = None
    classes: Path | None = None
    list_format: str = "auto"  # one of pipeline.datasets.lists.LIST_FORMATS
    annotations: Path | None = None  # one file holding every split (ActivityNet JSON)

    def lists(self) -> list[tuple[Path, str]]:
        """(list file, split) for each split given."""
        return [(Path(p), s) for p, s in ((self.train, "train"), (self.val, "val"), (self.test, "test")) if p is not None]

    def given(self) -> list[str]:
        """The command-line options given (a list format other than auto counts)."""
        options = {"train": "--train-list", "val": "--val-list", "test": "--test-list", "classes": "--class-names", "annotations": "--annotations"}
        given = [option for name, option in options.items() if getattr(self, name) is not None]
        return given + (["--list-format"] if self.list_format != "auto" else [])


def posix_path(path: str) -> str:
    """A ``/``-separated path in its normal form (``posixpath.normpath``: no empty or ``.``
    parts, no trailing ``/``, a folder and a ``..`` after it dropped, ``a/../b`` as ``b``, as
    a list that wrote so meant it, a linked folder's parent aside; leading ``..`` kept), the
    usual path as it is at once (a Kinetics list's 240,000 paths are handled as strings so)."""
    if "//" in path or "/." in path or path.startswith(".") or path.endswith("/") or not path:
        return posixpath.normpath(path)
    return path


def without_video_extension(name: str) -> str:
    """A file name without its video extension (``x.mp4`` -> ``x``), the extension as pathlib's
    ``suffix`` has it (``.x.mp4`` has one, ``.mp4`` none); other names as they are."""
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 and name[dot:].lower() in VIDEO_EXTENSIONS else name


def video_id(rel_path: str) -> str:
    """A video's id: its path relative to the data root without a video extension
    (:func:`without_video_extension`)."""
    folder, slash, name = posix_path(rel_path).rpartition("/")
    return folder + slash + without_video_extension(name)


@dataclass(frozen=True)
class VideoRecord:
    """One video: ``path`` is relative to the data root (a file or a folder of frames).
    ``segment`` (start, end) in seconds, where the annotations give the clip's place in a longer
    video and the file may be that whole video (:func:`pipeline.video.open_record`)."""

    video_id: str
    path: str
    labels: tuple[int, ...]
    split: str
    segment: tuple[float, float] | None = None


@dataclass(frozen=True)
class Rejected:
    """An annotation entry that could not become a video record, with the reason."""

    video_id: str
    path: str
    reason: str


@dataclass(frozen=True)
class RawEntry:
    """What an adapter reads from an annotation file, before the labels are checked."""

    video_id: str
    path: str
    label_names: tuple[str, ...]
    split: str
    segment: tuple[float, float] | None = None


@dataclass(frozen=True)
class Manifest:
    name: str
    classes: tuple[str, ...]
    videos: tuple[VideoRecord, ...]
    rejected: tuple[Rejected, ...] = field(default=())
    # What the annotations do not say about the videos' content, when a dataset knows it: the
    # generated demo's spec (another seed or difficulty gives the same annotations). Part of the
    # digest, so caches of other content are not reused; empty for the real datasets.
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def digest(self) -> str:
        """sha256 of the canonical JSON form: equal manifests, equal digests."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def to_json(self) -> str:
        """Canonical JSON; an empty ``source`` and a video's absent ``segment`` are left out, so
        the digests (and the caches keyed by them) are those of the manifests made before they
        existed. Built field by field (``dataclasses.asdict`` copies deeply: 3-4 s of Kinetics'
        260,000 videos)."""
        videos = []
        for video in self.videos:
            record = {"video_id": video.video_id, "path": video.path, "labels": video.labels, "split": video.split}
            if video.segment is not None:
                record["segment"] = video.segment
            videos.append(record)
        fields = {"name": self.name, "classes": self.classes, "videos": videos, "rejected": [vars(r) for r in self.rejected]}
        if self.source:
            fields["source"] = self.source
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        raw = json.loads(text)
        return cls(
            name=raw["name"],
            classes=tuple(raw["classes"]),
            videos=tuple(VideoRecord(v["video_id"], v["path"], tuple(v["labels"]), v["split"], tuple(v["segment"]) if v.get("segment") else None) for v in raw["videos"]),
            rejected=tuple(Rejected(**r) for r in raw["rejected"]),
            source=raw.get("source", ""),
        )

    def split(self, split: str) -> list[int]:
        """Indices of the videos of one split."""
        return [i for i, v in enumerate(self.videos) if v.split == split]


# How annotation files name the splits (ActivityNet's "training", Kinetics' "validate").
SPLIT_ALIASES = {"training": "train", "validation": "val", "valid": "val", "validate": "val", "testing": "test"}


def normalise_split(value: str, source: Path | str) -> str:
    key = value.strip().lower()
    key = SPLIT_ALIASES.get(key, key)
    if key not in SPLITS:
        raise ManifestError(f"{source}: unknown split {value!r} (expected one of {', '.join(SPLITS)})")
    return key


def distinct_ids(entries: Iterable[RawEntry]) -> list[RawEntry]:
    """Entries whose ids (paths without extension) collide while their paths differ, such as
    ``clip.avi`` and ``clip.mp4`` in one folder, are told apart by their paths; ids that stay
    unique keep the extension-free form (the digest of existing manifests is unchanged)."""
    entries = list(entries)
    paths_by_id: dict[str, set[str]] = {}
    for entry in entries:
        paths_by_id.setdefault(entry.video_id, set()).add(entry.path)
    return [replace(e, video_id=e.path) if len(paths_by_id[e.video_id]) > 1 else e for e in entries]


def build_manifest(name: str, classes: Iterable[str], entries: Iterable[RawEntry]) -> Manifest:
    """Check every entry's labels against the class list; entries that fail become ``Rejected``.
    The same path listed twice is rejected as a duplicate; see :func:`distinct_ids`."""
    classes = tuple(classes)
    twice = [c for c, n in Counter(classes).items() if n > 1]
    if twice:
        raise ManifestError(f"{name}: the class list names {first_few([repr(c) for c in twice], 5)} more than once; a class is one name (--class-names, or the names the annotations give)")
    index = {c: i for i, c in enumerate(classes)}
    videos: list[VideoRecord] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    for entry in distinct_ids(entries):
        if entry.video_id in seen:
            rejected.append(Rejected(entry.video_id, entry.path, "duplicate video id in the annotations"))
            continue
        seen.add(entry.video_id)
        unknown = [n for n in entry.label_names if n not in index]
        if unknown:
            rejected.append(Rejected(entry.video_id, entry.path, f"label(s) not in the class list: {', '.join(unknown)}"))
        elif not entry.label_names:
            rejected.append(Rejected(entry.video_id, entry.path, "no label"))
        else:
            labels = tuple(sorted({index[n] for n in entry.label_names}))
            videos.append(VideoRecord(entry.video_id, entry.path, labels, entry.split, entry.segment))
    return Manifest(name, classes, tuple(videos), tuple(rejected))


def read_annotation_text(path: Path, what: str = "annotation file") -> str:
    """The text of an annotation file, read as UTF-8 with or without the byte-order mark that
    Excel's "CSV UTF-8" and Windows editors put first (it would otherwise stick to the first
    path or column name), or as UTF-16 where such a mark says so (what Windows PowerShell's
    ``>`` and ``Out-File`` write, and Excel's "Unicode Text") or its bytes do without one
    (:func:`_text_encoding`); any line ending reads as one. A missing or undecodable file, a
    binary one and a spreadsheet's workbook are errors naming it."""
    path = Path(path)
    if path.is_dir():
        raise ManifestError(named(path, f"the {what}", f"a folder; the {what} is a file"))
    if not path.is_file():
        raise ManifestError(f"{path}: {what} not found")
    data = path.read_bytes()
    encoding = _text_encoding(path, data, what)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not {encoding.upper().removesuffix('-SIG')} text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); save it as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


# The first bytes of a spreadsheet's own file, given where the table saved from it belongs.
WORKBOOKS = {
    b"PK\x03\x04": "a zip archive (an Excel .xlsx or LibreOffice .ods workbook?)",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "an OLE2 compound file (an Excel .xls workbook?)",
}
# How much of a file tells UTF-16 without a byte-order mark from UTF-8 and from binary data.
ENCODING_SAMPLE_BYTES = 4096


def _text_encoding(path: Path, data: bytes, what: str) -> str:
    """The encoding of an annotation file's ``data``: UTF-16 where its byte-order mark says so,
    or without one where its first :data:`ENCODING_SAMPLE_BYTES` hold NUL bytes at odd places
    (little-endian) or even ones (big-endian), four times as many as at the others and at
    least one byte in four: the high bytes of the ASCII that paths and labels are mostly
    written in (Python's ``encoding="utf-16-le"``, .NET's ``Encoding.Unicode``); else UTF-8,
    its mark passed over. A workbook (:data:`WORKBOOKS`) and other data with NUL bytes are
    errors naming the file: they are no text."""
    for magic, kind in WORKBOOKS.items():
        if data.startswith(magic):
            raise ManifestError(f"{path}: {kind}, not a text {what}; save the sheet as CSV (UTF-8) and give that file")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = data[:ENCODING_SAMPLE_BYTES]
    if b"\x00" not in sample:
        return "utf-8-sig"
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd > 4 * even and 4 * odd >= len(sample):
        return "utf-16-le"
    if even > 4 * odd and 4 * even >= len(sample):
        return "utf-16-be"
    raise ManifestError(f"{path}: holds NUL bytes (byte {sample.index(0)}), not a text {what}: binary data or an encoding other than UTF-8 and UTF-16; save it as UTF-8")


def read_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines of a text annotation file (see :func:`read_annotation_text`)."""
    return [line.strip() for line in read_annotation_text(path).splitlines() if line.strip()]
