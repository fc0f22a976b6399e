"""The command line (clear errors, demo data), the features benchmark and the inference benchmark (Table 5) on tiny inputs."""

import errno
import json
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import TINY_MODEL_OPTIONS
from pipeline.cache import final_path, staging_path, summary_path
from pipeline.datasets import get_dataset
from stages.bench import InferenceBench, summarize, time_batch
from stages.bench_features import bench_features, with_paper_backbones
from stages.features import FeaturesSummary, write_summary
from stages.cli import PREDICT_RUN_HINT, TORCHRUN_COMMANDS, file_error_line, main


def test_data_command_generates_and_describes_the_demo(tmp_path: Path):
    result = CliRunner().invoke(
        main,
        ["data", "--dataset", "demo", "--data-root", str(tmp_path / "d"), "--classes", "2", "--train-per-class", "2", "--val-per-class", "1", "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert "dataset demo: 6 videos, 2 classes" in result.output and "train 4, val 2" in result.output
    assert len(list((tmp_path / "d" / "videos").glob("*.mp4"))) == 6
    assert f"videos on disk under {tmp_path / 'd'}: 6 of 6" in result.output and "missing" not in result.output


def test_data_command_counts_the_videos_on_disk_and_names_the_missing(tmp_path: Path):
    """A list dataset with one video there, one an empty file (a download that failed), one an
    unfinished download (yt-dlp's .part), one a link to nothing and one not there at all:
    counted by split, each named, and with ``--missing`` listed in a file, a JSON line each (the
    empty file too: both to download again); a folder of frames is there, whatever it holds; with
    none there, the data root is suspect."""
    (tmp_path / "videos" / "f").mkdir(parents=True)
    (tmp_path / "videos" / "a.mp4").write_bytes(b"x")
    (tmp_path / "videos" / "e.mp4").write_bytes(b"")
    (tmp_path / "videos" / "b.mp4.part").write_bytes(b"")
    (tmp_path / "videos" / "d.mp4").symlink_to("/mnt/unmounted/d.mp4")
    (tmp_path / "train.txt").write_text("videos/a.mp4 0\nvideos/b.mp4 1\nvideos/d.mp4 1\nvideos/e.mp4 0\n")
    (tmp_path / "val.txt").write_text("videos/c.mp4 0\nvideos/f 1\n")
    args = ["data", "--dataset", "list", "--train-list", str(tmp_path / "train.txt"), "--val-list", str(tmp_path / "val.txt")]
    result = CliRunner().invoke(main, [*args, "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = lines.index(f"videos on disk under {tmp_path}: 3 of 6")
    broken = f"{tmp_path / 'videos' / 'd.mp4'} links to /mnt/unmounted/d.mp4, which is not there"
    assert lines[at + 1 :] == [
        "missing: 3 (train 2, val 1; unfinished downloads 1; broken symbolic links 1), the features stage records each as failed; the first:",
        "  videos/b.mp4: unfinished download (b.mp4.part lies where the video should be)",
        f"  videos/d.mp4: broken symbolic link ({broken})",
        "  videos/c.mp4",
        "empty files: 1 (0 bytes: downloads that failed), the features stage records each as failed; the first: videos/e.mp4",
    ]
    listed = CliRunner().invoke(main, [*args, "--data-root", str(tmp_path), "--missing", str(tmp_path / "out" / "missing.jsonl")])
    assert listed.output.splitlines()[-1] == f"missing or empty videos (4) written to {tmp_path / 'out' / 'missing.jsonl'}"
    assert [json.loads(line) for line in (tmp_path / "out" / "missing.jsonl").read_text().splitlines()] == [
        {"video": "videos/b", "split": "train", "labels": ["1"], "path": "videos/b.mp4", "unfinished": "b.mp4.part lies where the video should be", "broken_link": None, "empty": False},
        {"video": "videos/d", "split": "train", "labels": ["1"], "path": "videos/d.mp4", "unfinished": None, "broken_link": broken, "empty": False},
        {"video": "videos/e", "split": "train", "labels": ["0"], "path": "videos/e.mp4", "unfinished": None, "broken_link": None, "empty": True},
        {"video": "videos/c", "split": "val", "labels": ["0"], "path": "videos/c.mp4", "unfinished": None, "broken_link": None, "empty": False},
    ]
    (tmp_path / "other").mkdir()
    elsewhere = CliRunner().invoke(main, [*args, "--data-root", str(tmp_path / "other")])
    assert f"videos on disk under {tmp_path / 'other'}: 0 of 6" in elsewhere.output and f"none is under {tmp_path / 'other'}: the annotations' paths are relative to --data-root" in elsewhere.output
    (tmp_path / "linked").mkdir()  # every video in a folder linked to a disk not mounted
    (tmp_path / "linked" / "videos").symlink_to("/mnt/unmounted/videos")
    unmounted = CliRunner().invoke(main, [*args, "--data-root", str(tmp_path / "linked")])
    assert unmounted.output.splitlines()[-1] == f"none is under {tmp_path / 'linked'}: each lies behind a broken symbolic link (above): mount or link again the disk it pointed to"


def test_data_check_decoding_names_the_files_decord_would_misread(tmp_path: Path, video_writer):
    """``nsnet data --check-decoding`` looks into every video file (not the missing ones, not
    folders of frames) and names those that PyAV reads since decord misreads them: here a
    transport stream, which decord read before all the same, and an MPEG-4 AVI with B-frames
    (as xvid writes them), which it refused before too; an MP4 of closed groups of pictures is
    decord's."""
    frames = np.zeros((30, 32, 64, 3), dtype=np.uint8)
    frames[..., 0] = (8 * np.arange(30))[:, None, None]
    (tmp_path / "videos" / "frames").mkdir(parents=True)
    video_writer(tmp_path / "videos" / "a.mp4", frames, 8, "mp4", "libx264")
    video_writer(tmp_path / "videos" / "b.ts", frames, 8, "mpegts", "libx264")
    video_writer(tmp_path / "videos" / "c.avi", frames, 8, "avi", "mpeg4", {"g": "10", "bf": "2", "b": "2000000"})
    (tmp_path / "train.txt").write_text("videos/a.mp4 0\nvideos/b.ts 1\nvideos/c.avi 0\nvideos/gone.mp4 0\nvideos/frames 1\n")
    args = ["data", "--dataset", "list", "--data-root", str(tmp_path), "--train-list", str(tmp_path / "train.txt"), "--list-format", "video", "--no-progress"]
    result = CliRunner().invoke(main, [*args, "--check-decoding"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-3:] == [
        "decord would misread 2 of 3 video files, which PyAV reads (an MPEG transport stream 1, open groups of pictures 1); 1 of them decord read before 2026-12-06 (night) all the same: a feature cache built before holds their frames as decord gave them, which its next features run computes again; the first:",
        "  videos/b.ts: an MPEG transport stream (decord returns its frames a group of pictures or more late)",
        "  videos/c.avi: open groups of pictures (frames shown before a keyframe are decoded after it: decord returns frames shifted after a seek) (refused by decord before as well)",
    ]
    (tmp_path / "train.txt").write_text("videos/c.avi 0\n")
    assert "decord refused them before 2026-12-06 (night) too: a feature cache built before holds PyAV's frames of them; the first:" in CliRunner().invoke(main, [*args, "--check-decoding"]).output
    assert "decord" not in CliRunner().invoke(main, args).output  # only when asked: a look into every file
    (tmp_path / "train.txt").write_text("videos/a.mp4 0\nvideos/frames 1\n")
    assert CliRunner().invoke(main, [*args, "--check-decoding"]).output.splitlines()[-1] == "decord reads the 1 video file(s) as asked (no transport stream, ASF, edit-list cut or open groups of pictures)"


def test_a_file_systems_refusal_of_a_named_file_is_one_line(tmp_path: Path):
    """An output the file system refuses (a folder to make where a file lies, a file that cannot
    be written) ends the command with the file and the system's reason on one line, exit status
    1, not a traceback; an error naming no file stays Python's."""
    (tmp_path / "videos").mkdir()
    (tmp_path / "train.txt").write_text("videos/a.mp4 0\n")
    (tmp_path / "taken").write_text("a file where a folder is asked for")
    result = CliRunner().invoke(main, ["data", "--dataset", "list", "--data-root", str(tmp_path), "--train-list", str(tmp_path / "train.txt"), "--missing", str(tmp_path / "taken" / "missing.jsonl")])
    assert result.exit_code == 1 and result.output.splitlines()[-1] == f"Error: {tmp_path / 'taken'}: File exists"
    assert file_error_line(PermissionError(errno.EACCES, "Permission denied", "out/x.jsonl")) == "out/x.jsonl: Permission denied"
    assert file_error_line(PermissionError(errno.EACCES, "Permission denied", "out/x.jsonl.4242.tmp")) == "out/x.jsonl: Permission denied"  # written through a temporary file
    assert file_error_line(OSError(errno.EXDEV, "Invalid cross-device link", "a.tmp", None, "b")) == "a.tmp -> b: Invalid cross-device link"
    assert file_error_line(OSError(errno.EIO, "Input/output error")) is None


def test_the_command_line_and_the_configs_start_without_torch():
    """Every command imports torch where it needs it: reading the CLI, the datasets and their
    configs does not (the training config's checks imported the sampler, and with it torch, into
    every command's start-up for a while on 2026-12-06: 2.0 s and 0.8 GiB against 0.3 s and 40 MB)."""
    import subprocess
    import sys

    code = "import sys, stages.cli, pipeline.datasets, pipeline.config; print(sorted(m for m in ('torch', 'timm', 'sklearn') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_data_help_says_what_each_dataset_reads():
    output = CliRunner().invoke(main, ["data", "--help"]).output
    lines = output[output.index("Datasets:") :].splitlines()
    for name in ("activitynet", "fcvid", "kinetics", "list", "ucf101"):
        spec = get_dataset(name)
        rows = [line.split(None, 1)[1] for line in lines if line.split()[:1] == [name]]
        assert rows == [f"{spec.description} [default root {spec.default_root}]"]


def test_errors_are_one_clear_line_and_exit_1(tmp_path: Path):
    result = CliRunner().invoke(main, ["features", "--dataset", "ucf101", "--data-root", str(tmp_path), "--no-progress"])
    assert result.exit_code == 1
    assert "Error: " in result.output and f"{tmp_path}: no classInd.txt in ucfTrainTestlist/, annotations/ or the data root" in result.output
    result = CliRunner().invoke(main, ["features", "--shard", "3/2", "--data-root", str(tmp_path)])
    assert result.exit_code == 1 and "need 0 <= i < n" in result.output
    (tmp_path / "a.mp4").write_bytes(b"")  # a video given as the data root: every video was "missing" under it
    for command in ("data", "features", "evaluate"):
        result = CliRunner().invoke(main, [command, "--data-root", str(tmp_path / "a.mp4")])
        assert result.exit_code == 2 and f"Invalid value for '--data-root': Directory '{tmp_path / 'a.mp4'}' is a file." in result.output, command
    for command in (["features"], ["finetune"], ["evaluate"], ["predict", str(tmp_path)]):  # every video would pass for hung
        result = CliRunner().invoke(main, [*command, "--decode-timeout", "0"])
        assert result.exit_code == 2 and "Invalid value for '--decode-timeout': 0.0 is not in the range x>0." in result.output, command
    # counts that were a traceback (a division by zero, a KeyError, an empty reshape) or a
    # library's words (range()'s, DataLoader's) before 2026-12-06: refused before anything runs
    for command, option, value, said in (
        (["features"], "--videos-per-batch", "0", "0 is not in the range x>=1"),
        (["features"], "--videos-per-shard", "0", "0 is not in the range x>=1"),
        (["features"], "--workers", "-1", "-1 is not in the range x>=0"),
        (["predict", str(tmp_path)], "--batch-size", "0", "0 is not in the range x>=1"),
        (["bench-train"], "--epochs", "0", "0 is not in the range x>=1"),
        (["bench"], "--reps", "0", "0 is not in the range x>=1"),
        (["bench"], "--batch-sizes", "1,0", "batch sizes must be at least 1, got 1,0"),
        (["bench"], "--batch-sizes", "1;32", "'1;32' is not batch sizes separated by commas, as 1,32"),
    ):
        result = CliRunner().invoke(main, [*command, option, value])
        assert result.exit_code == 2 and f"Invalid value for '{option}': {said}" in result.output, (command, option)


def test_run_options_outside_their_ranges_are_refused_naming_the_field():
    from pipeline.config import RunOptions

    for change, said in (({"videos_per_batch": 0}, "videos_per_batch must be at least 1, got 0"), ({"videos_per_shard": 0}, "videos_per_shard must be at least 1, got 0"),
                         ({"workers": -1}, r"workers must be at least 0 \(0: decoding in this process\), got -1"), ({"decode_timeout": 0.0}, "decode_timeout must be positive, got 0.0")):
        with pytest.raises(ValueError, match=said):
            RunOptions(**change)
    assert RunOptions(workers=0, videos_per_batch=1, videos_per_shard=1).workers == 0



def test_every_option_of_the_commands_torchrun_starts_reaches_them_through_torchrun():
    """torchrun's argument parser reads the script's arguments too and stops at an option that
    abbreviates two of its own (``--run`` of ``--run-path`` and ``--run_path``: "ambiguous
    option"), so the commands it starts spell each option so that none does."""
    from torch.distributed.run import get_args_parser

    parser = get_args_parser()
    for command in TORCHRUN_COMMANDS:
        spellings = [[o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")] for param in main.commands[command].params]
        for names in spellings:
            if names and all(len([own for own in parser._option_string_actions if own.startswith(name) and own != name]) > 1 for name in names):
                pytest.fail(f"nsnet {command} {names}: torchrun takes each as an abbreviation of two of its own options")
    assert parser.parse_args(["--nproc_per_node=2", "-m", "stages.cli", "evaluate", "--sampler-run", "r"]).training_script_args == ["evaluate", "--sampler-run", "r"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--nproc_per_node=2", "-m", "stages.cli", "evaluate", "--run", "r"])  # why --sampler-run is there


def test_a_command_of_one_process_under_torchrun_says_so(monkeypatch):
    """Started by torchrun, a command that does not divide its work would run whole on every
    rank: the second rank's output lock stopped it, and torchrun then stopped the first."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    for command in ("prototypes", "train", "ablations", "bench"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 2 and f"nsnet {command} runs in one process, but WORLD_SIZE is 2 here" in result.output, result.output
    assert set(TORCHRUN_COMMANDS) < set(main.commands)
    assert CliRunner().invoke(main, ["evaluate", "--help"]).exit_code == 0
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert CliRunner().invoke(main, ["train", "--help"]).exit_code == 0

def test_features_with_a_cache_path_records_it_for_the_later_stages_in_a_new_cache_dir(tiny_videos, tmp_path: Path):
    """``--cache`` puts the store anywhere; the dataset's folder under ``--cache-dir`` (not made
    yet, as nothing else was written there) still gets the pointer the later stages read."""
    store, cache_dir = tmp_path / "elsewhere" / "features.zarr", tmp_path / "cache"
    args = ["features", "--dataset", "demo", "--data-root", str(tiny_videos), "--cache-dir", str(cache_dir), "--cache", str(store), "--workers", "0", "--backend", "torch", "--no-progress", *TINY_MODEL_OPTIONS]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (cache_dir / "demo" / "latest-features.txt").read_text() == f"{store.resolve()}\n" and store.is_dir()
    assert sorted(p.name for p in (cache_dir / "demo").iterdir()) == [".latest-features.txt.lock", "latest-features.txt"]  # written whole, under its lock: no partial file left
    assert "(complete)" in result.output
    left = [store.with_name(f"{store.name}.{name}.99999999.tmp") for name in ("summary.json", "failures.jsonl")]  # a writer killed while writing each
    for partial in left:
        partial.write_text("{")
    again = CliRunner().invoke(main, args)  # computes nothing, writes both files again under their locks
    assert again.exit_code == 0 and json.loads(summary_path(store).read_text())["computed"] == 0
    assert not any(partial.exists() for partial in left) and not list(store.parent.glob("*.tmp"))
    assert {p.name for p in store.parent.glob(".*.lock")} == {f".{store.name}.failures.jsonl.lock"}  # the summary's is the store's creation lock
    # the later stages' --features: a cache without prototypes yet, a path that holds none, one
    # that is not there (before 2026-12-06 all three were "no prototypes made for this cache")
    (tmp_path / "empty").mkdir()
    for features, said in ((store, f"{store}: no prototypes made for this feature cache by `nsnet prototypes`; run it first or pass --prototypes"),
                           (tmp_path / "empty", f"{tmp_path / 'empty'}: not a feature cache (no Zarr group here"), (tmp_path / "gone.zarr", f"{tmp_path / 'gone.zarr'}: no feature cache here")):
        refused = CliRunner().invoke(main, ["train", "--features", str(features), "--no-progress"])
        assert refused.exit_code == 1 and f"Error: {said}" in refused.output, refused.output
    # predict, which has neither option, names its --run (it said "pass --features" before the fifty-eighth session)
    for folder, said in ((cache_dir, f"{store.resolve()}: no prototypes made for this feature cache by `nsnet prototypes`; run it first or pass {PREDICT_RUN_HINT}"),
                         (tmp_path / "none", f"{tmp_path / 'none' / 'demo' / 'latest-features.txt'}: no finished feature cache recorded for demo; run `nsnet features --dataset demo` first or pass {PREDICT_RUN_HINT}")):
        refused = CliRunner().invoke(main, ["predict", str(tiny_videos), "--cache-dir", str(folder), "--no-progress"])
        assert refused.exit_code == 1 and f"Error: {said}" in refused.output, refused.output


def test_an_hdf5_caches_summary_of_its_staging_store_goes_with_the_store(tiny_videos, tmp_path: Path):
    """Two ``--shard`` jobs one after the other: the first writes its summary of the unfinished
    staging store; the second finishes and exports the cache, which removes that summary with
    the store (it said videos were pending, beside a finished file, before 2026-12-07)."""
    args = ["features", "--dataset", "demo", "--data-root", str(tiny_videos), "--cache-dir", str(tmp_path), "--storage", "hdf5", "--videos-per-batch", "2", "--videos-per-shard", "6", "--workers", "0", "--backend", "torch", "--no-progress", *TINY_MODEL_OPTIONS]
    first = CliRunner().invoke(main, [*args, "--shard", "0/2"])
    assert first.exit_code == 0, first.output
    (staging,) = (tmp_path / "demo").glob("*.h5.staging.zarr")
    final = staging.with_name(staging.name.removesuffix(".staging.zarr"))
    assert json.loads(summary_path(staging).read_text())["pending"] > 0 and not final.exists()
    second = CliRunner().invoke(main, [*args, "--shard", "1/2"])
    assert second.exit_code == 0, second.output
    assert not staging.exists() and not summary_path(staging).exists()
    assert json.loads(summary_path(final).read_text())["pending"] == 0
    late = FeaturesSummary(cache=str(staging), total=12, pending=6)  # a job that finished just before the export
    assert write_summary(late) is None and not summary_path(staging).exists()


@pytest.mark.parametrize(("store", "final"), [("c/x.h5.staging.zarr", "c/x.h5"), ("c/x.zarr", "c/x.zarr"), ("c/x.staging.zarr", "c/x.staging.zarr")])
def test_a_stores_cache_is_the_hdf5_file_of_a_staging_store_else_itself(store, final):
    """HDF5 caches end in ``.h5``, Zarr ones in ``.zarr`` (a Zarr cache may be named ``x.staging.zarr``)."""
    assert final_path(Path(store)) == Path(final) and staging_path(Path(final)) == Path(store)


def test_bench_features_reports_each_backends_rates_and_their_ratio(tiny_videos, tiny_config, run_options):
    result = bench_features("demo", tiny_videos, tiny_config, replace(run_options, workers=1), max_videos=6, backends=("torch", "onnxruntime"))
    assert result.videos == 6 and result.frames == 6 * tiny_config.num_frames
    assert [run.backend for run in result.runs] == ["torch", "onnxruntime"]
    for run in result.runs:
        assert min(result.decode_fps, run.models_fps, run.full_fps) > 0
        assert result.ratio(run) == run.full_fps / min(result.decode_fps, run.models_fps)
        assert f"{run.backend}: full / min(decode, models)" in result.table()
    assert "onnxruntime / torch: full stage" in result.table()


def test_paper_backbones_replace_the_demo_profile_with_random_init_weights():
    config = with_paper_backbones(get_dataset("demo").features)
    assert (config.light.name, config.light.resolution, config.light.weights) == ("mobilenetv2_100", 224, "none")
    assert (config.recognizer.name, config.recognizer.resolution, config.recognizer.weights) == ("resnet50", 224, "none")
    assert config.num_frames == get_dataset("demo").features.num_frames


@pytest.mark.parametrize(
    ("choice", "overrides", "light", "recognizer", "backend"),
    [
        # the paper's backbones (the default), both replaced by options
        ([], ["--light-model", "test_efficientnet", "--light-resolution", "32", "--recognizer-model", "test_resnet", "--recognizer-resolution", "40"],
         "test_efficientnet 32px (none weights)", "test_resnet 40px (none weights)", "onnxruntime"),
        # the demo profile, its recognizer replaced (through torch: MobileNetV2's ONNX export
        # would take most of the test's time)
        (["--backbones", "dataset"], ["--recognizer-model", "test_resnet", "--recognizer-resolution", "40"],
         "mobilenetv2_050 96px (none weights)", "test_resnet 40px (none weights)", "torch"),
    ],
)
def test_bench_features_command_chooses_the_backbones(tiny_videos, tmp_path: Path, choice, overrides, light, recognizer, backend):
    out = tmp_path / "features.json"
    args = ["bench-features", "--data-root", str(tiny_videos), "--videos", "4", "--workers", "0", "--videos-per-batch", "2", "--device", "cpu", "--backends", backend, "--onnx-dir", str(tmp_path / "onnx"), "--out", str(out)]
    result = CliRunner().invoke(main, args + choice + overrides)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert (report["light"], report["recognizer"]) == (light, recognizer)
    (run,) = report["runs"]
    assert report["videos"] == 4 and run["backend"] == backend
    assert report["environment"]["libraries"]["torch"] == metadata.version("torch") and report["environment"]["cores"] >= 1
    assert run["ratio"] == pytest.approx(run["full_fps"] / min(report["decode_fps"], run["models_fps"]))
    assert run["models_fps"] == pytest.approx((run["models_fps_before"] + run["models_fps_after"]) / 2)
    assert f"light {light}, recognizer {recognizer}" in result.output
    # a bar for each phase: decoding, the models before and after the full stage (two bars, each
    # drawn at 0% once when it opens; tqdm may draw a bar's 100% twice, at its last update and
    # as it closes), the stage's own
    assert "decode only: 100%" in result.stderr and "features demo: 100%" in result.stderr  # the dataset itself, segments and all
    assert result.stderr.count(f"models only, {backend}:   0%") == 2 and result.stderr.count(f"models only, {backend}: 100%") >= 2


def test_bench_times_nsnet_dense_and_uniform_side_by_side(tmp_path: Path):
    out = tmp_path / "inference.json"
    args = ["bench", "--light-model", "test_efficientnet", "--light-resolution", "32", "--recognizer-model", "test_resnet", "--recognizer-resolution", "32",
            "--frames", "6", "--k", "2", "--classes", "5", "--batch-sizes", "1,3", "--reps", "1", "--device", "cpu", "--onnx-dir", str(tmp_path / "onnx"), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    g = report["gflops"]
    # counted costs: NSNet = K recognizer frames + the sampler, DENSE = T frames, UNIFORM = K frames
    assert g["dense"] == pytest.approx(3 * g["uniform"]) and g["nsnet"] == pytest.approx(g["uniform"] + g["sampler"])
    assert report["flop_bound_speedup"] == pytest.approx(g["dense"] / g["nsnet"])
    # the default on the CPU: both backends, over the same models
    assert report["backends"] == ["torch", "onnxruntime"]
    assert [(t["backend"], t["batch"]) for t in report["timings"]] == [("torch", 1), ("onnxruntime", 1), ("torch", 3), ("onnxruntime", 3)]
    for timing, derived in zip(report["timings"], report["per_batch"]):
        assert derived["backend"] == timing["backend"]
        nsnet = sum(timing["nsnet_parts"].values())
        assert set(timing["nsnet_parts"]) == {"light", "heads", "fusion", "recognizer"} and min(timing["nsnet_parts"].values()) > 0
        assert derived["speedup"] == pytest.approx(timing["dense"] / nsnet)
        assert derived["fraction"] == pytest.approx(derived["speedup"] / report["flop_bound_speedup"])
        if timing["batch"] == 1:  # latency: five times --reps
            assert len(timing["rep_speedups"]) == 5
        else:  # one repetition: its own NSNet against its own DENSE is the median's ratio
            assert timing["rep_speedups"] == pytest.approx([derived["speedup"]])
            assert derived["fraction_range"] == pytest.approx([derived["fraction"]] * 2)
        assert sum(derived["shares"].values()) == pytest.approx(1.0)
        assert derived["sampler_share"] == pytest.approx(derived["shares"]["heads"] + derived["shares"]["fusion"])
    assert min(report["decode"][k] for k in ("nsnet_ms", "dense_ms", "uniform_ms")) > 0
    assert report["environment"]["libraries"]["onnxruntime"] == metadata.version("onnxruntime") and report["environment"]["gpu"] is None  # what the figures were measured with
    assert "FLOP-bound speedup" in result.output and "bs=3: ms/video" in result.output and "median of 1 repetitions (5 at batch 1)" in result.output
    assert "onnxruntime, bs=3: measured" in result.output and "torch, bs=1: measured" in result.output
    assert "bench: 100%" in result.stderr and "24/24" in result.stderr  # videos: 2 backends x (6 repetitions of 1 + 2 of 3), warm-ups included
    plot = tmp_path / "inference.png"  # each repetition's fraction, beside the JSON
    assert f"written {out}, {plot}" in result.output
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] > image.size[1] > 300  # two panels side by side


def test_bench_decodes_what_each_method_needs_nsnet_its_observation_once(tmp_path: Path, tiny_config, monkeypatch):
    """NSNet's decoding is predict's: the T observed frames decoded once and cropped for both
    models (the recognizer's K are rows of them); DENSE decodes T frames, UNIFORM K."""
    from pipeline.models import create_model, data_config, frame_transform
    from pipeline.video import FrameSource
    from stages.bench import bench_clip, time_decode

    light_tf, rec_tf = (frame_transform(data_config(create_model(spec, 3, seed=0), spec)) for spec in (tiny_config.light, tiny_config.recognizer))
    clip = bench_clip(tmp_path / "clip.mp4", seconds=2.0, fps=8, size=(32, 48))
    reads: list[int] = []
    read = FrameSource.read
    monkeypatch.setattr(FrameSource, "read", lambda self, indices: reads.append(len(indices)) or read(self, indices))
    timing = time_decode(clip, 6, 2, light_tf, rec_tf, reps=2)
    assert reads == [6] + [6, 6, 2] * 2  # the frame indices once, then NSNet, DENSE, UNIFORM in turns
    assert timing.clip == "clip.mp4: generated H.264" and min(timing.nsnet_ms, timing.dense_ms, timing.uniform_ms) > 0


def test_bench_fraction_is_the_ratio_of_medians_with_the_per_repetition_range():
    samples = {"light": [1.0, 2.0, 1.0], "heads": [0.1] * 3, "fusion": [0.1] * 3, "recognizer": [0.8, 0.8, 1.8], "dense": [5.0, 6.0, 6.0], "uniform": [1.0, 1.0, 1.0]}
    timing = summarize("onnxruntime", 32, samples)
    # NSNet per repetition 2.0, 3.0, 3.0 s against DENSE 5, 6, 6: speedups 2.5, 2.0, 2.0
    assert timing.rep_speedups == pytest.approx([2.5, 2.0, 2.0])
    assert timing.nsnet == pytest.approx(2.0) and timing.dense == 6.0 and timing.uniform == 1.0
    bench = InferenceBench("cpu", 2, "light", "rec", 16, 5, 200, 3, {"dense": 10.0, "nsnet": 4.0, "uniform": 3.0, "sampler": 1.0}, ("onnxruntime",), [timing])
    assert bench.flop_bound_speedup == 2.5
    assert bench.fraction(timing) == pytest.approx(6.0 / 2.0 / 2.5)  # medians: 6 s over 2 s
    # what the plot draws: each repetition's speedup over the bound, the run's fraction, the target
    assert bench.fraction_panels() == [{"batch": 32, "target": 0.9, "backends": {"onnxruntime": {"repetitions": pytest.approx([1.0, 0.8, 0.8]), "fraction": pytest.approx(1.2)}}}]
    assert bench.fraction_range(timing) == pytest.approx((0.8, 1.0))
    assert "bs=32: measured 3.00x, fraction of the FLOP bound 1.20 (repetitions 0.80-1.00; target >= 0.9)" in bench.table()
    assert "heads + fusion 10.00% (target <= 3%)" in bench.table()  # 0.2 of NSNet's 2.0 s
    # latency's target is the 0.85, throughput's 0.9
    assert "bs=1: measured 3.00x, fraction of the FLOP bound 1.20 (repetitions 0.80-1.00; target >= 0.85)" in replace(bench, timings=[replace(timing, batch=1)]).table()


def test_bench_measures_one_backend_after_the_other_with_one_warm_up_each(monkeypatch):
    calls = []
    seconds = {"light": 1.0, "heads": 0.1, "fusion": 0.1, "recognizer": 0.8, "dense": 5.0, "uniform": 1.0}
    monkeypatch.setattr("stages.bench._time_methods", lambda engine, *frames: calls.append((engine.name, [(f.device.type, tuple(f.shape)) for f in frames])) or dict(seconds))
    # the frames wait on the engine's device before the clock starts ("meta" stands in for a GPU)
    torch_engine, ort_engine = SimpleNamespace(name="torch", device=torch.device("meta")), SimpleNamespace(name="ort", device=torch.device("cpu"))
    timings = time_batch({"torch": torch_engine, "onnxruntime": ort_engine}, 1, 2, 1, 8, 8, reps=2)
    shapes = [(1, 2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8)]  # light [B, T], recognizer on all T, on K
    assert calls == [("torch", [("meta", s) for s in shapes])] * 3 + [("ort", [("cpu", s) for s in shapes])] * 3
    assert [(t.backend, t.rep_speedups) for t in timings] == [("torch", [2.5, 2.5]), ("onnxruntime", [2.5, 2.5])]


@pytest.mark.parametrize(("args", "said"), [
    (["finetune", "--out", "{folder}"], "Invalid value for '--out': File '{folder}' is a directory."),
    (["bench", "--out", "{folder}"], "Invalid value for '--out': File '{folder}' is a directory."),
    (["bench-features", "--out", "{folder}"], "Invalid value for '--out': File '{folder}' is a directory."),
    (["predict", "x.mp4", "--out", "{file}"], "Invalid value for '--out': Directory '{file}' is a file."),
])
def test_an_output_of_the_wrong_kind_is_refused_before_any_work(tmp_path, args, said):
    """``nsnet finetune --out cache/demo`` (a folder) failed after the whole fine-tuning with
    ``cache/demo.<pid>.tmp -> cache/demo: Is a directory``; predict's ``--out`` given a file
    (before 2026-12-07, the fifty-fourth session). Refused at once by the option now."""
    (tmp_path / "file.json").write_text("{}")
    where = {"folder": str(tmp_path), "file": str(tmp_path / "file.json")}
    result = CliRunner().invoke(main, [arg.format(**where) for arg in args])
    assert result.exit_code == 2 and said.format(**where) in result.output
