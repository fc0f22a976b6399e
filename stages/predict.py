"""``nsnet predict``: NSNet on new videos with the trained artefacts of a pipeline run.

``--run`` is a sampler run of ``nsnet train`` (``<features cache>.train-<fingerprint>/``). The
feature cache beside it says how the two backbones were built and how their frames were
preprocessed; both are rebuilt exactly so (a changed checkpoint is refused), the trained heads
are loaded, and every video goes through :func:`pipeline.inference.predict_videos`. Results: a
table on the terminal, ``predictions.jsonl`` (written as the videos finish) and, with ``--plot``,
one PNG per video.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from pipeline.backends import DEFAULT_EXPORT_DIR, make_heads
from pipeline.cache import CacheError, FeatureCache, clear_partials, fingerprint, is_partial, json_object, output_lock, replacing, write_text_atomic
from pipeline.checked_files import checked_json
from pipeline.config import DECODE_TIMEOUT_S, PREDICT_BATCH, EvalConfig
from pipeline.datasets.finding import walk_once
from pipeline.datasets.lists import entry_lines, is_header
from pipeline.datasets.manifest import ManifestError, read_annotation_text
from pipeline.decoders import DECODER_RULES, looked_into, misread_before
from pipeline.distributed import WHOLE, Share
from pipeline.file_rights import first_unwritable, owner_said
from pipeline.extract import BothModels, Transform, workers_within_shared_memory
from pipeline.inference import NSNetInference, ObservationDecoder, VideoPrediction, predict_frames, predict_videos
from pipeline.output_kinds import SAMPLER_RUN, folder_kind, named, output_kind
from pipeline.plots import matplotlib_available, plot_video_saliency
from pipeline.shared_caches import cache_folders
from pipeline.video import FRAME_EXTENSIONS, VIDEO_EXTENSIONS, failure_summary, hidden, unfinished_video
from pipeline.wording import first_few
from stages.evaluate_report import text_table
from stages.features import build_runners, cached_model
from stages.train import SamplerShape, load_trained_sampler, read_run_model

RUN_MARKER = ".train-"


# Videos listed in predict's table on the terminal (every one is in predictions.jsonl).
PREDICT_ROWS_SHOWN = 20


@dataclass
class TrainedPipeline:
    """Everything NSNet needs at inference, from one pipeline run."""

    run_dir: Path
    features: Path
    dataset: str
    classes: tuple[str, ...]
    num_frames: int
    engine: NSNetInference
    light_tf: Transform
    rec_tf: Transform
    light_input: tuple[int, ...]  # the models' input sizes (their data configs')
    rec_input: tuple[int, ...]

    @functools.cached_property
    def models(self) -> BothModels:
        """How decoded frames become both backbones' frames, as the features stage made them."""
        return BothModels(self.light_tf, self.rec_tf)

    def predict_frames(self, frames: np.ndarray, name: str = "frames") -> VideoPrediction:
        """NSNet on one video's T observation frames decoded by the caller (uint8 RGB
        ``[T, H, W, 3]``; :func:`pipeline.inference.predict_frames`)."""
        return self.predict_batch([frames], [name])[0]

    def predict_batch(self, videos: Sequence[np.ndarray], names: Sequence[str] | None = None, batch_size: int = PREDICT_BATCH) -> list[VideoPrediction]:
        """NSNet on several videos' T observation frames decoded by the caller, ``batch_size``
        videos at a time through the models (:func:`pipeline.inference.predict_frames`), so
        that what the models hold does not grow with the number of videos given."""
        return predict_frames(self.engine, self.models, videos, self.num_frames, names, batch_size)


def features_of_run(run_dir: Path) -> Path:
    """The feature cache a sampler run was trained on (its folder name is the run's prefix),
    there or not."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CacheError(named(run_dir, "a sampler run", "no such sampler run directory", itself=SAMPLER_RUN))
    if RUN_MARKER not in run_dir.name:
        raise CacheError(named(run_dir, "a sampler run", f"not a sampler run directory (those are made by `nsnet train` and named <features cache>{RUN_MARKER}<fingerprint>)", itself=SAMPLER_RUN))
    return run_dir.with_name(run_dir.name.rsplit(RUN_MARKER, 1)[0])


def run_backbones(run_dir: Path) -> tuple[Path, dict[str, Any], str, SamplerShape]:
    """(feature cache, its attributes, its content fingerprint, the sampler's shape) of a sampler
    run: read from the cache where it is there, else from the run's ``model.pth``, which keeps
    what predict reads of them since 2026-12-07 (:func:`~stages.train.backbone_attrs`: a run
    folder copied to another machine without the dataset's features)."""
    features = features_of_run(run_dir)
    if features.exists():
        with FeatureCache(features) as cache:
            attrs, content = cache.attrs, cache.content_fingerprint
            _, t, dim = cache["light_features"].shape
        return features, attrs, content, SamplerShape(dim, t, len(attrs["manifest"]["classes"]))
    saved = read_run_model(run_dir, weights_only=True) if (run_dir / "model.pth").is_file() else {}
    if "backbones" not in saved:
        raise CacheError(f"{features}: the feature cache of the sampler run {run_dir} is missing; predict reads how the backbones were built from it (a run trained since 2026-12-07 keeps that in its model.pth)")
    return features, saved["backbones"], saved["features_fingerprint"], SamplerShape(**saved["shape"])


def load_pipeline(run_dir: Path, cfg: EvalConfig, device: torch.device, dataset: str | None = None, backend: str = "auto", export_dir: Path = DEFAULT_EXPORT_DIR) -> TrainedPipeline:
    """The backbones (run with ``backend``; ONNX exports kept in ``export_dir``), trained heads
    and fusion of a run; with ``dataset``, refuse a run that was trained on another dataset."""
    run_dir = Path(run_dir)
    features, attrs, content, shape = run_backbones(run_dir)
    t, dim = shape.num_frames, shape.dim
    cfg.check_k(t)
    trained_on = attrs["identity"]["dataset"]
    if dataset is not None and trained_on != dataset:
        raise CacheError(f"{run_dir}: this run was trained on the {trained_on!r} dataset, not {dataset!r}")
    classes = tuple(attrs["manifest"]["classes"])
    sampler, _, train_cfg = load_trained_sampler(run_dir, content, shape, device)
    light, light_tf = cached_model(attrs, "light", cache_folders(features))
    recognizer, rec_tf = cached_model(attrs, "recognizer", cache_folders(features))
    light_runner, rec_runner = build_runners(light, recognizer, attrs["data_configs"]["light"], attrs["data_configs"]["recognizer"], device, backend, export_dir)
    heads = make_heads(sampler, train_cfg.fsm_target, t, dim, device, backend, export_dir)
    engine = NSNetInference(light_runner, heads, rec_runner, cfg.k, cfg.fusion, cfg.alpha, device)
    inputs = {name: tuple(attrs["data_configs"][name]["input_size"]) for name in ("light", "recognizer")}
    return TrainedPipeline(run_dir, features, trained_on, classes, t, engine, light_tf, rec_tf, inputs["light"], inputs["recognizer"])


def _holds_frames(folder: Path) -> bool:
    """A folder of extracted frames: image files and no video file (hidden files aside). Images
    beside videos are their thumbnails (yt-dlp's ``--write-thumbnail`` leaves a ``.jpg`` by each
    download); a folder of the toolkit's outputs holds its plots
    (:func:`~pipeline.output_kinds.folder_kind`: a sampler run's ``curves.png``)."""
    with os.scandir(folder) as entries:
        names = {entry.name for entry in entries if not hidden(entry.name) and _is_file(entry)}
    suffixes = {Path(name).suffix.lower() for name in names}
    return not suffixes.isdisjoint(FRAME_EXTENSIONS) and suffixes.isdisjoint(VIDEO_EXTENSIONS) and folder_kind(names) is None


def _is_file(entry: os.DirEntry) -> bool:
    """Whether a folder's entry is a file, through links; a link that loops is none (``is_file``
    raises for it)."""
    try:
        return entry.is_file()
    except OSError:
        return False


# Unfinished downloads named in predict's warning that it passed them over.
LEFTOVERS_NAMED = 3


def _videos_under(folder: Path) -> list[Path]:
    """The video files (by extension) and folders of frames under ``folder``, sorted. Links to
    folders are followed, each folder entered once (a link cycle ends there); a folder of frames
    is not entered, nor is a folder of the toolkit's outputs that holds no video (a feature
    cache's store, a sampler run: :func:`~pipeline.output_kinds.folder_kind`). The formats of a yt-dlp download never merged (``x.f137.mp4``, the picture
    alone; ``x.f251.webm``, the sound) and a merge stopped (``x.temp.mp4``) are no videos to
    predict: passed over, with a warning."""
    found: list[Path] = []
    left: list[str] = []
    for here, subfolders, files in walk_once(folder):
        videos = [name for name in files if Path(name).suffix.lower() in VIDEO_EXTENSIONS]
        if not videos and folder_kind(set(files)) is not None:  # the toolkit's outputs (a cache's Zarr store): not entered
            subfolders.clear()
            continue
        for name in videos:
            if unfinished_video(name):
                left.append(name)
            else:
                found.append(Path(here, name))
        frames = [name for name in subfolders if _holds_frames(Path(here, name))]
        found += [Path(here, name) for name in frames]
        subfolders[:] = [name for name in subfolders if name not in frames]
    if left:
        warnings.warn(f"{folder}: passed over {len(left)} file(s) of downloads yt-dlp never merged ({first_few(sorted(left), LEFTOVERS_NAMED)}): finish or redo those downloads, or name such a file to predict it", stacklevel=2)
    return sorted(found)


def listed_videos(listing: Path, root: Path | None = None) -> list[Path]:
    """The paths of a list of videos (``--videos-from``): one a line, as ``find`` or ``ls``
    print them (a line is a path whole, spaces and all), relative to ``root`` (``--videos-root``)
    or, without one, to the current folder as paths on the command line are, else, where not
    there, to the list's own folder (``cd videos && find . -name '*.mp4' > list.txt``, predicted
    from elsewhere); blank lines and ``#`` comments skipped. A dataset's
    annotation list serves too (:func:`listed_path`: ``val/x.mp4 3``, ``x.mp4,abseiling``, a
    header line naming the columns passed over). ``-`` reads the standard input. Read as
    annotation files are (UTF-8 with or without its byte-order mark, UTF-16 with its mark, CRLF
    allowed)."""
    if Path(listing).is_dir() and output_kind(listing) is None:
        raise ManifestError(f"{listing}: a folder; give it as an argument, `nsnet predict {listing}` (--videos-from takes a file listing videos or folders)")
    text = sys.stdin.read() if str(listing) == "-" else read_annotation_text(listing, "list of videos")
    lines = [line for _, line in entry_lines(text)]
    if lines and is_header(lines[0]) and not os.path.exists(os.path.join(root or "", lines[0])):
        lines = lines[1:]
    paths = [listed_path(line, root or "") for line in lines]
    if root is None and str(listing) != "-":
        beside = Path(listing).parent
        paths = [path if path.is_absolute() or path.exists() or not (there := listed_path(line, beside)).exists() else there for line, path in zip(lines, paths)]
    return paths


_FIELD_BREAK = re.compile(r"[\s,;]+")


def listed_path(line: str, root: Path | str = "") -> Path:
    """The video of a line of a list of videos, under ``root`` (an absolute path stays as
    written): the line whole where it is there, else the longest part before a space, comma or
    ``;`` that is a video file or a folder of frames (an annotation list's line, its labels or
    frame counts after the path: mmaction2's ``val/x.mp4 3``, a csv's ``x.mp4,abseiling``, its
    path quoted or not); where none is, reported as not found: the longest part named as a
    video file (``val/gone.mp4`` of ``val/gone.mp4 4``) where the line whole is not, else the
    line whole. A line in double quotes whole (Windows Explorer's "Copy as path", ``ls -Q``)
    is its path without them."""
    if len(line) >= 2 and line[0] == line[-1] == '"' and '"' not in line[1:-1]:
        line = line[1:-1]
    breaks = list(_FIELD_BREAK.finditer(line))
    whole = os.path.join(root, line)
    if not breaks or os.path.exists(whole):  # a path as find prints it, looked at once later
        return Path(whole)
    named_video = None
    for field_break in reversed(breaks):
        head = os.path.join(root, line[: field_break.start()].strip('"'))  # a csv's quoted path
        is_video_name = os.path.splitext(head)[1].lower() in VIDEO_EXTENSIONS
        if (is_video_name and os.path.isfile(head)) or (os.path.isdir(head) and _holds_frames(Path(head))):
            return Path(head)
        named_video = named_video or (head if is_video_name else None)
    return Path(named_video if named_video and os.path.splitext(line)[1].lower() not in VIDEO_EXTENSIONS else whole)


def find_videos(inputs: Sequence[Path]) -> list[Path]:
    """Every video named or found under the inputs: video files (by extension) and folders of
    extracted frames. A path that is neither a folder of videos nor a video is kept as given, so
    that it is reported with its problem; a folder of the toolkit's outputs holding no video (a
    sampler run given among the videos) is an error naming it. A video given twice (a folder and a list naming its
    files) is kept once, where first given."""
    found: list[Path] = []
    for path in map(Path, inputs):
        if path.is_dir() and not _holds_frames(path):  # the toolkit's outputs hold no frames (_holds_frames)
            under = _videos_under(path)
            if not under and (kind := output_kind(path)) is not None:
                raise ManifestError(f"{path}: {kind}; not a video or a folder of videos")
            found.extend(under or [path])
        else:
            found.append(path)
    return list(dict.fromkeys(found))


@dataclass
class PredictResult:
    """What a predict run did, in memory that does not grow with the videos' scores: every
    prediction is in the JSONL file, and this keeps the first ``PREDICT_ROWS_SHOWN`` of them
    (without thumbnails) for the table, the failed videos (a path and a reason each, an earlier
    run's too) and the counts (``earlier``: the videos an earlier run had written, kept)."""

    pipeline: TrainedPipeline
    jsonl: Path
    share: Share = WHOLE  # of the videos given
    shown: list[VideoPrediction] = field(default_factory=list)
    failures: list[VideoPrediction] = field(default_factory=list)
    videos: int = 0
    plots: list[Path] = field(default_factory=list)
    earlier: int = 0
    earlier_shown: list[dict] = field(default_factory=list)  # the first of the earlier run's lines
    again: int = 0  # videos of earlier lines predicted again: their files changed (or failures retried)
    misread: int = 0  # videos of earlier lines predicted again: decord misread their files then (misread_earlier)
    gone: int = 0  # earlier lines dropped: their videos are no longer among the inputs
    adopted: dict[str, int] = field(default_factory=dict)  # lines taken from another division's or other settings' files (adopted_lines), by folder
    set_aside: tuple[Path, int] | None = None  # where an earlier file of other settings went, and its lines (set_aside)
    short: int = 0  # videos read short (files cut short), this run's and the earlier lines'

    @property
    def total(self) -> int:
        """The videos in the JSONL file: this run's and an earlier one's."""
        return self.videos + self.earlier

    def add(self, prediction: VideoPrediction) -> None:
        self.videos += 1
        if len(self.shown) < PREDICT_ROWS_SHOWN:
            self.shown.append(replace(prediction, thumbnails=None))
        if not prediction.ok:
            self.failures.append(prediction)
        self.short += prediction.read_short is not None

    def add_earlier(self, line: dict) -> None:
        """A video that an earlier run with this identity wrote into the file (its JSON line)."""
        self.earlier += 1
        if len(self.earlier_shown) < PREDICT_ROWS_SHOWN:
            self.earlier_shown.append(line)
        if "error" in line:
            self.failures.append(VideoPrediction(line["video"], line["error"]))
        self.short += "read_short" in line

    def table(self) -> str:
        """The first ``PREDICT_ROWS_SHOWN`` videos of the file (all of them are in it), and the
        failures counted by kind."""
        shown = [*self.earlier_shown, *(p.to_json(self.pipeline.classes) for p in self.shown)][:PREDICT_ROWS_SHOWN]
        engine = self.pipeline.engine
        which = "" if self.share == WHOLE else f" (share {self.share[0]}/{self.share[1]} of those given)"
        head = f"NSNet on {self.total:,} video(s){which}: K={engine.k} of T={self.pipeline.num_frames}, {engine.fusion} fusion, backbones on {engine.light.backend}, run {self.pipeline.run_dir}"
        lines = [head, *text_table(("video", "top-1 (score)", "top-2..5", "chosen frames (index@time)"), [_table_row(line) for line in shown])]
        if self.total > len(shown):
            lines.append(f"... and {self.total - len(shown):,} more")
        if self.earlier:
            lines.append(f"{self.earlier:,} of them predicted by an earlier run with this configuration, their files unchanged since: kept in the file, not predicted again")
        if self.again:
            lines.append(f"{self.again:,} predicted again: their files changed since an earlier run (size or modification time), or their failures were retried")
        if self.misread:
            lines.append(f"{self.misread:,} predicted again: decord read them, as it did every file it opened before 2026-12-06 (night), and misread them; PyAV reads them now")
        if self.gone:
            lines.append(f"{self.gone:,} earlier line(s) dropped: their videos are no longer among the inputs")
        if self.set_aside:
            lines.append(f"{self.set_aside[1]:,} earlier prediction(s) of other settings set aside in {self.set_aside[0]}, with their plots")
        if self.adopted:
            whole = f"cat {self.jsonl.parent.parent}/share-*-of-{self.share[1]}/predictions.jsonl" if self.share != WHOLE else str(self.jsonl)
            lines.append(f"{sum(self.adopted.values()):,} of them taken from the predictions of another division of the videos or set aside, with this configuration ({', '.join(f'{n:,} from {folder}' for folder, n in self.adopted.items())}): not predicted again; {whole} is the whole once every share is through")
        lines.append(f"written {self.jsonl}")
        if self.plots:
            lines.append(f"{len(self.plots)} saliency plot(s) in {self.plots[0].parent}")
        if self.short:
            lines.append(f"{self.short:,} video(s) read short: cut short, predicted from the frames that decode (\"read_short\" in their lines)")
        if self.failures:
            reasons = [p.error.removeprefix(f"{p.path}: ") for p in self.failures]
            lines.append(f"{len(self.failures):,} video(s) failed: {failure_summary(reasons)}")
        return "\n".join(lines)


def _table_row(line: dict) -> tuple[str, str, str, str]:
    """A video's row of predict's table, from its JSON line."""
    name = Path(line["video"]).name
    if "error" in line:
        return name, "FAILED", line["error"], ""
    top, times = line["top5"], line["timestamps"] or [None] * len(line["frames"])
    frames = " ".join(f"{i}" + ("" if t is None else f"@{t:.2f}s") for i, t in zip(line["frames"], times))
    return name, f"{top[0]['class']} ({top[0]['score']:.3f})", ", ".join(f"{c['class']} {c['score']:.3f}" for c in top[1:]), frames


def _plot_name(path: str, taken: set[str]) -> str:
    stem = Path(path).stem or "video"
    name, n = f"{stem}.png", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.png"
    taken.add(name)
    return name


def predictions_identity(run_dir: Path, cfg: EvalConfig, backend: str, plot: bool) -> dict:
    """What decides every line of a predictions file: the sampler run, the frame choice, the
    backend (resolved) and whether plots are drawn. Which videos, and their files, decide the
    lines one by one (:func:`file_stamp`). ``lines`` 2: each line carries its file's stamp."""
    return {
        "run": str(Path(run_dir).resolve()),
        "k": cfg.k,
        "fusion": cfg.fusion,
        "alpha": cfg.alpha,
        "backend": backend,
        "plot": plot,
        "lines": 2,
    }


def file_stamp(path: Path) -> dict | None:
    """A video's size and modification time (of its file, or of its folder of frames, whose time
    frames added, removed or renamed change), None where nothing is there: a predictions line
    stands for its video while the stamp is the same, as ``make`` judges a target by its
    sources' times."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def config_path(jsonl: Path) -> Path:
    """Where the identity of a predictions file's run is written: beside it."""
    return jsonl.with_name(jsonl.stem + ".config.json")


def same_run(jsonl: Path, identity: dict) -> bool:
    """Whether ``jsonl`` holds the lines of an earlier run with this identity. Where it holds
    lines and its identity file (:func:`config_path`) is missing or damaged, which run made them
    cannot be told: a :class:`~pipeline.cache.CacheError` naming both, where the lines were
    emptied without a word before (hours of predictions at a dataset's size)."""
    config = config_path(jsonl)
    if not jsonl.is_file() or jsonl.stat().st_size == 0:
        return False
    remedy = f"the {jsonl.stat().st_size:,} bytes of predictions in {jsonl} are of a run it no longer names: restore it, or remove both files to predict every video again"
    if not config.is_file():
        raise CacheError(f"{config}: missing; {remedy}")
    return checked_json(config, remedy) == identity


def earlier_line(raw: bytes) -> dict | None:
    """A predictions file's line as written (an object naming its ``video``); None where it
    is damaged (a byte changed: not JSON, or JSON of another shape)."""
    line = json_object(raw, ("video",))
    return line if line is not None and isinstance(line["video"], str) else None


def go_on(jsonl: Path, identity: dict, judge: Callable[[dict], dict | None]) -> list[tuple[str, str | None]] | None:
    """Make ``jsonl`` the lines of an earlier run with this identity that still stand: a last line
    cut short by a kill is cut, the lines ``judge`` rejects (None) are dropped and those it
    amends (another line) written amended (the file written whole, :func:`replacing`, where any
    is); the dropped lines' videos and plots. A damaged line is dropped with a warning naming
    it, its video predicted again (the whole file was written anew before). None where there is
    no such run: the file is then written anew (an earlier one's lines set aside first,
    :func:`set_aside`)."""
    if not same_run(jsonl, identity):
        return None
    whole, dropped, amended, damaged = 0, [], {}, []
    with open(jsonl, "rb") as handle:
        for number, raw in enumerate(handle):
            if not raw.endswith(b"\n"):
                break
            line = earlier_line(raw)
            if line is None:
                damaged.append(number)
                amended[number] = None
                whole += len(raw)
                continue
            judged = judge(line)
            if judged is None:
                dropped.append((line["video"], line.get("plot")))
            if judged is not line:
                amended[number] = None if judged is None else (json.dumps(judged) + "\n").encode()
            whole += len(raw)
    if amended:
        with replacing(jsonl) as tmp, open(jsonl, "rb") as old, open(tmp, "wb") as new:
            kept = (amended.get(number, raw) for number, raw in enumerate(old) if raw.endswith(b"\n"))
            new.writelines(line for line in kept if line is not None)
    elif whole < jsonl.stat().st_size:
        os.truncate(jsonl, whole)
    if damaged:
        warnings.warn(f"{jsonl}: line{'s' if len(damaged) > 1 else ''} {first_few([str(n + 1) for n in damaged], 3)} damaged (not a prediction's JSON: a disk error, or an edit): dropped, {'their videos' if len(damaged) > 1 else 'its video'} predicted again", RuntimeWarning, stacklevel=3)
    return dropped


def misread_earlier(jsonl: Path, stamps: dict[str, dict | None], progress: bool) -> set[str]:
    """The videos of ``jsonl``'s lines predicted under older decoder rules than
    :data:`~pipeline.decoders.DECODER_RULES` (lines without ``decoder_rules``: before them),
    from files unchanged since (``stamps``), that decord misread then (:func:`misread_before`),
    each file looked into once (:func:`looked_into`); damaged lines passed over (:func:`go_on`
    drops them)."""
    older = []
    for line in _whole_lines(jsonl):
        video = line["video"]
        if abs(line.get("decoder_rules", 0)) < DECODER_RULES and line.get("file") == stamps.get(video) and os.path.isfile(video):
            older.append(video)
    return {video for video, why in zip(older, looked_into(older, misread_before, progress)) if why}


def _whole_lines(path: Path, raw: bool = False) -> Iterator[Any]:
    """The lines of a predictions file that are whole (read as :func:`earlier_line` reads them;
    a damaged one or a last one cut short passed over), each with its bytes where ``raw``."""
    with open(path, "rb") as handle:
        for data in handle:
            line = earlier_line(data) if data.endswith(b"\n") else None
            if line is not None:
                yield (line, data) if raw else line


def predictions_to_take(out_dir: Path, share: Share) -> list[Path]:
    """The predictions files in ``out_dir`` whose lines ``share`` may take (:func:`adopted_lines`):
    those of another division of the videos than ``share``'s (:func:`share_folder`), the whole
    run's and the shares of another count (a job array of 4 launched again on 8 nodes, or a whole
    run finishing what shares left), and the files of other settings set aside in these folders
    and in its own (:func:`set_aside`: K changed and back again)."""
    root, mine = Path(out_dir), share_folder(out_dir, share)
    count = f"-of-{share[1]}"
    others = [folder for folder in [root, *sorted(root.glob("share-*-of-*"))] if folder != mine and not (share != WHOLE and folder.name.endswith(count))]
    files = [folder / "predictions.jsonl" for folder in others]
    files += [file for folder in (mine, *others) for file in sorted(folder.glob(f"{EARLIER}/*/predictions.jsonl"))]
    return [file for file in files if file.is_file()]


# Where a predictions file of other settings is kept when a run writes its own (set_aside).
EARLIER = "earlier"


def set_aside(jsonl: Path) -> tuple[Path, int]:
    """The lines of ``jsonl``, predicted with other settings than this run's, moved with their
    configuration and the plots they name into ``earlier/<settings' fingerprint>/`` beside it
    (emptied before the fifty-seventh session: a changed ``--k`` threw a finished run away),
    joined to the lines set aside there before of the videos it has none of (a subset run with
    those settings between replaced none of them); the folder and the lines moved. A run with
    those settings takes them back (:func:`predictions_to_take`)."""
    config = config_path(jsonl)
    folder = jsonl.parent / EARLIER / fingerprint(json.loads(config.read_bytes()))[:16]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / jsonl.name
    incoming = {line["video"] for line in _whole_lines(jsonl)}
    taken: set[str] = set()  # the plot names of the lines kept there
    with replacing(target) as tmp, open(tmp, "wb") as merged:
        for line, raw in _whole_lines(target, raw=True) if target.is_file() else ():
            if line["video"] not in incoming:
                merged.write(raw)
                taken.update([line["plot"]] if "plot" in line else [])
        for line, raw in _whole_lines(jsonl, raw=True):
            if "plot" in line:
                name = line["plot"] if line["plot"] not in taken else _plot_name(line["video"], taken)
                taken.add(name)
                if (jsonl.parent / line["plot"]).is_file():
                    os.replace(jsonl.parent / line["plot"], folder / name)
                raw = raw if name == line["plot"] else (json.dumps({**line, "plot": name}) + "\n").encode()
            merged.write(raw)
        shutil.copyfile(config, config_path(target))  # first: lines never lie without theirs
    return folder, len(incoming)


def adopted_lines(files: Sequence[Path], identity: dict, wanted: dict[str, dict | None], retry_failed: bool) -> Iterator[tuple[dict, Path]]:
    """The whole lines of ``files`` (another division's predictions, or other settings' set
    aside: :func:`predictions_to_take`) written with this ``identity`` for the videos ``wanted`` whose files are unchanged (their
    stamps) under the current decoder rules (failed ones too, unless ``retry_failed``), each
    with its folder, a video's first; a file whose identity is damaged is passed over."""
    found: set[str] = set()
    for path in files:
        try:
            if not same_run(path, identity):
                continue
        except CacheError:
            continue
        for line in _whole_lines(path):
            video = line["video"]
            if video in wanted and video not in found and line.get("file") == wanted[video] and abs(line.get("decoder_rules", 0)) >= DECODER_RULES and not (retry_failed and "error" in line):
                found.add(video)
                yield line, path.parent


def linked_or_copied(source: Path, destination: Path) -> None:
    """``destination`` made the file ``source`` is: a hard link (no bytes copied, and the file
    outlives ``source``'s folder), or a copy where the file system has none."""
    destination.unlink(missing_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def share_folder(out_dir: Path, share: Share) -> Path:
    """Where ``share`` of a predict run writes: ``out_dir`` for the whole, else its
    ``share-i-of-n/`` folder (its own lines, plots, configuration and lock)."""
    return Path(out_dir) if share == WHOLE else Path(out_dir) / f"share-{share[0]}-of-{share[1]}"


def run_predict(inputs: Sequence[Path], run_dir: Path, out_dir: Path, cfg: EvalConfig = EvalConfig(), device: str = "cpu", dataset: str | None = None, batch_size: int = PREDICT_BATCH, workers: int = 2, plot: bool = False, progress: bool = True, backend: str = "auto", export_dir: Path = DEFAULT_EXPORT_DIR, decode_timeout: float = DECODE_TIMEOUT_S, retry_failed: bool = False, share: Share = WHOLE) -> PredictResult:
    """Predict every video under ``inputs`` (with ``share`` (i, n), the videos at i, i+n, ... of
    their list, into :func:`share_folder`, so that torchrun ranks and ``--shard`` jobs divide
    them); bad videos are reported in the result, not raised.
    One process writes into ``out_dir`` at a time (:func:`output_lock` of its predictions). Run
    again with the same identity (:func:`predictions_identity`), it goes on from the file there:
    the lines of videos among ``inputs`` whose files are unchanged (:func:`file_stamp`) are kept
    and not predicted again (failed ones are, with ``retry_failed``), the lines of videos changed
    or no longer given are dropped, and the rest is predicted: an interrupted run goes on where
    it stopped, and a folder that grew costs its new videos alone."""
    if plot and not matplotlib_available():
        raise ValueError("--plot needs matplotlib: install the 'plots' extra (pip install 'nsnet[plots]')")
    jsonl = share_folder(out_dir, share) / "predictions.jsonl"
    if (entry := first_unwritable([jsonl.parent, jsonl, config_path(jsonl)], deep=False)) is not None:  # its plots not walked: a file a video
        raise CacheError(f"{entry}: {owner_said(entry)}, which this process cannot write, and predict goes on from the predictions in {jsonl.parent}; "
                         "give --out a folder of yours (the default, <cache-dir>/predict, is shared by everyone who uses that --cache-dir)")
    with output_lock(jsonl, hint="it is predicting into the same folder; wait for it to finish, or give this run another --out"):
        return _predict_into(jsonl, inputs, run_dir, cfg, device, dataset, batch_size, workers, plot, progress, backend, export_dir, decode_timeout, retry_failed, share)


def _predict_into(jsonl: Path, inputs: Sequence[Path], run_dir: Path, cfg: EvalConfig, device: str, dataset: str | None, batch_size: int, workers: int, plot: bool, progress: bool, backend: str, export_dir: Path, decode_timeout: float, retry_failed: bool, share: Share) -> PredictResult:
    """:func:`run_predict`'s work, the predictions written line by line into ``jsonl`` (and the
    plots beside it) as they come."""
    pipeline = load_pipeline(Path(run_dir), cfg, torch.device(device), dataset, backend, export_dir)
    videos = find_videos(inputs)[share[0] :: share[1]]
    out_dir = jsonl.parent
    result = PredictResult(pipeline, jsonl, share)
    identity = predictions_identity(run_dir, cfg, pipeline.engine.light.backend, plot)
    stamps = {str(v): file_stamp(v) for v in videos}  # taken before decoding: a file changed later is predicted again next time
    misread = misread_earlier(jsonl, stamps, progress) if same_run(jsonl, identity) else set()

    def judged(line: dict) -> dict | None:
        """An earlier line kept (None: predicted again, or its video no longer given); one of
        older decoder rules whose file was read right, with the rules looked under."""
        video = line["video"]
        if video not in stamps or line.get("file") != stamps[video] or (retry_failed and "error" in line) or video in misread:
            return None
        return line if abs(line.get("decoder_rules", 0)) >= DECODER_RULES else {**line, "decoder_rules": -DECODER_RULES}

    dropped = go_on(jsonl, identity, judged)
    if dropped is None:  # the file emptied before its identity changes: never an old run's lines under a new identity
        if jsonl.is_file() and jsonl.stat().st_size:
            result.set_aside = set_aside(jsonl)
            warnings.warn(f"{jsonl}: its {result.set_aside[1]:,} predictions, of other settings (the run, --k, --fusion, --alpha, the backend or --plot), set aside in {result.set_aside[0]} with their plots; a run with those settings takes them back", RuntimeWarning, stacklevel=2)
        jsonl.write_text("")
        write_text_atomic(config_path(jsonl), json.dumps(identity, indent=1))
    else:
        result.gone = sum(video not in stamps for video, _ in dropped)
        result.misread = sum(video in misread for video, _ in dropped)
        result.again = len(dropped) - result.gone - result.misread
        for _, plot_name in dropped:
            if plot_name:
                (out_dir / plot_name).unlink(missing_ok=True)
    for partial in out_dir.glob("*.png.*.tmp"):  # plots a killed run was writing (pipeline.plots)
        if is_partial(partial):
            partial.unlink()
    for written in (jsonl, config_path(jsonl)):  # a killed run's rewrite of its lines or identity
        clear_partials(written)
    done: set[str] = set()
    taken: set[str] = set()  # plot names
    for line in _whole_lines(jsonl):
        result.add_earlier(line)
        done.add(line["video"])
        if "plot" in line:
            taken.add(line["plot"])
    wanted = {str(v): stamps[str(v)] for v in videos if str(v) not in done}
    files = predictions_to_take(out_dir if share == WHOLE else out_dir.parent, share) if wanted else []
    with open(jsonl, "a") as handle:
        for line, folder in adopted_lines(files, identity, wanted, retry_failed):
            if "plot" in line:  # the figure put beside this file first: a line never names a missing one
                if not (folder / line["plot"]).is_file():
                    continue
                name = _plot_name(line["video"], taken)
                linked_or_copied(folder / line["plot"], out_dir / name)
                line = {**line, "plot": name}
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            result.add_earlier(line)
            done.add(line["video"])
            result.adopted[str(folder)] = result.adopted.get(str(folder), 0) + 1
    videos = [v for v in videos if str(v) not in done]
    observations = ObservationDecoder(videos, pipeline.num_frames, pipeline.models, keep_thumbnails=plot)
    # a decoder's batch of uint8 crops goes through shared memory: as many as it holds
    batch_bytes = observations.batch_bytes(min(batch_size, len(videos)), pipeline.light_input, pipeline.rec_input)
    workers = workers_within_shared_memory(min(workers, len(videos)), batch_bytes, asked=False)
    stream = predict_videos(pipeline.engine, observations, batch_size, workers, decode_timeout=decode_timeout) if videos else iter(())
    with open(jsonl, "a") as handle, tqdm(total=len(videos), unit="video", desc="predict", disable=not progress) as bar:
        for prediction in stream:
            line = {**prediction.to_json(pipeline.classes), "file": stamps[prediction.path], "decoder_rules": DECODER_RULES}
            if plot and prediction.ok:
                path = out_dir / _plot_name(prediction.path, taken)
                if plot_video_saliency(prediction, pipeline.classes, cfg.fusion, cfg.alpha, path):
                    result.plots.append(path)
                    line["plot"] = path.name
                else:  # warned once, naming the figure and why: no more tries in this run
                    plot = False
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            result.add(prediction)
            bar.update(1)
    return result
