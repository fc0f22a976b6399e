"""The demo generator: determinism, structure, and refusal to mix specs."""

import json
import re
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from conftest import flip_byte
from pipeline.cache import CacheError
from pipeline.demo_data import DemoSpec, _plan_videos, class_table, generate_demo, render_video, salient_targets
from pipeline.datasets import Manifest, get_dataset
from pipeline.video import FrameSource


def test_default_spec_has_the_required_structure():
    spec = DemoSpec()
    plans = _plan_videos(spec)
    assert spec.num_classes >= 10
    assert {p.split for p in plans} == {"train", "val"}
    lengths = np.array([p.num_frames for p in plans])
    assert (lengths < 16).sum() >= 0.05 * len(plans)  # some videos shorter than T=16
    fractions = np.array([sum(p.salient) / p.num_frames for p in plans if p.num_frames >= 20])
    assert 0.04 <= np.median(fractions) <= 0.2
    assert fractions.max() <= 0.25


@pytest.mark.parametrize(("change", "message"), [
    ({"train_per_class": -1}, "train_per_class must be at least 0, got -1"),
    ({"val_per_class": -2}, "val_per_class must be at least 0, got -2"),
    ({"num_classes": 1}, r"num_classes must be in 2\.\.36, got 1"),
    ({"min_frames": 0}, "min_frames must be at least 1, got 0"),
    ({"min_frames": 9, "max_frames": 8}, r"max_frames must be at least min_frames \(9\), got 8"),
    ({"size": 0}, "size must be a positive multiple of 16 pixels"),
    ({"size": 72}, "size must be a positive multiple of 16 pixels .*got 72"),
    ({"fps": 0}, "fps must be at least 1, got 0"),
    ({"difficulty": 1.5}, r"difficulty must be in \[0, 1\], got 1.5"),
    ({"seed": -1}, "seed must be at least 0, got -1"),
    ({"scene_pool": 2}, "scene_pool must be at least 3 scenes, got 2"),
])
def test_a_demo_spec_outside_its_range_is_refused_naming_the_field(change, message):
    """--train-per-class -1 had written a demo of no training video, as if 0 were asked, and
    --seed -1 failed in numpy's seeding without a name (before 2026-12-06)."""
    with pytest.raises(ValueError, match=message):
        DemoSpec(**change)


def test_an_empty_split_is_a_demo():
    """0 videos a class is a split left empty, as the generator's own tests ask."""
    assert DemoSpec(val_per_class=0, min_frames=1, max_frames=1, size=16, fps=1, difficulty=0.0, seed=0, scene_pool=3).val_per_class == 0


def test_difficulty_shortens_salient_segments():
    easy = _plan_videos(DemoSpec(difficulty=0.0))
    hard = _plan_videos(DemoSpec(difficulty=1.0))
    frac = lambda plans: np.mean([sum(p.salient) / p.num_frames for p in plans if p.num_frames >= 40])
    assert frac(easy) > 0.15 > 0.08 > frac(hard)


def test_classes_have_evenly_spaced_hues_and_shared_shapes():
    import colorsys

    table = class_table(12)
    assert len({colour for _, colour in table}) == 12
    hues = [colorsys.rgb_to_hsv(*(v / 255 for v in colour))[0] for _, colour in table]
    np.testing.assert_allclose(np.diff(hues), 1 / 12, atol=0.01)  # neighbours 30 degrees apart
    assert table[0][0] == table[8][0] and table[0][0] != table[1][0]


def test_backgrounds_come_from_one_pool_shared_by_all_classes():
    from pipeline.demo_data import scene_pool, video_scenes

    spec = DemoSpec()
    assert len(scene_pool(spec)) == spec.scene_pool and scene_pool(spec) is scene_pool(spec)
    classes_of_scene: dict[int, set[int]] = {}
    for i, plan in enumerate(_plan_videos(spec)):
        for scene in video_scenes(spec, i):
            classes_of_scene.setdefault(scene, set()).add(plan.label)
    assert set(classes_of_scene) == set(range(spec.scene_pool))  # every scene is used
    assert min(len(c) for c in classes_of_scene.values()) >= spec.num_classes // 2  # by many classes


def test_rendering_is_deterministic_and_class_visible_only_when_salient():
    spec = DemoSpec(num_classes=4, train_per_class=1, val_per_class=0, min_frames=30, max_frames=30, difficulty=0.0, seed=3)
    plan = _plan_videos(spec)[0]
    a, b = render_video(spec, plan, 0), render_video(spec, plan, 0)
    assert np.array_equal(a, b)
    colour = np.array(class_table(4)[plan.label][1])
    close = (np.abs(a.astype(int) - colour).sum(axis=-1) < 60).mean(axis=(1, 2))
    salient = np.array(plan.salient, dtype=bool)
    assert close[salient].min() > 0.02  # the class object covers a few % of the frame
    assert close[salient].min() > 3 * np.median(close[~salient])


def test_generate_writes_decodable_videos_and_refuses_other_spec(tmp_path: Path):
    spec = DemoSpec(num_classes=2, train_per_class=2, val_per_class=1, min_frames=5, max_frames=12, size=32)
    generate_demo(tmp_path, spec, workers=1, progress=False)
    manifest = get_dataset("demo").load(tmp_path)
    assert len(manifest.videos) == 6 and manifest.num_classes == 2
    truth = json.loads((tmp_path / "groundtruth.json").read_text())
    for video in manifest.videos:
        name = Path(video.path).stem
        assert FrameSource(tmp_path / video.path).num_frames == truth[name]["num_frames"]
    written = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    generate_demo(tmp_path, spec, workers=1, progress=False)  # idempotent: nothing written again (a read-only copy was refused)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()} == written
    (tmp_path / manifest.videos[0].path).unlink()
    (tmp_path / "groundtruth.json").write_text("{")  # a damaged record: mended
    generate_demo(tmp_path, spec, workers=1, progress=False)
    assert {p: b for p, (b, _) in written.items()} == {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="another spec"):
        generate_demo(tmp_path, replace(spec, seed=1), workers=1, progress=False)
    flip_byte(tmp_path / "spec.json", 0)
    with pytest.raises(CacheError, match=rf"{tmp_path / 'spec.json'}: damaged, not JSON \('utf-8' codec can't decode byte 0x84 in position 0: invalid start byte: a copy cut short, or a disk error\); remove {tmp_path} and run `nsnet data` again \(a spec makes the same videos every time\)"):
        generate_demo(tmp_path, spec, workers=1, progress=False)


def test_equal_specs_give_identical_files(tmp_path: Path):
    # 40 videos at 64 px: with x264's assembly about 1 in 8 of them came out different in a
    # second generation, so this comparison caught it almost every time.
    spec = DemoSpec(num_classes=4, train_per_class=10, val_per_class=0, size=64, seed=0)
    for folder in ("a", "b"):
        generate_demo(tmp_path / folder, spec, workers=2, progress=False)
    names = sorted(p.name for p in (tmp_path / "a" / "videos").iterdir())
    assert len(names) == 40
    differ = [n for n in names if (tmp_path / "a" / "videos" / n).read_bytes() != (tmp_path / "b" / "videos" / n).read_bytes()]
    assert differ == []


def test_a_folder_from_other_encoder_settings_is_refused(tmp_path: Path):
    spec = DemoSpec(num_classes=2, train_per_class=1, val_per_class=0, min_frames=5, max_frames=5, size=32)
    (tmp_path / "spec.json").write_text(json.dumps(asdict(spec)))  # what the generator wrote before it recorded x264's options
    with pytest.raises(ValueError, match="another spec or encoder settings"):
        generate_demo(tmp_path, spec, workers=1, progress=False)


def test_a_regenerated_demo_with_another_seed_has_another_manifest_digest(tmp_path: Path):
    # Same video ids, labels and splits, other videos: the caches keyed by the digest must differ.
    spec = DemoSpec(num_classes=2, train_per_class=1, val_per_class=1, min_frames=5, max_frames=8, size=32)
    digests = []
    for folder, seed in (("a", 0), ("b", 1), ("c", 0)):
        generate_demo(tmp_path / folder, replace(spec, seed=seed), workers=1, progress=False)
        manifest = get_dataset("demo").load(tmp_path / folder)
        assert manifest.source and Manifest.from_json(manifest.to_json()) == manifest
        digests.append(manifest.digest())
    assert digests[0] != digests[1] and digests[0] == digests[2]
    (tmp_path / "a" / "spec.json").unlink()  # a folder in the demo's layout, made by hand
    plain = get_dataset("demo").load(tmp_path / "a")
    assert plain.source == "" and "source" not in json.loads(plain.to_json())


def test_the_ground_truth_describes_the_videos_of_its_stems_and_frame_counts():
    truth = {"a": {"num_frames": 4, "salient": [0, 1, 1, 0]}, "b": {"num_frames": 3, "salient": [1, 0, 0]}}
    videos = [{"path": "videos/a.mp4"}, {"path": "videos/b.mp4"}, {"path": "other/x.mp4"}]
    frame_indices = np.array([[0, 2], [1, 2], [0, 1]])
    rows, targets = salient_targets(truth, videos, np.array([0, 1, 2]), frame_indices, np.array([4, 3, 9]))
    assert rows.tolist() == [0, 1] and targets.tolist() == [[0, 1], [0, 0]]
    rows, targets = salient_targets(truth, videos, np.array([0, 1, 2]), frame_indices, np.array([4, 5, 9]))  # b holds another video now
    assert rows.tolist() == [0] and targets.tolist() == [[0, 1]]
    rows, targets = salient_targets(truth, videos, np.array([2]), frame_indices, np.array([4, 5, 9]))
    assert rows.tolist() == [] and targets.shape == (0, 2)


def test_the_demo_is_never_generated_among_other_files(tmp_path: Path):
    """``nsnet data --data-root data/ucf101`` with ``--dataset`` left at the demo wrote 408
    generated videos, a ``manifest.csv`` and the demo's other files into the UCF101 folder
    (before 2026-12-07, the fifty-fourth session): a folder holding anything but a demo is
    refused, naming what it holds and the dataset whose annotation files those are; an empty
    folder, or one of empty folders and hidden files, is generated into."""
    spec = DemoSpec(num_classes=2, train_per_class=1, val_per_class=0, min_frames=5, max_frames=5, size=32)
    ucf = tmp_path / "ucf101"
    (ucf / "ucfTrainTestlist").mkdir(parents=True)
    (ucf / "ucfTrainTestlist" / "classInd.txt").write_text("1 ApplyEyeMakeup\n")
    (ucf / "UCF-101" / "ApplyEyeMakeup").mkdir(parents=True)
    with pytest.raises(ValueError, match=re.escape(f"{ucf} holds UCF-101, ucfTrainTestlist (the ucf101 dataset's annotation files: --dataset ucf101?): the demo dataset is generated only into an empty folder or its own")):
        generate_demo(ucf, spec, workers=1, progress=False)
    assert sorted(p.name for p in ucf.iterdir()) == ["UCF-101", "ucfTrainTestlist"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'notes'} holds todo.txt: the demo dataset")):
        generate_demo(tmp_path / "notes", spec, workers=1, progress=False)
    fresh = tmp_path / "fresh"
    (fresh / "videos").mkdir(parents=True)
    (fresh / ".DS_Store").write_bytes(b"")
    generate_demo(fresh, spec, workers=1, progress=False)
    assert len(list((fresh / "videos").iterdir())) == 2
