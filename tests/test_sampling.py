import numpy as np
import pytest

from pipeline.sampling import uniform_frame_indices


def test_long_video_takes_segment_centres():
    # 10 frames, 5 segments of 2 frames: centres at 1, 3, 5, 7, 9
    assert uniform_frame_indices(10, 5).tolist() == [1, 3, 5, 7, 9]
    # 100 frames, 4 segments of 25: floor(12.5), floor(37.5), ...
    assert uniform_frame_indices(100, 4).tolist() == [12, 37, 62, 87]


def test_equal_length_takes_every_frame():
    assert uniform_frame_indices(7, 7).tolist() == list(range(7))


def test_short_video_is_repeated_and_spliced():
    assert uniform_frame_indices(3, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert uniform_frame_indices(1, 4).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("n,t", [(5, 16), (16, 16), (17, 16), (1000, 16), (2, 3)])
def test_indices_are_valid_and_ordered_within_each_pass(n, t):
    idx = uniform_frame_indices(n, t)
    assert idx.shape == (t,) and idx.min() >= 0 and idx.max() < n
    if n >= t:
        assert np.all(np.diff(idx) > 0)


def test_empty_video_and_bad_t_are_refused():
    with pytest.raises(ValueError, match="0 frames"):
        uniform_frame_indices(0, 4)
    with pytest.raises(ValueError, match="positive"):
        uniform_frame_indices(4, 0)
