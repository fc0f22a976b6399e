"""The command line (clear errors, demo data) and the features benchmark on tiny inputs."""

from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

from stages.bench_features import bench_features
from stages.cli import main


def test_data_command_generates_and_describes_the_demo(tmp_path: Path):
    result = CliRunner().invoke(
        main,
        ["data", "--dataset", "demo", "--data-root", str(tmp_path / "d"), "--classes", "2", "--train-per-class", "2", "--val-per-class", "1", "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert "dataset demo: 6 videos, 2 classes" in result.output and "train 4, val 2" in result.output
    assert len(list((tmp_path / "d" / "videos").glob("*.mp4"))) == 6


def test_errors_are_one_clear_line_and_exit_1(tmp_path: Path):
    result = CliRunner().invoke(main, ["features", "--dataset", "ucf101", "--data-root", str(tmp_path), "--no-progress"])
    assert result.exit_code == 1
    assert "Error: " in result.output and "classInd.txt: annotation file not found" in result.output
    result = CliRunner().invoke(main, ["features", "--shard", "3/2", "--data-root", str(tmp_path)])
    assert result.exit_code == 1 and "need 0 <= i < n" in result.output


def test_bench_features_reports_three_rates_and_their_ratio(tiny_videos, tiny_config, run_options):
    result = bench_features("demo", tiny_videos, tiny_config, replace(run_options, workers=1), max_videos=6)
    assert result.videos == 6 and result.frames == 6 * tiny_config.num_frames
    assert min(result.decode_fps, result.models_fps, result.full_fps) > 0
    assert result.ratio == result.full_fps / min(result.decode_fps, result.models_fps)
    assert "full / min(decode, models)" in result.table()
