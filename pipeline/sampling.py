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


def check_offsets(offsets: int) -> None:
    """Candidates per segment must be odd, so that the middle one is the segment's centre."""
    if offsets < 1 or offsets % 2 == 0:
        raise ValueError(f"offsets (candidate frames per segment) must be odd, so that the middle one is the segment's centre; got {offsets}")


def candidate_frame_indices(num_frames: int, t: int, offsets: int) -> np.ndarray:
    """``offsets`` (S, odd) candidate frames in each of ``t`` equal segments, for the temporal
    random shift of training (A.1, as in TSN): [S, t] frame indices, row 0 the segment centres
    (:func:`uniform_frame_indices`, what evaluation uses) and rows 1..S-1 the other candidates
    from the earliest to the latest. Candidate ``s`` of segment ``k`` is frame
    ``floor((k + (s + 0.5) / S) * n / t)``, so the S candidates split each segment evenly and
    the middle one is its centre. A video shorter than ``t`` frames is repeat-spliced: every row
    is the same."""
    check_offsets(offsets)
    centres = uniform_frame_indices(num_frames, t)
    if num_frames < t:
        return np.tile(centres, (offsets, 1))
    fractions = (np.arange(offsets, dtype=np.float64) + 0.5) / offsets
    others = np.delete(fractions, offsets // 2)
    shifted = ((np.arange(t, dtype=np.float64)[None, :] + others[:, None]) * num_frames / t).astype(np.int64)
    return np.concatenate([centres[None, :], shifted])


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
