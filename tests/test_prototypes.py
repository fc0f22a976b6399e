"""Hand-computed checks of A.1 (prototypes), eq. 1 (sign and scale), B.1 and the NS labels."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from pipeline.prototypes import GuidingScorer, class_prototypes, guiding_video_feature, prototype_scores, top_fraction


def test_top_fraction_keeps_at_least_one():
    assert top_fraction(np.array([0.1, 0.9, 0.5, 0.7]), 30).tolist() == [1, 3]  # ceil(1.2) = 2
    assert top_fraction(np.array([0.1, 0.9, 0.5]), 10).tolist() == [1]  # ceil(0.3) = 1
    assert top_fraction(np.array([0.2, 0.4]), 100).tolist() == [1, 0]


def test_guiding_video_feature_keeps_top_correct_frames():
    # 5 frames, 2 classes, ground truth c=0. Frames 0, 2, 3, 4 are predicted 0; frame 1 is not.
    logits = np.array([[2.0, 0.0], [0.0, 5.0], [4.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    features = np.array([[1.0], [100.0], [3.0], [5.0], [7.0]])
    # correct frames' p(c=0) rank 2 (4.0) > 4 (3.0) > 0 (2.0) > 3 (1.0); 50% of 4 -> 2 frames
    assert guiding_video_feature(features, logits, 0, 50.0) == pytest.approx([(3.0 + 7.0) / 2])
    assert guiding_video_feature(features, logits, 0, 1.0) == pytest.approx([3.0])
    assert guiding_video_feature(features, logits[:, ::-1], 0, 50.0) == pytest.approx([100.0])
    assert guiding_video_feature(features[:1], np.array([[0.0, 1.0]]), 0, 50.0) is None


def test_prototypes_on_a_toy_case_with_fallback_and_empty_class():
    # class 0: video A (guide feature 2.0) and video B (guide 4.0) -> prototype 3.0
    # class 1: video C whose frames are all predicted 0 -> fallback: its most class-1-like frame
    # class 2: no video at all
    feats = np.array([[[2.0], [9.0]], [[4.0], [8.0]], [[10.0], [20.0]]])
    logits = np.array(
        [
            [[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]],  # A: frame 0 correct
            [[5.0, 0.0, 0.0], [0.0, 0.0, 5.0]],  # B: frame 0 correct
            [[5.0, 1.0, 0.0], [5.0, 3.0, 0.0]],  # C: p(1) higher on frame 1
        ]
    )
    labels = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]])
    protos, fallback, empty = class_prototypes(feats, logits, labels, epsilon=30.0)
    assert protos[0] == pytest.approx([3.0]) and protos[1] == pytest.approx([20.0])
    assert fallback == [1] and empty == [2] and np.isnan(protos[2]).all()


def test_eq1_nearer_prototype_scores_higher_with_plain_distance():
    x = np.array([[0.0, 0.0]])
    protos = np.array([[1.0, 0.0], [0.0, 3.0]])  # distances 1 and 3
    expected = np.array([1.0, np.exp(-2.0)]) / (1.0 + np.exp(-2.0))  # softmax(-1, -3)
    np.testing.assert_allclose(prototype_scores(x, protos)[0], expected)
    assert expected[0] == pytest.approx(0.880797, abs=1e-6)
    # temperature 2 halves the similarities: softmax(-0.5, -1.5)
    np.testing.assert_allclose(prototype_scores(x, protos, temperature=2.0)[0], [1 / (1 + np.exp(-1.0)), np.exp(-1.0) / (1 + np.exp(-1.0))])
    # Euclidean, not squared: distances 5 (3-4-5) and 1 -> softmax(-5, -1)
    np.testing.assert_allclose(prototype_scores(np.array([[3.0, 4.0]]), np.array([[0.0, 0.0], [3.0, 3.0]]))[0], [np.exp(-4) / (1 + np.exp(-4)), 1 / (1 + np.exp(-4))])


def test_estimator_prototype_guide_and_conventions():
    rng = np.random.default_rng(0)
    protos = np.array([[0.0, 0.0], [10.0, 0.0]])
    labels = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    feats = protos[labels.argmax(1)][:, None, :] + rng.normal(0, 0.1, (4, 3, 2))
    feats[0, 2] = [10.0, 0.0]  # a frame of a class-0 video that looks like class 1
    logits = np.where(labels[:, None, :] > 0, 3.0, 0.0) + np.zeros((4, 3, 2))
    scorer = GuidingScorer(epsilon=100.0)
    g = scorer.fit_transform(feats, labels, logits=logits)
    assert g.shape == (4, 3) and g[0, 2] < 0.01 and g[0, :2].min() > 0.99
    # epsilon 100 and every frame correct: a video's guide is the mean of all its frames
    expected = [np.mean([feats[0].mean(0), feats[2].mean(0)], 0), np.mean([feats[1].mean(0), feats[3].mean(0)], 0)]
    np.testing.assert_allclose(scorer.prototypes_, expected, atol=1e-12)
    assert scorer.get_params() == {"epsilon": 100.0, "guide": "prototype", "temperature": 1.0}
    again = pickle.loads(pickle.dumps(scorer))
    np.testing.assert_array_equal(again.transform(feats, labels), g)
    assert clone(scorer).get_params() == scorer.get_params()


def test_response_guide_uses_the_recognizer_probabilities():
    logits = np.array([[[np.log(3.0), 0.0], [0.0, 0.0]]])  # softmax (3/4, 1/4), (1/2, 1/2)
    labels = np.array([[1, 0]])
    g = GuidingScorer(guide="response").fit(np.zeros((1, 2, 4)), labels, logits=logits).transform(np.zeros((1, 2, 4)), labels, logits=logits)
    np.testing.assert_allclose(g, [[0.75, 0.5]])
    with pytest.raises(ValueError, match="guide must be one of"):
        GuidingScorer(guide="magic").fit(np.zeros((1, 2, 4)), labels, logits=logits)
    with pytest.raises(ValueError, match="at least one label"):
        GuidingScorer().fit(np.zeros((1, 2, 4)), np.array([[0, 0]]), logits=logits)


def test_multi_label_video_feeds_both_prototypes_and_sums_its_scores():
    # video 0 has classes {0, 1}: frame 0 is predicted 0, frame 1 predicted 1 -> it contributes
    # frame 0 to prototype 0 and frame 1 to prototype 1. Video 1 (class 2) gives prototype 2.
    feats = np.array([[[0.0], [4.0]], [[10.0], [10.0]]])
    logits = np.array([[[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]], [[0.0, 0.0, 5.0], [0.0, 0.0, 5.0]]])
    labels = np.array([[1, 1, 0], [0, 0, 1]])
    scorer = GuidingScorer(epsilon=30.0).fit(feats, labels, logits=logits)
    np.testing.assert_allclose(scorer.prototypes_, [[0.0], [4.0], [10.0]])
    g = scorer.transform(feats, labels)
    # frame at 0.0: softmax(-0, -4, -10); its classes 0 and 1 -> (1 + e^-4) / (1 + e^-4 + e^-10)
    expected = (1 + np.exp(-4)) / (1 + np.exp(-4) + np.exp(-10))
    assert g[0, 0] == pytest.approx(expected)
    assert 0.99 < g[0, 1] <= 1.0 and g[1, 0] == pytest.approx(1 / (1 + np.exp(-6) + np.exp(-10)))
