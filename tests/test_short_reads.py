"""A download cut short whose index lists frames its data lacks (an MP4 written index first, as
YouTube serves its progressive files): read as the shorter video its decodable frames make,
where they are at least half of those listed, by every stage that plans frames over a video."""

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.datasets.manifest import VideoRecord
from pipeline.sampling import segment_random_indices, uniform_frame_indices
from pipeline.training import item_seed
from pipeline.video import FrameSource, FrameWindow, ShortReadWarning, VideoReadError, read_planned

FRAMES = 100


@pytest.fixture(scope="module")
def cut_files(tmp_path_factory) -> Path:
    """whole.mp4 (100 frames, index first, a keyframe every 10; frame t has red level 2t) and
    its first 85% (cut.mp4) and 30% (stub.mp4)."""
    from conftest import write_video

    root = tmp_path_factory.mktemp("cut")
    frames = np.zeros((FRAMES, 48, 64, 3), dtype=np.uint8)
    frames[..., 0] = (2 * np.arange(FRAMES))[:, None, None]
    frames[..., 1] = np.random.default_rng(0).integers(0, 60, frames.shape[:3])  # enough data that the cut falls among the frames
    write_video(root / "whole.mp4", frames, 10, "mp4", "libx264", {"g": "10"}, {"movflags": "+faststart"})
    data = (root / "whole.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(data[: int(len(data) * 0.85)])
    (root / "stub.mp4").write_bytes(data[: int(len(data) * 0.3)])
    return root


def _decodable(path: Path) -> tuple[int, int, int]:
    """(frames the container lists, frames it holds packets of, frames that decode from the
    start before FFmpeg stops), the last counted by PyAV alone."""
    import av

    decoded = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(video=0):
                decoded += 1
        except av.error.FFmpegError:
            pass
    source = FrameSource(path)
    return source.listed_frames, source.num_frames, decoded


def test_a_file_cut_short_reads_as_the_video_of_its_decodable_frames(cut_files):
    listed, held, decodable = _decodable(cut_files / "cut.mp4")
    assert listed == FRAMES and FRAMES // 2 <= decodable < held < listed  # the index lists all 100
    source = FrameSource(cut_files / "cut.mp4")
    with pytest.warns(ShortReadWarning, match=rf"cut.mp4: decoding stops after frame {decodable} of the {listed} listed: read as a video of its first {decodable} frames"):
        frames, indices = read_planned(source, lambda count: uniform_frame_indices(count, 16))
    assert source.num_frames == decodable and indices.tolist() == uniform_frame_indices(decodable, 16).tolist()
    np.testing.assert_array_equal(frames, FrameSource(cut_files / "whole.mp4", decoders=("pyav",)).read(indices))  # the same bytes before the cut
    # a clip's segment inside it: counted from the segment's start
    window = FrameWindow(FrameSource(cut_files / "cut.mp4"), 10, held - 10)
    with pytest.warns(ShortReadWarning):
        _, indices = read_planned(window, lambda count: np.arange(count))
    assert window.num_frames == decodable - 10 and indices.tolist() == list(range(decodable - 10))


def test_a_file_that_decodes_less_than_half_its_frames_stays_an_error(cut_files):
    listed, held, decodable = _decodable(cut_files / "stub.mp4")
    assert decodable < listed // 2
    source = FrameSource(cut_files / "stub.mp4")
    with pytest.raises(VideoReadError, match="stub.mp4: truncated or corrupt video"):
        read_planned(source, lambda count: np.arange(count))
    assert source.num_frames == held


def test_the_features_stage_caches_a_file_cut_short_with_its_decodable_frames(cut_files, tmp_path, tiny_config, run_options):
    from pipeline.cache import DONE, FeatureCache
    from pipeline.datasets import AnnotationFiles
    from stages.features import run_features

    root = tmp_path / "data"
    root.mkdir()
    for name in ("whole.mp4", "cut.mp4"):
        (root / name).write_bytes((cut_files / name).read_bytes())
    listing = tmp_path / "train_list_videos.txt"
    listing.write_text("whole.mp4 0\ncut.mp4 1\n")
    _, _, decodable = _decodable(root / "cut.mp4")
    config = replace(tiny_config, num_frames=32)  # so that the last frames planned lie past those that decode
    with pytest.warns(ShortReadWarning, match="cut.mp4: decoding stops"):
        summary = run_features("list", root, config, run_options, files=AnnotationFiles(train=listing))
    with FeatureCache(Path(summary.cache)) as cache:
        assert [int(s) for s in cache["status"][:]] == [DONE, DONE]
        assert cache["num_frames"][:].tolist() == [FRAMES, decodable]
        assert cache["frame_indices"][1].tolist() == uniform_frame_indices(decodable, 32).tolist()


def test_the_all_frames_pass_begins_again_over_the_decodable_frames(cut_files):
    """The second chunk of 64 fails: the video is read again from its first frame over the
    frames that decode, and its summary is begun again (not fed past its length)."""
    from stages.all_frames import CHUNK_FRAMES, AllFrameChunks, summaries

    _, held, decodable = _decodable(cut_files / "cut.mp4")
    assert decodable > CHUNK_FRAMES  # so that the first chunk goes through before the failure
    chunks = AllFrameChunks(cut_files, [(0, VideoRecord("cut", "cut.mp4", (0,), "val"))], lambda x: x, None)
    with pytest.warns(ShortReadWarning):
        assert [(c.start, c.length, c.error) for c in chunks] == [(0, held, ""), (0, decodable, ""), (CHUNK_FRAMES, decodable, "")]

    def red_green_blue(frames: torch.Tensor) -> tuple[None, torch.Tensor]:  # a recognizer: the mean of each channel as its logits
        return None, frames.mean(dim=(2, 3))

    with pytest.warns(ShortReadWarning):
        [(row, summary)] = list(summaries(chunks, red_green_blue, torch.device("cpu"), budget=3, seed=0, workers=0))
    frames = torch.from_numpy(FrameSource(cut_files / "whole.mp4", decoders=("pyav",)).read(np.arange(decodable))).permute(0, 3, 1, 2).float() / 255.0
    expected = torch.softmax(frames.mean(dim=(2, 3)).double(), dim=1).mean(dim=0).numpy()
    assert row == 0 and summary.length == decodable
    np.testing.assert_allclose(summary.scores()["dense"], expected, atol=1e-6)


def test_predict_observes_a_file_cut_short_over_its_decodable_frames(cut_files):
    from pipeline.extract import BothModels
    from pipeline.inference import ObservationDecoder

    _, _, decodable = _decodable(cut_files / "cut.mp4")
    identity = lambda x: x  # noqa: E731  (the decoded frames themselves)
    with pytest.warns(ShortReadWarning):
        observed = ObservationDecoder([cut_files / "cut.mp4"], 32, BothModels(identity, identity))[0]
    assert observed.error == "" and observed.frame_indices.tolist() == uniform_frame_indices(decodable, 32).tolist()
    assert observed.read_short == (decodable, FRAMES)


def test_a_prediction_from_a_file_cut_short_says_so_in_its_line_and_the_count():
    from pipeline.inference import VideoPrediction
    from stages.predict import PredictResult

    def prediction(read_short):
        return VideoPrediction("cut.mp4", scores=np.array([0.2, 0.8]), positions=np.array([1]), observed_indices=np.array([0, 40]), read_short=read_short)

    assert prediction((82, 100)).to_json(["a", "b"])["read_short"] == {"frames": 82, "listed": 100}
    assert "read_short" not in prediction(None).to_json(["a", "b"])  # other lines as before
    result = PredictResult(None, Path("predictions.jsonl"))
    result.add(prediction((82, 100)))
    result.add(prediction(None))
    result.add_earlier({"video": "old.mp4", "top5": [], "read_short": {"frames": 50, "listed": 60}})
    assert result.short == 2


def _cut_record(name: str = "cut.mp4") -> VideoRecord:
    return VideoRecord(video_id=Path(name).stem, path=name, labels=(1,), split="train")


def test_a_training_clip_found_short_draws_the_frames_it_would_have_known_short(cut_files):
    """The first read of a clip plans past the frames that decode, fails and plans again; the
    item's frames are those drawn where the video is known short (the item's seed draws afresh
    for each plan), so a run is the same whenever it learns of the cut, and later reads plan
    over the frames that decode at once, with no warning."""
    from pipeline.training import ReadShort, Shortened, TrainClips

    _, _, decodable = _decodable(cut_files / "cut.mp4")
    to_input = lambda x: x  # noqa: E731  (the frames themselves, scaled to [0, 1])
    clips = TrainClips(cut_files, [_cut_record()], 2, 32, to_input, seed=5)  # 32 segments: the last one lies past the cut
    with pytest.warns(ShortReadWarning):
        first = clips[0]
    assert isinstance(first, Shortened) and first.found == ReadShort(0, decodable, FRAMES)
    known = TrainClips(cut_files, [_cut_record()], 2, 32, to_input, seed=5)
    known.short[0] = first.found
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no decoding past the cut, so no warning
        again = known[0]
    assert isinstance(again, tuple) and torch.equal(again[0], first.item[0]) and torch.equal(again[1], first.item[1])
    drawn = segment_random_indices(decodable, 32, np.random.default_rng(item_seed(5, 0, 0)))  # among those that decode
    expected = FrameSource(cut_files / "whole.mp4", decoders=("pyav",)).read(drawn)
    torch.testing.assert_close(first.item[0], torch.from_numpy(expected).permute(0, 3, 1, 2).float() / 255)


def test_fine_tuning_names_the_videos_it_read_short_and_reads_them_so_from_then_on(cut_files, tmp_path, run_options):
    """Over two epochs the cut file is decoded past its cut once in each split (one warning
    each, where every epoch warned before), named in read_short.json and the table; a run in a
    folder whose read_short.json names it reads it short from the start, warning none."""
    from pipeline.config import FinetuneConfig, ModelSpec
    from pipeline.datasets import AnnotationFiles, load_manifest
    from stages.finetune import READ_SHORT, run_dir_for, run_finetune

    root = tmp_path / "data"
    root.mkdir()
    for split in ("train", "val"):
        (root / split).mkdir()
        for name in ("whole.mp4", "cut.mp4"):
            (root / split / name).write_bytes((cut_files / name).read_bytes())
        (tmp_path / f"{split}.txt").write_text(f"{split}/whole.mp4 0\n{split}/cut.mp4 1\n")
    files = AnnotationFiles(train=tmp_path / "train.txt", val=tmp_path / "val.txt")
    _, _, decodable = _decodable(root / "train" / "cut.mp4")
    spec, ft = ModelSpec("test_resnet", weights="none", resolution=32), FinetuneConfig(segments=32, epochs=2, batch_size=2, lr=0.01, warmup_epochs=0, seed=3)
    with pytest.warns(ShortReadWarning) as caught:
        result = run_finetune("list", root, "recognizer", spec, ft, 32, run_options, files=files)
    assert [str(w.message).split(":")[0] for w in caught if w.category is ShortReadWarning] == [str(root / "train" / "cut.mp4"), str(root / "val" / "cut.mp4")]
    assert result.read_short == {split: {f"{split}/cut.mp4": {"frames": decodable, "listed": FRAMES}} for split in ("train", "val")}
    assert json.loads((Path(result.checkpoint).parent / READ_SHORT).read_text()) == result.read_short
    assert result.left_out == {"train": {}, "val": {}} and all(h["clips"] == 2 for h in result.history)
    assert f"read short in train: 1 video(s) cut short, read as the frames that decode (train/cut.mp4 {decodable} of {FRAMES}; each in read_short.json)" in result.table()
    assert run_finetune("list", root, "recognizer", spec, ft, 32, run_options, files=files).read_short == result.read_short  # a finished run's too

    other = replace(ft, seed=4)
    run_dir, _ = run_dir_for("list", load_manifest("list", root, files)[1], "recognizer", spec, other, 32, run_options)
    run_dir.mkdir(parents=True)
    (run_dir / READ_SHORT).write_text(json.dumps(result.read_short))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShortReadWarning)
        resumed = run_finetune("list", root, "recognizer", spec, other, 32, run_options, files=files)
    assert resumed.read_short == result.read_short
