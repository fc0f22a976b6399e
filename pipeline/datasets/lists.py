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
  that is no number, or by ``--list-format csv``);
* mmaction2's JSON form of its lists (``[{"filename": "a.mp4", "label": 3}, ...]``, or
  ``frame_dir`` and ``total_frames`` for frames);

A first line naming the columns (``path,label``) is passed over (:func:`is_header`).

Labels are 0-based class indices; several on a line make a multi-label video. A path may come
with or without its extension and with or without ActivityNet's ``v_`` prefix: it is resolved
against the data root (a video file or a folder of frames). A path may hold spaces (Kinetics'
class folders as downloaded, ``train/air drumming/x.mp4 3``) where that path is on disk.
"""

from __future__ import annotations

import csv
import json
import os
import posixpath
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence, Set as AbstractSet
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path, PurePosixPath

from pipeline.datasets.class_names import class_key, refuse_same_classes
from pipeline.datasets.manifest import ManifestError, RawEntry, posix_path, read_annotation_text, video_id, without_video_extension
from pipeline.video import VIDEO_EXTENSIONS, hidden, leftover_videos

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


def line_fields(line: str, resolver: PathResolver) -> list[str]:
    """The whitespace-separated fields of a list line, its path first. A path with spaces
    (``train/air drumming/x.mp4 3``) runs to the line's last field that is not a number, and is
    taken whole where the data root holds it; otherwise the line splits at every space, and a
    field that should be a number is reported as such."""
    fields = line.split()
    last_text = len(fields) - 1  # the last field that is not a number, 0 where only the first is not
    while last_text > 0 and _NUMBER.fullmatch(fields[last_text]):
        last_text -= 1
    if last_text > 0:
        path = " ".join(fields[: last_text + 1])
        if resolver.resolve(path) is not None:
            return [path, *fields[last_text + 1 :]]
    return fields


def split_fields(line: str, resolver: PathResolver) -> list[str]:
    """The fields of a list line that is not AR-Net's: separated by ``;`` where the line has
    one, else by whitespace (:func:`line_fields`)."""
    return [field.strip() for field in line.split(";")] if ";" in line else line_fields(line, resolver)


def csv_fields(line: str) -> list[str]:
    """The fields of a csv list's line, as the csv module reads them (a path in double quotes
    may hold commas); a line without quotes split at its commas, the same fields at about a third of
    the cost (every line of an AR-Net list is looked at so, to tell it from a csv list)."""
    fields = line.split(",") if '"' not in line else next(csv.reader([line]))
    return [field.strip() for field in fields]


def parse_list_line(line: str, line_no: int, list_format: str, source: Path, resolver: PathResolver) -> ListLine:
    """One line of a list file in ``list_format`` (one of :data:`LIST_FORMATS` but auto)."""
    where = f"{source}:{line_no}"
    fields = [f.strip() for f in line.split(",")] if list_format == "arnet" else csv_fields(line) if list_format == "csv" else split_fields(line, resolver)
    skip, expected = _LAYOUTS[list_format]
    if len(fields) <= skip or not fields[0]:
        hint = "; a list of bare YouTube ids (Mini-Kinetics-200's train_ytid_list.txt) is read by --dataset kinetics or minikinetics with --annotations" if len(fields) == 1 else ""
        raise ManifestError(f"{where}: expected {expected}, got {line!r}{hint}")
    if list_format in ("rawframes", "arnet"):
        _integer(fields[1], "frame count", where)
    if list_format == "startend":
        start, end = _integer(fields[1], "start frame", where), _integer(fields[2], "end frame", where)
        if start > 1 or end < start:
            raise ManifestError(f"{where}: frames {start}-{end} are a part of the video; only whole videos (start frame 0 or 1) are read, so list each video once")
    if list_format == "csv" and not all(_NUMBER.fullmatch(f) for f in fields[skip:]):
        return ListLine(line_no, fields[0], (), tuple(dict.fromkeys(f.strip('"') for f in fields[skip:])))
    labels = tuple(sorted({_integer(f, "label", where) for f in fields[skip:]}))
    return ListLine(line_no, fields[0], labels)


_EXTENSION_RANK = {ext: i for i, ext in enumerate(VIDEO_EXTENSIONS)}


def video_files(names: Iterable[str]) -> dict[str, str]:
    """stem -> file name, for the video files among the file names of one folder; a stem kept
    in two formats gets the extension earlier in :data:`VIDEO_EXTENSIONS` (of names told apart
    by case alone, ``x.MP4`` and ``x.mp4``, the first in code-point order)."""
    ranked = []
    for name in names:
        stem, extension = os.path.splitext(name)
        rank = _EXTENSION_RANK.get(extension.lower())
        if rank is not None:
            ranked.append((rank, name, stem))
    stems: dict[str, str] = {}
    for _, name, stem in sorted(ranked):
        stems.setdefault(stem, name)
    return stems


class PathResolver:
    """Finds what a list's path names under the data root: the path itself, the path with a
    video extension, the video under another extension or its folder of frames, or any of these
    with ActivityNet's ``v_`` prefix added or removed. An absolute
    path (lists written with ``/data/...`` paths) is made relative when it lies under the root,
    so the manifest stays portable, and is looked up where it points otherwise; one whose
    folder does not exist, or one written on Windows, is taken as relative to the root. Each
    folder is listed once.

    Paths are ``/``-separated strings (``posixpath``), not pathlib's objects, which made up
    about a third of the time to read a Kinetics-sized list."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._absolute_root = os.path.abspath(self.root)
        self._inside_root = self._absolute_root.rstrip("/") + "/"  # what absolute paths under it begin with
        self._listings: dict[str, tuple[set[str], dict[str, str]]] = {}

    def _listing(self, folder: str) -> tuple[set[str], dict[str, str]]:
        """(names, stem -> file name of its first video extension) of one folder (relative to
        the root, or absolute)."""
        if folder not in self._listings:
            names: set[str] = set()
            try:
                with os.scandir(os.path.join(self.root, folder)) as entries:
                    names = {e.name for e in entries}
            except (FileNotFoundError, NotADirectoryError):
                pass
            self._listings[folder] = (names, video_files(names))
        return self._listings[folder]

    def written(self, path: str) -> str:
        """``path`` as the root sees it: ``/`` separators (a list written on Windows, whose
        drive letter is dropped: ``D:\\k400\\x.mp4`` is ``/k400/x.mp4``), relative to the root
        where it lies under it or where it is not a path of this machine (:meth:`from_elsewhere`:
        ``/a/b.mp4`` whose folder does not exist is taken as ``a/b.mp4``, and so is every path
        written on Windows, ``D:\\x.mp4`` as ``x.mp4``), absolute where it points outside the root."""
        if "\\" not in path and not written_absolute(path):
            return posix_path(path)  # the usual relative path, at once
        written = _slashed(path)
        if written.startswith("/"):
            if self._under_root(written):
                return "." if written == self._absolute_root else written[len(self._inside_root) :]
            if path.startswith("/") and "\\" not in path and os.path.isdir(os.path.join(self.root, posixpath.dirname(written))):
                return written
        return posix_path(written.lstrip("/"))

    def from_elsewhere(self, path: str) -> bool:
        """Whether ``path`` is written absolute but :meth:`written` takes it as relative to the
        root, its folder not being on this machine (a list written on another, or on Windows)."""
        return written_absolute(path) and not self._under_root(_slashed(path)) and not self.written(path).startswith("/")

    def _under_root(self, absolute: str) -> bool:
        return absolute == self._absolute_root or absolute.startswith(self._inside_root)

    def resolve(self, path: str) -> str | None:
        """The path relative to the root (absolute outside it) of the file or folder ``path``
        names, or None."""
        return self.find(self.written(path))

    def find(self, path: str) -> str | None:
        """What ``path`` (:meth:`written`: relative to the root, or absolute) names on disk, or
        None: the name as written, else the name with a video extension, else, for a name with a
        video extension (``x.mp4`` in mmaction2's lists), the video kept with another one
        (``x.webm`` as downloaded) or the folder of its frames (``x/``)."""
        folder, name = posixpath.split(path)
        names, stems = self._listing(folder)
        candidates = _aliases(name)
        found = next((c for c in candidates if c in names), None) or next((stems[c] for c in candidates if c in stems), None)
        bare_name = without_video_extension(name)
        if found is None and bare_name != name:
            bare = _aliases(bare_name)
            found = next((stems[c] for c in bare if c in stems), None) or next((c for c in bare if c in names), None)
        return None if found is None else posixpath.join(folder, found)


def _slashed(path: str) -> str:
    """A list's path with ``/`` separators in pathlib's normal form, a Windows drive letter
    dropped (``D:\\k400\\x.mp4`` -> ``/k400/x.mp4``)."""
    slashed = posix_path(path.replace("\\", "/"))
    return slashed[2:] if written_absolute(slashed) and not slashed.startswith("/") else slashed


def written_absolute(path: str) -> bool:
    """Whether a list's path is written absolute: from ``/`` or ``\\``, or from a Windows drive
    (``C:\\``, ``C:/``)."""
    return path.startswith(("/", "\\")) or (path[1:3] in (":/", ":\\") and path[:1].isalpha())


def walk_once(root: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` that follows links to folders (data trees are often put together from
    several disks so) and enters each real folder once, so a link cycle ends there; hidden
    files and folders (:func:`~pipeline.video.hidden`: macOS's ``._x.mp4``, ``.Trash-1000``)
    are passed over. Callers may prune the sub-folders in place, as with ``os.walk``."""
    entered: set[str] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in entered:
            subfolders.clear()
            continue
        entered.add(real)
        subfolders[:] = [name for name in subfolders if not hidden(name)]
        yield folder, subfolders, [name for name in files if not hidden(name)]


@dataclass(frozen=True)
class Found:
    """What :func:`find_under` found of the names it was given: the video of each
    (``videos``), and, for names without one, the path an unfinished download of it is to give
    it (``unfinished``: ``train/x.webm`` for ``train/x.webm.part``), where the features stage
    and ``nsnet data`` name what the download left; paths relative to the root."""

    videos: dict[str, str]
    unfinished: dict[str, str]

    def first(self, names: Sequence[str]) -> tuple[str, str] | None:
        """(name, path) of the first of ``names`` that has a video, else of the first that has
        an unfinished download; None where none has either."""
        for held in (self.videos, self.unfinished):
            for name in names:
                if name in held:
                    return name, held[name]
        return None


def find_under(root: Path, names: set[str], known: AbstractSet[str] = frozenset()) -> Found:
    """Where under ``root`` each of ``names`` lies, relative to it, by one walk of the tree: a
    video file whose stem is the name, or a folder so named (of frames; it is not entered, nor
    is a folder named in ``known``, the dataset's videos found already, so that frames
    extracted beside the videos are not listed).
    The first found wins: a folder's files before its sub-folders, sub-folders in name order
    but a ``replacement*`` folder first (cvdfoundation's Kinetics-400 download holds
    ``replacement/replacement_for_corrupted_k400/``, good copies of about 1,400 corrupted
    clips of ``train/`` under the same names), extensions in the order of
    :data:`VIDEO_EXTENSIONS`. A name no file or folder bears alone is found in a file a
    downloader named by default, the video's title before it (yt-dlp's ``<title> [<id>].mp4``,
    youtube-dl's ``<title>-<id>.mp4``: :func:`titled_ids`). Unfinished downloads, titled or
    not, are told apart (:class:`Found`). Links to folders are followed, each folder entered
    once (:func:`walk_once`)."""
    found: dict[str, str] = {}
    downloads = DownloadedNames()
    for _, name, _, where in _occurrences(root, names, known, downloads):
        found.setdefault(name, where)
    return Found(downloads.titled | found, downloads.unfinished)


# The ids a downloader's default file name carries after the video's title: yt-dlp's
# ``%(title)s [%(id)s].%(ext)s`` (``<title>_[<id>]`` with --restrict-filenames) and youtube-dl's
# ``%(title)s-%(id)s.%(ext)s`` (YouTube's ids: 11 characters).
_BRACKETED_ID = re.compile(r"\[([^\[\]]+)\]$")
_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")


def titled_ids(stem: str) -> list[str]:
    """The video ids a downloader's default name, ``<title> [<id>]`` or ``<title>-<id>``,
    may carry in ``stem`` (none for other names; the cheap tests first, as every file of a
    tree not named by a wanted id comes here)."""
    ids = []
    if stem.endswith("]") and (match := _BRACKETED_ID.search(stem)):
        ids.append(match[1])
    if len(stem) > 12 and stem[-12] == "-" and _YOUTUBE_ID.fullmatch(stem, len(stem) - 11):
        ids.append(stem[-11:])
    return ids


@dataclass
class DownloadedNames:
    """What a walk met of the wanted videos under a downloader's names, the walk's first for
    each name: a video file named by a downloader's default, a title then the name
    (``titled``: :func:`titled_ids`), and a download left unfinished, by the file it was to
    make (``unfinished``: ``x.webm`` for ``x.webm.part``, the name as the video's stem or
    titled; :func:`~pipeline.video.unfinished_video`); paths relative to the root."""

    titled: dict[str, str] = field(default_factory=dict)
    unfinished: dict[str, str] = field(default_factory=dict)

    def note(self, prefix: str, files: list[str], videos: dict[str, str], names: AbstractSet[str]) -> None:
        """Note what one folder's ``files`` (``videos``, its video files by stem:
        :func:`video_files`) hold of ``names`` under a downloader's names."""
        for stem, name in videos.items():
            if stem not in names:
                for titled_id in titled_ids(stem):
                    if titled_id in names:
                        self.titled.setdefault(titled_id, prefix + name)
        for video in leftover_videos(files):
            stem = os.path.splitext(video)[0]
            for wanted in [stem] if stem in names else titled_ids(stem):
                if wanted in names:
                    self.unfinished.setdefault(wanted, prefix + video)


def _occurrences(root: Path, names: AbstractSet[str], known: AbstractSet[str], downloads: DownloadedNames | None = None) -> Iterator[tuple[tuple[str, ...], str, str, str]]:
    """(the folders from the root to it, name, file or folder name, its path relative to the
    root) of every video file under ``root`` whose stem is one of ``names`` and every folder so
    named, in :func:`find_under`'s order, by one walk that enters neither such folders nor those
    named in ``known``. Where ``downloads`` is given, what the walk meets of ``names`` under a
    downloader's names goes into it."""
    for folder, subfolders, files in walk_once(root):
        here = os.path.relpath(folder, root)
        parts, prefix = ((), "") if here == "." else (tuple(here.split(os.sep)), here.replace(os.sep, "/") + "/")
        videos = video_files(files)
        for stem, name in videos.items():
            if stem in names:
                yield parts, stem, name, prefix + name
        if downloads is not None:
            downloads.note(prefix, files, videos, names)
        for name in [n for n in subfolders if n in names]:
            yield parts, name, name, prefix + name
        subfolders[:] = sorted((n for n in subfolders if n not in names and n not in known), key=lambda n: (not n.startswith("replacement"), n))


def find_whole(root: Path, paths: list[str], known: AbstractSet[str] = frozenset(), loose: AbstractSet[int] = frozenset()) -> list[str | None]:
    """Where each of ``paths`` (relative, as :meth:`PathResolver.written` gives them) lies whole
    under a folder of the root, or None: ``videos_val/abseiling/x.mp4`` for ``abseiling/x.mp4``
    (mmaction2's Kinetics lists are relative to ``videos_train/`` and ``videos_val/``), the video
    under whatever extension or its folder of frames, by one walk (:func:`_occurrences`; frame
    folders named in ``known`` are not entered). Where both are there, what the path names: a
    video file for a path with a video extension, a folder of frames for one without; then the
    walk's first. The whole path must match, so a name that several folders hold (``a/001.mp4``,
    ``b/001.mp4``) is found only under its own folder; but a path in ``loose`` (by index: one
    written absolute on another machine, ``/home/ann/k400/train/x.mp4`` where the root holds
    ``train/x.mp4``) needs only its last folders to match, as many as the tree holds: the
    occurrence with the longest such tail, the walk's first among equals; by its name alone (no
    folder matching) only where the tree holds that name once. A bare name (AR-Net's
    ActivityNet lists: ``v_<id>``) found nowhere is found in a file a downloader named by its
    default, a title then the id (:func:`titled_ids`), else gets the path its unfinished
    download is to give it (:class:`DownloadedNames`)."""
    wanted: dict[str, list[int]] = {}
    tails: list[tuple[str, ...]] = []  # each path's folders
    named_file: list[bool] = []  # whether the path names a video file (has a video extension)
    for i, path in enumerate(paths):
        folder, name = posixpath.split(path)
        tails.append(tuple(folder.split("/")) if folder else ())
        bare = without_video_extension(name)
        named_file.append(bare != name)
        for alias in _aliases(bare):
            wanted.setdefault(alias, []).append(i)
    files: list[str | None] = [None] * len(paths)
    folders: list[str | None] = [None] * len(paths)
    tails_held: dict[tuple[int, bool], list] = {}  # (a loose path, a folder?) -> [last folders matched, where, occurrences matching as many]
    downloads = DownloadedNames()
    for here, name, on_disk, where in _occurrences(root, set(wanted), known, downloads):
        is_folder = on_disk == name
        kind = folders if is_folder else files
        for i in wanted[name]:
            tail = tails[i]
            if i in loose:
                matched, best = _shared_tail(here, tail), tails_held.get((i, is_folder))
                if best is None or matched > best[0]:
                    tails_held[i, is_folder] = [matched, where, 1]
                elif matched == best[0]:
                    best[2] += 1
            elif kind[i] is None and (not tail or here[-len(tail) :] == tail):
                kind[i] = where
    for (i, is_folder), (matched, where, count) in tails_held.items():
        if matched > 0 or count == 1:  # by name alone only where the name lies once in the tree
            (folders if is_folder else files)[i] = where
    for name, at in chain(downloads.titled.items(), downloads.unfinished.items()):
        for i in wanted[name]:
            if not tails[i] and i not in loose and files[i] is None and folders[i] is None:
                files[i] = at
    return [(f or d) if by_file else (d or f) for f, d, by_file in zip(files, folders, named_file)]


def _shared_tail(here: tuple[str, ...], tail: tuple[str, ...]) -> int:
    """How many last folders two paths' folder lists have in common."""
    shared = 0
    while shared < min(len(here), len(tail)) and here[-1 - shared] == tail[-1 - shared]:
        shared += 1
    return shared


def locate(root: Path, paths: list[str]) -> list[str | None]:
    """Where each of ``paths`` (relative to the root) lies: where written, the file as written
    first, else with whatever video extension or with ActivityNet's ``v_`` prefix toggled
    (:class:`PathResolver`); else by its name anywhere under the root (:func:`find_under`, one
    walk for all that are lost), or None. For datasets whose videos' names are unique (YouTube
    ids, UCF101's ``v_Class_gNN_cNN``)."""
    resolver = PathResolver(root)
    found = [resolver.resolve(written) for written in paths]
    lost = [i for i, rel in enumerate(found) if rel is None]
    if lost:
        aliases = [_name_aliases(written) for written in paths]
        elsewhere = find_under(root, {name for i in lost for name in aliases[i]}, {name for names in aliases for name in names})
        for i in lost:
            hit = elsewhere.first(aliases[i])
            found[i] = hit[1] if hit else None
    return found


def _name_aliases(path: str) -> tuple[str, str]:
    """The aliases (:func:`_aliases`) of the file or folder name a list's path ends in, without
    its video extension (``train\\v_x.mp4`` -> ``v_x``, ``x``)."""
    return _aliases(without_video_extension(posixpath.basename(_slashed(path))))


def _aliases(name: str) -> tuple[str, str]:
    """A name as written, and with ActivityNet's ``v_`` prefix added or removed."""
    return name, name[2:] if name.startswith("v_") else f"v_{name}"


def detect_format(lines: list[tuple[int, str]], resolver: PathResolver) -> str:
    """The format of a list file: with commas and no ``;``, AR-Net's (``path,num_frames,label``)
    where every line has three fields or more and a number second, else a csv list
    (``path,label``, the label a class index or name); else a video list when
    each line has two fields or its first path that exists is a video file, a rawframe list when
    that path is a folder; with nothing on disk, a path with a video extension means a video
    list and three or more fields on every line a rawframe list. A rawframe list whose second
    field is 0 or 1 on every line, before a larger third, is a frame-range list (a frame count
    of 0 or 1 is no video)."""
    texts = [text for _, text in lines]
    if any("," in text for text in texts) and not any(";" in text for text in texts):
        rows = [csv_fields(text) for text in texts]
        arnet = all(len(row) >= 3 and _NUMBER.fullmatch(row[1]) for row in rows)  # a frame count second
        return "arnet" if arnet else "csv"
    fields = [split_fields(text, resolver) for text in texts]
    if all(len(f) == 2 for f in fields):
        return "video"
    for parts in fields:
        found = resolver.resolve(parts[0])
        if found is not None:
            return _frames_format(fields) if (resolver.root / found).is_dir() else "video"
    if PurePosixPath(fields[0][0]).suffix.lower() in VIDEO_EXTENSIONS:
        return "video"
    return _frames_format(fields) if all(len(f) >= 3 for f in fields) else "video"


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
    """Every line of a list file (``#`` comments and blank lines skipped), or every entry of
    mmaction2's JSON form of one (:func:`read_json_list`)."""
    if list_format not in LIST_FORMATS:
        raise ManifestError(f"unknown list format {list_format!r}; known: {', '.join(LIST_FORMATS)}")
    path = Path(path)
    text = read_annotation_text(path, "list file")
    if text.lstrip().startswith("["):
        return read_json_list(path, text)
    numbered = entry_lines(text)
    if numbered and is_header(numbered[0][1]):
        numbered = numbered[1:]
    if not numbered:
        raise ManifestError(f"{path}: the list file has no entries")
    fmt = detect_format(numbered, resolver) if list_format == "auto" else list_format
    return [parse_list_line(text, n, fmt, path, resolver) for n, text in numbered]


def read_json_list(path: Path, text: str) -> list[ListLine]:
    """mmaction2's JSON form of a list (its ``anno_txt2json.py``): ``[{"filename": "a.mp4",
    "label": 3}, {"frame_dir": "b", "total_frames": 300, "label": [1, 5]}, ...]``. An entry's
    number (from 1) stands for its line in messages."""
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    lines = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path}:{number}"
        video = entry.get("filename", entry.get("frame_dir")) if isinstance(entry, dict) else None
        if not isinstance(video, str) or "label" not in entry:
            raise ManifestError(f"{where}: expected {{\"filename\" or \"frame_dir\": path, \"label\": index or [indices]}}, got {entry!r}")
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
    labels = {label for _, _, lines in read for item in lines for label in item.labels}
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
    else:  # one class a name (case and underscores aside), spelt as first in sorted order
        spelling: dict[str, str] = {}
        for name in sorted(name for _, item in named for name in item.names):
            spelling.setdefault(class_key(name), name)
        classes = sorted(spelling.values(), key=class_key)
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
    list is an error naming the file and line."""
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
    return read


def list_entries(read: list[tuple[Path, str, list[ListLine]]], classes: list[str], resolver: PathResolver) -> list[RawEntry]:
    """The entries of read list files (``(file, split, lines)``), labels checked
    (:func:`checked_labels`), paths resolved against the data root; a relative path not there
    is looked for whole under the root's folders (:func:`find_whole`, one walk for all lists), one
    written absolute on another machine by its last folders, and either is kept as written where
    nothing is found (the features stage reports the missing file)."""
    read = checked_labels(read, len(classes))
    items = [(split, item) for _, split, lines in read for item in lines]
    found: list[str | None] = []
    lost: list[tuple[int, str]] = []  # relative paths not where written
    foreign: set[int] = set()  # of those, the ones written absolute on another machine: found by their last folders
    for i, (_, item) in enumerate(items):
        written = resolver.written(item.path)
        found.append(resolver.find(written))
        if found[-1] is None and not written.startswith("/"):
            if resolver.from_elsewhere(item.path):
                foreign.add(len(lost))
            lost.append((i, written))
    if lost:
        known = {alias for _, item in items for alias in _name_aliases(item.path)}  # frame folders the walk does not enter
        for (i, _), rel in zip(lost, find_whole(resolver.root, [path for _, path in lost], known, foreign)):
            found[i] = rel
    entries = []
    for (split, item), rel in zip(items, found):
        rel = rel or item.path
        entries.append(RawEntry(video_id(rel), rel, tuple(classes[label] for label in item.labels), split))
    return entries
