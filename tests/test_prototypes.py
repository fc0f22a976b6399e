"""Hand-computed checks of A.1 (prototypes), eq. 1 (sign and scale), B.1 and the NS labels."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from pipeline.prototypes import GuidingScorer, guiding_features, prototype_scores


def _guide(features, logits, c, epsilon, require_correct=True):
    guides, valid = guiding_features(features[None], logits[None], np.array([c]), epsilon, require_correct)
    return guides[0] if valid[0] else None


def test_guiding_feature_keeps_top_correct_frames():
    # 5 frames, 2 classes, ground truth c=0. Frames 0, 2, 3, 4 are predicted 0; frame 1 is not.
    logits = np.array([[2.0, 0.0], [0.0, 5.0], [4.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    features = np.array([[1.0], [100.0], [3.0], [5.0], [7.0]])
    # correct frames' p(c=0) rank 2 (4.0) > 4 (3.0) > 0 (2.0) > 3 (1.0); 50% of 4 -> 2 frames
    assert _guide(features, logits, 0, 50.0) == pytest.approx([(3.0 + 7.0) / 2])
    assert _guide(features, logits, 0, 30.0) == pytest.approx([(3.0 + 7.0) / 2])  # ceil(1.2) = 2
    assert _guide(features, logits, 0, 1.0) == pytest.approx([3.0])  # at least one frame
    assert _guide(features, logits, 0, 100.0) == pytest.approx([(1.0 + 3.0 + 5.0 + 7.0) / 4])
    assert _guide(features, logits[:, ::-1], 0, 50.0) == pytest.approx([100.0])
    assert _guide(features[:1], np.array([[0.0, 1.0]]), 0, 50.0) is None
    # without the correctness filter: all 5 frames ranked by p(c=0): 2, 4, 0, 3, 1 -> top 2
    assert _guide(features, logits, 0, 40.0, require_correct=False) == pytest.approx([(3.0 + 7.0) / 2])
    # equal probabilities: the earlier frames win
    assert _guide(np.array([[1.0], [2.0], [3.0]]), np.zeros((3, 2)) + [1.0, 0.0], 0, 50.0) == pytest.approx([1.5])


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
    scorer = GuidingScorer(epsilon=30.0).fit(feats, labels, logits=logits)
    assert scorer.prototypes_[0] == pytest.approx([3.0]) and scorer.prototypes_[1] == pytest.approx([20.0])
    assert scorer.fallback_classes_ == [1] and scorer.empty_classes_ == [2] and np.isnan(scorer.prototypes_[2]).all()
    # block by block: the same prototypes, whatever the split
    blocks = GuidingScorer(epsilon=30.0)
    for rows in ([2], [0, 1]):
        blocks.partial_fit(feats[rows], labels[rows], logits=logits[rows])
    np.testing.assert_array_equal(blocks.prototypes_, scorer.prototypes_)
    assert blocks.fallback_classes_ == [1] and blocks.empty_classes_ == [2]


def _reference_scores(features, logits, labels, epsilon):
    """A.1 and eq. 1 as first written: video by video, and distances from the [..., C, D]
    difference tensor (small inputs only)."""
    protos = []
    for c in range(labels.shape[1]):
        guides = []
        for require_correct in (True, False):
            for v in np.flatnonzero(labels[:, c]):
                frames = np.flatnonzero(logits[v].argmax(1) == c) if require_correct else np.arange(logits.shape[1])
                if frames.size:
                    p = np.exp(logits[v, frames] - logits[v, frames].max(1, keepdims=True))
                    p = (p / p.sum(1, keepdims=True))[:, c]
                    keep = frames[np.argsort(-p, kind="stable")[: max(1, int(np.ceil(frames.size * epsilon / 100)))]]
                    guides.append(features[v, keep].mean(0))
            if guides:
                break
        protos.append(np.mean(guides, 0) if guides else np.full(features.shape[-1], np.nan))
    diff = features[..., None, :] - np.array(protos)
    similarity = -np.sqrt(np.einsum("...cd,...cd->...c", diff, diff))
    similarity = np.where(np.isnan(similarity), -np.inf, similarity)
    scores = np.exp(similarity - similarity.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    return np.array(protos), (scores * (labels[:, None, :] > 0)).sum(-1)


def test_block_wise_fit_equals_the_reference_definition():
    rng = np.random.default_rng(3)
    v, t, c, d = 23, 6, 5, 8
    labels = np.eye(c, dtype=int)[rng.integers(0, c - 1, v)]  # the last class has no video
    labels[[2, 9]] |= np.eye(c, dtype=int)[[1, 3]]  # two multi-label videos
    centres = rng.normal(0, 2, (c, d))
    feats = centres[labels.argmax(1)][:, None, :] + rng.normal(0, 1, (v, t, d))
    logits = feats @ centres.T + rng.normal(0, 3, (v, t, c))
    logits[labels[:, 2] > 0, :, 2] -= 50.0  # class 2 never predicted: the fallback
    protos, g = _reference_scores(feats, logits, labels, 30.0)
    blockwise = GuidingScorer(epsilon=30.0)
    for start in range(0, v, 4):
        blockwise.partial_fit(feats[start : start + 4], labels[start : start + 4], logits=logits[start : start + 4])
    assert blockwise.fallback_classes_ == [2] and blockwise.empty_classes_ == [4]
    np.testing.assert_allclose(blockwise.prototypes_, protos, rtol=1e-12, atol=1e-12)
    got = np.concatenate([blockwise.transform(feats[s : s + 5], labels[s : s + 5]) for s in range(0, v, 5)])
    np.testing.assert_allclose(got, g, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(GuidingScorer(epsilon=30.0).fit_transform(feats, labels, logits=logits), g, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="this block has 4 classes, the earlier ones 5"):
        blockwise.partial_fit(feats[:2], labels[:2, :4], logits=logits[:2, :, :4])


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


@pytest.mark.parametrize(("params", "refused"), [
    ({"epsilon": 0.0}, r"epsilon must be a percentage in \(0, 100\] \(A.1: .*\), got 0.0$"),
    ({"epsilon": 100.5}, r"epsilon must be a percentage .*, got 100.5$"),
    ({"epsilon": float("nan")}, r"epsilon must be .*, got nan$"),
    ({"temperature": 0.0}, r"temperature must be above 0 and finite \(eq. 1's distances are divided by it\), got 0.0$"),  # had failed on NaNs after the fit
    ({"temperature": -1.0}, r"temperature must be above 0 .*, got -1.0$"),  # had turned the nearest prototype into the least likely, silently
    ({"temperature": float("inf")}, r"temperature must be .*, got inf$"),
])
def test_the_scorer_refuses_parameters_out_of_range_naming_them(params, refused):
    """Each parameter refused where it is used (fit, or scoring after ``set_params``), by its
    name, range and value; the edges taken: epsilon 100, a small temperature."""
    feats, labels, logits = np.zeros((1, 2, 4)), np.array([[1, 0]]), np.zeros((1, 2, 2))
    with pytest.raises(ValueError, match=refused):
        GuidingScorer(**params).fit(feats, labels, logits=logits)
    fitted = GuidingScorer().fit(feats, labels, logits=logits)
    with pytest.raises(ValueError, match=refused):
        fitted.set_params(**params).transform(feats, labels, logits=logits)
    assert GuidingScorer(epsilon=100.0, temperature=1e-3).fit_transform(feats, labels, logits=logits).shape == (1, 2)


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
