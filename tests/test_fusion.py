"""A.3 fusion rules, the baselines and the evaluation maths, on hand-computed cases."""

import numpy as np
import pytest

from pipeline.baselines import dense_positions, max_confidence, oracle_positions, random_positions, top_confidence_positions, uniform_positions
from pipeline.evaluation import class_mean_saliency, ema, recognition, scores_at
from pipeline.fusion import fused_scores, ranking, select_frames

# T=6. pi_f = 0 1 2 3 4 5;  pi_v = 2 4 3 5 1 0 (3 and 5 tie at 0.10: the earlier first)
S_F = np.array([0.30, 0.25, 0.20, 0.15, 0.10, 0.00])
S_V = np.array([0.00, 0.05, 0.40, 0.10, 0.35, 0.10])


def test_ranking_breaks_ties_towards_the_earlier_frame():
    assert ranking(S_V).tolist() == [2, 4, 3, 5, 1, 0]
    assert ranking([0.1, 0.1, 0.2]).tolist() == [2, 0, 1]


def test_score_rules_by_hand():
    # add, alpha 0.6: .18 .17 .28 .13 .20 .04 -> top 3: frames 2, 4, 0
    np.testing.assert_allclose(fused_scores(S_F, S_V, "add", 0.6), [0.18, 0.17, 0.28, 0.13, 0.20, 0.04])
    assert select_frames(S_F, S_V, 3, "add").tolist() == [0, 2, 4]
    # mul: 0 .0125 .08 .015 .035 0 -> frames 2, 4, 3
    assert select_frames(S_F, S_V, 3, "mul").tolist() == [2, 3, 4]
    # max: .30 .25 .40 .15 .35 .10 -> frames 2, 4, 0
    assert select_frames(S_F, S_V, 3, "max").tolist() == [0, 2, 4]
    # alpha 1 is the FSM alone, alpha 0 the VGM alone
    assert select_frames(S_F, S_V, 3, "add", alpha=1.0).tolist() == [0, 1, 2]
    assert select_frames(S_F, S_V, 3, "add", alpha=0.0).tolist() == [2, 3, 4]


def test_intersection_lengthens_the_lists_by_turns():
    # top-3: {0,1,2} & {2,4,3} = {2}; f to 4: {2,3}; v to 4 (adds 5): {2,3}; f to 5 (adds 4): {2,3,4}
    assert select_frames(S_F, S_V, 3, "intersection").tolist() == [2, 3, 4]
    assert select_frames(S_F, S_F, 3, "intersection").tolist() == [0, 1, 2]


def test_union_by_hand():
    # K=5: ceil(3.0)=3 of pi_f {0,1,2} + ceil(2.0)=2 of pi_v {2,4} = {0,1,2,4}; next of pi_f: 3
    assert select_frames(S_F, S_V, 5, "union", 0.6).tolist() == [0, 1, 2, 3, 4]
    # K=3: ceil(1.8)=2 of pi_f {0,1}; ceil(1.2)=2 would exceed K, so 3-2=1 of pi_v {2}
    assert select_frames(S_F, S_V, 3, "union", 0.6).tolist() == [0, 1, 2]
    # K=2, alpha 0.5: 1 + 1 frames, no overlap
    assert select_frames(S_F, S_V, 2, "union", 0.5).tolist() == [0, 2]


def test_join_takes_distinct_frames_from_both_lists():
    # joined order: v2 .40, v4 .35, f0 .30, f1 .25, f2 .20 (frame 2 again: skipped), f3 .15
    assert select_frames(S_F, S_V, 3, "join").tolist() == [0, 2, 4]
    assert select_frames(S_F, S_V, 5, "join").tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("rule", ["add", "mul", "max", "intersection", "union", "join"])
def test_every_rule_returns_k_distinct_frames(rule):
    rng = np.random.default_rng(3)
    for _ in range(20):
        s_f, s_v = rng.random(16), rng.random(16)
        for k in (1, 5, 10, 16, 20):
            chosen = select_frames(s_f, s_v, k, rule)
            assert len(chosen) == min(k, 16) == len(set(chosen.tolist()))
            assert chosen.min() >= 0 and chosen.max() < 16


def test_fusion_refuses_bad_arguments():
    with pytest.raises(ValueError, match="lengths differ"):
        select_frames(S_F, S_V[:5], 3)
    with pytest.raises(ValueError, match="fusion must be one of"):
        select_frames(S_F, S_V, 3, "average")
    with pytest.raises(ValueError, match="K must be"):
        select_frames(S_F, S_V, 0)


def test_baselines_by_hand():
    assert uniform_positions(16, 5).tolist() == [1, 4, 8, 11, 14]  # centres of 5 segments of 16
    assert uniform_positions(4, 10).tolist() == [0, 1, 2, 3]
    assert dense_positions(3).tolist() == [0, 1, 2]
    a = random_positions(16, 5, np.random.default_rng(1))
    assert a.tolist() == random_positions(16, 5, np.random.default_rng(1)).tolist() and len(set(a.tolist())) == 5
    logits = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 1.0]])  # max softmax .5, .9933, .7311
    np.testing.assert_allclose(max_confidence(logits), [0.5, 1 / (1 + np.exp(-5)), 1 / (1 + np.exp(-1))])
    assert top_confidence_positions(logits, 2).tolist() == [1, 2]
    assert oracle_positions(np.array([0.1, 0.9, 0.2, 0.8]), 2).tolist() == [1, 3]


def test_video_scores_from_chosen_frames():
    logits = [np.array([[0.0, np.log(3.0)], [np.log(3.0), 0.0]])]
    np.testing.assert_allclose(scores_at(logits, [np.array([0])]), [[0.25, 0.75]])
    np.testing.assert_allclose(scores_at(logits, [np.array([0, 1])]), [[0.5, 0.5]])
    # 2 videos of 2 classes, perfectly ranked: mAP 100; top-1 50% (second video wrong)
    result = recognition(np.array([[0.9, 0.1], [0.6, 0.4]]), [[0], [1]])
    assert result.top1 == 50.0
    # class 0: positives {v0} ranked first -> AP 1; class 1: positive v1 (0.4) above v0 (0.1) -> AP 1
    assert result.map == 100.0 and result.class_ap.tolist() == [1.0, 1.0]


def test_ema_and_class_mean_saliency_by_hand():
    np.testing.assert_allclose(ema(np.array([1.0, 0.0, 0.0])), [1.0, 0.8, 0.64])
    means = class_mean_saliency(np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]), [[0], [1], [0, 1]], 3)
    np.testing.assert_allclose(means[0], [(0.25 + 0.75) / 2, (0.75 + 0.25) / 2])
    np.testing.assert_allclose(means[1], [(0.5 + 0.75) / 2, (0.5 + 0.25) / 2])
    assert np.isnan(means[2]).all()
