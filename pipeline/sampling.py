"""Pre-sampling of the T observation frames of a video (paper A.1)."""

from __future__ import annotations

import numpy as np


def _repeat_spliced(num_frames: int, count: int) -> np.ndarray | None:
    """Check the arguments; for a video shorter than ``count`` frames, its frames repeated and
    spliced end to end (``0, 1, .., n-1, 0, 1, ..``), else ``None``."""
    if count <= 0:
        raise ValueError(f"the number of frames to sample must be positive, got {count}")
    if num_frames <= 0:
        raise ValueError(f"cannot sample from a video with {num_frames} frames")
    return np.arange(count, dtype=np.int64) % num_frames if num_frames < count else None


def uniform_frame_indices(num_frames: int, t: int) -> np.ndarray:
    """Return ``t`` frame indices spread uniformly over a video of ``num_frames`` frames.

    Videos with at least ``t`` frames are cut into ``t`` equal segments and the centre frame of
    each is taken. Shorter videos are repeated and spliced end to end until ``t`` frames are
    reached, as in the paper's appendix A.1 (``0, 1, .., n-1, 0, 1, ..``).
    """
    spliced = _repeat_spliced(num_frames, t)
    if spliced is not None:
        return spliced
    return ((np.arange(t, dtype=np.float64) + 0.5) * num_frames / t).astype(np.int64)


def segment_random_indices(num_frames: int, segments: int, rng: np.random.Generator) -> np.ndarray:
    """Training-time sampling: one random frame in each of ``segments`` equal segments (TSN).

    ``segments=1`` is frame-wise training: one random frame of the whole video. Segment ``k``
    covers frames ``floor(k*n/N) .. floor((k+1)*n/N) - 1``; a video shorter than ``segments``
    is repeat-spliced first, as in :func:`uniform_frame_indices`.
    """
    spliced = _repeat_spliced(num_frames, segments)
    if spliced is not None:
        return spliced
    starts = (np.arange(segments) * num_frames) // segments
    ends = (np.arange(1, segments + 1) * num_frames) // segments
    return (starts + rng.integers(0, ends - starts)).astype(np.int64)
