"""Decoding of videos (files through decord, or folders of extracted frames) into RGB arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")


class VideoReadError(Exception):
    """A video that cannot be read; the message names the file and the problem."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class FrameSource:
    """Random access to the frames of one video, a file or an mmaction2 "rawframes" folder."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.exists():
            raise VideoReadError(self.path, "file not found")
        if self.path.is_dir():
            self._frames = sorted(p for p in self.path.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS)
            self._reader = None
            if not self._frames:
                raise VideoReadError(self.path, "frame folder holds no JPEG/PNG frames")
            self.num_frames = len(self._frames)
            return
        if self.path.stat().st_size == 0:
            raise VideoReadError(self.path, "empty file (0 bytes)")
        import decord

        try:
            self._reader = decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=1)
        except Exception as exc:  # decord raises its own DECORDError and RuntimeError
            raise VideoReadError(self.path, f"not a decodable video ({_first_line(exc)})") from exc
        self.num_frames = len(self._reader)
        if self.num_frames == 0:
            raise VideoReadError(self.path, "video has no frames")

    def read(self, indices: np.ndarray) -> np.ndarray:
        """Return the frames at ``indices`` (repeats allowed) as uint8 [n, H, W, 3] RGB."""
        unique, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
        if unique.size and (unique[0] < 0 or unique[-1] >= self.num_frames):
            raise VideoReadError(self.path, f"frame index out of range 0..{self.num_frames - 1}")
        frames = self._read_unique(unique)
        return frames[inverse]

    def timestamps(self, indices: np.ndarray) -> np.ndarray | None:
        """Start time in seconds of each frame at ``indices`` (None for a frame folder, which
        has no clock)."""
        if self._reader is None:
            return None
        try:
            return np.asarray(self._reader.get_frame_timestamp(np.asarray(indices, dtype=np.int64).tolist()), dtype=np.float64).reshape(-1, 2)[:, 0]
        except Exception as exc:
            raise VideoReadError(self.path, f"no frame timestamps ({_first_line(exc)})") from exc

    def _read_unique(self, indices: np.ndarray) -> np.ndarray:
        if self._reader is None:
            images = [_load_image(self._frames[i]) for i in indices]
            if len({image.shape for image in images}) > 1:
                raise VideoReadError(self.path, "frames of different sizes in one folder")
            return np.stack(images)
        try:
            frames = self._reader.get_batch(indices.tolist()).asnumpy()
        except Exception as exc:
            raise VideoReadError(self.path, f"decoding failed, file truncated or corrupt ({_first_line(exc)})") from exc
        if frames.shape[0] != len(indices) or frames.ndim != 4 or frames.shape[-1] != 3:
            raise VideoReadError(self.path, f"decoder returned frames of shape {frames.shape}")
        return frames


def _load_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise VideoReadError(path, f"unreadable frame image ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
