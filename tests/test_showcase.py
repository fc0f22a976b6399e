"""Fig. 4 (pipeline.showcase): how salient the chosen frames are, which videos are drawn, and
the drawn videos' rows and thumbnails."""

import numpy as np
import pytest

from pipeline.datasets import VideoRecord
from pipeline.inference import thumbnails
from pipeline.plots import plot_showcase
from pipeline.showcase import ShowcaseInput, chosen_guidance, showcase_video, showcase_videos
from pipeline.video import FrameSource

G = np.array([[0.9, 0.2, 0.6, 0.1], [0.3, 0.8, 0.4, 0.7], [0.5, 0.5, 0.5, 0.5]])


def test_chosen_guidance_by_hand():
    # chosen g: 0.9, 0.6 | 0.8, 0.7 | 0.5, 0.5 -> mean 4.0 / 6; salient (> 0.5): 4 of 6 (0.5 is not)
    got = chosen_guidance(G, [np.array([0, 2]), np.array([1, 3]), np.array([0, 3])])
    assert got["mean_g"] == pytest.approx(4.0 / 6) and got["salient_share"] == pytest.approx(4 / 6)
    # 0.2, 0.1 | 0.3, 0.4 | 0.5 -> mean 1.5 / 5, none salient (videos may choose different counts)
    got = chosen_guidance(G, [np.array([1, 3]), np.array([0, 2]), np.array([2])])
    assert got["mean_g"] == pytest.approx(1.5 / 5) and got["salient_share"] == 0.0


def test_the_videos_drawn_are_those_whose_choice_gains_most_in_guiding_score():
    ours = [np.array([0, 2]), np.array([1, 3]), np.array([0, 1])]
    baseline = [np.array([1, 3]), np.array([0, 2]), np.array([2, 3])]
    # gains: (0.75 - 0.15) = 0.6, (0.75 - 0.35) = 0.4, (0.5 - 0.5) = 0
    assert showcase_videos(G, baseline, ours).tolist() == [0, 1, 2]
    assert showcase_videos(G, baseline, ours, count=2).tolist() == [0, 1]
    assert showcase_videos(G, ours, baseline, count=2).tolist() == [2, 1]  # -0.6, -0.4, 0
    # equal gains (0.4, 0.4, then 0.15 - 0.75): the earlier video first
    assert showcase_videos(G[[1, 1, 0]], [baseline[1]] * 3, [ours[1]] * 3).tolist() == [0, 1, 2]


def _input(path: str, logits: np.ndarray) -> ShowcaseInput:
    frame_indices = np.array([0, 3, 6, 9])
    return ShowcaseInput(VideoRecord("clip", path, (1,), "val"), frame_indices, G[0], logits, {"UNIFORM": np.array([0, 2]), "ours": np.array([2, 0])})


def test_a_drawn_video_holds_each_sampler_s_frames_scores_prediction_and_thumbnails(tmp_path, video_writer):
    frames = np.random.default_rng(0).integers(0, 256, (12, 48, 64, 3), dtype=np.uint8)
    video_writer(tmp_path / "clip.mp4", frames, 10, "mp4", "libx264", {"crf": "0"})
    logits = np.zeros((4, 3))
    logits[0, 2], logits[2, 0], logits[1, 1] = 5.0, 1.0, 9.0  # frames 0 and 2: class 2 wins the mean softmax
    video = showcase_video(_input("clip.mp4", logits), ["a", "b", "c"], tmp_path)
    assert video.labels == ["b"] and video.error == ""
    uniform, ours = video.rows
    assert (uniform.positions, uniform.frames, uniform.g, uniform.salient, uniform.prediction) == ([0, 2], [0, 6], [0.9, 0.6], [True, True], "c")
    assert ours.positions == [0, 2] and ours.frames == [0, 6]  # chosen positions in time order
    expected = thumbnails(FrameSource(tmp_path / "clip.mp4").read(np.array([0, 6])))
    assert sorted(video.thumbnails) == [0, 6] and all(np.array_equal(video.thumbnails[f], e) for f, e in zip([0, 6], expected))
    assert video.times == pytest.approx({0: 0.0, 6: 0.6})
    assert video.to_dict()["rows"][0] == {"method": "UNIFORM", "positions": [0, 2], "frames": [0, 6], "g": [0.9, 0.6], "salient": [True, True], "prediction": "c"}
    plot_showcase([video, showcase_video(_input("clip.mp4", logits), ["a", "b", "c"], None)], tmp_path / "fig4.png", "Fig. 4")
    assert (tmp_path / "fig4.png").stat().st_size > 0


def test_a_drawn_video_that_cannot_be_decoded_keeps_its_rows_and_says_why(tmp_path):
    video = showcase_video(_input("gone.mp4", np.zeros((4, 3))), ["a", "b", "c"], tmp_path)
    assert video.thumbnails is None and "gone.mp4" in video.error and len(video.rows) == 2
    assert "gone.mp4" in video.to_dict()["error"]
    assert "thumbnails" not in video.to_dict() and "error" not in showcase_video(_input("gone.mp4", np.zeros((4, 3))), ["a", "b", "c"], None).to_dict()
