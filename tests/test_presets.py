"""The paper's experiments by name: what each preset sets, and Table 1's report on the tiny
pipeline, with the paper's figures beside ours."""

import json
from importlib import metadata
from pathlib import Path

import pytest

from conftest import TINY_MODEL_OPTIONS
from pipeline.config import EvalConfig, FeaturesConfig, TrainConfig
from pipeline.datasets import get_dataset
from pipeline.presets import PRESETS, get_preset
from stages.evaluate import run_evaluate
from stages.evaluate_report import render_table
from stages.train import run_train


@pytest.mark.parametrize(
    "preset, dataset, t, recognizer, stage",
    [
        ("table1", "activitynet", 100, "resnet101", "evaluate"),  # 4.3: "100 for ActivityNet", Table 1's caption
        ("table1", "ucf101", 50, "resnet50", "evaluate"),  # 4.3: "50 for UCF-101"
        ("table2", "activitynet", 16, "resnet50", "evaluate"),
        ("table4", "fcvid", 16, "resnet50", "evaluate"),
        ("table4", "minikinetics", 16, "resnet50", "evaluate"),
        ("table6", "activitynet", 100, "resnet101", "ablations"),  # 4.4: ResNet-101 "as in Table 1"
        ("fig3", "activitynet", 50, "resnet101", "evaluate"),  # 4.3: "T is set to 50"
    ],
)
def test_presets_set_the_papers_t_and_recognizer(preset, dataset, t, recognizer, stage):
    p = get_preset(preset)
    config = p.features(dataset, get_dataset(dataset).features)
    assert (config.num_frames, config.recognizer.name, p.stage) == (t, recognizer, stage)
    # the light model and everything else stay the dataset's
    assert config.light == get_dataset(dataset).features.light and config.storage == FeaturesConfig().storage
    assert p.evaluation(dataset).k == 5


def test_table1_protocol_and_its_quotes():
    p = get_preset("table1")
    activitynet, ucf = p.evaluation("activitynet"), p.evaluation("ucf101")
    assert activitynet.all_frames and activitynet.all_frames_budget == 10 and activitynet.all_frames_rate == 1.0
    assert ucf.all_frames and ucf.all_frames_rate is None
    assert not get_preset("table2").evaluation("activitynet").all_frames
    assert max(get_preset("fig3").evaluation("activitynet").curve_k) > EvalConfig().k
    quotes = p.quotes("activitynet")
    assert quotes["metric"] == "mAP" and quotes["figures"]["NSNet (K=5)"] == {"metric": 74.9, "gflops": 73.2}
    assert quotes["figures"]["TOP-K-10 (all frames)"] == {"metric": 72.5, "gflops": 930.8}
    assert p.quotes("ucf101")["metric"] == "top-1" and p.quotes("ucf101")["figures"]["DENSE (all frames)"]["metric"] == 76.1
    # a dataset the paper did not run keeps its own T and recognizer and quotes ActivityNet
    demo = get_dataset("demo").features
    assert p.features("demo", demo) == demo
    assert p.quotes("demo")["dataset"] == "activitynet"
    with pytest.raises(ValueError, match="unknown preset 'table9'"):
        get_preset("table9")
    assert set(PRESETS) == {"table1", "table2", "table4", "table6", "fig3"}


@pytest.mark.parametrize(
    "dataset, preset, options, all_frames, rate",
    [
        ("activitynet", None, {}, True, 1.0),  # the paper's "all frames" there: one a second
        ("activitynet", None, {"all_frames_rate": "every"}, True, None),
        ("activitynet", None, {"all_frames_rate": 2.0}, True, 2.0),
        ("activitynet", None, {"all_frames": False}, False, 1.0),
        ("activitynet", "table1", {}, True, 1.0),
        ("activitynet", "table2", {}, False, None),
        ("fcvid", None, {}, False, None),  # no all-frames rows in the paper, 2.3e8 frames
        ("fcvid", None, {"all_frames": True}, True, None),
        ("fcvid", "table1", {}, True, None),  # the protocol on a dataset the paper did not run it on
        ("minikinetics", None, {}, False, None),
        ("ucf101", None, {}, True, None),
        ("demo", None, {}, True, None),
    ],
)
def test_the_evaluation_config_is_the_dataset_s_then_the_preset_s_then_the_options(dataset, preset, options, all_frames, rate):
    from stages.cli import evaluation_config

    cfg = evaluation_config(dataset, preset, options.get("all_frames"), options.get("all_frames_rate"), k=None, fusion=None)
    assert (cfg.all_frames, cfg.all_frames_rate, cfg.k, cfg.fusion) == (all_frames, rate, 5, "union")
    assert evaluation_config(dataset, preset, None, k=10).k == 10


def test_the_all_frames_rate_option_takes_a_positive_rate_or_every():
    import click

    from stages.cli import parse_all_frames_rate

    assert [parse_all_frames_rate(v) for v in (None, "every", "0.5", "30")] == [None, "every", 0.5, 30.0]
    for value, message in (("0", "the rate must be positive, got 0"), ("fast", "'fast' is neither a number of frames per second nor 'every'")):
        with pytest.raises(click.BadParameter, match=message):
            parse_all_frames_rate(value)


def test_table1_report_on_the_tiny_pipeline(tiny_pipeline):
    features, prototypes, truth = tiny_pipeline
    run = Path(run_train(features, prototypes, TrainConfig(epochs=1, batch_size=4, milestones=(1,)), progress=False).path)
    preset = get_preset("table1")
    cfg = preset.evaluation("demo", EvalConfig(curve_k=(1, 2)))
    report = run_evaluate(features, prototypes, run, truth.parent, cfg, workers=0, progress=False, preset=preset.quotes("demo"))
    first = report["groups"][0]
    assert first["methods"] == ["UNIFORM-10 (all frames)", "RANDOM-10 (all frames)", "DENSE (all frames)", "TOP-K-10 (all frames)", "NSNet (K=5)"]
    methods = {m["method"]: m for m in report["methods"]}
    assert methods["NSNet (K=5)"]["paper"] == {"metric": 74.9, "gflops": 73.2}
    assert "paper" not in methods["NSNet w/o NS"]
    text = render_table(report)
    assert "preset table1: Table 1 (section 4.3)" in text and "mAP 74.9 @ 73.2G" in text and "mAP 68.6 @ 195.8G" in text
    assert {c["claim"] for c in report["claims"]} >= {"NSNet mAP >= TOP-K-10 (all frames) mAP", "NSNet mAP >= DENSE (all frames) mAP"}
    # the same evaluation without the preset is another report (no quotes), the all-frames pass is not redone
    plain = run_evaluate(features, prototypes, run, truth.parent, cfg, workers=0, progress=False)
    assert plain["output"] != report["output"] and plain["preset"] is None
    assert {m["method"]: m["map"] for m in plain["methods"]} == {m["method"]: m["map"] for m in report["methods"]}
    assert len(list(features.parent.glob(f"{features.name}.allframes-*.zarr"))) == 1


def test_a_presets_caches_are_found_by_its_name_only(tiny_videos, tmp_path):
    from click.testing import CliRunner

    from stages.cli import main

    cache = tmp_path / "cache"
    done = CliRunner().invoke(main, ["features", "--dataset", "demo", "--data-root", str(tiny_videos), "--cache-dir", str(cache), "--preset", "table1", "--workers", "0", "--backend", "torch", "--no-progress", *TINY_MODEL_OPTIONS])
    assert done.exit_code == 0, done.output
    assert (cache / "demo" / "latest-features-table1.txt").is_file() and not (cache / "demo" / "latest-features.txt").exists()
    features = Path((cache / "demo" / "latest-features-table1.txt").read_text().strip())
    summary = json.loads(features.with_name(features.name + ".summary.json").read_text())
    assert summary["done"] == summary["total"] and summary["environment"]["libraries"]["torch"] == metadata.version("torch")  # the run's figures and what they were measured with
    plain = CliRunner().invoke(main, ["prototypes", "--dataset", "demo", "--cache-dir", str(cache), "--data-root", str(tiny_videos)])
    assert plain.exit_code == 1 and "run `nsnet features --dataset demo` first" in plain.output
    other = CliRunner().invoke(main, ["prototypes", "--dataset", "demo", "--cache-dir", str(cache), "--data-root", str(tiny_videos), "--preset", "table2"])
    assert other.exit_code == 1 and "--preset table2" in other.output
    named = CliRunner().invoke(main, ["prototypes", "--dataset", "demo", "--cache-dir", str(cache), "--data-root", str(tiny_videos), "--preset", "table1"])
    assert named.exit_code == 0, named.output
