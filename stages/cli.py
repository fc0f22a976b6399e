"""The ``nsnet`` command line: one sub-command per stage."""

from __future__ import annotations

import glob
import json
import os
import warnings
from functools import wraps
from pathlib import Path
from typing import Any, Callable

import click

# Decoding workers share the cores with the models' OpenMP threads; spinning OpenMP threads
# would take the cores from them (measured on 2 cores: full-stage throughput 0.65 -> 0.80 of
# the models-only rate). Set before torch is imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pipeline.config import DECODE_TIMEOUT_S, LATENCY_REPS_FACTOR, NEW_CACHE_VIDEOS_PER_BATCH, NEW_CACHE_VIDEOS_PER_SHARD, PREDICT_BATCH, SAMPLER_VAL_EVERY, STORAGES, EvalConfig  # noqa: E402  (no torch import behind it)
from pipeline.datasets import DATASETS  # noqa: E402
from pipeline.datasets.lists import LIST_FORMATS  # noqa: E402
from pipeline.datasets.manifest import EVALUATION_SPLITS  # noqa: E402
from pipeline.output_kinds import run_folder  # noqa: E402
from pipeline.presets import PRESETS, get_preset  # noqa: E402
import pipeline  # noqa: E402

# Where the toolkit's own code lies: its warnings are printed as one line (toolkit_warning_line).
TOOLKIT_FOLDERS = tuple(os.path.dirname(os.path.realpath(path)) + os.sep for path in (pipeline.__file__, __file__))
_PYTHON_WARNING_FORMAT = warnings.formatwarning


def toolkit_warning_line(message, category, filename, lineno, line=None) -> str:
    """A warning as the commands print it: the toolkit's own as ``warning: <message>`` (the file,
    line and source line Python adds are the toolkit's code, which says nothing to a user);
    another library's, and a library's deprecation met in the toolkit's code (for whoever
    maintains it), as Python formats it."""
    if os.path.realpath(filename).startswith(TOOLKIT_FOLDERS) and not issubclass(category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
        return f"warning: {message}\n"
    return _PYTHON_WARNING_FORMAT(message, category, filename, lineno, line)



def _known_errors() -> tuple[type[Exception], ...]:
    from pipeline.cache import CacheError
    from pipeline.datasets import ManifestError
    from pipeline.checkpoints import WeightsError

    return (CacheError, ManifestError, WeightsError, ValueError)


def file_error_line(exc: OSError) -> str | None:
    """A file system's refusal as one line, the file first (``out/x.jsonl: Permission
    denied``, named so where the temporary file it is written through was refused; a rename's
    two files ``a -> b``); None for an error that names no file."""
    from pipeline.cache import settled_path

    if exc.filename is None:
        return None
    named = str(settled_path(exc.filename)) if isinstance(exc.filename, str) and exc.filename else exc.filename
    files = named if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    return f"{files}: {exc.strerror or exc}{_whose(exc)}"


def _whose(exc: OSError) -> str:
    """Where a file system refused a file to this user, whose it is and its mode, as `` (alice's,
    mode 644)`` (:func:`~pipeline.file_rights.refusal_said`): another member's in a group's
    shared folder, the usual cause; "" for other errors."""
    from pipeline.file_rights import refusal_said

    if not isinstance(exc, PermissionError) or not isinstance(exc.filename, str) or not exc.filename:
        return ""
    said = refusal_said(Path(exc.filename))
    return f" ({said})" if said else ""


def clear_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's expected errors, and a file system's refusal of a named file (a
    folder that cannot be made or written, an output path that is a file), into a one-line
    message and exit status 1; a training run a scheduler's signal stopped, its progress saved,
    into its line (on rank 0) and the signal's exit status (143 for SIGTERM)."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pipeline.stop_signals import Stopped

        try:
            return command(*args, **kwargs)
        except Stopped as stopped:
            if stopped.leader:
                click.echo(str(stopped), err=True)
            raise SystemExit(stopped.exit_status) from None
        except _known_errors() as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            line = file_error_line(exc)
            if line is None:
                raise
            raise click.ClickException(line) from exc

    return wrapper


dataset_option = click.option("--dataset", "dataset", type=click.Choice(sorted(DATASETS)), default="demo", show_default=True, help="Dataset name from the registry (`nsnet data --help` says what each reads).")


def datasets_epilog() -> str:
    """The registry's datasets, one a line: name, what it reads, default data root (click's
    ``\\b`` marker keeps the lines as written)."""
    width = max(map(len, DATASETS))
    rows = [f"  {name:<{width}}  {spec.description} [default root {spec.default_root}]" for name, spec in sorted(DATASETS.items())]
    return "\b\nDatasets:\n" + "\n".join(rows)


preset_option = click.option(
    "--preset", type=click.Choice(list(PRESETS)), default=None,
    help="A paper experiment (its T, recognizer, K and baselines for this dataset); its caches and runs are kept apart from the dataset's defaults.",
)
decode_timeout_option = click.option(
    "--decode-timeout", type=click.FloatRange(min=0, min_open=True), default=DECODE_TIMEOUT_S, show_default=True,
    help="Seconds one video may take to decode before its decoder is taken for hung: that video is failed and the run goes on (with --workers 1 or more).",
)
data_root_option = click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None, envvar="DATA_ROOT", help="Where the dataset lies (default: data/<dataset>).")
# The later stages' (cache_dataset): the cache knows where its videos were read.
cache_videos_option = click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None, envvar="DATA_ROOT", help="Where the cache's videos lie (default: where the features stage read them, while there, else data/<dataset>).")


def annotation_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The annotation files of datasets that do not keep them at fixed places in the data root
    (``list``, ``kinetics``, ``activitynet``) or may keep them elsewhere (``minikinetics``,
    ``ucf101``, the class names of ``fcvid`` and ``activitynet``), handed to the command as one ``files``
    (:class:`pipeline.datasets.AnnotationFiles`)."""

    @wraps(command)
    def wrapper(*args: Any, train_list: Path | None, val_list: Path | None, test_list: Path | None, class_names: Path | None, list_format: str, annotations: Path | None, **kwargs: Any) -> Any:
        from pipeline.datasets import AnnotationFiles

        return command(*args, files=AnnotationFiles(train_list, val_list, test_list, class_names, list_format, annotations), **kwargs)

    a_file = click.Path(path_type=Path, dir_okay=False)
    for option in reversed((
        click.option("--train-list", type=a_file, default=None, help="list/kinetics/minikinetics/ucf101: the train split's list file (mmaction2, AR-Net, UCF101), or Kinetics csv, JSON or YouTube id list."),
        click.option("--val-list", type=a_file, default=None, help="list/kinetics/minikinetics/ucf101: the val split's list file, or Kinetics csv, JSON or id list."),
        click.option("--test-list", type=a_file, default=None, help="list/kinetics/minikinetics/ucf101: the test split's list file, or Kinetics csv, JSON or id list."),
        click.option("--class-names", type=a_file, default=None, help="list/minikinetics/ucf101/fcvid: class names, one a line, 'index name', csv 'index,name' or JSON (list, {name: index}, a model config's id2label) (list default: classes named by index); activitynet: the class order; kinetics: the class subset (e.g. Mini-Kinetics' 200)."),
        click.option("--list-format", type=click.Choice(list(LIST_FORMATS)), default="auto", show_default=True, help="list (minikinetics: its lists, default rawframes): 'path label..', 'path num_frames label..', 'path,num_frames,label..', 'path start_frame end_frame label..' or 'path,label..' (csv: commas, tabs or semicolons; labels by index or class name)."),
        click.option("--annotations", type=click.Path(path_type=Path), default=None, help="activitynet: the v1.3 or v1.2 JSON or mmaction2's anet_anno_action.json (its subsets in video_info_new.csv beside it), or their folder (default: in the data root); kinetics/minikinetics: csv or JSON files (a file or a folder) holding every split, or labelling YouTube id lists given as --train-list/--val-list; hmdb51: the folder of its split files, or one file of the split wanted (default: split 1 in testTrainMulti_7030_splits/, annotations/ or the data root)."),
    )):
        wrapper = option(wrapper)
    return wrapper


def sampler_inputs_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--cache-dir``, ``--features``, ``--prototypes`` and ``--preset``: where the stages after
    ``features`` read."""
    for option in reversed((
        preset_option,
        click.option("--cache-dir", type=click.Path(path_type=Path), default=Path("cache"), show_default=True),
        click.option("--features", "features_path", type=click.Path(path_type=Path), default=None, help="Feature cache (default: the last one finished for this dataset)."),
        click.option("--prototypes", "prototypes_path", type=click.Path(path_type=Path), default=None, help="Prototypes folder (default: the last made by `nsnet prototypes` for the feature cache)."),
    )):
        command = option(command)
    return command


def frame_choice_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--k``, ``--fusion`` and ``--alpha``: how evaluate and predict choose the K frames."""
    for option in reversed((
        click.option("--k", "k", type=int, default=None, help="Frames the recognizer sees (K)."),
        click.option("--fusion", type=click.Choice(["add", "mul", "max", "intersection", "union", "join"]), default=None, help="A.3 fusion rule."),
        click.option("--alpha", type=float, default=None, help="Weight of the FSM in add and union fusion."),
    )):
        command = option(command)
    return command


def backend_options(compare: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--backend`` (or, with ``compare``, ``--backends``: several measured side by side) and
    ``--onnx-dir``, where the ONNX exports of the backbones are kept (default <cache-dir>/onnx)."""
    if compare:
        choice = click.option("--backends", default=None, help="Comma-separated backends measured side by side (default: torch,onnxruntime on the CPU, torch on a GPU).")
    else:
        choice = click.option(
            "--backend", type=click.Choice(["auto", "torch", "onnxruntime"]), default="auto", show_default=True,
            help="Where the backbones run: auto is ONNX Runtime on the CPU (exported once), torch on a GPU.",
        )
    onnx_dir = click.option("--onnx-dir", type=click.Path(path_type=Path, file_okay=False), default=None, help="ONNX exports of the backbones, made once and reused (default: <cache-dir>/onnx).")

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        return choice(onnx_dir(command))

    return decorate


def parse_backends(value: str | None, device: Any) -> tuple[str, ...]:
    """``--backends`` as a tuple; the default compares what this device can run."""
    from pipeline.backends import compared_backends, resolve_backend

    if value is None:
        return compared_backends(device)
    return tuple(resolve_backend(b.strip(), device) for b in value.split(",") if b.strip())


EVERY_FRAME = "every"


def parse_batch_sizes(value: str) -> tuple[int, ...]:
    """``--batch-sizes``: positive integers separated by commas (``1,32``)."""
    try:
        sizes = tuple(int(size) for size in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not batch sizes separated by commas, as 1,32") from None
    if min(sizes) < 1:
        raise click.BadParameter(f"batch sizes must be at least 1, got {value}")
    return sizes


def parse_all_frames_rate(value: str | None) -> float | str | None:
    """``--all-frames-rate``: frames per second, :data:`EVERY_FRAME`, or None where not given."""
    if value is None or value == EVERY_FRAME:
        return value
    try:
        rate = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a number of frames per second nor {EVERY_FRAME!r}") from None
    if rate <= 0:
        raise click.BadParameter(f"the rate must be positive, got {value}")
    return rate


def evaluation_config(dataset: str, preset: str | None, all_frames: bool | None, all_frames_rate: float | str | None = None, **changes: Any) -> EvalConfig:
    """``nsnet evaluate``'s config: the dataset's own, the preset's protocol on it, then the
    options given (None: not given)."""
    from dataclasses import replace

    from pipeline.datasets import get_dataset

    cfg = get_dataset(dataset).evaluation
    if preset is not None:
        cfg = get_preset(preset).evaluation(dataset, cfg)
    cfg = replace(cfg, **{k: v for k, v in changes.items() if v is not None})
    if all_frames is not None:
        cfg = replace(cfg, all_frames=all_frames)
    if all_frames_rate is not None:
        cfg = replace(cfg, all_frames_rate=None if all_frames_rate == EVERY_FRAME else all_frames_rate)
    return cfg


def backbone_options(weights: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--light-model``/``--recognizer-model`` and ``--*-resolution`` (and ``--*-weights`` when
    ``weights``): the backbones, as overrides of the dataset's feature profile."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        options = []
        roles = (
            ("light", "the light backbone", "imagenet | none | checkpoint path."),
            ("recognizer", "the recognizer", "imagenet | none | checkpoint path (trained on this dataset)."),
        )
        for role, what, weights_help in roles:
            options.append(click.option(f"--{role}-model", default=None, help=f"timm name of {what}, with a pretrained tag or not (resnet50.tv_in1k)."))
            if weights:
                options.append(click.option(f"--{role}-weights", default=None, help=weights_help))
            options.append(click.option(f"--{role}-resolution", type=int, default=None, help=f"Input size of {what} (square)."))
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def backbone_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """:func:`backbone_options`' values as :meth:`FeaturesConfig.with_overrides` keywords (a
    timm hub folder given as weights as its weight file: :func:`~pipeline.checkpoints.checkpoint_path`)."""
    from pipeline.checkpoints import checkpoint_path

    return {key.replace("_model", "_name"): checkpoint_path(value) if key.endswith("_weights") and value else value for key, value in options.items()}


# The commands that divide their work among torchrun ranks (pipeline.distributed); the others
# run in one process, and under torchrun every rank would run them whole.
TORCHRUN_COMMANDS = ("features", "finetune", "evaluate", "predict")
# What predict, which takes no --features or --prototypes, says to give where it finds no default run.
PREDICT_RUN_HINT = "--run <a sampler run's folder> (without it predict takes the run last trained on the dataset's latest feature cache)"


def _print_environment(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the toolkit's release with the machine and the libraries' releases, the
    environment every report records (:mod:`pipeline.environment`)."""
    if value and not ctx.resilient_parsing:
        from pipeline.environment import describe, environment

        click.echo(describe(environment()))
        ctx.exit()


@click.group()
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_environment, help="The toolkit's release, this machine and the libraries' releases, and exit.")
@click.pass_context
def main(ctx: click.Context) -> None:
    """NSNet toolkit: staged offline pipeline with cached embeddings."""
    warnings.formatwarning = toolkit_warning_line
    ctx.call_on_close(lambda: setattr(warnings, "formatwarning", _PYTHON_WARNING_FORMAT))
    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    if ranks > 1 and ctx.invoked_subcommand not in TORCHRUN_COMMANDS:
        raise click.UsageError(f"nsnet {ctx.invoked_subcommand} runs in one process, but WORLD_SIZE is {ranks} here (torchrun, or a launcher that sets it): start it alone; torchrun divides {', '.join(TORCHRUN_COMMANDS)}")


@main.command(epilog=datasets_epilog())
@dataset_option
@data_root_option
@click.option("--difficulty", type=float, default=None, help="Demo only: 0 (easy) .. 1 (hard).")
@click.option("--seed", type=int, default=None, help="Demo only: generator seed.")
@click.option("--classes", "num_classes", type=int, default=None, help="Demo only: number of classes.")
@click.option("--train-per-class", type=int, default=None, help="Demo only.")
@click.option("--val-per-class", type=int, default=None, help="Demo only.")
@click.option("--no-progress", is_flag=True)
@click.option("--missing", "missing_out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write every video not on disk to this file, a JSON line each (video, split, labels, path, unfinished): the list to download again.")
@click.option("--check-decoding", is_flag=True, help="Look into every video file (its container and first packets, a few ms each) for those decord would misread, which PyAV reads: transport streams, ASF, edit-list cuts, open groups of pictures; and of them, those decord read before 2026-12-06 (night) all the same, whose frames a feature cache built before holds as decord gave them (its next features run computes them again).")
@annotation_options
@clear_errors
def data(dataset: str, data_root: Path | None, difficulty: float | None, seed: int | None, num_classes: int | None, train_per_class: int | None, val_per_class: int | None, no_progress: bool, missing_out: Path | None, check_decoding: bool, files: Any) -> None:
    """Generate the demo dataset, or check a dataset's annotations and print a summary."""
    from dataclasses import replace

    from pipeline.demo_data import DemoSpec
    from stages.data import describe, describe_misread, misread_by_decord, missing_videos, prepare_dataset, write_missing

    changes = dict(difficulty=difficulty, seed=seed, num_classes=num_classes, train_per_class=train_per_class, val_per_class=val_per_class)
    spec = replace(DemoSpec(), **{k: v for k, v in changes.items() if v is not None})
    root, manifest = prepare_dataset(dataset, data_root, spec, progress=not no_progress, files=files)
    missing = missing_videos(root, manifest)
    click.echo(describe(manifest, root, missing))
    if check_decoding:
        click.echo(describe_misread(*misread_by_decord(root, manifest, progress=not no_progress)))
    if missing_out is not None:
        write_missing(missing_out, missing, manifest.classes)
        click.echo(f"missing or empty videos ({len(missing):,}) written to {missing_out}")


@main.command()
@dataset_option
@data_root_option
@click.option("--cache-dir", type=click.Path(path_type=Path), default=Path("cache"), show_default=True, help="Root of all caches; the store goes to <cache-dir>/<dataset>/features-<fingerprint>.")
@click.option("--cache", "cache_path", type=click.Path(path_type=Path), default=None, help="Explicit store path (refused if it holds another configuration).")
@click.option("--frames", "num_frames", type=int, default=None, help="T, frames pre-sampled per video.")
@click.option("--offsets", type=int, default=None, help="Candidate frames per segment cached for the training videos (odd; default 1, the centres), for the sampler's temporal random shift; S costs S times the training videos' compute.")
@backbone_options(weights=True)
@preset_option
@click.option("--storage", type=click.Choice(STORAGES), default=None)
@click.option("--shard", default="0/1", show_default=True, help="This job's share i/n of the videos (combined with torchrun ranks).")
@click.option("--device", default="auto", show_default=True)
@backend_options(compare=False)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Decoding processes [default: 1 per 8 cores on the CPU, all cores but 2 on a GPU].")
@click.option("--videos-per-batch", type=click.IntRange(min=1), default=None, help=f"Videos whose frames share one model batch, fixed when a cache is created [default: {NEW_CACHE_VIDEOS_PER_BATCH}; an existing cache's own].")
@click.option("--videos-per-shard", type=click.IntRange(min=1), default=None, help=f"Videos per cache file (Zarr v3 shard), rounded up to whole batches; the unit --shard and torchrun ranks divide; fixed when a cache is created [default: {NEW_CACHE_VIDEOS_PER_SHARD}, or fewer where the writers' shares would be uneven; an existing cache's own].")
@click.option("--allow-failures", is_flag=True, help="Exit 0 even when some videos failed.")
@click.option("--retry-failed", is_flag=True, help="Try again the videos that failed in earlier runs though their files are unchanged (a file of another size since, or there now where it was missing, is tried again anyway).")
@click.option("--verify", is_flag=True, help="First read the existing cache whole (this --shard's share) against its chunks' checksums, and compute again the videos of every shard holding a damaged chunk, the others kept (`nsnet outputs --verify` says what is damaged, writing nothing).")
@click.option("--dry-run", is_flag=True, help="Say what the run would do in this --shard: the videos it would compute (never computed, files changed since, failures retried), keep, and copy from sibling caches; write nothing and run no model (a checkpoint given is loaded into its model, built on the CPU, to see it fits, where there are videos to compute).")
@decode_timeout_option
@click.option("--no-progress", is_flag=True)
@annotation_options
@clear_errors
def features(dataset: str, data_root: Path | None, cache_dir: Path, cache_path: Path | None, preset: str | None, shard: str, device: str, backend: str, onnx_dir: Path | None, workers: int | None, videos_per_batch: int | None, videos_per_shard: int | None, allow_failures: bool, retry_failed: bool, verify: bool, dry_run: bool, decode_timeout: float, no_progress: bool, files: Any, **model_options: Any) -> None:
    """Pre-sample T frames per video, run the light model and the recognizer, fill the cache."""
    from pipeline.config import RunOptions
    from pipeline.datasets import get_dataset
    from pipeline.distributed import parse_shard
    from stages.features import IN_PLACE, plan_features, plan_in_place, run_features, write_summary

    config = get_dataset(dataset).features
    if preset is not None:
        config = get_preset(preset).features(dataset, config)
    config = config.with_overrides(**backbone_overrides(model_options))
    opts = RunOptions(cache_dir=cache_dir, device=device, backend=backend, exports=onnx_dir, workers=workers, videos_per_batch=videos_per_batch, videos_per_shard=videos_per_shard, shard=parse_shard(shard), allow_failures=allow_failures, retry_failed=retry_failed, verify=verify, progress=not no_progress, decode_timeout=decode_timeout)
    if dry_run:
        if verify:
            raise click.UsageError("--verify computes damaged shards again and --dry-run writes nothing: `nsnet outputs --verify` says which blocks of the dataset's caches are damaged")
        click.echo(plan_features(dataset, data_root, config, opts, cache_path, files).table())
        return
    if not verify and os.environ.get("WORLD_SIZE") is None and (plan := plan_in_place(dataset, data_root, config, opts, cache_path, files)) is not None:  # --verify mends: its owner's
        click.echo(plan.table(IN_PLACE))
        pointer = latest_features_file(cache_dir, dataset, preset)
        if pointer.parent != Path(plan.cache).parent:  # a --cache-dir of one's own: the later stages take it (else the folder's own pointer stands)
            from pipeline.shared_caches import writable_place

            writable_place(Path(plan.cache), cache_dir, dataset)  # the link their outputs go beside, listed by `nsnet outputs` from now
            record_latest(pointer, plan.cache)
        if plan.failed and not allow_failures:
            raise click.ClickException(f"{plan.failed} video(s) of the cache failed (see {plan.cache}.failures.jsonl); pass --allow-failures to accept")
        return
    summary = run_features(dataset, data_root, config, opts, cache_path, files)
    if summary.leader:
        click.echo(summary.table())
        write_summary(summary)
        if summary.complete:
            record_latest(latest_features_file(cache_dir, dataset, preset), summary.cache)
    if summary.failed and not allow_failures:
        raise click.ClickException(f"{summary.failed} video(s) failed (see {summary.failures_file}); pass --allow-failures to accept")


@main.command()
@dataset_option
@data_root_option
@click.option("--model", "role", type=click.Choice(["recognizer", "light"]), default="recognizer", show_default=True, help="Which backbone to train.")
@click.option("--arch", default=None, help="timm model name (default: the dataset's model for that role).")
@click.option("--init", "weights", default=None, help="Initial weights: imagenet | none | checkpoint path.")
@click.option("--resolution", type=int, default=None)
@click.option("--segments", type=int, default=None, help="1: frame-wise (w/o TSN); N: TSN consensus over N segments.")
@click.option("--repeats", type=int, default=None, help="Visits of every training video per epoch.")
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None, help="Training clips a step on each rank (under torchrun a step takes this many on every rank).")
@click.option("--lr", type=float, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=Path("cache"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Also copy the final checkpoint here (a file).")
@click.option("--device", default="auto", show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Decoding processes [default: as `nsnet features`].")
@decode_timeout_option
@click.option("--no-progress", is_flag=True)
@annotation_options
@clear_errors
def finetune(dataset: str, data_root: Path | None, role: str, arch: str | None, weights: str | None, resolution: int | None, cache_dir: Path, out: Path | None, device: str, workers: int | None, decode_timeout: float, no_progress: bool, files: Any, **hyper: Any) -> None:
    """Fine-tune the recognizer or the light backbone on the dataset's train split."""
    from dataclasses import replace

    from pipeline.config import RunOptions
    from pipeline.checkpoints import checkpoint_path
    from pipeline.datasets import get_dataset
    from stages.finetune import draw_curves, run_finetune

    dset = get_dataset(dataset)
    spec = getattr(dset.features, role)
    spec = replace(spec, **{k: v for k, v in dict(name=arch, weights=weights and checkpoint_path(weights), resolution=resolution).items() if v is not None})
    ft = replace(dset.finetune[role], **{k: v for k, v in hyper.items() if v is not None})
    opts = RunOptions(cache_dir=cache_dir, device=device, workers=workers, progress=not no_progress, decode_timeout=decode_timeout)
    result = run_finetune(dataset, data_root, role, spec, ft, dset.features.num_frames, opts, out, files)
    if result.leader:
        draw_curves(result)
        click.echo(result.table())


def record_latest(pointer: Path, target: str | Path) -> None:
    """Write ``target``'s absolute path into the pointer file a later stage reads, whole, under
    the pointer's lock (:func:`pipeline.cache.write_text_alone`); its folder is made if need be
    (with the lock), as a cache given by ``--cache`` leaves none under ``--cache-dir``."""
    from pipeline.cache import write_text_alone

    write_text_alone(pointer, str(Path(target).resolve()) + "\n")


def latest_features_file(cache_dir: Path, dataset: str, preset: str | None = None) -> Path:
    """Where ``features`` records the last finished cache of a dataset (with a preset: of that
    experiment), for the later stages."""
    return cache_dir / dataset / ("latest-features.txt" if preset is None else f"latest-features-{preset}.txt")


def resolve_features(cache_dir: Path, dataset: str, features_path: Path | None, preset: str | None = None, instead: str = "--features") -> Path:
    """The given feature cache, or the last one ``features`` finished for the dataset (and
    preset; where there is none, the error says to give ``instead``), as the stage names it to
    place its outputs beside it: a link to it under ``cache_dir`` where its folder cannot be
    written (:func:`~pipeline.shared_caches.writable_place`)."""
    from pipeline.cache import CacheError, read_pointer
    from pipeline.shared_caches import writable_place

    if features_path is None:
        pointer = latest_features_file(cache_dir, dataset, preset)
        if not pointer.is_file():
            from stages.outputs import cache_dir_hint

            with_preset = "" if preset is None else f" --preset {preset}"
            raise CacheError(f"{pointer}: no finished feature cache recorded for {dataset}{with_preset}; run `nsnet features --dataset {dataset}{with_preset}` first or pass {instead}{cache_dir_hint(cache_dir, dataset, preset)}")
        features_path = read_pointer(pointer)
    return writable_place(features_path, cache_dir, dataset)


def resolve_sampler_inputs(cache_dir: Path, dataset: str, features_path: Path | None, prototypes_path: Path | None, preset: str | None = None, instead: tuple[str, str] = ("--features", "--prototypes")) -> tuple[Path, Path]:
    """The feature cache (default: the last finished one) and its prototypes (default: the
    last ones ``nsnet prototypes`` made for it, as its pointer beside the cache says, else the
    pointer beside the cache a link names: a shared cache's own). Where there is no default, the
    error says to give ``instead``'s options (predict's: its ``--run``)."""
    from pipeline.cache import CacheError, FeatureCache, read_pointer
    from stages.train import guides_file

    features_path = resolve_features(cache_dir, dataset, features_path, preset, instead[0])
    if prototypes_path is None:
        pointer = next((p for p in prototypes_pointers(features_path) if p.is_file()), None)
        if pointer is None:
            with FeatureCache(features_path):  # a path that holds no cache, or nothing, is named as such first
                pass
            raise CacheError(f"{features_path}: no prototypes made for this feature cache by `nsnet prototypes`; run it first or pass {instead[1]}")
        prototypes_path = read_pointer(pointer)
    guides_file(prototypes_path)  # a path that is no prototypes folder named as what it is, first
    return features_path, prototypes_path


def cache_dataset(features_path: Path, dataset: str, data_root: Path | None = None) -> tuple[str, Path]:
    """From one read of a cache's attributes, for a stage after ``features``: the dataset whose
    configuration it takes, the one the cache was made from where ``--dataset`` is left at its
    default (a FCVID cache given as ``--features`` took the demo's 40 epochs and evaluation
    defaults; ``--dataset`` given and naming another is an error); and where the cache's videos
    lie, ``--data-root`` (or ``DATA_ROOT``) where given, else the folder the features stage read
    them from (recorded in the cache since 2026-12-05) while it is there, else the dataset's
    default."""
    from pipeline.cache import CacheError, FeatureCache
    from pipeline.datasets import get_dataset

    with FeatureCache(features_path) as cache:
        made, recorded = cache.attrs.get("identity", {}).get("dataset"), cache.attrs.get("data_root")
    if made != dataset and made in DATASETS:
        if click.get_current_context().get_parameter_source("dataset") is not click.core.ParameterSource.DEFAULT:
            raise CacheError(f"{features_path}: a feature cache of the {made!r} dataset, not {dataset!r}: leave --dataset out (the cache's is taken) or give --dataset {made}")
        dataset = made
    if data_root is not None:
        return dataset, data_root
    return dataset, Path(recorded) if recorded is not None and Path(recorded).is_dir() else get_dataset(dataset).default_root


def ground_truth_file(features_path: Path, data_root: Path) -> Path:
    """The salient-frame ground truth the stages check against: beside a synthetic cache
    (``nsnet synth-cache``), else the demo generator's ``groundtruth.json`` in the data root."""
    beside = features_path.with_name(features_path.name + ".groundtruth.json")
    return beside if beside.is_file() else data_root / "groundtruth.json"


@main.command()
@dataset_option
@click.option("--cache-dir", type=click.Path(path_type=Path), default=Path("cache"), show_default=True)
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Also write the listing as JSON here (each output's path, what it is, whether it is the latest, what was made from it).")
@click.option("--verify", is_flag=True, help="Also read every feature cache whole against its chunks' checksums, and every checkpoint and .npz file of the outputs against their zip members' CRC-32s (a cache folder copied from another node, before training on it); exit 1 where one is damaged.")
@click.option("--no-progress", is_flag=True)
@clear_errors
def outputs(dataset: str, cache_dir: Path, json_out: Path | None, verify: bool, no_progress: bool) -> None:
    """A dataset's feature caches and what was made from each (prototypes, sampler runs,
    evaluations, ablations), said by what they hold, the latest of each marked; then its
    fine-tuning runs."""
    from stages.outputs import cache_dir_hint, list_finetune_runs, list_outputs, outputs_table

    caches, finetune_runs = list_outputs(cache_dir, dataset), list_finetune_runs(cache_dir, dataset)
    click.echo(outputs_table(caches, finetune_runs, cache_dir / dataset, "" if caches else cache_dir_hint(cache_dir, dataset)))
    if json_out is not None:
        from pipeline.cache import write_text_atomic

        write_text_atomic(json_out, json.dumps({"caches": [c.to_dict() for c in caches], "finetune_runs": [r.to_dict() for r in finetune_runs]}, indent=1))
    if verify:
        from pipeline.cache import NO_CHECKSUMS, chunks_checked, damaged_blocks
        from pipeline.file_rights import can_read
        from stages.outputs import damaged_files

        readable = {cache.path: can_read(cache.path) for cache in caches if cache.path.exists()}
        for cache in (cache for cache in caches if readable.get(cache.path) is False):  # a group member's, kept to themselves
            click.echo(f"not verified {cache.path.name}: {cache.what}")
        damaged = {path: damaged_blocks(path, progress=not no_progress) for path, can in readable.items() if can}
        for path, found in damaged.items():
            whole = "every chunk read whole" + ("" if chunks_checked(path) else f"; {NO_CHECKSUMS}")
            click.echo(f"verified {path.name}: " + (whole if not found else f"{len(found)} block(s) damaged") + "".join(f"\n  {d.said}" for d in found))
        checked, bad_files = damaged_files(caches + finetune_runs, cache_dir / dataset)
        click.echo(f"verified {checked} checkpoint and .npz file(s): " + (f"{len(bad_files)} damaged" if bad_files else "every member matched its CRC-32") + "".join(f"\n  {line}" for line in bad_files))
        bad_records = [output for listed in caches + finetune_runs for output in listed.tree() if output.damaged]
        if bad_records:
            click.echo(f"{len(bad_records)} output(s) with a damaged JSON record:" + "".join(f"\n  {output.path}: {output.what}" for output in bad_records))
        if any(damaged.values()) or bad_files or bad_records:
            raise SystemExit(1)


@main.command("synth-cache")
@click.option("--like", type=click.Choice(["activitynet", "fcvid", "minikinetics", "ucf101"]), required=True, help="The dataset whose shape the cache takes (split sizes, classes, multi-label share).")
@click.option("--fraction", type=float, default=1.0, show_default=True, help="Share of every split (at least 2 videos each).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=Path("cache"), show_default=True)
@click.option("--no-progress", is_flag=True)
@clear_errors
def synth_cache(like: str, fraction: float, seed: int, cache_dir: Path, no_progress: bool) -> None:
    """A feature cache with a real dataset's shape and planted structure, without its videos."""
    from pipeline.synthetic import SynthSpec
    from stages.synth_cache import run_synth_cache

    click.echo(run_synth_cache(SynthSpec(like, fraction=fraction, seed=seed), cache_dir, progress=not no_progress).table())


@main.command("bench-scale")
@click.option("--like", type=click.Choice(["activitynet", "fcvid", "minikinetics", "ucf101"]), default="activitynet", show_default=True)
@click.option("--fraction", type=float, default=1.0, show_default=True, help="Share of the dataset's size (1: full size, where the targets apply).")
@click.option("--epochs", type=click.IntRange(min=1), default=2, show_default=True, help="Sampler training epochs timed (projected to the paper's 120).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=Path("cache"), show_default=True)
@click.option("--device", default="auto", show_default=True, help="Where train and evaluate run, as in those stages (auto: the GPU when present).")
@click.option("--no-progress", is_flag=True)
@clear_errors
def bench_scale_command(like: str, fraction: float, epochs: int, cache_dir: Path, device: str, no_progress: bool) -> None:
    """Wall time and peak memory of prototypes, train and evaluate at a real dataset's size."""
    from pipeline.distributed import pick_device
    from stages.bench_scale import run_bench_scale

    click.echo(run_bench_scale(like, fraction, epochs, cache_dir, progress=not no_progress, device=str(pick_device(device))).table())


def latest_prototypes_file(features_path: Path) -> Path:
    """Where ``nsnet prototypes`` records the prototypes it last made for a feature cache (the
    ablations make others beside them, which must not become the default)."""
    return features_path.with_name(features_path.name + ".latest-prototypes.txt")


@main.command()
@dataset_option
@click.option("--cache-dir", type=click.Path(path_type=Path), default=Path("cache"), show_default=True)
@click.option("--features", "features_path", type=click.Path(path_type=Path), default=None, help="Feature cache (default: the last one `nsnet features` finished for this dataset).")
@click.option("--epsilon", type=float, default=30.0, show_default=True, help="Top percent of correctly predicted frames per video (A.1).")
@click.option("--guide", type=click.Choice(["prototype", "response"]), default="prototype", show_default=True, help="Guiding score: prototype distance (eq. 1) or recognizer response (B.1).")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Scale of eq. 1's distances.")
@cache_videos_option
@preset_option
@click.option("--no-progress", is_flag=True)
@clear_errors
def prototypes(dataset: str, cache_dir: Path, features_path: Path | None, epsilon: float, guide: str, temperature: float, data_root: Path | None, preset: str | None, no_progress: bool) -> None:
    """Class prototypes and guiding saliency scores (NS pseudo labels) from the feature cache."""
    from pipeline.prototypes import GuidingScorer
    from stages.prototypes import run_prototypes

    features_path = resolve_features(cache_dir, dataset, features_path, preset)
    dataset, root = cache_dataset(features_path, dataset, data_root)
    result = run_prototypes(features_path, GuidingScorer(epsilon=epsilon, guide=guide, temperature=temperature), ground_truth=ground_truth_file(features_path, root), progress=not no_progress)
    record_latest(latest_prototypes_file(features_path), result.path)
    click.echo(result.table())


@main.command()
@dataset_option
@cache_videos_option
@sampler_inputs_options
@click.option("--fsm-target", type=click.Choice(["ns", "video_ns_class", "video", "baseline_plus", "regression", "ranking"]), default=None, help="FSM objective: NS pseudo labels, or a Table 6a/6d alternative.")
@click.option("--vgm-target", type=click.Choice(["ns", "video_ns_class", "video"]), default=None, help="VGM objective: eq. 3, or Table 6a's alternatives.")
@click.option("--gamma", type=float, default=None, help="Weight of L_ns.")
@click.option("--fem", type=click.Choice(["transformer", "conv1d", "lstm", "mlp"]), default=None)
@click.option("--epochs", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--shuffle-window", type=click.IntRange(min=1), default=None, help="Training videos held in memory at once; more are read and shuffled a window of this many at a time [default: 16384].")
@click.option("--val-every", type=click.IntRange(min=0), default=SAMPLER_VAL_EVERY, show_default=True, help="Score NSNet and UNIFORM at K=5 on the evaluation videos (val, else test) from the cache every this many epochs and after the last (log.jsonl, curves.png, the summary); 0: never. Not part of the run's identity.")
@click.option("--device", default="auto", show_default=True)
@click.option("--no-progress", is_flag=True)
@clear_errors
def train(dataset: str, data_root: Path | None, cache_dir: Path, features_path: Path | None, prototypes_path: Path | None, preset: str | None, val_every: int, device: str, no_progress: bool, **changes: Any) -> None:
    """Train the sampler heads (FEM, FSM, VGM) on the cached tensors."""
    from dataclasses import replace

    from pipeline.datasets import get_dataset
    from pipeline.distributed import pick_device
    from stages.train import draw_curves, run_train

    features_path, prototypes_path = resolve_sampler_inputs(cache_dir, dataset, features_path, prototypes_path, preset)
    dataset, root = cache_dataset(features_path, dataset, data_root)
    cfg = replace(get_dataset(dataset).train, **{k: v for k, v in changes.items() if v is not None})
    result = run_train(features_path, prototypes_path, cfg, device=str(pick_device(device)), progress=not no_progress, ground_truth=ground_truth_file(features_path, root), val_every=val_every)
    record_latest(latest_run_file(prototypes_path, features_path), result.path)
    draw_curves(result, cfg)
    click.echo(result.table())


def sampler_run_given(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """``--run`` as given, a file of a sampler run (its ``model.pth``) as the run's folder
    (:func:`~pipeline.output_kinds.run_folder`)."""
    return None if value is None else run_folder(value)


def evaluation_inputs(cache_dir: Path, dataset: str, data_root: Path | None, features_path: Path | None, prototypes_path: Path | None, run_path: Path | None, preset: str | None) -> tuple[Path, Path, Path, str, Path]:
    """What ``nsnet evaluate`` scores: (feature cache, prototypes, sampler run, dataset, data
    root). A run given without ``--features`` takes the cache it was trained on (its folder's
    name begins with the cache's: :func:`~stages.predict.features_of_run`; ``nsnet evaluate
    --run DIR`` read the default dataset's latest cache before), and without ``--prototypes`` the
    prototypes it was trained on (:func:`prototypes_of_run`; with ``--features`` given, it took
    the cache's latest, another run's, before the fifty-eighth session)."""
    from stages.predict import features_of_run

    if run_path is not None:
        features_path = features_path or features_of_run(run_path)
        prototypes_path = prototypes_path or prototypes_of_run(run_path)
    features_path, prototypes_path = resolve_sampler_inputs(cache_dir, dataset, features_path, prototypes_path, preset)
    dataset, root = cache_dataset(features_path, dataset, data_root)
    return features_path, prototypes_path, resolve_run(features_path, prototypes_path, dataset, run_path), dataset, root


def prototypes_of_run(run_path: Path) -> Path | None:
    """The prototypes a sampler run's ``model.pth`` names, where they are there (or beside the
    run: a cache folder moved, :func:`~pipeline.cache.found_beside`); else None (a run unfinished,
    its prototypes removed: the cache's latest are taken)."""
    from pipeline.cache import found_beside
    from stages.train import read_run_model, run_finished

    if not run_finished(run_path):
        return None
    named = read_run_model(run_path, weights_only=True).get("prototypes")
    found = None if named is None else found_beside(Path(named), run_path.parent)
    return found if found is not None and found.is_dir() else None


def prototypes_pointers(features_path: Path) -> tuple[Path, ...]:
    """Where the prototypes last made for a cache may be recorded, in the order the later stages
    read them: beside the cache as named, then beside the cache a link names (a shared cache's own)."""
    from pipeline.shared_caches import linked_cache

    linked = linked_cache(features_path)
    return (latest_prototypes_file(features_path),) if linked is None else (latest_prototypes_file(features_path), latest_prototypes_file(linked))


def run_pointers(prototypes_path: Path, features_path: Path) -> tuple[Path, ...]:
    """Where the sampler run last trained on these prototypes may be recorded, in the order the
    later stages read them: beside the cache, where ``nsnet train`` records it, then beside the
    prototypes (a shared folder's own; the same file where they lie beside the cache)."""
    return tuple(dict.fromkeys((latest_run_file(prototypes_path, features_path), latest_run_file(prototypes_path, prototypes_path))))


def latest_run_file(prototypes_path: Path, beside: Path) -> Path:
    """Where ``nsnet train`` records the sampler run it last finished on these prototypes (the
    evaluate stage's own runs, such as the w/o-NS baseline, are not recorded), in the folder of
    ``beside``: the feature cache's, where the run is (the prototypes' too, unless they are a
    shared cache's, in a folder not written here)."""
    return beside.with_name(prototypes_path.name + ".latest-run.txt")


def resolve_run(features_path: Path, prototypes_path: Path, dataset: str, run_path: Path | None) -> Path:
    """The given sampler run, else the last one ``nsnet train`` finished on these prototypes
    (whatever its options), else the one it makes with the dataset's config where it is there;
    else a :class:`CacheError` saying that these prototypes have no run, and naming the run last
    finished on other prototypes of the cache (newer prototypes made since, for one)."""
    from pipeline.cache import CacheError, FeatureCache, read_pointer
    from pipeline.datasets import get_dataset
    from stages.train import run_dir_for, run_finished

    if run_path is not None:
        return run_path
    pointer = next((p for p in run_pointers(prototypes_path, features_path) if p.is_file()), None)
    if pointer is not None:
        return read_pointer(pointer)
    with FeatureCache(features_path) as cache:
        run = run_dir_for(features_path, prototypes_path, get_dataset(dataset).train, cache.content_fingerprint)
    if run_finished(run):
        return run
    pointers = [latest_run_file(p, features_path) for p in features_path.parent.glob(glob.escape(features_path.name) + ".prototypes-*") if p.is_dir()]
    earlier = [read_pointer(p) for p in sorted((p for p in pointers if p.is_file()), key=lambda p: p.stat().st_mtime_ns)]
    last = next((f"; the run last finished on other prototypes of this cache: --run {r}" for r in reversed(earlier) if run_finished(r)), "")
    raise CacheError(f"{prototypes_path}: no sampler run trained on these prototypes: run `nsnet train` on them (its default: the latest made for the cache), or pass --run{last}")


@main.command()
@dataset_option
@cache_videos_option
@sampler_inputs_options
@click.option("--run", "--sampler-run", "run_path", type=click.Path(path_type=Path), default=None, callback=sampler_run_given, help="Trained sampler: a run's folder, or its model.pth (default: the last run `nsnet train` finished on the prototypes, else the run of the dataset's train config); under torchrun spelt --sampler-run, as torchrun takes --run for its own --run-path.")
@frame_choice_options
@click.option("--seed", type=int, default=None, help="Seed of the RANDOM baseline.")
@click.option("--all-frames/--no-all-frames", default=None, help="Table 1's baselines over all frames (they decode every frame of every evaluation video) [default: on; at 1 fps on ActivityNet; off on FCVID and Mini-Kinetics, where the paper has none].")
@click.option("--all-frames-rate", metavar="FPS|every", default=None, callback=lambda ctx, param, value: parse_all_frames_rate(value), help="Frames per second that count as all frames, or 'every' for every frame [default: 1 on ActivityNet, as the paper; every frame elsewhere].")
@click.option("--split", type=click.Choice(EVALUATION_SPLITS), default=None, help="The split evaluated on [default: val where the dataset has val videos, else test].")
@click.option("--nsnet-from-cache", is_flag=True, help="NSNet's row from the cached logits of its K frames, as the other rows of the T observed frames, instead of decoding those frames again and running the recognizer on them (the real path: a decode of every evaluation video, hours for FCVID's on a CPU). The two agree where the videos are those the cache was built from.")
@click.option("--device", default="auto", show_default=True)
@backend_options(compare=False)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Decoding processes [default: 2 on the CPU, all cores but 2 on a GPU].")
@click.option("--shard", default="0/1", show_default=True, help="This job's share i/n of the decoding (NSNet's decoded row, the baselines over all frames), combined with torchrun ranks: the shares decode and end, and a run without --shard writes the report; under torchrun alone rank 0 writes it after the others have finished.")
@decode_timeout_option
@click.option("--no-progress", is_flag=True)
@clear_errors
def evaluate(dataset: str, data_root: Path | None, cache_dir: Path, features_path: Path | None, prototypes_path: Path | None, preset: str | None, run_path: Path | None, all_frames: bool | None, split: str | None, nsnet_from_cache: bool, device: str, backend: str, onnx_dir: Path | None, workers: int | None, shard: str, decode_timeout: float, no_progress: bool, **changes: Any) -> None:
    """NSNet vs UNIFORM, RANDOM, DENSE and TOP-K: mAP, top-1 and counted GFLOPs, with plots."""
    from pipeline.distributed import barrier, joined_worker, parse_shard
    from pipeline.extract import per_video_workers
    from stages.evaluate import evaluate_share, run_evaluate
    from stages.evaluate_report import render_table

    features_path, prototypes_path, run_path, dataset, root = evaluation_inputs(cache_dir, dataset, data_root, features_path, prototypes_path, run_path, preset)
    cfg = evaluation_config(dataset, preset, all_frames, **changes)
    quotes = None if preset is None else get_preset(preset).quotes(dataset)
    with joined_worker(parse_shard(shard), device) as worker:
        options = dict(device=str(worker.device), workers=per_video_workers(workers, worker.device), progress=not no_progress, backend=backend, export_dir=onnx_dir or cache_dir / "onnx", decode_timeout=decode_timeout, nsnet_from_cache=nsnet_from_cache, split=split)
        if worker.num_shards > 1:
            part = evaluate_share(features_path, prototypes_path, run_path, root, worker.share, cfg, **options)
            barrier(worker)
            if worker.num_shards > worker.world_size or not worker.is_leader:  # --shard jobs, or a rank other than 0
                then = "rank 0 writes the report" if worker.num_shards == worker.world_size else "when every --shard job has finished, `nsnet evaluate` without --shard writes the report, decoding only what they left"
                click.echo(f"{part.summary()}\n  {then}")
                if part.failed and worker.world_size == 1:  # not under torchrun, which would stop the other ranks: printed, retried by the next run
                    raise SystemExit(1)
                return
        report = run_evaluate(features_path, prototypes_path, run_path, root, cfg, preset=quotes, **options)
    click.echo(render_table(report) + ("" if report["computed"] else "\n(already evaluated with this config: nothing recomputed)"))


@main.command()
@click.argument("videos", nargs=-1, type=click.Path(path_type=Path))
@click.option("--videos-from", "listing", type=click.Path(path_type=Path, allow_dash=True), default=None, help="A file listing videos or folders, one path a line (`find ... > list.txt`, or a dataset's list file, its labels passed over; '-' reads standard input), predicted with VIDEOS: for more than a command line holds.")
@click.option("--videos-root", type=click.Path(path_type=Path, file_okay=False), default=None, help="The folder --videos-from's relative paths lie under (a dataset list's data root) [default: the current folder].")
@click.option("--run", "--sampler-run", "run_path", type=click.Path(path_type=Path), default=None, callback=sampler_run_given, help="Sampler run of `nsnet train`: its folder, or its model.pth (default: the last one it finished for --dataset's latest prototypes, else the run of the dataset's train config); --sampler-run is the same.")
@click.option("--dataset", type=click.Choice(sorted(DATASETS)), default=None, help="Check that the run was trained on this dataset (and find its default run).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=Path("cache"), show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("cache/predict"), show_default=True, help="Where predictions.jsonl and the plots go: a run goes on from the file there, sets one of other settings aside in earlier/, and takes the lines other --shard counts or settings left there.")
@frame_choice_options
@click.option("--batch-size", type=click.IntRange(min=1), default=PREDICT_BATCH, show_default=True, help="Videos per model batch.")
@click.option("--plot", is_flag=True, help="A PNG per video: saliency over time, chosen frames and their thumbnails.")
@click.option("--device", default="auto", show_default=True)
@backend_options(compare=False)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Decoding processes [default: 2 on the CPU, all cores but 2 on a GPU].")
@click.option("--allow-failures", is_flag=True, help="Exit 0 even when some videos could not be read.")
@click.option("--retry-failed", is_flag=True, help="Going on from an earlier run into the same --out: predict again the videos it could not read though their files are unchanged (their lines are dropped first; a file changed since is predicted again anyway).")
@click.option("--shard", default="0/1", show_default=True, help="This job's share i/n of the videos (every n-th of their list, from the i-th), combined with torchrun ranks; each share writes into --out's share-i-of-n/ folder.")
@decode_timeout_option
@click.option("--no-progress", is_flag=True)
@clear_errors
def predict(videos: tuple[Path, ...], listing: Path | None, videos_root: Path | None, run_path: Path | None, dataset: str | None, cache_dir: Path, out_dir: Path, batch_size: int, plot: bool, device: str, backend: str, onnx_dir: Path | None, workers: int | None, allow_failures: bool, retry_failed: bool, shard: str, decode_timeout: float, no_progress: bool, **changes: Any) -> None:
    """NSNet on videos or folders of videos: top-5 classes and the K chosen frames of each."""
    from dataclasses import replace

    from pipeline.distributed import barrier, from_leader, gathered, joined_worker, parse_shard
    from pipeline.extract import per_video_workers
    from stages.predict import find_videos, listed_videos, run_predict

    if not videos and listing is None:
        raise click.UsageError("no videos: give VIDEOS, or --videos-from a file listing them")
    if run_path is None:
        features_path, prototypes_path = resolve_sampler_inputs(cache_dir, dataset or "demo", None, None, instead=(PREDICT_RUN_HINT, PREDICT_RUN_HINT))
        run_path = resolve_run(features_path, prototypes_path, dataset or "demo", None)
    cfg = replace(EvalConfig(), **{k: v for k, v in changes.items() if v is not None})
    with joined_worker(parse_shard(shard), device) as worker:
        # one list for every torchrun rank to divide: rank 0 reads it (torchrun gives the standard input to one rank) and walks the folders
        found = from_leader(lambda: find_videos((*videos, *(listed_videos(listing, videos_root) if listing is not None else ()))), worker)
        if not found:
            raise click.UsageError(f"no videos: give VIDEOS, or --videos-from a file listing them ({listing} lists none)")
        result = run_predict(found, run_path, out_dir, cfg, device=str(worker.device), dataset=dataset, batch_size=batch_size, workers=per_video_workers(workers, worker.device), plot=plot, progress=not no_progress, backend=backend, export_dir=onnx_dir or cache_dir / "onnx", decode_timeout=decode_timeout, retry_failed=retry_failed, share=worker.share)
        reports = gathered((result.table(), len(result.failures), result.total), worker)  # every rank's, once all are through
        failed, total = sum(failed for _, failed, _ in reports), sum(total for _, _, total in reports)
        refusal = f"{failed} of {total} video(s) could not be read (listed above); pass --allow-failures to accept" if failed and not allow_failures else None
        if worker.is_leader:  # printed by one process in rank order, not interleaved; the job's count, once
            click.echo("\n\n".join(table for table, _, _ in reports))
            if refusal and worker.world_size > 1:
                click.echo(f"Error: {refusal}", err=True)  # before any rank exits: torchrun stops the others at the first
        barrier(worker)  # no rank ends with its failures while another predicts or prints: torchrun would stop it
    if refusal and worker.world_size > 1:
        raise SystemExit(1)  # every rank: the job failed
    if refusal:
        raise click.ClickException(refusal)


@main.command()
@dataset_option
@sampler_inputs_options
@click.option("--k", "k", type=int, default=None, help="Frames the recognizer sees (K); Table 6b adds 2K.")
@click.option("--device", default="auto", show_default=True)
@click.option("--no-progress", is_flag=True)
@clear_errors
def ablations(dataset: str, cache_dir: Path, features_path: Path | None, prototypes_path: Path | None, preset: str | None, k: int | None, device: str, no_progress: bool) -> None:
    """Tables 6a, 6b, 6c, 6d, B.1 and B.2: trains every variant (once) and scores it."""
    from dataclasses import replace

    from pipeline.datasets import get_dataset
    from pipeline.distributed import pick_device
    from stages.ablations import render_ablations, run_ablations

    features_path, prototypes_path = resolve_sampler_inputs(cache_dir, dataset, features_path, prototypes_path, preset)
    dataset, _ = cache_dataset(features_path, dataset)
    cfg = EvalConfig() if preset is None else get_preset(preset).evaluation(dataset)
    cfg = replace(cfg, **({"k": k} if k else {}))
    report = run_ablations(features_path, prototypes_path, get_dataset(dataset).train, cfg, device=str(pick_device(device)), progress=not no_progress)
    click.echo(render_ablations(report) + f"{'written' if report['computed'] else 'already there, nothing to do:'} {report['output']}/ablations.md")


@main.command("bench-train")
@dataset_option
@sampler_inputs_options
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--no-progress", is_flag=True)
@clear_errors
def bench_train_command(dataset: str, cache_dir: Path, features_path: Path | None, prototypes_path: Path | None, preset: str | None, epochs: int, device: str, no_progress: bool) -> None:
    """Share of the sampler's training step spent waiting for data from the cache."""
    from pipeline.datasets import get_dataset
    from pipeline.distributed import pick_device
    from stages.bench_train import bench_train

    features_path, prototypes_path = resolve_sampler_inputs(cache_dir, dataset, features_path, prototypes_path, preset)
    dataset, _ = cache_dataset(features_path, dataset)
    click.echo(bench_train(features_path, prototypes_path, get_dataset(dataset).train, epochs, str(pick_device(device)), progress=not no_progress).table())


@main.command("bench")
@click.option("--frames", "num_frames", type=click.IntRange(min=1), default=None, help="T (default: the paper's 16).")
@click.option("--k", "k", type=click.IntRange(min=1), default=None, help="K (default: the paper's 5).")
@click.option("--classes", "num_classes", type=click.IntRange(min=2), default=200, show_default=True, help="Recognizer classes (ActivityNet: 200).")
@backbone_options(weights=False)
@click.option("--batch-sizes", default="1,32", show_default=True, callback=lambda ctx, param, value: parse_batch_sizes(value), help="Batch sizes timed: batch 1 is latency (its targets and repetitions), larger ones throughput.")
@click.option("--reps", type=click.IntRange(min=1), default=5, show_default=True, help=f"Timed repetitions (median), after one warm-up; batch 1 takes {LATENCY_REPS_FACTOR} times as many.")
@click.option("--no-decode", is_flag=True, help="Skip the decoding measurement.")
@click.option("--device", default="auto", show_default=True)
@backend_options(compare=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("cache/bench/inference.json"), show_default=True, help="The JSON report; the repetitions' fractions are plotted beside it (.png).")
@click.option("--no-progress", is_flag=True)
@clear_errors
def bench_command(num_frames: int | None, k: int | None, num_classes: int, batch_sizes: tuple[int, ...], reps: int, no_decode: bool, device: str, backends: str | None, onnx_dir: Path | None, out: Path, no_progress: bool, **models: Any) -> None:
    """Table 5: latency and throughput of NSNet, DENSE and UNIFORM; FLOP-bound vs measured speedup."""
    from pipeline.backends import DEFAULT_EXPORT_DIR
    from pipeline.config import FeaturesConfig
    from pipeline.distributed import pick_device
    from stages.bench import bench_inference, write_report

    config = FeaturesConfig().with_overrides(num_frames=num_frames, **backbone_overrides(models))
    dev = pick_device(device)
    result = bench_inference(config, k or EvalConfig().k, num_classes, batch_sizes, reps, dev, parse_backends(backends, dev), onnx_dir or DEFAULT_EXPORT_DIR, decode=not no_decode, progress=not no_progress)
    click.echo(result.table())
    click.echo(f"written {', '.join(str(path) for path in write_report(result, out))}")


@main.command("bench-features")
@dataset_option
@data_root_option
@click.option("--videos", "max_videos", type=click.IntRange(min=1), default=96, show_default=True, help="Benchmark on the first N videos.")
@click.option("--backbones", type=click.Choice(["paper", "dataset"]), default="paper", show_default=True, help="paper: MobileNetV2 + ResNet-50 at 224², random init (as `nsnet bench`); dataset: the dataset's feature profile. The --*-model options apply to either.")
@backbone_options(weights=True)
@click.option("--device", default="auto", show_default=True)
@backend_options(compare=True)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Decoding processes [default: as `nsnet features`].")
@click.option("--videos-per-batch", type=click.IntRange(min=1), default=NEW_CACHE_VIDEOS_PER_BATCH, show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("cache/bench/features.json"), show_default=True)
@click.option("--no-progress", is_flag=True)
@annotation_options
@clear_errors
def bench_features_command(dataset: str, data_root: Path | None, max_videos: int, backbones: str, device: str, backends: str | None, onnx_dir: Path | None, workers: int | None, videos_per_batch: int, out: Path, no_progress: bool, files: Any, **model_options: Any) -> None:
    """Frames/s of decoding alone, the models alone and the full features stage."""
    from pipeline.config import RunOptions
    from pipeline.datasets import get_dataset
    from pipeline.distributed import pick_device
    from stages.bench_features import bench_features, with_paper_backbones, write_report

    config = get_dataset(dataset).features
    if backbones == "paper":
        config = with_paper_backbones(config)
    config = config.with_overrides(**backbone_overrides(model_options))
    opts = RunOptions(device=device, exports=onnx_dir, workers=workers, videos_per_batch=videos_per_batch, progress=not no_progress)
    result = bench_features(dataset, data_root, config, opts, max_videos, parse_backends(backends, pick_device(device)), files)
    click.echo(result.table())
    write_report(result, out)
    click.echo(f"written {out}")


if __name__ == "__main__":
    main()
