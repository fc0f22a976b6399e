"""Fusing the FSM and VGM saliency of one video into K chosen frames (paper A.3).

Every function works on one video: ``s_f`` and ``s_v`` are the [T] saliency scores of the
two modules, and the result is the sorted positions (0..T-1) of the chosen frames. Rankings are
by descending score; ties go to the earlier frame, so every rule is deterministic.

Score rules fuse the two scores frame by frame and take the top K:
``add`` (``alpha s_f + (1 - alpha) s_v``), ``mul`` (``s_f * s_v``), ``max`` (``max(s_f, s_v)``).

Index rules combine the two rankings ``pi_f`` and ``pi_v``:

* ``intersection``: frames in both top-K lists; while fewer than K, the two lists are
  lengthened one frame at a time, by turns (``pi_f`` first), so the intersection grows by at
  most one frame per step and ends at exactly K.
* ``union`` (the paper's default): the top ``ceil(K alpha)`` of ``pi_f`` and the top
  ``ceil(K (1 - alpha))`` of ``pi_v``; when the two ceilings add up to more than K (e.g. K=4,
  alpha=0.6) the ``pi_v`` share is cut to ``K - ceil(K alpha)`` so that K stays a budget; then,
  while fewer than K (overlaps), the next frame of ``pi_f`` is added.
* ``join``: the 2T scores of both modules in one list; the K best distinct frames.
"""

from __future__ import annotations

import math

import numpy as np

SCORE_RULES = ("add", "mul", "max")
INDEX_RULES = ("intersection", "union", "join")
FUSION_RULES = SCORE_RULES + INDEX_RULES
DEFAULT_ALPHA = 0.6


def ranking(scores: np.ndarray) -> np.ndarray:
    """Positions by descending score, ties to the earlier position."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Sorted positions of the ``k`` highest scores (all of them when ``k >= T``)."""
    return np.sort(ranking(scores)[:k])


def fused_scores(s_f: np.ndarray, s_v: np.ndarray, rule: str, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Frame-wise fusion of a score rule."""
    s_f, s_v = np.asarray(s_f, dtype=np.float64), np.asarray(s_v, dtype=np.float64)
    if rule == "add":
        return alpha * s_f + (1.0 - alpha) * s_v
    if rule == "mul":
        return s_f * s_v
    if rule == "max":
        return np.maximum(s_f, s_v)
    raise ValueError(f"{rule!r} is not a score fusion rule {SCORE_RULES}")


def intersection_frames(s_f: np.ndarray, s_v: np.ndarray, k: int) -> np.ndarray:
    pi_f, pi_v = ranking(s_f), ranking(s_v)
    depth = [k, k]
    turn = 0
    while len(set(pi_f[: depth[0]]) & set(pi_v[: depth[1]])) < k:
        depth[turn] += 1
        turn = 1 - turn
    return np.sort(np.fromiter(set(pi_f[: depth[0]]) & set(pi_v[: depth[1]]), dtype=np.int64))


def union_frames(s_f: np.ndarray, s_v: np.ndarray, k: int, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    pi_f, pi_v = ranking(s_f), ranking(s_v)
    n_f = min(math.ceil(k * alpha), k)
    n_v = min(math.ceil(k * (1.0 - alpha)), k - n_f)
    chosen = list(dict.fromkeys([*pi_f[:n_f], *pi_v[:n_v]]))
    for position in pi_f[n_f:]:
        if len(chosen) >= k:
            break
        if position not in chosen:
            chosen.append(position)
    return np.sort(np.asarray(chosen, dtype=np.int64))


def join_frames(s_f: np.ndarray, s_v: np.ndarray, k: int) -> np.ndarray:
    t = len(s_f)
    joined = np.concatenate([np.asarray(s_f, dtype=np.float64), np.asarray(s_v, dtype=np.float64)])
    chosen = list(dict.fromkeys(int(i) % t for i in ranking(joined)))
    return np.sort(np.asarray(chosen[:k], dtype=np.int64))


def select_frames(s_f: np.ndarray, s_v: np.ndarray, k: int, rule: str = "union", alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """The sorted positions of the ``min(k, T)`` frames chosen by fusion ``rule``."""
    if len(s_f) != len(s_v):
        raise ValueError(f"saliency lengths differ: {len(s_f)} (FSM) vs {len(s_v)} (VGM)")
    if k < 1:
        raise ValueError(f"K must be at least 1, got {k}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    k = min(k, len(s_f))
    if rule in SCORE_RULES:
        return top_k(fused_scores(s_f, s_v, rule, alpha), k)
    if rule == "intersection":
        return intersection_frames(s_f, s_v, k)
    if rule == "union":
        return union_frames(s_f, s_v, k, alpha)
    if rule == "join":
        return join_frames(s_f, s_v, k)
    raise ValueError(f"fusion must be one of {FUSION_RULES}, got {rule!r}")
