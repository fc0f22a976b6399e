"""``nsnet outputs``: what a dataset's cache folder holds, told by what is in it rather than by
the fingerprints in its names. Each feature cache (its frames, models and storage, how many of its
videos are finished, its size) with, under it, the prototypes made from it, the sampler runs
trained on each (epochs, objectives) and the evaluations of each run (split, K, fusion and the
headline mAPs), the ablations, and which of them the later stages take by default (the latest
pointers); then the fine-tuning runs (model, initial weights, epochs, last validation). Read from the outputs' own JSON and the caches' attributes: no model is loaded.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cache import DONE, FAILED, PENDING, CacheError, FeatureCache, directory_size, final_path, found_beside, is_partial, json_object, read_pointer, size_text, staging_path
from pipeline.checked_files import made_again
from pipeline.file_rights import can_read, owner_said, refusal_said
from pipeline.presets import PRESETS
from pipeline.shared_caches import linked_cache
from pipeline.wording import counted, last_validated, videos_said
from stages.cli import latest_features_file, prototypes_pointers, run_pointers

_CACHE_NAME = re.compile(r"features-[0-9a-f]{16}\.(zarr|h5)")


@dataclass
class Output:
    """One output folder or store: its path, a line saying what it is, whether the later stages
    take it by default (``latest``: "latest", or "latest of --preset table1"; empty where not),
    and the outputs made from it."""

    path: Path
    what: str
    latest: str = ""
    made_from_it: list[Output] = field(default_factory=list)
    damaged: bool = False  # a record of it could not be read (:func:`_unreadable` says which)

    def to_dict(self) -> dict[str, Any]:
        """This output and those made from it, for ``--json``."""
        return {"path": str(self.path), "what": self.what, "latest": self.latest, "damaged": self.damaged, "made_from_it": [child.to_dict() for child in self.made_from_it]}

    def tree(self) -> list[Output]:
        """This output and every output made from it, at any depth."""
        return [self, *(output for child in self.made_from_it for output in child.tree())]

    def lines(self, depth: int = 0) -> list[str]:
        """This output and those made from it, one a line, indented by depth."""
        name = self.path.name.split(".zarr.")[-1].split(".h5.")[-1]
        head = f"{'  ' * depth}{name}{f' ({self.latest})' if self.latest else ''}: {self.what}"
        return [head, *(line for child in self.made_from_it for line in child.lines(depth + 1))]


def _first_pointed(pointers: tuple[Path, ...]) -> Path | None:
    """What the first of ``pointers`` that is there names (:func:`_pointed`), as the stages read
    them (:func:`~stages.cli.prototypes_pointers`, :func:`~stages.cli.run_pointers`)."""
    return next((_pointed(pointer) for pointer in pointers if pointer.is_file()), None)


def _pointed(pointer: Path) -> Path | None:
    """The output a latest-pointer file names, where there is one (:func:`~pipeline.cache.read_pointer`);
    none where it is damaged, with a warning (the listing is what names the outputs then)."""
    if not pointer.is_file():
        return None
    try:
        return read_pointer(pointer).resolve()
    except CacheError as exc:
        warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
        return None


def _json(path: Path) -> dict[str, Any] | None:
    """A JSON file's object: empty where the file is missing, None where it is damaged (not
    JSON, or JSON of another shape) or unreadable, which the listing says (:func:`_unreadable`;
    before 2026-12-07 such a record read as none: its output listed as unfinished, a guide of
    "?", or left out, and a fine-tuning run's identity a traceback)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError:
        return None
    return json_object(data)


def _unreadable(path: Path, remedy: str) -> str:
    """What the listing says of an output whose record at ``path`` :func:`_json` could not read."""
    return f"its {path.name} is damaged: {remedy}"


# The outputs made from a cache that the listing shows, by the word their name takes after it.
LISTED = ("prototypes", "train", "eval", "ablations")
# The records the listing reads of an output folder.
RECORDS = ("info.json", "metrics.json", "log.jsonl", "results.json", "ablations.json", "identity.json")


def _refused(output: Path) -> Path | None:
    """The first of an output folder and its records that this process may not read, else None:
    another member's of a group's shared folder, made under a umask of 077 or 027 (the listing
    stopped at its first record, ``Permission denied``, or said it damaged and to remove it)."""
    if not output.is_dir():
        return None
    if not can_read(output):
        return output
    return next((record for record in (output / name for name in RECORDS) if record.is_file() and not can_read(record)), None)


def _not_readable(output: Path, refused: Path) -> Output:
    """An output :func:`_refused` names as not readable here, with whose it is."""
    return Output(output, ("" if refused == output else f"its {refused.name} ") + f"not readable here ({owner_said(refused)})")


def _names(recorded: str | None, output: Path) -> bool:
    """Whether a path an output recorded (its prototypes, its sampler run) is ``output``, where
    it was written in another place of the folder (:func:`~pipeline.cache.found_beside`) too."""
    return recorded is not None and found_beside(Path(recorded), output.parent).resolve() == output.resolve()


def describe_cache(path: Path) -> str:
    """A feature cache's frames, models, storage, finished videos and size (an HDF5 cache not
    finished yet: its staging store's), and what it links to where it is a link to another
    folder's (:func:`~pipeline.shared_caches.linked_cache`)."""
    store = path if path.exists() else staging_path(path)
    linked = "" if (target := linked_cache(path)) is None else f"; a link to {target}"
    try:
        with FeatureCache(store) as cache:
            config, status = cache.attrs["config"], np.asarray(cache["status"][:])
    except PermissionError:
        return f"not readable here ({refusal_said(store)}){linked}"
    except (CacheError, KeyError) as exc:
        return f"not readable ({exc}){linked}"
    models = " + ".join(f"{m['name']} @{m['resolution']} ({Path(m['weights']).name})" for m in (config["light"], config["recognizer"]))
    counts = f"{int(np.sum(status == DONE)):,} of {len(status):,} videos done, {int(np.sum(status == FAILED)):,} failed" + (f", {int(np.sum(status == PENDING)):,} pending" if (status == PENDING).any() else "")
    return f"T={config['num_frames']}, {models}, {config['storage']}; {counts}; {size_text(directory_size(store))}{linked}"


def describe_run(run: Path, metrics: dict[str, Any]) -> str:
    """A sampler run's epochs and objectives (from its ``metrics``, or its log while unfinished),
    the training videos it was trained on where some were left out (runs since 2026-12-06), and
    its last validation's mAPs where it validated while training."""
    if "config" in metrics:
        cfg = metrics["config"]
        left_out = any(metrics.get("left_out", {}).values())
        validated = last_validated(metrics["history"]) if metrics.get("validation") else None  # as the run's summary
        return (f"{counted(len(metrics['history']), 'epoch')}, FSM {cfg['fsm_target']}, VGM {cfg['vgm_target']}, FEM {cfg['fem']}, gamma {cfg['gamma']:g}"
                + (f"; on {videos_said(metrics)}" if left_out else "")
                + (f"; val mAP at K={metrics['validation']['k']}, epoch {validated['epoch']}: NSNet {validated['val_map']:.1f}, UNIFORM {validated['val_uniform_map']:.1f}" if validated else ""))
    return f"unfinished: {counted(_logged_epochs(run), 'epoch')} so far"


def _logged_epochs(run: Path) -> int:
    """The epochs a run cut short has finished: the whole lines of its ``log.jsonl`` (a kill in
    the middle of a line leaves half of one, which the run's resume writes over)."""
    log = run / "log.jsonl"
    return sum(1 for line in log.read_bytes().splitlines() if json_object(line) is not None) if log.is_file() else 0


def describe_evaluation(report: dict[str, Any]) -> str:
    """An evaluation's videos (those left out counted), K, fusion and the mAP of NSNet, UNIFORM
    and DENSE over the T frames."""
    k, fusion, t = report["config"]["k"], report["config"]["fusion"], report["num_frames"]
    maps = {row["method"]: row["map"] for row in report["methods"]}
    shown = [(f"NSNet (K={k})", "NSNet"), (f"UNIFORM (K={k})", "UNIFORM"), (f"DENSE (T={t})", f"DENSE(T={t})")]
    return f"{videos_said(report)}, K={k} {fusion}: " + ", ".join(f"{label} {maps[name]:.1f}" for name, label in shown if name in maps) + " mAP"


def describe_ablations(report: dict[str, Any]) -> str:
    """An ablations run's split, K and fusion with Table 6b's first row: the mAP of NSNet fused,
    of the FSM alone and of the VGM alone at K."""
    cfg = report["eval_config"]
    _, vgm, fsm, nsnet = report["tables"]["6b"]["rows"][0]
    return f"ablations, {videos_said(report)}, K={cfg['k']} {cfg['fusion']}: NSNet {nsnet:.1f}, FSM {fsm:.1f}, VGM {vgm:.1f} mAP"


def list_outputs(cache_dir: Path, dataset: str) -> list[Output]:
    """The feature caches of a dataset under ``cache_dir`` with what was made from each."""
    folder = Path(cache_dir) / dataset
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    latest: dict[Path, str] = {}
    for preset in (None, *PRESETS):
        if (cache := _pointed(latest_features_file(Path(cache_dir), dataset, preset))) is not None:
            latest[cache] = ", ".join(filter(None, (latest.get(cache), f"latest of --preset {preset}" if preset else "latest")))
    finals = {p for p in entries if _CACHE_NAME.fullmatch(p.name)} | {final_path(p) for p in entries if p.name.endswith(".h5.staging.zarr")}
    return [Output(path, describe_cache(path), latest.get(path.resolve(), ""), _made_from(path, entries + _shared_outputs(path, entries))) for path in sorted(finals)]


def _shared_outputs(cache: Path, entries: list[Path]) -> list[Path]:
    """Where ``cache`` is a link to a cache in a folder not written here
    (:func:`~pipeline.shared_caches.writable_place`): the outputs beside the cache it names that
    no output beside the link bears the name of, which the stages use where they lie
    (:func:`~pipeline.shared_caches.output_beside`); else none."""
    linked = linked_cache(cache)
    if linked is None or not linked.parent.is_dir():
        return []
    own = {p.name for p in entries}
    return sorted(p for p in linked.parent.iterdir() if p.name.startswith(cache.name + ".") and p.name not in own)


def _made_from(cache: Path, entries: list[Path]) -> list[Output]:
    """The prototypes, sampler runs, evaluations and ablations made from one cache."""
    kind = {p: p.name[len(cache.name) + 1 :].split("-")[0] for p in entries if p.name.startswith(cache.name + ".") and p.is_dir() and not is_partial(p)}
    refused = {p: found for p, made in kind.items() if made in LISTED and (found := _refused(p)) is not None}
    beside = [p for p in kind if p not in refused]
    latest_prototypes = _first_pointed(prototypes_pointers(cache))
    reports = {p: _json(p / "results.json") for p in beside if kind[p] == "eval"}
    runs: dict[Path, tuple[Output, str | None]] = {}  # by resolved path: the run, the prototypes it records
    for run in (p for p in beside if kind[p] == "train"):
        metrics = _json(run / "metrics.json")
        what = describe_run(run, metrics) if metrics is not None else f"{counted(_logged_epochs(run), 'epoch')} logged; " + _unreadable(run / "metrics.json", "its heads stand (`nsnet train` warns of it and uses them)")
        node = Output(run, what, made_from_it=[Output(e, describe_evaluation(r)) for e, r in reports.items() if r and _names(r.get("sampler_run"), run)], damaged=metrics is None)
        runs[run.resolve()] = node, (metrics or {}).get("prototypes")
    ablations = {p: _json(p / "ablations.json") for p in beside if kind[p] == "ablations"}
    placed: set[Path] = set()
    out = []
    for prototypes in (p for p in beside if kind[p] == "prototypes"):
        info = _json(prototypes / "info.json")
        what = f"{info.get('params', {}).get('guide', '?')} guide, {info.get('train_videos', 0):,} training videos" if info is not None else _unreadable(prototypes / "info.json", made_again(prototypes, "prototypes"))
        node = Output(prototypes, what, "latest" if prototypes.resolve() == latest_prototypes else "", damaged=info is None)
        latest_run = _first_pointed(run_pointers(prototypes, cache))
        for key, (run, recorded) in runs.items():
            if _names(recorded, prototypes) or key == latest_run:
                run.latest = "latest" if key == latest_run else ""
                node.made_from_it.append(run)
                placed.add(key)
        node.made_from_it += [Output(a, describe_ablations(r)) for a, r in ablations.items() if r and _names(r.get("prototypes"), prototypes)]
        out.append(node)
    # runs not placed: unfinished (their prototypes known once they finish), or made before
    # 2026-12-06; evaluations and ablations whose record is damaged (what they were made from unknown)
    damaged = [Output(p, _unreadable(p / name, made_again(p, command)), damaged=True) for records, name, command in ((reports, "results.json", "evaluate"), (ablations, "ablations.json", "ablations")) for p, r in records.items() if r is None]
    made = out + [run for key, (run, _) in runs.items() if key not in placed] + damaged + [_not_readable(p, found) for p, found in refused.items()]
    for output in (output for node in made for output in node.tree() if output.path.parent != cache.parent):
        output.what += f"; in {output.path.parent}, used there"  # a shared folder's (_shared_outputs)
    return made


def describe_finetune(run: Path) -> str:
    """A fine-tuning run's model, resolution, initial weights, epochs and last validation."""
    identity, metrics = _json(run / "identity.json"), _json(run / "metrics.json")
    if identity is None or not {"model", "finetune"} <= set(identity):
        return _unreadable(run / "identity.json", "the run's model and options are not shown" + ("; its model.pth stands" if (run / "model.pth").is_file() else ""))
    model, epochs = identity["model"], identity["finetune"]["epochs"]
    weights = model["weights"]
    start = f"checkpoint sha256 {weights.removeprefix('file:')[:12]}" if weights.startswith("file:") else weights
    head = f"{model['name']} @{model['resolution']} from {start}, {counted(identity['finetune']['segments'], 'segment')}"
    if metrics is None:
        return f"{head}; " + _unreadable(run / "metrics.json", "its model.pth is used as it is (`nsnet finetune` warns of it)")
    if "history" not in metrics:
        return f"{head}; unfinished: {_logged_epochs(run)} of {counted(epochs, 'epoch')}"
    last = metrics["history"][-1] if metrics["history"] else {}
    return f"{head}; {counted(len(metrics['history']), 'epoch')}" + (f", val top-1 {100 * last['top1']:.1f}%, mAP {100 * last['mAP']:.1f}%" if "top1" in last else "")


def list_finetune_runs(cache_dir: Path, dataset: str) -> list[Output]:
    """The fine-tuning runs of a dataset (``<cache-dir>/<dataset>/finetune/``); a folder without
    its identity is none."""
    folder = Path(cache_dir) / dataset / "finetune"
    looked = [(run, _refused(run)) for run in sorted(p for p in folder.iterdir() if p.is_dir())] if folder.is_dir() else []
    return [_not_readable(run, refused) if refused is not None else Output(run, describe_finetune(run), damaged=any(_json(run / name) is None for name in ("identity.json", "metrics.json")))
            for run, refused in looked if refused is not None or (run / "identity.json").is_file()]


def cache_dir_hint(cache_dir: Path, dataset: str, preset: str | None = None) -> str:
    """Why ``<cache-dir>/<dataset>/`` holds no finished cache of ``preset`` (None: made without
    one), where the folders tell: the dataset's caches were made with another ``--preset`` or
    none, ``--cache-dir`` is a dataset's folder itself (``cache/fcvid`` for ``cache``), or it
    holds other datasets' caches (``--dataset`` left at its default); else ``""``. Said after a
    ``;``."""
    cache_dir = Path(cache_dir)
    made = sorted(pointer.name.removeprefix("latest-features").removesuffix(".txt").lstrip("-") for pointer in (cache_dir / dataset).glob("latest-features*.txt"))
    if made:
        presets = [name for name in made if name and name != preset]
        if presets:
            return f"; the dataset's caches were made with --preset {' or '.join(presets)}"
        return "; the dataset's cache was made without --preset: leave it out" if "" in made and preset is not None else ""
    if not (cache_dir / dataset).is_dir() and any(cache_dir.glob("latest-features*.txt")):
        return f"; {cache_dir} is a dataset's folder: --cache-dir is the folder above it, {cache_dir.parent}"
    others = sorted({pointer.parent.name for pointer in cache_dir.glob("*/latest-features*.txt")} - {dataset})
    return f"; {cache_dir} holds the caches of {', '.join(others)}: --dataset {others[0]}?" if others else ""


# The files of the outputs checked against their zip members' CRC-32s by ``--verify``.
ZIPPED_OUTPUTS = ("*.pth", "*.npz")


def damaged_files(outputs: list[Output], folder: Path) -> tuple[int, list[str]]:
    """The checkpoints and ``.npz`` files of ``outputs`` and of the dataset's ``folder`` itself
    (the demo's checkpoints lie there) checked against their zip members' CRC-32s
    (:func:`~pipeline.checked_files.damaged_member`): how many were read, and each damaged
    one said."""
    from pipeline.checked_files import DAMAGED, damaged_member

    folders = [folder, *(found.path for output in outputs for found in output.tree() if found.path.is_dir())]
    files = sorted({file for where in folders for pattern in ZIPPED_OUTPUTS for file in where.glob(pattern) if file.is_file()})
    return len(files), [f"{file}: damaged ({bad}: {DAMAGED})" for file in files if (bad := damaged_member(file)) is not None]


def outputs_table(caches: list[Output], finetune_runs: list[Output], folder: Path, hint: str = "") -> str:
    """The tree of outputs, one a line (a line saying where no feature cache is found, and
    ``hint``: :func:`cache_dir_hint`), then the fine-tuning runs."""
    lines = [line for cache in caches for line in cache.lines()] or [f"no feature cache in {folder}{hint}"]
    if finetune_runs:
        lines += ["fine-tuning runs (finetune/):", *(line for run in finetune_runs for line in run.lines(1))]
    return "\n".join(lines)
