"""The prototypes stage on a tiny feature cache: fitting, storage, idempotency, refusal."""

import json
import pickle
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.cache import CacheError, FeatureCache
from pipeline.datasets import get_dataset
from pipeline.prototypes import GuidingScorer
from stages.features import run_features
from stages.prototypes import run_prototypes, salient_agreement


def test_prototypes_from_a_cache(tiny_videos, tiny_config, run_options, tmp_path):
    summary = run_features("demo", tiny_videos, tiny_config, run_options)
    result = run_prototypes(Path(summary.cache), GuidingScorer(epsilon=30.0), ground_truth=tiny_videos / "groundtruth.json")
    out = Path(result.path)
    assert result.computed and out.name.startswith(Path(summary.cache).name + ".prototypes-")
    guides = np.load(out / "guides.npz")
    with FeatureCache(Path(summary.cache)) as cache:
        n, t = cache["status"].shape[0], cache["frame_indices"].shape[1]
        rec = np.asarray(cache["rec_features"][:], dtype=np.float32)
    assert guides["g"].shape == (n, t) and np.all((guides["g"] >= 0) & (guides["g"] <= 1))
    scorer = pickle.loads((out / "estimator.pkl").read_bytes())
    assert scorer.get_params()["epsilon"] == 30.0 and scorer.prototypes_.shape == (3, rec.shape[-1])
    labels = np.eye(3, dtype=int)[[v.labels[0] for v in get_dataset("demo").load(tiny_videos).videos]]
    np.testing.assert_allclose(guides["g"], scorer.transform(rec, labels), rtol=1e-6)
    info = json.loads((out / "info.json").read_text())
    assert info["train_videos"] == 9 and info["scored_videos"] == 12 and 0 <= info["salient_ap"] <= 1 and info["salient_videos"] == 12
    again = run_prototypes(Path(summary.cache), GuidingScorer(epsilon=30.0))
    assert not again.computed and again.path == result.path
    other = run_prototypes(Path(summary.cache), GuidingScorer(epsilon=50.0))
    assert other.computed and other.path != result.path
    truth = tmp_path / "groundtruth.json"
    truth.write_bytes((tiny_videos / "groundtruth.json").read_bytes()[:-5])  # cut short: JSON's words naming no file stopped the stage before 2026-12-07
    with pytest.warns(RuntimeWarning, match=re.escape(f"{truth}: damaged, not JSON (") + ".*" + re.escape(": a copy cut short, or a disk error): the saliency AP against it is left out")):
        blind = run_prototypes(Path(summary.cache), GuidingScorer(epsilon=70.0), ground_truth=truth)
    assert blind.computed and "salient_ap" not in json.loads((Path(blind.path) / "info.json").read_text())



def test_g_is_scored_against_the_ground_truth_of_the_videos_it_describes():
    truth = {"a": {"num_frames": 4, "salient": [0, 1, 1, 0]}, "b": {"num_frames": 3, "salient": [1, 0, 0]}, "c": {"num_frames": 2, "salient": [0, 1]}}
    videos = [{"path": "videos/a.mp4"}, {"path": "videos/b.mp4"}, {"path": "other/x.mp4"}, {"path": "videos/c.mp4"}, {"path": "videos/a.mp4"}]
    frame_indices = np.array([[0, 2], [1, 2], [0, 1], [0, 1], [0, 1]])
    num_frames = np.array([4, 5, 9, 2, 4])  # b's file holds 5 frames now: another video; x is not generated
    g = np.array([[0.1, 0.9], [0.9, 0.9], [0.9, 0.9], [0.8, 0.3], [0.5, 0.5]])
    done = np.array([True, True, True, True, False])
    # targets a: [0, 1], c: [0, 1]; ranked by g: 0.9 (1), 0.8 (0), 0.3 (1), 0.1 (0): AP (1/1 + 2/3) / 2
    assert salient_agreement(g, frame_indices, num_frames, done, videos, truth) == {"salient_ap": pytest.approx(5 / 6), "salient_share": 0.5, "salient_videos": 2}
    assert salient_agreement(g, frame_indices, num_frames, np.array([False, True, True, False, False]), videos, truth) == {}

def test_unfinished_cache_is_refused(tiny_videos, tiny_config, run_options):
    partial = run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=(0, 2), videos_per_shard=6))  # 12 videos in 2 shards
    with pytest.raises(CacheError, match="not finished"):
        run_prototypes(Path(partial.cache), GuidingScorer())


def test_a_path_that_holds_no_feature_cache_is_named_as_such(tmp_path):
    """An empty folder, a file with an ``.h5`` name that is no HDF5, and another program's Zarr
    group or HDF5 file are each refused with what they are, not a storage library's error."""
    import h5py
    import zarr

    (tmp_path / "empty").mkdir()
    (tmp_path / "fake.h5").write_bytes(b"not an HDF5 file")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w").attrs["made_by"] = "another program"
    with h5py.File(tmp_path / "other.h5", "w") as other:
        other["x"] = [1]
    for name, says in [("empty", r"not a feature cache \(no Zarr group here; the features stage writes"), ("fake.h5", r"not a feature cache \(not an HDF5 file h5py can read: .*signature"),
                       ("other.zarr", r"a Zarr group without a feature cache's attributes \(another program's, or one whose making was cut short\): remove it"),
                       ("other.h5", r"an HDF5 file without a feature cache's attributes \(another program's\): remove it")]:
        with pytest.raises(CacheError, match=f"^{tmp_path / name}: {says}"):
            FeatureCache(tmp_path / name)


def test_block_wise_stage_equals_one_shot_fit(tiny_videos, tiny_config, run_options, capsys):
    """Blocks of 5 videos (the 9 training videos split 5 + 4, and the scoring too) give the
    prototypes and guiding scores of one fit on everything, to 1e-6; the progress bar counts
    the 9 videos fitted and the 12 scored."""
    from pipeline.metrics import multi_hot

    features = Path(run_features("demo", tiny_videos, tiny_config, run_options).cache)
    capsys.readouterr()
    result = run_prototypes(features, GuidingScorer(epsilon=30.0), block_videos=5)
    bar = capsys.readouterr().err.split("\r")[-1]
    assert bar.startswith("prototypes: fit, then score: 100%") and "21/21" in bar
    with FeatureCache(features) as cache:
        rec, logits = cache["rec_features"][:], cache["rec_logits"][:]
        videos = cache.attrs["manifest"]["videos"]
    labels = multi_hot([v["labels"] for v in videos], 3)
    train = np.array([v["split"] == "train" for v in videos])
    one_shot = GuidingScorer(epsilon=30.0).fit(rec[train], labels[train], logits=logits[train])
    guides = np.load(Path(result.path) / "guides.npz")
    np.testing.assert_allclose(guides["prototypes"], one_shot.prototypes_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(guides["g"], one_shot.transform(rec, labels), rtol=1e-6, atol=1e-6)


def test_one_process_computes_the_prototypes_at_a_time(tiny_videos, tiny_config, run_options, monkeypatch):
    """A second process set to compute the same prototypes stops at once, naming the first;
    one that finds them finished once it holds the lock takes them; what a killed writer left
    is cleared."""
    from contextlib import contextmanager

    import pipeline.cache
    from pipeline.cache import file_lock, output_lock, output_lock_path
    from stages.prototypes import prototypes_path

    features = Path(run_features("demo", tiny_videos, tiny_config, run_options).cache)
    with FeatureCache(features) as cache:
        out = prototypes_path(features, GuidingScorer(epsilon=30.0).get_params(), cache.content_fingerprint)
    with file_lock(output_lock_path(out)):
        with pytest.raises(CacheError, match=r"\.lock: another writer holds this lock \(pid \d+ on .*\); it is computing the same output"):
            run_prototypes(features, GuidingScorer(epsilon=30.0))
    assert not out.exists()
    stale = out.with_name(out.name + ".99999999.tmp")  # a killed writer's partial folder
    (stale / "info.json").parent.mkdir()
    (stale / "info.json").write_text("{")
    first = run_prototypes(features, GuidingScorer(epsilon=30.0))
    assert first.computed and not stale.exists() and json.loads((out / "info.json").read_text()) == first.info
    done = out.with_name("finished-elsewhere")
    out.rename(done)

    @contextmanager
    def finished_while_waiting(path):  # another process finishes them before this one locks
        with output_lock(path):
            done.rename(path)
            yield

    monkeypatch.setattr(pipeline.cache, "output_lock", finished_while_waiting)
    second = run_prototypes(features, GuidingScorer(epsilon=30.0))
    assert not second.computed and second.info == first.info


def test_frame_confusion_and_class_order_by_hand():
    from pipeline.class_order import class_order, frame_confusion

    logits = np.array([
        [[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.0, 0.2, 0.7]],  # predicted 1, 0, 2
        [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],  # predicted 2, 1, 2
    ])
    labels = np.array([[1, 0, 0], [0, 1, 1]])  # the second video is of classes 1 and 2: its frames count for both
    np.testing.assert_array_equal(frame_confusion(logits, labels), [[1, 1, 1], [0, 1, 2], [0, 1, 2]])

    swapped = class_order(np.array([[1, 8, 1], [9, 1, 0], [0, 1, 9]]))  # classes 0 and 1 answered by each other's output
    assert (swapped.frames, swapped.top1, swapped.best_top1, swapped.order) == (30, 11 / 30, 26 / 30, (1, 0, 2))
    assert swapped.moved() == [(0, 1), (1, 0)] and swapped.misordered
    right = class_order(np.array([[8, 1, 1], [1, 9, 0], [0, 1, 9]]))
    assert (right.top1, right.best_top1, right.order, right.moved(), right.misordered) == (26 / 30, 26 / 30, (0, 1, 2), [], False)
    # by class: class 0's 90 frames, 80 of them on output 2, do not decide the order alone; classes 1
    # and 2 (10 frames each) nearly right. By frames, matching class 0 to output 2 would fit 89 of
    # 110 frames against the manifest order's 27; by class (8/90 + 0.9 + 1) / 3 = 0.66 against
    # (80/90 + 0.9 + 0) / 3 = 0.60: the manifest's order
    skewed = class_order(np.array([[8, 2, 80], [0, 9, 1], [0, 0, 10]]))
    assert (skewed.order, skewed.top1, skewed.best_top1, skewed.class_top1) == ((0, 1, 2), 27 / 110, 27 / 110, (8 / 90 + 0.9 + 1.0) / 3)
    assert skewed.best_class_top1 == skewed.class_top1 and not skewed.misordered
    chance = class_order(np.array([[3, 4, 3], [3, 3, 4], [4, 3, 3]]))  # another order fits better, but no order fits a recognizer at chance
    assert (chance.top1, chance.best_top1, chance.misordered) == (0.3, 0.4, False)
    half = class_order(np.array([[3, 2, 0], [2, 3, 0], [0, 0, 5]]))  # the manifest's order already more than half the best
    assert half.best_top1 == 11 / 15 and not half.misordered


def test_the_classes_in_the_recognizers_order_are_written_as_a_class_names_file(tmp_path):
    """A recognizer trained on class folders by timm (natural order, case aside: "Baking cookies"
    before "BMX", "class9" before "class10") against the manifest's sorted names: the file holds
    the names in its outputs' order, read back by --class-names as they are, and the message
    names the file and the convention; another order is not said to be one."""
    from pipeline.class_order import class_order, misordered_message, write_recognizer_classes
    from pipeline.datasets.class_names import read_class_names

    classes = ("BMX", "Baking cookies", "class10", "class9")  # sorted as Python sorts
    confusion = 10 * np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])  # BMX frames on output 1, ...
    order = class_order(confusion)
    written = write_recognizer_classes(order, classes, tmp_path / "features-0123abcd.h5")
    assert written == tmp_path / "features-0123abcd.recognizer-classes.txt"
    assert written.read_text() == "Baking cookies\nBMX\nclass9\nclass10\n" and read_class_names(written) == ["Baking cookies", "BMX", "class9", "class10"]
    message = misordered_message("cache.zarr", order, classes, written)
    assert f"The dataset's classes in the order that fits its outputs are in {written} (the names sorted as timm's ImageFolder sorts class folders: case aside, numbers by value): check them and compute the features again with --class-names {written}, or load" in message
    rotated = class_order(10 * np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]]))
    assert write_recognizer_classes(rotated, classes, written).read_text() == "class9\nBMX\nBaking cookies\nclass10\n"
    assert "ImageFolder" not in misordered_message("cache.zarr", rotated, classes, written)
    half_seen = class_order(10 * np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    assert half_seen.seen == (0, 1) and half_seen.moved() == [(0, 1), (1, 0)] and write_recognizer_classes(half_seen, classes, tmp_path / "other.zarr") is None and not (tmp_path / "other.recognizer-classes.txt").exists()


def test_the_early_check_waits_for_frames_of_half_the_classes_and_judges_them_class_by_class():
    """A list sorted by class, T=10: eight videos of class 0, which a rightly ordered recognizer
    puts on output 3 eight frames in ten, then eight of each other class, right. At 80 frames (20
    a class of 4) only class 0 has frames, which alone would fit "another order" (80% against
    20%); the watch waits for half the classes, and then judges class by class (0.6 against 0.9:
    the manifest's order). A recognizer whose every class is the next one's stops there."""
    from pipeline.class_order import EARLY_CLASSES_SHARE, EARLY_FRAMES_PER_CLASS, OrderWatch

    assert (EARLY_FRAMES_PER_CLASS, EARLY_CLASSES_SHARE) == (20, 0.5)
    classes = np.repeat(np.arange(4), 8)  # 32 videos
    labels, train = np.eye(4, dtype=np.int64)[classes], np.ones(32, dtype=bool)

    def frames_on(outputs: list[int]) -> np.ndarray:
        return np.eye(4)[outputs][None]  # [1, T, C] logits of one video

    confused, shifted = OrderWatch(labels, train), OrderWatch(labels, train)
    for video, c in enumerate(classes):
        right = frames_on([3] * 8 + [0] * 2 if c == 0 else [c] * 10)
        found = confused.add([video], right)
        if video < 8:
            assert found is None  # class 0 alone: 10 to 80 frames
        elif video == 8:
            assert (found.frames, found.seen, found.top1) == (90, (0, 1), 26 / 90)
            assert (found.class_top1, found.best_class_top1, found.misordered) == ((16 / 80 + 1.0) / 2, (64 / 80 + 1.0) / 2, False)
        else:
            assert found is None  # checked once
        moved = shifted.add([video], frames_on([(c + 1) % 4] * 10))
        if video == 8:
            assert moved.misordered and moved.moved() == [(0, 1), (1, 2)] and (moved.class_top1, moved.best_class_top1) == (0.0, 1.0)


@pytest.fixture
def checkpoint_config(tiny_config, tmp_path):
    """The tiny features config with its recognizer's (random) weights as a checkpoint file that
    names no classes: the case whose class order is checked."""
    import torch

    from pipeline.models import create_model

    path = tmp_path / "recognizer.pth"
    torch.save(create_model(tiny_config.recognizer, 3, seed=0).state_dict(), path)
    return replace(tiny_config, recognizer=replace(tiny_config.recognizer, weights=str(path)))


def _cache_logits(features: Path, outputs: np.ndarray) -> None:
    """The cache's recognizer logits made those of one answering video i by output ``outputs[i]``."""
    import zarr

    group = zarr.open_group(str(features), mode="r+")
    logits = np.full(group["rec_logits"].shape, -4.0, dtype=np.float16)
    logits[np.arange(len(outputs)), :, outputs] = 4.0
    group["rec_logits"][:] = logits


def test_a_recognizer_with_its_classes_in_another_order_is_named_before_the_prototypes(tiny_videos, checkpoint_config, run_options):
    """The cached logits of the training frames made those of a recognizer checkpoint that
    answers each class by the next one's output: the stage stops, naming the orders' top-1 and
    the pairs; in the manifest's order it reports the frame top-1 and writes the prototypes, and
    at chance it says so."""
    features = Path(run_features("demo", tiny_videos, checkpoint_config, run_options).cache)
    with FeatureCache(features) as cache:
        videos, classes = cache.attrs["manifest"]["videos"], cache.attrs["manifest"]["classes"]
        t = cache["rec_logits"].shape[1]
    truth = np.array([v["labels"][0] for v in videos])
    train = sum(v["split"] == "train" for v in videos)

    _cache_logits(features, (truth + 1) % 3)
    with pytest.raises(CacheError) as error:
        run_prototypes(features, GuidingScorer())
    assert str(error.value).startswith(f"{features}: the recognizer's outputs are the dataset's classes in another order: it predicts 0.0% of the {train * t:,} training frames right in the manifest's class order and 100.0% in another (0.0% and 100.0% by class, over the 3 with frames), where 3 of 3 classes move (its output 1 ({classes[1]!r}) on {classes[0]!r} frames, its output 2 ({classes[2]!r}) on {classes[1]!r} frames, its output 0 ({classes[0]!r}) on {classes[2]!r} frames)")
    written = features.with_name(features.name.split(".")[0] + ".recognizer-classes.txt")
    assert f"are in {written}: check them and compute the features again with --class-names {written}" in str(error.value)
    assert written.read_text().splitlines() == [classes[2], classes[0], classes[1]]  # its output j answers class j - 1
    _cache_logits(features, truth)
    result = run_prototypes(features, GuidingScorer())
    assert result.info["recognizer"] == {"frames": train * t, "frame_top1": 1.0, "chance": 1 / 3}
    assert f"recognizer      frame top-1 100.0% on the {train * t:,} training frames (chance 33.3%)\n" in result.table() + "\n"
    _cache_logits(features, np.zeros_like(truth))  # every frame answered as class 0: 3 of 9 right, no better than chance
    result = run_prototypes(features, GuidingScorer(epsilon=50.0))
    assert result.info["recognizer"]["frame_top1"] == 1 / 3
    assert "(chance 33.3%; near chance: a recognizer trained on this dataset does far better" in result.table()


def test_random_weights_have_no_class_order_to_keep(tiny_videos, tiny_config, run_options):
    """The same logits from a recognizer of random weights (``none``): reported, not stopped."""
    features = Path(run_features("demo", tiny_videos, tiny_config, run_options).cache)
    with FeatureCache(features) as cache:
        truth = np.array([v["labels"][0] for v in cache.attrs["manifest"]["videos"]])
    _cache_logits(features, (truth + 1) % 3)
    assert run_prototypes(features, GuidingScorer()).info["recognizer"]["frame_top1"] == 0.0


def test_the_features_stage_stops_on_the_first_training_frames_of_a_recognizer_in_another_order(tiny_videos, checkpoint_config, run_options, monkeypatch):
    """A recognizer checkpoint answering each class with the next one's output stops the
    features run once EARLY_FRAMES_PER_CLASS frames a class of training videos are in (here 4 x 3
    = 12, the first block of two training videos at T=6) of at least half the classes (the tiny
    list is sorted by class: the first block holds class 0 alone, the second class 1 too), not
    after the whole cache; the same run with the recognizer as it is goes on and finishes."""
    import stages.features as features_stage
    from pipeline.cache import DONE

    manifest = get_dataset("demo").load(tiny_videos)
    truth = [v.labels[0] for v in manifest.videos]
    seen: list[int] = []

    class NextClass(features_stage.BlockInference):
        def __call__(self, block, layout_rows):
            rows, status = super().__call__(block, layout_rows)
            for video in block.videos:
                rows["rec_logits"][video.index - block.members[0]] = 8 * np.eye(3)[(truth[video.index] + 1) % 3]
                seen.append(video.index)
            return rows, status

    monkeypatch.setattr(features_stage, "BlockInference", NextClass)
    monkeypatch.setattr("pipeline.class_order.EARLY_FRAMES_PER_CLASS", 4)
    first = [i for i, v in enumerate(manifest.videos) if v.split == "train"][:4]
    assert checkpoint_config.num_frames == 6 and run_options.videos_per_batch == 2 and first == [0, 1, 2, 3] and truth[:4] == [0, 0, 0, 1]
    with pytest.raises(CacheError, match=r"\.zarr: the recognizer's outputs are the dataset's classes in another order: it predicts 0\.0% of the 24 training frames right in the manifest's class order and 100\.0% in another \(0\.0% and 100\.0% by class, over the 2 with frames\), where 2 of 3 classes move \(its output 1 \('\w+'\) on '\w+' frames, its output 2 \('\w+'\) on '\w+' frames\)\. .* The order that fits could be told for 2 of its 3 classes only \(the frames checked hold none of the others\): give the dataset's classes in the checkpoint's order \(its label map\) with --class-names"):
        run_features("demo", tiny_videos, checkpoint_config, run_options)
    assert seen == first  # stopped at the second block
    # the frames of two classes: their moves are told, no file of a guessed order written
    assert not list((run_options.cache_dir / "demo").glob("*.recognizer-classes.txt"))
    seen.clear()
    run_features("demo", tiny_videos, replace(checkpoint_config, recognizer=replace(checkpoint_config.recognizer, weights="none")), run_options)
    assert len(seen) == len(manifest.videos)  # random weights: not checked
    monkeypatch.undo()
    summary = run_features("demo", tiny_videos, checkpoint_config, run_options)
    with FeatureCache(Path(summary.cache)) as cache:
        assert (np.asarray(cache["status"][:]) == DONE).all()
