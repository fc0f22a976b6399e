"""Deterministic synthetic dataset of real H.264 videos with the structure NSNet exploits.

Every video is untrimmed: most of its frames come from a pool of *non-salient* scenes shared by
all classes (textured backgrounds, drifting blobs, stripes), and the class is visible only in one
or two short *salient* segments (5-20% of the frames) in which the class object (a shape in a
colour) moves over the scene. Classes come in confusable pairs (same shape, different colour;
same colour, different shape), and non-salient frames may hold *distractors*: the shape of some
class drawn in a neutral colour, or a shapeless blob in a class colour. The generator's
ground truth (which frames are salient) is written next to the videos for later evaluation.

``difficulty`` in [0, 1] shortens the salient segments (20% -> 5% of the video), shrinks and
dims the class objects, and raises noise and distractor rates.
"""

from __future__ import annotations

import colorsys
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cache import write_text_changed
from pipeline.checked_files import checked_json
from pipeline.config import refuse_outside

SHAPES = ("disc", "square", "triangle", "cross", "ring", "diamond", "bar", "star")
NEUTRAL = (150, 150, 150)
MAX_CLASSES = 36  # hues at least 10 degrees apart
# asm=0: with its assembly, x264 encoded the same frames to different bytes from run to run
# (about 1 video in 8 at 64 px, in one process or several, whatever the thread count), and its
# assembly differs from CPU to CPU; the C code gives the same bytes every time, on any machine.
X264_OPTIONS = {"crf": "20", "preset": "veryfast", "x264-params": "asm=0"}


@dataclass(frozen=True)
class DemoSpec:
    """Everything that determines the generated dataset; equal specs give identical files."""

    num_classes: int = 12
    train_per_class: int = 24
    val_per_class: int = 10
    min_frames: int = 8
    max_frames: int = 96
    size: int = 128
    fps: int = 8
    difficulty: float = 0.25
    seed: int = 0
    scene_pool: int = 8  # non-salient scenes shared by all classes (each in ~50 videos of every class)

    def __post_init__(self) -> None:
        refuse_outside(self, (
            ("num_classes", 2 <= self.num_classes <= MAX_CLASSES, f"in 2..{MAX_CLASSES}"),
            ("train_per_class", self.train_per_class >= 0, "at least 0"),
            ("val_per_class", self.val_per_class >= 0, "at least 0"),
            ("min_frames", self.min_frames >= 1, "at least 1"),
            ("max_frames", self.max_frames >= self.min_frames, f"at least min_frames ({self.min_frames})"),
            ("size", self.size >= 16 and self.size % 16 == 0, "a positive multiple of 16 pixels (H.264's macroblocks)"),
            ("fps", self.fps >= 1, "at least 1"),
            ("difficulty", 0.0 <= self.difficulty <= 1.0, "in [0, 1]"),
            ("seed", self.seed >= 0, "at least 0"),
            ("scene_pool", self.scene_pool >= 3, "at least 3 scenes"),
        ))


def class_table(num_classes: int) -> list[tuple[str, tuple[int, int, int]]]:
    """(shape, RGB colour) of each class: hue ``c / num_classes`` of the wheel, saturated and
    bright; shape ``SHAPES[c mod len(SHAPES)]``."""
    table = []
    for c in range(num_classes):
        rgb = colorsys.hsv_to_rgb(c / num_classes, 0.9, 0.95)
        table.append((SHAPES[c % len(SHAPES)], tuple(int(round(255 * v)) for v in rgb)))
    return table


def class_name(c: int, table: list[tuple[str, tuple[int, int, int]]]) -> str:
    return f"c{c:02d}_{table[c][0]}_hue{round(360 * c / len(table)):03d}"


def _shape_mask(shape: str, size: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = ca * dx + sa * dy, -sa * dx + ca * dy
    if shape == "disc":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return (np.abs(u) <= r * 0.85) & (np.abs(v) <= r * 0.85)
    if shape == "triangle":
        return (v <= r * 0.7) & (v >= -r + 1.7 * np.abs(u))
    if shape == "cross":
        return ((np.abs(u) <= r * 0.3) & (np.abs(v) <= r)) | ((np.abs(v) <= r * 0.3) & (np.abs(u) <= r))
    if shape == "ring":
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= r
    if shape == "bar":
        return (np.abs(u) <= r) & (np.abs(v) <= r * 0.3)
    if shape == "star":
        theta = np.arctan2(v, u)
        return np.hypot(u, v) <= r * (0.55 + 0.45 * np.abs(np.cos(2.5 * theta)))
    raise ValueError(shape)


class _Scene:
    """One non-salient scene of the shared pool: a textured, slowly moving background."""

    def __init__(self, rng: np.random.Generator, size: int, noise: float):
        self.size = size
        self.kind = int(rng.integers(0, 4))
        self.base = rng.uniform(30, 200, size=3)
        self.tint = rng.uniform(-60, 60, size=3)
        self.freq = rng.uniform(1.0, 4.0)
        self.speed = rng.uniform(-1.5, 1.5, size=2)
        self.phase = rng.uniform(0, 2 * np.pi)
        self.blobs = rng.uniform(0, size, size=(3, 2))
        self.texture = rng.normal(0.0, noise, size=(size, size, 1)).astype(np.float32)

    def render(self, t: int) -> np.ndarray:
        s = self.size
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
        if self.kind == 0:  # vertical gradient with a drifting horizon
            w = yy + 0.1 * np.sin(2 * np.pi * (xx * self.freq) + self.phase + 0.2 * t)
        elif self.kind == 1:  # diagonal stripes
            w = 0.5 + 0.5 * np.sin(2 * np.pi * self.freq * (xx + yy) + self.phase + 0.3 * t)
        elif self.kind == 2:  # soft moving blobs
            w = np.zeros_like(xx)
            for bx, by in self.blobs:
                cx = ((bx + self.speed[0] * t * 4) % s) / s
                cy = ((by + self.speed[1] * t * 4) % s) / s
                w += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.02)
            w = np.clip(w, 0, 1)
        else:  # checker-like tiles
            w = 0.5 + 0.25 * np.sign(np.sin(2 * np.pi * self.freq * xx + 0.1 * t) * np.sin(2 * np.pi * self.freq * yy))
        frame = self.base[None, None, :] + self.tint[None, None, :] * w[..., None] + self.texture
        return frame


@lru_cache(maxsize=4)
def scene_pool(spec: DemoSpec) -> tuple[_Scene, ...]:
    """The non-salient scenes every video draws from, whatever its class: a background seen in
    one class's videos is seen in the others', so it tells nothing about the class."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1]))
    noise = 4 + 10 * spec.difficulty
    return tuple(_Scene(rng, spec.size, noise) for _ in range(spec.scene_pool))


@dataclass(frozen=True)
class VideoPlan:
    video_id: str
    label: int
    split: str
    num_frames: int
    salient: tuple[int, ...]  # 1 where the class object is visible


def _plan_videos(spec: DemoSpec) -> list[VideoPlan]:
    rng = np.random.default_rng(spec.seed)
    lo_frac = 0.05 + 0.10 * (1 - spec.difficulty)
    hi_frac = 0.10 + 0.10 * (1 - spec.difficulty)
    plans = []
    for split, per_class in (("train", spec.train_per_class), ("val", spec.val_per_class)):
        for c in range(spec.num_classes):
            for k in range(per_class):
                n = int(rng.integers(spec.min_frames, spec.max_frames + 1))
                n_salient = max(1, int(round(rng.uniform(lo_frac, hi_frac) * n)))
                n_segments = 1 if n_salient < 4 or rng.random() < 0.5 else 2
                mask = np.zeros(n, dtype=np.int8)
                lengths = [n_salient] if n_segments == 1 else [n_salient // 2, n_salient - n_salient // 2]
                for length in lengths:
                    start = int(rng.integers(0, n - length + 1))
                    mask[start : start + length] = 1
                plans.append(VideoPlan(f"{split}_{c:02d}_{k:03d}", c, split, n, tuple(int(v) for v in mask)))
    return plans


def _video_seed(spec: DemoSpec, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([spec.seed, index])


def _pick_scenes(rng: np.random.Generator, pool_size: int) -> list[int]:
    return [int(i) for i in rng.choice(pool_size, size=int(rng.integers(1, 4)), replace=False)]


def video_scenes(spec: DemoSpec, index: int) -> list[int]:
    """Which pooled scenes video ``index`` shows (the first draws of its generator)."""
    return _pick_scenes(np.random.default_rng(_video_seed(spec, index)), spec.scene_pool)


def render_video(spec: DemoSpec, plan: VideoPlan, index: int) -> np.ndarray:
    """Render the frames of one planned video as uint8 [n, size, size, 3]."""
    rng = np.random.default_rng(_video_seed(spec, index))
    pool = scene_pool(spec)
    scenes = [pool[i] for i in _pick_scenes(rng, len(pool))]
    table = class_table(spec.num_classes)
    d = spec.difficulty
    size = spec.size
    start = int(rng.integers(0, 1000))  # where in each scene's motion the video starts
    cuts = np.sort(rng.integers(0, plan.num_frames, size=len(scenes) - 1))
    distractor_rate = 0.10 + 0.30 * d
    shape, colour = table[plan.label]
    radius = size * rng.uniform(0.16, 0.24) * (1 - 0.3 * d)
    alpha = 1.0 - 0.35 * d * rng.random()
    pos = rng.uniform(0.35, 0.65, size=2) * size
    vel = rng.uniform(-2.0, 2.0, size=2)
    angle0, spin = rng.uniform(0, np.pi), rng.uniform(-0.2, 0.2)
    frames = np.empty((plan.num_frames, size, size, 3), dtype=np.uint8)
    for t in range(plan.num_frames):
        scene = scenes[int(np.searchsorted(cuts, t, side="right"))]
        frame = scene.render(start + t)
        if plan.salient[t]:
            p = np.clip(pos + vel * t, 0.3 * size, 0.7 * size)
            mask = _shape_mask(shape, size, p[0], p[1], radius, angle0 + spin * t)
            frame[mask] = (1 - alpha) * frame[mask] + alpha * np.asarray(colour, dtype=np.float32)
        elif rng.random() < distractor_rate:
            other = int(rng.integers(0, spec.num_classes))
            o_shape, o_colour = table[other]
            p = rng.uniform(0.3, 0.7, size=2) * size
            r = radius * rng.uniform(0.7, 1.0)
            if rng.random() < 0.5:  # a class shape in a neutral colour
                mask = _shape_mask(o_shape, size, p[0], p[1], r, rng.uniform(0, np.pi))
                frame[mask] = 0.4 * frame[mask] + 0.6 * np.asarray(NEUTRAL, dtype=np.float32)
            else:  # a shapeless blob in a class colour
                mask = _shape_mask("disc", size, p[0], p[1], r * 0.6, 0.0)
                frame[mask] = 0.5 * frame[mask] + 0.5 * np.asarray(o_colour, dtype=np.float32)
        frame += rng.normal(0.0, 1.0 + 2.0 * d, size=frame.shape)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def encode_h264(frames: np.ndarray, path: Path, fps: int) -> None:
    """Write uint8 RGB frames to an H.264 mp4 with PyAV (atomically: temp file, then rename)."""
    import av

    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = dict(X264_OPTIONS)
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)


def _held(folder: Path, shown: int = 3) -> list[str]:
    """The first ``shown`` names in ``folder`` that are files or folders holding anything
    (hidden names aside): what a folder not yet a demo holds; [] for one absent or empty."""
    if not folder.is_dir():
        return []
    held = sorted(entry.name for entry in folder.iterdir() if not entry.name.startswith(".") and (not entry.is_dir() or any(entry.iterdir())))
    return held[:shown]


def _make_one(args: tuple[DemoSpec, VideoPlan, int, str]) -> None:
    spec, plan, index, out = args
    path = Path(out) / "videos" / f"{plan.video_id}.mp4"
    if not path.exists():
        encode_h264(render_video(spec, plan, index), path, spec.fps)


def generate_demo(out_dir: Path, spec: DemoSpec = DemoSpec(), workers: int | None = None, progress: bool = True) -> Path:
    """Generate (or complete) the demo dataset under ``out_dir``; return the manifest path.

    Writes ``videos/*.mp4``, ``manifest.csv`` (generic CSV manifest: path,label,split),
    ``classes.txt``, ``groundtruth.json`` (per-frame salient masks) and ``spec.json``. A folder
    made with another spec is refused rather than mixed, and so is a folder holding anything but
    a demo (a real dataset's root given to ``nsnet data`` with ``--dataset`` left at the demo,
    which filled it with 408 generated videos and a ``manifest.csv`` before 2026-12-07, the
    fifty-fourth session). Re-running with the same spec only writes what is missing.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    spec_file = out_dir / "spec.json"
    recorded = {**asdict(spec), "x264": X264_OPTIONS}
    if spec_file.exists():
        existing = checked_json(spec_file, f"remove {out_dir} and run `nsnet data` again (a spec makes the same videos every time)")
        if existing != recorded:
            raise ValueError(f"{out_dir} holds a demo dataset made with another spec or encoder settings ({existing}); remove it or pick another folder")
    elif held := _held(out_dir):
        from pipeline.datasets.adapters import datasets_in_root

        others = datasets_in_root(out_dir)
        guess = f" (the {others[0]} dataset's annotation files: --dataset {others[0]}?)" if others else ""
        raise ValueError(f"{out_dir} holds {', '.join(held)}{guess}: the demo dataset is generated only into an empty folder or its own, never among other files; pick another --data-root")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_changed(spec_file, json.dumps(recorded, indent=1))
    plans = _plan_videos(spec)
    jobs = [(spec, plan, i, str(out_dir)) for i, plan in enumerate(plans) if not (out_dir / "videos" / f"{plan.video_id}.mp4").exists()]
    if jobs:  # a finished demo starts no process
        (out_dir / "videos").mkdir(exist_ok=True)
        workers = workers or min(len(os.sched_getaffinity(0)), 8)
        # encoded in fresh processes: a fork of a process that had decoded videos of many formats (a
        # test session's worker) hung in its child, on the dependency floors, before the first video
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for _ in tqdm(pool.map(_make_one, jobs, chunksize=8), total=len(jobs), desc="demo videos", unit="video", disable=not progress):
                pass
    table = class_table(spec.num_classes)
    names = [class_name(c, table) for c in range(spec.num_classes)]
    write_text_changed(out_dir / "classes.txt", "\n".join(names) + "\n")
    lines = ["path,label,split"] + [f"videos/{p.video_id}.mp4,{names[p.label]},{p.split}" for p in plans]
    write_text_changed(out_dir / "manifest.csv", "\n".join(lines) + "\n")
    truth = {p.video_id: {"num_frames": p.num_frames, "salient": list(p.salient)} for p in plans}
    write_text_changed(out_dir / "groundtruth.json", json.dumps(truth))
    return out_dir / "manifest.csv"


# What a damaged record of the salient frames costs (checked_files.run_record).
NO_SALIENCY_AP = "the saliency AP against it is left out of the report; make it again with the command that wrote it (`nsnet data`, `nsnet synth-cache`)"


def salient_targets(truth: dict[str, Any], videos: list[dict[str, Any]], rows: np.ndarray, frame_indices: np.ndarray, num_frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The generator's salient frames (``truth``, its ``groundtruth.json``) at the cached
    ``frame_indices`` [N, T] of the manifest ``videos`` at ``rows``: (the rows it describes,
    their 0/1 targets [n, T]). It describes a video where it holds the file's stem with the
    frame count the cache recorded (``num_frames`` [N]); the others — not generated, or a file
    replaced since by another video — are left out."""
    kept, targets = [], []
    for row in rows:
        entry = truth.get(Path(videos[row]["path"]).stem)
        if entry is not None and len(entry["salient"]) == num_frames[row]:
            kept.append(row)
            targets.append(np.asarray(entry["salient"])[frame_indices[row]])
    return np.asarray(kept, dtype=np.int64), np.stack(targets) if targets else np.zeros((0, frame_indices.shape[1]), dtype=np.int64)
