"""Where a dataset's videos lie under its data root: a list's path as written (another
extension, the folder of its frames, ActivityNet's ``v_`` prefix toggled, a path written on
Windows or absolute on another machine: :class:`PathResolver`), or anywhere under the root by one
walk of the tree (:func:`find_under` by name, :func:`find_whole` by the path's last folders),
including files a downloader named by the video's title and downloads left unfinished.
"""

from __future__ import annotations

import os
import posixpath
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence, Set as AbstractSet
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from pipeline.datasets.manifest import posix_path, without_video_extension
from pipeline.video import VIDEO_EXTENSIONS, hidden, leftover_videos

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
        where it lies under it (``../videos/a.mp4`` for the root ``videos/`` as ``a.mp4``) or
        where it is not a path of this machine (:meth:`from_elsewhere`:
        ``/a/b.mp4`` whose folder does not exist is taken as ``a/b.mp4``, and so is every path
        written on Windows, ``D:\\x.mp4`` as ``x.mp4``), absolute where it points outside the root."""
        if "\\" not in path and not written_absolute(path):
            return self._within(posix_path(path))  # the usual relative path, at once
        written = _slashed(path)
        if written.startswith("/"):
            if self._under_root(written):
                return "." if written == self._absolute_root else written[len(self._inside_root) :]
            if path.startswith("/") and "\\" not in path and os.path.isdir(os.path.join(self.root, posixpath.dirname(written))):
                return written
        return self._within(posix_path(written.lstrip("/")))

    def _within(self, relative: str) -> str:
        """A relative path in its normal form, one that leaves the root and comes back into it
        (``../videos/a.mp4`` for the root ``videos/``) as the path under it (``a.mp4``)."""
        if not relative.startswith("../"):
            return relative
        absolute = posixpath.normpath(posixpath.join(self._absolute_root, relative))
        return absolute[len(self._inside_root) :] if absolute.startswith(self._inside_root) else relative

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

    def find(self, path: str, other_forms: bool = True) -> str | None:
        """What ``path`` (:meth:`written`: relative to the root, or absolute) names on disk, or
        None: the name as written, else the name with a video extension, else, for a name with a
        video extension (``x.mp4`` in mmaction2's lists), the video kept with another one
        (``x.webm`` as downloaded) or the folder of its frames (``x/``). A path of letters
        beyond ASCII not found as written is looked for in Unicode's composed and decomposed
        forms (:data:`UNICODE_FORMS`; ``other_forms``), as a list and the files may each have
        come through macOS, whose file names were decomposed (``é`` as ``e`` and an accent)."""
        folder, name = posixpath.split(path)
        names, stems = self._listing(folder)
        candidates = _aliases(name)
        found = next((c for c in candidates if c in names), None) or next((stems[c] for c in candidates if c in stems), None)
        bare_name = without_video_extension(name)
        if found is None and bare_name != name:
            bare = _aliases(bare_name)
            found = next((stems[c] for c in bare if c in stems), None) or next((c for c in bare if c in names), None)
        if found is None and other_forms and not path.isascii():
            return next((hit for form in UNICODE_FORMS if (other := unicodedata.normalize(form, path)) != path and (hit := self.find(other, other_forms=False)) is not None), None)
        return None if found is None else posixpath.join(folder, found)


# The Unicode normal forms a path is looked for in where not found as written.
UNICODE_FORMS = ("NFC", "NFD")


def _slashed(path: str) -> str:
    """A list's path with ``/`` separators in its normal form (:func:`posix_path`), a Windows drive letter
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


# A cut Kinetics clip's name, as the common downloaders (cvdfoundation's, mmaction2's) and
# Kinetics' own annotations name it: ``<youtube_id>_<start:06d>_<end:06d>``, seconds.
CLIP_NAME = re.compile(r"(?P<youtube_id>.+)_(?P<start>\d{6})_(?P<end>\d{6})")


def clip_youtube_id(stem: str) -> str | None:
    """The YouTube id of a name that is a cut Kinetics clip's (:data:`CLIP_NAME`), else None
    (the cheap test first, as every file of a walked tree comes here)."""
    if len(stem) < 15 or stem[-7] != "_" or stem[-14] != "_":
        return None
    match = CLIP_NAME.fullmatch(stem)
    return match["youtube_id"] if match else None


@dataclass(frozen=True)
class Occurrence:
    """A file or folder the walk met of a wanted name (:func:`_occurrences`)."""

    folders: tuple[str, ...]  # from the root to the folder it lies in
    name: str  # the wanted name
    where: str  # its path relative to the root
    is_folder: bool  # a folder (of frames), not a video file
    as_clip: bool  # named as a cut clip of the name (``<name>_000010_000020``), not by the name


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
    video file whose stem is the name (in either Unicode form where ``names`` hold a name's
    composed one, as :func:`name_aliases` give them), or a folder so named, with or without a video extension
    (of frames: FrameExit's ``v_<id>.mp4/``; it is not entered, nor
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
    for hit in _occurrences(root, names, known, downloads):
        found.setdefault(hit.name, hit.where)
    return Found(downloads.titled | found, downloads.unfinished)


# The ids a downloader's default file name carries after the video's title: yt-dlp's
# ``%(title)s [%(id)s].%(ext)s`` (``<title>_[<id>]`` with --restrict-filenames) and youtube-dl's
# ``%(title)s-%(id)s.%(ext)s`` (YouTube's ids: 11 characters).
_BRACKETED_ID = re.compile(r"\[([^\[\]]+)\]$")
YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")


def titled_ids(stem: str) -> list[str]:
    """The video ids a downloader's default name, ``<title> [<id>]`` or ``<title>-<id>``,
    may carry in ``stem`` (none for other names; the cheap tests first, as every file of a
    tree not named by a wanted id comes here)."""
    ids = []
    if stem.endswith("]") and (match := _BRACKETED_ID.search(stem)):
        ids.append(match[1])
    if len(stem) > 12 and stem[-12] == "-" and YOUTUBE_ID.fullmatch(stem, len(stem) - 11):
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


def _occurrences(root: Path, names: AbstractSet[str], known: AbstractSet[str], downloads: DownloadedNames | None = None, clips: bool = False) -> Iterator[Occurrence]:
    """Every video file under ``root`` whose stem is one of ``names`` and every folder so
    named (or so named with a video extension, as FrameExit's frame folders ``v_<id>.mp4/``
    are), in :func:`find_under`'s order, by one walk that enters neither such folders nor those
    named in ``known``; with ``clips``, also every file and folder named as a cut Kinetics clip
    of one of ``names`` (``<name>_000010_000020``: :func:`clip_youtube_id`), which the walk does
    not enter either. Where ``downloads`` is given, what the walk meets of ``names`` under a
    downloader's names goes into it."""
    for folder, subfolders, files in walk_once(root):
        here = os.path.relpath(folder, root)
        parts, prefix = ((), "") if here == "." else (tuple(here.split(os.sep)), here.replace(os.sep, "/") + "/")
        videos = video_files(files)
        for stem, name in videos.items():
            if (wanted := _wanted(stem, names)) is not None:
                yield Occurrence(parts, wanted, prefix + name, False, False)
            elif clips and (youtube_id := clip_youtube_id(stem)) in names:
                yield Occurrence(parts, youtube_id, prefix + name, False, True)
        if downloads is not None:
            downloads.note(prefix, files, videos, names)
        entered = []
        for name in subfolders:
            stem = without_video_extension(name)  # a folder of frames may bear its video's file name, v_x.mp4/
            if (wanted := _wanted(stem, names)) is not None:
                yield Occurrence(parts, wanted, prefix + name, True, False)
            elif clips and (youtube_id := clip_youtube_id(stem)) in names:
                yield Occurrence(parts, youtube_id, prefix + name, True, True)
            elif stem not in known:
                entered.append(name)
        subfolders[:] = sorted(entered, key=lambda n: (not n.startswith("replacement"), n))


# What a folder's name may differ by where a tool renamed the folders its list was written for:
# mmaction2's rename_classnames.sh turns Kinetics' class folders as downloaded, ``passing
# American football (in game)``, into ``passing_American_football_-in_game-``, the names its lists hold.
_FOLDER_SEPARATORS = re.compile(r"[\s_()\-]+")


def folder_key(name: str) -> str:
    """A folder's name as :func:`find_whole` matches it where no folder bears it as written:
    case, quotes, runs of spaces, underscores, hyphens and parentheses, and the Unicode form
    (:func:`composed`) do not count."""
    return " ".join(_FOLDER_SEPARATORS.split(composed(name).casefold().replace("'", "").replace('"', ""))).strip()


def find_whole(root: Path, paths: list[str], known: AbstractSet[str] = frozenset(), loose: AbstractSet[int] = frozenset()) -> list[str | None]:
    """Where each of ``paths`` (relative, as :meth:`PathResolver.written` gives them) lies whole
    under a folder of the root, or None: ``videos_val/abseiling/x.mp4`` for ``abseiling/x.mp4``
    (mmaction2's Kinetics lists are relative to ``videos_train/`` and ``videos_val/``), the video
    under whatever extension or its folder of frames, by one walk (:func:`_occurrences`; frame
    folders named in ``known`` are not entered). Where both are there, what the path names: a
    video file for a path with a video extension, a folder of frames for one without; then the
    walk's first. The whole path must match, so a name that several folders hold (``a/001.mp4``,
    ``b/001.mp4``) is found only under its own folder; where no folder bears its folders' names
    as written, under folders whose names differ from them only as renamed class folders do
    (:func:`folder_key`: ``air_drumming/x.mp4`` in ``train/air drumming/``); but a path in ``loose`` (by index: one
    written absolute on another machine, ``/home/ann/k400/train/x.mp4`` where the root holds
    ``train/x.mp4``) needs only its last folders to match, as many as the tree holds: the
    occurrence with the longest such tail, the walk's first among equals; by its name alone (no
    folder matching) only where the tree holds that name once. A path whose name nothing bears
    so is found, by the same rules, in a file or folder named as a cut Kinetics clip of it
    (``abseiling/<id>`` in ``train/abseiling/<id>_000010_000020.mp4``: OCSampler's
    Mini-Kinetics lists name bare YouTube ids, the downloads cut clips; the walk's first where
    two clips of one id match). A path that names a cut Kinetics clip, a name no other video
    bears, is found by its name alone where no folder matches (mmaction2's
    ``abseiling/<clip>.mp4`` in cvdfoundation's flat ``train/<clip>.mp4``; the walk's first, a
    ``replacement*`` folder's copy before), and in a ``replacement*`` folder before any other
    (the good copy of a clip the download holds corrupted). A bare name (AR-Net's ActivityNet lists: ``v_<id>``) found
    nowhere is found in a file a downloader named by its default, a title then the id
    (:func:`titled_ids`), else gets the path its unfinished download is to give it
    (:class:`DownloadedNames`)."""
    wanted: dict[str, list[int]] = {}
    tails: list[tuple[str, ...]] = []  # each path's folders
    named_file: list[bool] = []  # whether the path names a video file (has a video extension)
    clip_named: list[bool] = []  # whether it has folders and names a cut Kinetics clip, which no other video's name is
    for i, path in enumerate(paths):
        folder, name = posixpath.split(path)
        tails.append(tuple(folder.split("/")) if folder else ())
        bare = without_video_extension(name)
        named_file.append(bare != name)
        clip_named.append(bool(folder) and i not in loose and CLIP_NAME.fullmatch(bare) is not None)
        for alias in _aliases(bare):
            wanted.setdefault(alias, []).append(i)
    # what the walk found of each path, by (a folder?, named as a cut clip of it?)
    hits: dict[tuple[bool, bool], list[str | None]] = {(f, c): [None] * len(paths) for f in (False, True) for c in (False, True)}
    renamed: dict[tuple[int, bool, bool], str] = {}  # (a path, a folder?, a clip?) -> the first found under its folders renamed
    keys_of: dict[tuple[str, ...], tuple[str, ...]] = {}  # folders -> their folder_key
    tails_held: dict[tuple[int, bool, bool], list] = {}  # (a loose path, a folder?, a clip?) -> [last folders matched, where, occurrences matching as many]
    anywhere: dict[bool, list[str | None]] = {False: [None] * len(paths), True: [None] * len(paths)}  # a clip-named path's name, in any folder: by a folder?
    downloads = DownloadedNames()
    for hit in _occurrences(root, set(wanted), known, downloads, clips=True):
        slot = (hit.is_folder, hit.as_clip)
        kind = hits[slot]
        for i in wanted[hit.name]:
            tail, key = tails[i], (i, *slot)
            if clip_named[i] and not hit.as_clip:
                anywhere[hit.is_folder][i] = anywhere[hit.is_folder][i] or hit.where
            if i in loose:
                matched, best = _shared_tail(hit.folders, tail), tails_held.get(key)
                if best is None or matched > best[0]:
                    tails_held[key] = [matched, hit.where, 1]
                elif matched == best[0]:
                    best[2] += 1
            elif kind[i] is None and (not tail or hit.folders[-len(tail) :] == tail):
                kind[i] = hit.where
            elif kind[i] is None and len(hit.folders) >= len(tail) and key not in renamed:
                near = hit.folders[-len(tail) :]
                if _keys(near, keys_of) == _keys(tail, keys_of):
                    renamed[key] = hit.where
    for (i, is_folder, as_clip), where in renamed.items():
        kind = hits[is_folder, as_clip]
        kind[i] = kind[i] or where
    for (i, is_folder, as_clip), (matched, where, count) in tails_held.items():
        if matched > 0 or count == 1:  # by name alone only where the name lies once in the tree
            hits[is_folder, as_clip][i] = where
    found = []
    for i, by_file in enumerate(named_file):
        elsewhere = _preferred(anywhere[False][i], anywhere[True][i], by_file) if clip_named[i] else None
        if elsewhere is not None and _REPLACEMENT_FOLDER.search(elsewhere):
            found.append(elsewhere)  # the good copy of a clip the download holds corrupted
        else:
            found.append(_preferred(hits[False, False][i], hits[True, False][i], by_file) or _preferred(hits[False, True][i], hits[True, True][i], by_file) or elsewhere)
    for name, at in chain(downloads.titled.items(), downloads.unfinished.items()):
        for i in wanted[name]:
            if not tails[i] and i not in loose and found[i] is None:
                found[i] = at
    return found


# A folder of good copies of corrupted clips, as cvdfoundation's Kinetics-400 download holds them
# (``replacement/replacement_for_corrupted_k400/``), in a path relative to the root.
_REPLACEMENT_FOLDER = re.compile(r"(^|/)replacement[^/]*/")


def _preferred(file: str | None, folder: str | None, by_file: bool) -> str | None:
    """Of a video file and a folder of frames found for one path, the video file for a path
    that names one (a video extension), else the folder; whichever is there."""
    return (file or folder) if by_file else (folder or file)


def find_listed(resolver: PathResolver, paths: list[str]) -> list[str | None]:
    """Where each of a list's ``paths`` lies (relative to the root, absolute outside it), or
    None: as written (:meth:`PathResolver.find`); else a relative path is looked for whole under
    the root's folders (:func:`find_whole`, one walk for all: mmaction2's lists relative to
    ``videos_train/``), one written absolute on another machine by its last folders."""
    found: list[str | None] = []
    lost: list[tuple[int, str]] = []  # relative paths not where written
    foreign: set[int] = set()  # of those, the ones written absolute on another machine: found by their last folders
    for i, path in enumerate(paths):
        written = resolver.written(path)
        found.append(resolver.find(written))
        if found[-1] is None and not written.startswith("/"):
            if resolver.from_elsewhere(path):
                foreign.add(len(lost))
            lost.append((i, written))
    if lost:
        known = {alias for path in paths for alias in name_aliases(path)}  # frame folders the walk does not enter
        for (i, _), rel in zip(lost, find_whole(resolver.root, [written for _, written in lost], known, foreign)):
            found[i] = rel
    return found


def find_beside(resolver: PathResolver, folder: Path, paths: list[str]) -> list[str | None]:
    """Where under the root each of ``paths``, a list's relative paths not found there as
    written, lies relative to the list's own ``folder`` (``../videos/a.mp4`` in
    ``lists/train.txt``, the data root holding both; ``videos/a.mp4`` in a list beside
    ``videos/``, the root given as ``videos/``), as :meth:`PathResolver.find` finds it there,
    relative to the root; None where it is not there or not under the root (a root given wrong
    stays said so, the manifest's paths relative to the root), for paths written absolute (on
    this machine or another), and for all where the folder is the root."""
    base = os.path.abspath(folder)
    beside = PathResolver(Path(base))
    found: list[str | None] = []
    for path in paths:
        hit = None if base == os.path.abspath(resolver.root) or written_absolute(path) else beside.find(resolver.written(path))
        under = None if hit is None else resolver.written(os.path.normpath(os.path.join(base, hit)))
        found.append(None if under is None or under.startswith("/") else under)
    return found


def _keys(folders: tuple[str, ...], known: dict[tuple[str, ...], tuple[str, ...]]) -> tuple[str, ...]:
    """The :func:`folder_key` of each of ``folders``, kept in ``known`` (the walk meets a folder
    once for each of its videos)."""
    if folders not in known:
        known[folders] = tuple(folder_key(name) for name in folders)
    return known[folders]


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
        aliases = [name_aliases(written) for written in paths]
        elsewhere = find_under(root, {name for i in lost for name in aliases[i]}, {name for names in aliases for name in names})
        for i in lost:
            hit = elsewhere.first(aliases[i])
            found[i] = hit[1] if hit else None
    return found


def name_aliases(path: str) -> tuple[str, ...]:
    """The aliases (:func:`_aliases`) of the file or folder name a list's path ends in, without
    its video extension (``train\\v_x.mp4`` -> ``v_x``, ``x``)."""
    return _aliases(without_video_extension(posixpath.basename(_slashed(path))))


def _aliases(name: str) -> tuple[str, ...]:
    """A name as written, and with ActivityNet's ``v_`` prefix added or removed; for a name of
    letters beyond ASCII, both also in Unicode's composed form (:func:`composed`), the form the
    walks compare names in where a file's name is not wanted as written."""
    toggled = name[2:] if name.startswith("v_") else f"v_{name}"
    if name.isascii():
        return name, toggled
    return tuple(dict.fromkeys((name, toggled, composed(name), composed(toggled))))


def composed(name: str) -> str:
    """``name`` in Unicode's composed form (NFC: ``é`` one letter, not ``e`` and an accent as
    macOS's file names held it)."""
    return unicodedata.normalize("NFC", name)


def _wanted(name: str, names: AbstractSet[str]) -> str | None:
    """The one of ``names`` a file or folder name found by a walk is: itself, else, for a name
    beyond ASCII, its composed form (:func:`_aliases` puts every wanted name's there)."""
    if name in names:
        return name
    if not name.isascii() and (form := composed(name)) in names:
        return form
    return None
