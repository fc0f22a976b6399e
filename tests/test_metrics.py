"""Hand-computed checks of the sampling and metric formulas."""

import numpy as np
import pytest

from pipeline.metrics import class_average_precision, mean_average_precision, multi_hot, top1_accuracy, video_scores
from pipeline.sampling import segment_random_indices


def test_segment_random_indices_stay_in_their_segments():
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = segment_random_indices(10, 5, rng)
        assert all(2 * k <= i < 2 * k + 2 for k, i in enumerate(idx))
    # 7 frames, 3 segments: [0,2), [2,4), [4,7)
    seen = np.array([segment_random_indices(7, 3, rng) for _ in range(300)])
    assert set(seen[:, 0]) == {0, 1} and set(seen[:, 1]) == {2, 3} and set(seen[:, 2]) == {4, 5, 6}
    assert set(np.concatenate([segment_random_indices(6, 1, rng) for _ in range(200)])) == set(range(6))
    assert segment_random_indices(2, 5, rng).tolist() == [0, 1, 0, 1, 0]
    with pytest.raises(ValueError):
        segment_random_indices(5, 0, rng)


def test_video_scores_are_mean_frame_softmax():
    logits = np.array([[[0.0, np.log(3.0)], [np.log(3.0), 0.0]]])  # softmax (1/4, 3/4), (3/4, 1/4)
    np.testing.assert_allclose(video_scores(logits), [[0.5, 0.5]])
    logits = np.array([[[0.0, 0.0], [0.0, np.log(3.0)]]])  # (1/2, 1/2), (1/4, 3/4)
    np.testing.assert_allclose(video_scores(logits), [[0.375, 0.625]])


def test_top1_counts_any_label_of_multi_label_videos():
    scores = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    assert top1_accuracy(scores, [(1,), (1,), (0, 2)]) == pytest.approx(2 / 3)


def test_map_by_hand():
    # class 0: positives are videos 0 and 2. Ranking by score: v0 (0.9, +), v1 (0.8, -), v2 (0.3, +)
    #   AP = (1/1 + 2/3) / 2 = 5/6
    # class 1: positive is video 1 only, ranked first (0.7) -> AP = 1
    # class 2: no positive -> left out of the mean
    scores = np.array([[0.9, 0.1, 0.0], [0.8, 0.7, 0.0], [0.3, 0.2, 0.5]])
    labels = [(0,), (1,), (0,)]
    assert mean_average_precision(scores, labels) == pytest.approx((5 / 6 + 1) / 2)
    per_class = class_average_precision(scores, labels)
    assert per_class[:2] == pytest.approx([5 / 6, 1]) and np.isnan(per_class[2])
    assert multi_hot([(0, 2), ()], 3).tolist() == [[1, 0, 1], [0, 0, 0]]


def test_map_by_hand_on_multi_label_videos():
    # FCVID-style: video 0 has classes 0 and 1, video 1 class 1, video 2 classes 0 and 2.
    # class 0: positives v0, v2. Ranking: v0 (0.5, +), v2 (0.4, +), v1 (0.1, -) -> AP = 1
    # class 1: positives v0, v1. Ranking: v1 (0.8, +), v2 (0.5, -), v0 (0.3, +) -> AP = (1/1 + 2/3) / 2 = 5/6
    # class 2: positive v2.      Ranking: v0 (0.2, -), v2 (0.1, +), v1 (0.05, -) -> AP = 1/2
    scores = np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.05], [0.4, 0.5, 0.1]])
    labels = [(0, 1), (1,), (0, 2)]
    assert mean_average_precision(scores, labels) == pytest.approx((1 + 5 / 6 + 1 / 2) / 3)
    assert class_average_precision(scores, labels) == pytest.approx([1, 5 / 6, 1 / 2])
    # top-1 counts any label: v0 -> 0 (label), v1 -> 1 (label), v2 -> 1 (not a label)
    assert top1_accuracy(scores, labels) == pytest.approx(2 / 3)
