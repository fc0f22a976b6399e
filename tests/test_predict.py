"""``nsnet predict``: the same answers as ``nsnet evaluate`` on the evaluation videos, bad
videos reported while the rest go on, refusal of runs that do not fit, and the video search."""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import flip_byte, numbered_frames, refuse_looks
from pipeline.cache import CacheError, FeatureCache, file_lock, output_lock_path
from pipeline.config import EvalConfig, TrainConfig
from stages.cli import main
from stages.evaluate import run_evaluate
from stages.features import cached_model
from stages.predict import features_of_run, find_videos, listed_videos, load_pipeline, run_predict
from stages.train import run_train

CFG = TrainConfig(epochs=2, batch_size=4, lr=0.001, milestones=(1,), seed=1)
REPO = Path(__file__).resolve().parents[1]
EVAL = EvalConfig(k=2, curve_k=(1, 2), all_frames=False)


@pytest.fixture
def trained(tiny_pipeline):
    features, prototypes, truth = tiny_pipeline
    return features, prototypes, Path(run_train(features, prototypes, CFG, progress=False).path), truth.parent


def _val_videos(features: Path) -> list[dict]:
    with FeatureCache(features) as cache:
        return [v for v in cache.attrs["manifest"]["videos"] if v["split"] != "train"]


def test_predict_gives_the_predictions_of_evaluate(trained, tmp_path, onnx_exports):
    """Predict chooses evaluate's frames and gives its top-5, in one process and in ``--shard``
    jobs, which take every n-th video of the list from the i-th into ``--out``'s
    ``share-i-of-n/`` (its own lines, configuration and lock: jobs and torchrun ranks write side
    by side)."""
    features, prototypes, run, root = trained
    report = run_evaluate(features, prototypes, run, root, EVAL, workers=0, progress=False)
    expected = {Path(e["video"]).name: e for e in map(json.loads, (Path(report["output"]) / "predictions.jsonl").read_text().splitlines())}
    videos = [root / v["path"] for v in _val_videos(features)]
    assert len(videos) == len(expected) == 3

    def as_evaluate_chose(lines: list[dict]) -> None:
        for p in lines:
            e = expected[Path(p["video"]).name]
            assert p["frames"] == e["frames"] and p["positions"] == e["positions"]
            assert [c["class"] for c in p["top5"]] == [c["class"] for c in e["top5"]]
            np.testing.assert_allclose([c["score"] for c in p["top5"]], [c["score"] for c in e["top5"]], rtol=1e-5, atol=1e-6)
            assert len(p["timestamps"]) == EVAL.k and all(t >= 0 for t in p["timestamps"])

    # batches of 2 videos: a batch of two and one of one
    result = run_predict(videos, run, tmp_path / "out", EVAL, batch_size=2, workers=1, plot=True, progress=False, export_dir=onnx_exports)
    assert not result.failures
    got = [json.loads(line) for line in result.jsonl.read_text().splitlines()]
    assert sorted(Path(p["video"]).name for p in got) == sorted(expected)
    as_evaluate_chose(got)
    assert sorted(path.name for path in result.plots) == sorted(Path(v).stem + ".png" for v in videos) == sorted(p["plot"] for p in got)
    assert all(path.stat().st_size > 1000 for path in result.plots)
    assert "top-1 (score)" in result.table()
    args = ["predict", *map(str, videos), "--run", str(run), "--out", str(tmp_path / "shares"), "--k", str(EVAL.k), "--workers", "0", "--device", "cpu", "--onnx-dir", str(onnx_exports), "--no-progress"]
    job = CliRunner().invoke(main, [*args, "--shard", "1/2"])  # a --shard job, in this process
    assert job.exit_code == 0 and job.output.startswith("NSNet on 1 video(s) (share 1/2 of those given): "), job.output
    share = tmp_path / "shares" / "share-1-of-2"
    assert sorted(p.name for p in share.iterdir()) == [".predictions.jsonl.lock", "predictions.config.json", "predictions.jsonl"]
    lines = [json.loads(line) for line in (share / "predictions.jsonl").read_text().splitlines()]
    assert [line["video"] for line in lines] == [str(videos[1])]
    as_evaluate_chose(lines)
    # two torchrun ranks, the list partly on the standard input (which torchrun gives to one rank:
    # rank 0 reads it for both), a missing file in rank 1's share: both tables, the job's count, then exit status 1
    ranks = ["predict", str(videos[0]), "--videos-from", "-", "--sampler-run", str(run), "--out", str(tmp_path / "ranks"), *args[args.index("--k") :]]
    listed = "".join(f"{path}\n" for path in (*videos[1:], tmp_path / "gone.mp4"))
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "stages.cli", *ranks], input=listed, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1 and "NSNet on 2 video(s) (share 0/2 of those given)" in proc.stdout and "NSNet on 2 video(s) (share 1/2 of those given)" in proc.stdout, proc.stdout + proc.stderr
    assert (proc.stdout + proc.stderr).count("video(s) could not be read") == 1 and "1 of 4 video(s) could not be read" in proc.stderr  # the job's count, once
    first, second = (proc.stdout.index(f"NSNet on 2 video(s) (share {rank}/2 of those given)") for rank in (0, 1))
    assert first < proc.stdout.index(f"written {tmp_path / 'ranks' / 'share-0-of-2' / 'predictions.jsonl'}") < second  # the tables in rank order, each whole
    for rank, names in ((0, [videos[0], videos[2]]), (1, [videos[1], tmp_path / "gone.mp4"])):
        lines = [json.loads(line) for line in (tmp_path / "ranks" / f"share-{rank}-of-2" / "predictions.jsonl").read_text().splitlines()]
        assert [line["video"] for line in lines] == list(map(str, names))
        as_evaluate_chose([line for line in lines if "error" not in line])
    assert lines[1]["error"].endswith("gone.mp4: file not found")


def test_predict_frames_from_python_gives_the_commands_answer(trained, tmp_path, onnx_exports, monkeypatch):
    """The library's way in for frames the caller decoded: ``load_pipeline(run).predict_frames``
    on a video's T uniformly pre-sampled frames, and ``predict_batch`` on several videos' in one
    batch of the models or ``batch_size`` at a time, choose the positions and give the scores
    that ``run_predict`` gives for their files; frames of another count, type or layout are
    refused, naming them and what is wanted, before any video is run."""
    import pipeline.inference
    from pipeline.sampling import uniform_frame_indices
    from pipeline.video import FrameSource

    features, _, run, root = trained
    videos = [root / v["path"] for v in _val_videos(features)]
    result = run_predict(videos, run, tmp_path / "out", EVAL, batch_size=2, workers=0, progress=False, export_dir=onnx_exports)
    lines = {line["video"]: line for line in map(json.loads, result.jsonl.read_text().splitlines())}
    nsnet = load_pipeline(run, EVAL, torch.device("cpu"), export_dir=onnx_exports)
    decoded = []
    for video in videos:
        source = FrameSource(video)
        indices = uniform_frame_indices(source.num_frames, nsnet.num_frames)
        frames = source.read(indices)
        decoded.append((indices, frames))
        prediction = nsnet.predict_frames(frames, name=video.name)
        line = lines[str(video)]
        assert prediction.ok and prediction.path == video.name
        assert prediction.positions.tolist() == line["positions"] and indices[prediction.frame_indices].tolist() == line["frames"]
        assert [name for name, _ in prediction.top(nsnet.classes)] == [c["class"] for c in line["top5"]]
        np.testing.assert_allclose([score for _, score in prediction.top(nsnet.classes)], [c["score"] for c in line["top5"]], rtol=1e-5, atol=1e-6)
    batch = nsnet.predict_batch([frames for _, frames in decoded])  # the three in one batch of the models
    assert [p.path for p in batch] == ["frames 0", "frames 1", "frames 2"]
    for prediction, video, (indices, _) in zip(batch, videos, decoded):
        line = lines[str(video)]
        assert prediction.positions.tolist() == line["positions"] and indices[prediction.frame_indices].tolist() == line["frames"]
        np.testing.assert_allclose([score for _, score in prediction.top(nsnet.classes)], [c["score"] for c in line["top5"]], rtol=1e-5, atol=1e-6)
    batches, run = [], pipeline.inference._predicted
    monkeypatch.setattr(pipeline.inference, "_predicted", lambda batch, engine: batches.append([o.path.name for o in batch]) or run(batch, engine))
    in_twos = nsnet.predict_batch([frames for _, frames in decoded], ["a", "b", "c"], batch_size=2)
    assert batches == [["a", "b"], ["c"]] and [p.path for p in in_twos] == ["a", "b", "c"]
    for prediction, whole in zip(in_twos, batch):
        assert prediction.positions.tolist() == whole.positions.tolist()
        np.testing.assert_allclose(prediction.scores, whole.scores, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"^c: NSNet takes the 6 observation frames"):
        nsnet.predict_batch([frames, frames, frames[:-1]], ["a", "b", "c"], batch_size=2)
    assert batches == [["a", "b"], ["c"]]  # refused before the first two were run
    with pytest.raises(ValueError, match=r"^1 names for 2 videos$"):
        nsnet.predict_batch([frames, frames], ["one"])
    with pytest.raises(ValueError, match=r"^batch_size 0: at least 1 video a batch$"):
        nsnet.predict_batch([frames, frames], batch_size=0)
    wanted = r"clip: NSNet takes the 6 observation frames of a video as uint8 RGB \[6, H, W, 3\], got "
    with pytest.raises(ValueError, match=wanted + r"uint8 \[5, 32, 32, 3\]$"):
        nsnet.predict_frames(frames[:-1], name="clip")
    with pytest.raises(ValueError, match=wanted + r"float32 \[6, 32, 32, 3\]$"):
        nsnet.predict_frames(frames.astype(np.float32) / 255, name="clip")
    with pytest.raises(ValueError, match=wanted + r"uint8 \[6, 3, 32, 32\]$"):
        nsnet.predict_frames(frames.transpose(0, 3, 1, 2), name="clip")


def test_predict_decodes_each_video_once(trained, tmp_path, onnx_exports, monkeypatch):
    """The T observed frames are decoded once and cropped for both models; the recognizer's K
    frames are rows of those crops, not a second decode of the file (seeking to them cost about
    as much again as the first decode)."""
    from pipeline.video import FrameSource

    features, _, run, root = trained
    videos = [root / v["path"] for v in _val_videos(features)]
    reads: list[tuple[str, int]] = []
    read = FrameSource.read
    monkeypatch.setattr(FrameSource, "read", lambda self, indices: reads.append((self.path.name, len(indices))) or read(self, indices))
    plotted: list[tuple[int, ...]] = []
    monkeypatch.setattr("stages.predict.plot_video_saliency", lambda prediction, *args: plotted.append(prediction.thumbnails.shape) or True)  # drawn
    result = run_predict(videos, run, tmp_path / "out", EVAL, batch_size=2, workers=0, plot=True, progress=False, export_dir=onnx_exports)
    assert not result.failures
    assert sorted(reads) == sorted((v.name, 6) for v in videos)  # T=6 frames of each, once
    assert plotted == [(EVAL.k, 32, 32, 3)] * 3  # the chosen frames' rows of the thumbnails (32² videos: not shrunk)


def test_an_interrupted_predict_goes_on_where_it_stopped(trained, tmp_path, onnx_exports, monkeypatch):
    """Killed while writing its second line: the same command again cuts the partial line,
    keeps the first, predicts the other two alone, and the file is a one-go run's. Complete, a
    re-run predicts nothing and shows the file's rows; fewer videos drop the others' lines and
    predict nothing, the videos back predict the one dropped alone; another K writes the file
    anew, the earlier one set aside (emptied before the fifty-seventh session), and K back takes
    its lines again."""
    from pipeline.video import FrameSource
    from stages.predict import config_path

    features, _, run, root = trained
    videos = [root / v["path"] for v in _val_videos(features)]
    one_go = run_predict(videos, run, tmp_path / "one", EVAL, batch_size=2, workers=0, progress=False, export_dir=onnx_exports)
    full = one_go.jsonl.read_text().splitlines()
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(config_path(one_go.jsonl), config_path(out / "predictions.jsonl"))
    (out / "predictions.jsonl").write_text(full[0] + "\n" + full[1][:25])
    reads: list[str] = []
    read = FrameSource.read
    monkeypatch.setattr(FrameSource, "read", lambda self, indices: reads.append(self.path.name) or read(self, indices))

    def predicted(videos: list[Path], cfg: EvalConfig = EVAL):
        reads.clear()
        result = run_predict(videos, run, out, cfg, batch_size=2, workers=0, progress=False, export_dir=onnx_exports)
        return result, [json.loads(line) for line in result.jsonl.read_text().splitlines()], list(reads)

    resumed, lines, decoded = predicted(videos)
    assert decoded == [videos[1].name, videos[2].name] and (resumed.earlier, resumed.videos, resumed.total) == (1, 2, 3)
    assert json.dumps(lines[0]) == full[0]  # kept as it was
    for got, want in zip(lines, map(json.loads, full)):  # the batches differ ([v1, v2] against [v0, v1], [v2]): scores to float rounding
        assert (got["video"], got["frames"], [c["class"] for c in got["top5"]]) == (want["video"], want["frames"], [c["class"] for c in want["top5"]])
        np.testing.assert_allclose([c["score"] for c in got["top5"]], [c["score"] for c in want["top5"]], rtol=1e-5, atol=1e-6)
    assert "1 of them predicted by an earlier run with this configuration, their files unchanged since" in resumed.table()
    written = resumed.jsonl.read_text()
    again, _, decoded = predicted(videos)
    assert decoded == [] and again.jsonl.read_text() == written and (again.earlier, again.videos, again.gone) == (3, 0, 0)
    assert all(v.name in again.table() for v in videos) and again.table().splitlines()[0].startswith("NSNet on 3 video(s)")
    fewer, _, decoded = predicted(videos[1:])
    assert decoded == [] and fewer.jsonl.read_text() == "".join(line + "\n" for line in written.splitlines()[1:])
    assert (fewer.earlier, fewer.videos, fewer.gone) == (2, 0, 1) and "1 earlier line(s) dropped: their videos are no longer among the inputs" in fewer.table()
    back, _, decoded = predicted(videos)
    assert decoded == [videos[0].name] and back.jsonl.read_text().splitlines() == [*written.splitlines()[1:], written.splitlines()[0]]
    with pytest.warns(RuntimeWarning, match=re.escape(f"{out / 'predictions.jsonl'}: its 3 predictions, of other settings (the run, --k, --fusion, --alpha, the backend or --plot), set aside in {out / 'earlier'}/")):
        other_k, lines, decoded = predicted(videos, replace(EVAL, k=1))
    assert sorted(decoded) == sorted(v.name for v in videos) and [len(line["frames"]) for line in lines] == [1, 1, 1] and other_k.earlier == 0
    aside, moved = other_k.set_aside
    assert moved == 3 and (aside / "predictions.jsonl").read_text().splitlines() == [*written.splitlines()[1:], written.splitlines()[0]]  # the file as `back` left it
    assert f"3 earlier prediction(s) of other settings set aside in {aside}, with their plots" in other_k.table()
    with pytest.warns(RuntimeWarning, match="its 3 predictions, of other settings"):  # K back: the K=1 lines set aside in turn, the first taken back
        k_back, lines, decoded = predicted(videos)
    assert decoded == [] and k_back.adopted == {str(aside): 3} and [len(line["frames"]) for line in lines] == [2, 2, 2]
    # K=1 on one video, taken back from its set-aside file; K=2 again sets it aside once more:
    # joined to the three lines there, where it replaced them
    (k1_aside,) = [folder for folder in (out / "earlier").iterdir() if folder != aside]
    k1_lines = (k1_aside / "predictions.jsonl").read_text().splitlines()
    with pytest.warns(RuntimeWarning, match="its 3 predictions, of other settings"):
        one, lines, decoded = predicted(videos[2:], replace(EVAL, k=1))
    assert decoded == [] and one.adopted == {str(k1_aside): 1} and len(lines) == 1
    with pytest.warns(RuntimeWarning, match="its 1 predictions, of other settings"):
        predicted(videos)
    assert sorted((k1_aside / "predictions.jsonl").read_text().splitlines()) == sorted(k1_lines)


def test_a_damaged_predictions_line_is_dropped_and_its_video_alone_predicted_again(trained, tmp_path, onnx_exports, monkeypatch):
    """A changed byte in a line of the predictions file (not JSON), or in its ``video`` key:
    those two lines are dropped with a warning naming them and their videos alone predicted again,
    the line kept as it was (the whole file was emptied and every video predicted again before).
    The run's identity file damaged or missing beside lines is an error naming both files, the
    lines kept; beside an empty file it is written anew."""
    from pipeline.video import FrameSource
    from stages.predict import config_path

    features, _, run, root = trained
    videos = [root / v["path"] for v in _val_videos(features)][:3]
    out = tmp_path / "out"
    first = run_predict(videos, run, out, EVAL, batch_size=2, workers=0, progress=False, export_dir=onnx_exports)
    lines = first.jsonl.read_bytes().splitlines(keepends=True)
    first.jsonl.write_bytes(lines[0] + lines[1] + lines[2].replace(b'"video"', b'"vidfo"'))  # line 3's key
    flip_byte(first.jsonl, len(lines[0]))  # line 2's opening brace
    reads: list[str] = []
    read = FrameSource.read
    monkeypatch.setattr(FrameSource, "read", lambda self, indices: reads.append(self.path.name) or read(self, indices))
    with pytest.warns(RuntimeWarning, match=rf"{first.jsonl}: lines 2, 3 damaged \(not a prediction's JSON: a disk error, or an edit\): dropped, their videos predicted again"):
        mended = run_predict(videos, run, out, EVAL, batch_size=2, workers=0, progress=False, export_dir=onnx_exports)
    assert reads == [videos[1].name, videos[2].name] and (mended.earlier, mended.videos, mended.again) == (1, 2, 0)
    got = mended.jsonl.read_bytes().splitlines(keepends=True)
    assert got[0] == lines[0] and [json.loads(line)["video"] for line in got] == [str(v) for v in videos]
    kept = mended.jsonl.read_bytes()
    flip_byte(config_path(mended.jsonl), 0)
    with pytest.raises(CacheError, match=rf"{config_path(mended.jsonl)}: damaged, not JSON .*; the {len(kept):,} bytes of predictions in {mended.jsonl} are of a run it no longer names: restore it, or remove both files to predict every video again"):
        run_predict(videos, run, out, EVAL, workers=0, progress=False, export_dir=onnx_exports)
    config_path(mended.jsonl).unlink()
    with pytest.raises(CacheError, match=rf"{config_path(mended.jsonl)}: missing; the {len(kept):,} bytes"):
        run_predict(videos, run, out, EVAL, workers=0, progress=False, export_dir=onnx_exports)
    assert mended.jsonl.read_bytes() == kept
    mended.jsonl.write_bytes(b"")  # a run killed between emptying its file and writing its identity
    reads.clear()
    anew = run_predict(videos[:1], run, out, EVAL, workers=0, progress=False, export_dir=onnx_exports)
    assert reads == [videos[0].name] and anew.videos == 1 and config_path(anew.jsonl).is_file()


def test_a_predict_divided_otherwise_takes_the_lines_another_division_wrote(trained, tmp_path, onnx_exports, monkeypatch):
    """Shares of 2 after a whole run into the same folder (a job array launched again on more
    nodes, or over a finished run): each takes its videos' lines from the whole's file, their
    plots copied beside it, and decodes nothing (each share predicted every video again before);
    a whole run then takes the shares' lines. A video whose file changed, and a file of another
    configuration, are not taken from."""
    from pipeline.video import FrameSource
    from stages.predict import config_path

    features, _, run, root = trained
    videos = [root / v["path"] for v in _val_videos(features)][:3]
    out = tmp_path / "out"
    whole = run_predict(videos[:2], run, out, EVAL, workers=0, progress=False, export_dir=onnx_exports, plot=True)
    written = [json.loads(line) for line in whole.jsonl.read_text().splitlines()]
    reads: list[str] = []
    read = FrameSource.read
    monkeypatch.setattr(FrameSource, "read", lambda self, indices: reads.append(self.path.name) or read(self, indices))
    shares = [run_predict(videos, run, out, EVAL, workers=0, progress=False, export_dir=onnx_exports, plot=True, share=(i, 2)) for i in range(2)]
    assert reads == [videos[2].name]  # the one video the whole run had not predicted
    lines = [[json.loads(line) for line in share.jsonl.read_text().splitlines()] for share in shares]
    assert [[line["video"] for line in share] for share in lines] == [[str(videos[0]), str(videos[2])], [str(videos[1])]]
    assert lines[0][0] == written[0] and lines[1][0] == written[1]
    for share, line in ((shares[0], lines[0][0]), (shares[1], lines[1][0])):
        assert os.path.samefile(share.jsonl.parent / line["plot"], out / line["plot"])  # linked, not copied
    assert (shares[0].earlier, shares[0].videos, shares[0].adopted) == (1, 1, {str(out): 1})
    assert f"1 of them taken from the predictions of another division of the videos or set aside, with this configuration (1 from {out}): not predicted again; cat {out}/share-*-of-2/predictions.jsonl is the whole once every share is through" in shares[0].table()
    again = run_predict(videos, run, out, EVAL, workers=0, progress=False, export_dir=onnx_exports, plot=True, share=(0, 2))
    assert (again.earlier, again.videos, again.adopted) == (2, 0, {})  # its own lines now
    reads.clear()
    taken = run_predict(videos, run, out, EVAL, workers=0, progress=False, export_dir=onnx_exports, plot=True)
    assert reads == [] and taken.adopted == {str(shares[0].jsonl.parent): 1} and [json.loads(line)["video"] for line in taken.jsonl.read_text().splitlines()] == [str(v) for v in videos]
    taken.jsonl.unlink()
    os.utime(videos[0], ns=(1, 1))  # changed since
    config_path(shares[1].jsonl).write_text("{}")  # another configuration
    reads.clear()
    thirds = [run_predict(videos, run, out, EVAL, workers=0, progress=False, export_dir=onnx_exports, plot=True, share=(i, 3)) for i in range(3)]
    assert reads == [videos[0].name, videos[1].name] and [share.adopted for share in thirds] == [{}, {}, {str(shares[0].jsonl.parent): 1}]


def test_a_resumed_predict_retries_its_failed_videos_when_asked(trained, tmp_path, onnx_exports, monkeypatch):
    """A video that failed on a file unchanged since keeps its failed line on a re-run (nothing
    decoded); with ``--retry-failed`` it is predicted again. A video missing in the first run and
    there now is predicted on the re-run without asking: its file changed."""
    from pipeline.video import FrameSource

    features, _, run, root = trained
    good = root / _val_videos(features)[0]["path"]
    late, broken = tmp_path / "late.mp4", tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    first = run_predict([good, broken, late], run, tmp_path / "out", EVAL, workers=0, progress=False, export_dir=onnx_exports)
    assert [p.path for p in first.failures] == [str(broken), str(late)]
    shutil.copy(good, late)
    reads: list[str] = []
    read = FrameSource.read
    monkeypatch.setattr(FrameSource, "read", lambda self, indices: reads.append(self.path.name) or read(self, indices))
    kept = run_predict([good, broken, late], run, tmp_path / "out", EVAL, workers=0, progress=False, export_dir=onnx_exports)
    lines = [json.loads(line) for line in kept.jsonl.read_text().splitlines()]
    assert reads == ["late.mp4"] and [p.path for p in kept.failures] == [str(broken)] and (kept.earlier, kept.again, kept.videos) == (2, 1, 1)
    assert [line["video"] for line in lines] == [str(good), str(broken), str(late)] and lines[0]["frames"] == lines[2]["frames"]  # the same video's bytes
    assert lines[2]["file"] == {"size": good.stat().st_size, "mtime_ns": late.stat().st_mtime_ns}
    assert "1 predicted again: their files changed since an earlier run" in kept.table()
    reads.clear()
    retried = run_predict([good, broken, late], run, tmp_path / "out", EVAL, workers=0, progress=False, export_dir=onnx_exports, retry_failed=True)
    lines = [json.loads(line) for line in retried.jsonl.read_text().splitlines()]
    assert reads == [] and (retried.earlier, retried.again, retried.videos) == (2, 1, 1)  # broken.mp4 tried again: it fails before any frame is read
    assert [line["video"] for line in lines] == [str(good), str(late), str(broken)] and "error" in lines[2]


def test_a_video_changed_since_is_predicted_again_and_its_plot_replaced(trained, tmp_path, onnx_exports):
    """Another video's bytes copied over one of three (a re-download under the same name) and the
    file's last line half written (a kill): a re-run keeps the two unchanged lines, drops the
    changed one's line and plot and the half line, and predicts the changed video again, now as
    the video it holds."""
    features, _, run, root = trained
    videos = []
    for v in _val_videos(features):
        videos.append(shutil.copy(root / v["path"], tmp_path / Path(v["path"]).name))
    first = run_predict(videos, run, tmp_path / "out", EVAL, workers=0, plot=True, progress=False, export_dir=onnx_exports)
    before = [json.loads(line) for line in first.jsonl.read_text().splitlines()]
    plot = tmp_path / "out" / before[0]["plot"]
    os.utime(plot, ns=(0, 0))
    shutil.copy(videos[2], videos[0])
    with open(first.jsonl, "a") as handle:
        handle.write(first.jsonl.read_text().splitlines()[1][:30])
    second = run_predict(videos, run, tmp_path / "out", EVAL, workers=0, plot=True, progress=False, export_dir=onnx_exports)
    after = [json.loads(line) for line in second.jsonl.read_text().splitlines()]
    assert (second.earlier, second.again, second.videos, second.gone) == (2, 1, 1, 0)
    assert after[:2] == before[1:] and after[2]["video"] == str(videos[0])
    assert (after[2]["frames"], after[2]["top5"]) == (before[2]["frames"], before[2]["top5"])  # now videos[2]'s bytes
    assert after[2]["file"] != before[0]["file"] and after[2]["plot"] == before[0]["plot"] and plot.stat().st_mtime_ns > 0  # drawn anew


def test_a_video_decord_misread_before_the_rules_is_predicted_again_once(trained, tmp_path, onnx_exports, video_writer, monkeypatch):
    """Lines written before the decoder rules (no ``decoder_rules``), one of them a transport
    stream's whose frames decord gave 7 late: the next run looks into their files once,
    predicts the stream again (as a fresh run predicts it), keeps the three others' lines with
    the rules they were looked at under, and a later run looks into nothing."""
    from pipeline.decoders import DECODER_RULES

    features, _, run, root = trained
    videos = [shutil.copy(root / v["path"], tmp_path / Path(v["path"]).name) for v in _val_videos(features)]
    videos.append(str(video_writer(tmp_path / "stream.ts", numbered_frames(64, 32, 32), 25, "mpegts", "libx264", {"g": "8"})))
    with monkeypatch.context() as before:
        before.setattr("pipeline.decoders.decord_misreads", lambda path: None)  # the rules before 2026-12-06 (night)
        first = run_predict(videos, run, tmp_path / "out", EVAL, workers=0, progress=False, export_dir=onnx_exports)
    old = [{k: v for k, v in json.loads(line).items() if k != "decoder_rules"} for line in first.jsonl.read_text().splitlines()]
    first.jsonl.write_text("".join(json.dumps(line) + "\n" for line in old))  # as a run before the rules wrote them
    fresh = [json.loads(line) for line in run_predict(videos, run, tmp_path / "fresh", EVAL, workers=0, progress=False, export_dir=onnx_exports).jsonl.read_text().splitlines()]
    assert old[3]["top5"] != fresh[3]["top5"]  # decord's frames were other frames

    second = run_predict(videos, run, tmp_path / "out", EVAL, workers=0, progress=False, export_dir=onnx_exports)
    assert (second.misread, second.again, second.gone, second.earlier, second.videos) == (1, 0, 0, 3, 1)
    assert "1 predicted again: decord read them, as it did every file it opened before 2026-12-06 (night), and misread them; PyAV reads them now" in second.table()
    after = [json.loads(line) for line in second.jsonl.read_text().splitlines()]
    assert after[:3] == [{**line, "decoder_rules": -DECODER_RULES} for line in old[:3]]
    assert after[3]["video"] == videos[3] and after[3]["decoder_rules"] == DECODER_RULES and after[3]["frames"] == fresh[3]["frames"]
    assert [c["class"] for c in after[3]["top5"]] == [c["class"] for c in fresh[3]["top5"]]
    np.testing.assert_allclose([c["score"] for c in after[3]["top5"]], [c["score"] for c in fresh[3]["top5"]], atol=1e-4)

    refuse_looks(monkeypatch, "stages.predict")
    third = run_predict(videos, run, tmp_path / "out", EVAL, workers=0, progress=False, export_dir=onnx_exports)
    assert (third.earlier, third.videos, third.misread) == (4, 0, 0) and third.jsonl.read_text() == second.jsonl.read_text()


def test_a_file_set_aside_joins_the_earlier_one_of_its_settings_and_keeps_every_plot(tmp_path):
    """Set aside where a file of the same settings lies: the earlier lines of videos the new file
    has none of are kept, its own replace theirs, and a plot named as one kept there (another
    video of the same stem) takes the next free name, its line amended."""
    from stages.predict import config_path, set_aside

    out = tmp_path / "out"
    out.mkdir()
    jsonl = out / "predictions.jsonl"

    def write(lines: list[dict], plots: dict[str, bytes]) -> None:
        jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines))
        config_path(jsonl).write_text(json.dumps({"k": 5}))
        for name, data in plots.items():
            (out / name).write_bytes(data)

    write([{"video": "/a/v.mp4", "plot": "v.png"}, {"video": "/a/w.mp4"}], {"v.png": b"a's"})
    folder, moved = set_aside(jsonl)
    assert moved == 2 and (folder / "v.png").read_bytes() == b"a's" and not (out / "v.png").exists()
    write([{"video": "/b/v.mp4", "plot": "v.png"}, {"video": "/a/w.mp4", "error": "again"}], {"v.png": b"b's"})
    assert set_aside(jsonl) == (folder, 2)
    lines = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert lines == [{"video": "/a/v.mp4", "plot": "v.png"}, {"video": "/b/v.mp4", "plot": "v-2.png"}, {"video": "/a/w.mp4", "error": "again"}]
    assert (folder / "v.png").read_bytes() == b"a's" and (folder / "v-2.png").read_bytes() == b"b's"
    assert json.loads(config_path(folder / "predictions.jsonl").read_text()) == {"k": 5}


def test_a_file_stamp_changes_with_its_file_or_folder_of_frames(tmp_path):
    """A file's stamp is its size and modification time; a folder of frames' changes when a frame
    is added; nothing at the path has none."""
    from stages.predict import file_stamp

    video = tmp_path / "v.mp4"
    video.write_bytes(b"12345")
    os.utime(video, ns=(7, 1_000_000_123))
    assert file_stamp(video) == {"size": 5, "mtime_ns": 1_000_000_123}
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "img_00001.jpg").write_bytes(b"x")
    os.utime(frames, ns=(7, 5))
    assert file_stamp(frames)["mtime_ns"] == 5
    (frames / "img_00002.jpg").write_bytes(b"x")
    assert file_stamp(frames)["mtime_ns"] != 5
    assert file_stamp(tmp_path / "gone.mp4") is None


def test_a_resumed_predict_names_its_plots_as_a_one_go_run(trained, tmp_path, onnx_exports):
    """Two videos of one name in two folders plot as x.png and x-2.png; a run resumed after the
    first keeps its name taken (each line names its plot), and removes the half-written plot
    the killed run left (``x-2.png.<pid>.tmp``), and those of its lines' and identity's rewrites;
    a file of the folder's that no run of predict writes stays."""
    features, _, run, root = trained
    source = root / _val_videos(features)[0]["path"]
    videos = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        videos.append(shutil.copy(source, tmp_path / folder / "x.mp4"))
    one_go = run_predict(videos, run, tmp_path / "one", EVAL, workers=0, plot=True, progress=False, export_dir=onnx_exports)
    assert [json.loads(line)["plot"] for line in one_go.jsonl.read_text().splitlines()] == ["x.png", "x-2.png"]
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(one_go.jsonl.with_name("predictions.config.json"), out)
    (out / "predictions.jsonl").write_text(one_go.jsonl.read_text().splitlines()[0] + "\n")
    (out / "x-2.png.4321.tmp").write_bytes(b"\x89PNG half")
    (out / "predictions.jsonl.4321.tmp").write_text('{"video": "half')
    (out / "predictions.config.json.4321.tmp").write_text("{")
    (out / "notes.4321.tmp").write_text("the user's")
    resumed = run_predict(videos, run, out, EVAL, workers=0, plot=True, progress=False, export_dir=onnx_exports)
    assert [path.name for path in resumed.plots] == ["x-2.png"] and (out / "x-2.png").stat().st_size > 1000
    assert [path.name for path in out.glob("*.tmp")] == ["notes.4321.tmp"]


def test_predict_decodes_in_the_main_process_where_shared_memory_holds_no_batch(trained, tmp_path, onnx_exports, monkeypatch):
    """A container's small /dev/shm: a decoder's batch of crops (3 videos x T=6 x 3 x 32 x 32
    bytes for each model here, whose resizes differ) would not fit, so the decoding moves into the main process, with a warning,
    and the predictions are the same."""
    import shutil
    from types import SimpleNamespace

    _, _, run, root = trained
    features = trained[0]
    videos = [root / v["path"] for v in _val_videos(features)]
    expected = run_predict(videos, run, tmp_path / "roomy", EVAL, workers=1, progress=False, export_dir=onnx_exports).jsonl.read_text()
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=2**26, used=2**26 - 1000, free=1000))
    with pytest.warns(RuntimeWarning, match=r"decoding processes lowered from 1 to 0: each holds up to 3 decoded batches of 0.105 MiB .* room for 0"):
        result = run_predict(videos, run, tmp_path / "cramped", EVAL, workers=1, progress=False, export_dir=onnx_exports)
    assert result.jsonl.read_text() == expected


def test_a_batch_of_observations_takes_both_crops_and_the_thumbnails_of_shared_memory(trained):
    """What the shared-memory guard counts for predict: T frames a video, each cropped for both
    models (once where they crop alike), and with --plot its thumbnail of at most 96² pixels."""
    from pipeline.extract import BothModels
    from pipeline.inference import ObservationDecoder

    with FeatureCache(trained[0]) as cache:
        attrs = cache.attrs
    (_, light_tf), (_, rec_tf) = cached_model(attrs, "light"), cached_model(attrs, "recognizer")
    sizes = (3, 32, 32), (3, 32, 32)
    assert ObservationDecoder([], 6, BothModels(light_tf, rec_tf)).batch_bytes(3, *sizes) == 3 * 6 * (3 * 32 * 32) * 2 == 110_592
    assert ObservationDecoder([], 6, BothModels(light_tf, light_tf)).batch_bytes(3, *sizes) == 3 * 6 * 3 * 32 * 32
    assert ObservationDecoder([], 6, BothModels(light_tf, rec_tf), keep_thumbnails=True).batch_bytes(3, *sizes) == 110_592 + 3 * 6 * 3 * 96 * 96


def test_predict_reports_bad_videos_and_goes_on(trained, tmp_path, onnx_exports, monkeypatch):
    features, _, run, root = trained
    good = root / _val_videos(features)[0]["path"]
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(good.read_bytes()[:300])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    missing = tmp_path / "missing.mp4"
    result = run_predict([missing, corrupt, good, text], run, tmp_path / "out", EVAL, batch_size=2, workers=0, progress=False, export_dir=onnx_exports)
    by_name = {Path(p.path).name: p for p in result.shown}
    assert [Path(p.path).name for p in result.shown] == ["missing.mp4", "corrupt.mp4", good.name, "notes.mp4"]
    assert "file not found" in by_name["missing.mp4"].error and "missing.mp4" in by_name["missing.mp4"].error
    assert "corrupt.mp4" in by_name["corrupt.mp4"].error and "notes.mp4" in by_name["notes.mp4"].error
    assert by_name[good.name].ok and len(by_name[good.name].positions) == EVAL.k
    lines = [json.loads(line) for line in result.jsonl.read_text().splitlines()]
    assert [("error" in line) for line in lines] == [True, True, False, True]
    table = result.table()
    assert "FAILED" in table and table.endswith("3 video(s) failed: file not found 1, not a video file 1, truncated or corrupt video 1")
    monkeypatch.setattr("stages.predict.PREDICT_ROWS_SHOWN", 2)  # a folder of thousands: the first rows, the JSONL has all
    short = result.table().splitlines()
    assert "missing.mp4" in short[3] and "corrupt.mp4" in short[4] and short[5] == "... and 2 more" and not any("notes.mp4" in line for line in short)
    written = result.jsonl.read_text()
    with file_lock(output_lock_path(result.jsonl)):  # another predict writing into the same folder
        with pytest.raises(CacheError, match=r"\.predictions\.jsonl\.lock: another writer holds this lock \(pid \d+ on .*\); it is predicting into the same folder; wait for it to finish, or give this run another --out"):
            run_predict([good], run, tmp_path / "out", EVAL, workers=0, progress=False, export_dir=onnx_exports)
    assert result.jsonl.read_text() == written  # its predictions left as they were


def test_predict_cli_exits_non_zero_on_failures(trained, tmp_path, onnx_exports):
    features, _, run, root = trained
    good = root / _val_videos(features)[0]["path"]
    args = ["predict", str(good), str(tmp_path / "gone.mp4"), "--run", str(run), "--out", str(tmp_path / "out"), "--k", "2", "--workers", "0", "--device", "cpu", "--onnx-dir", str(onnx_exports), "--no-progress"]
    failed = CliRunner().invoke(main, args)
    assert failed.exit_code == 1 and "gone.mp4" in failed.output and "1 of 2 video(s) could not be read" in failed.output
    accepted = CliRunner().invoke(main, args + ["--allow-failures"])
    assert accepted.exit_code == 0 and good.name in accepted.output



def test_predict_reads_its_videos_from_a_list_file_or_standard_input(trained, tmp_path, onnx_exports):
    """``--videos-from``: one path a line (a folder too, and a path with a space), comments and
    blank lines skipped, CRLF and a byte-order mark read; ``-`` is the standard input. With
    neither it nor VIDEOS the command says so; a list that is not UTF-8 is named."""
    features, _, run, root = trained
    source = root / _val_videos(features)[0]["path"]
    (tmp_path / "in folder").mkdir()
    spaced = shutil.copy(source, tmp_path / "in folder" / "a clip.mp4")
    folder = tmp_path / "more"
    folder.mkdir()
    inside = shutil.copy(source, folder / "b.mp4")
    listing = tmp_path / "list.txt"
    listing.write_bytes(f"\ufeff# new uploads\r\n{spaced}\r\n\r\n  {folder}\r\n".encode())
    options = ["--run", str(run), "--k", "2", "--workers", "0", "--device", "cpu", "--onnx-dir", str(onnx_exports), "--no-progress"]

    def predicted(args: list[str], out: str, **kwargs) -> list[str]:
        result = CliRunner().invoke(main, ["predict", *args, "--out", str(tmp_path / out), *options], **kwargs)
        assert result.exit_code == 0, result.output
        return [json.loads(line)["video"] for line in (tmp_path / out / "predictions.jsonl").read_text().splitlines()]

    assert predicted([str(source), "--videos-from", str(listing)], "file") == [str(source), str(spaced), str(inside)]
    assert predicted([str(folder), str(inside), "--videos-from", str(listing)], "twice") == [str(inside), str(spaced)]  # b.mp4 given three times, predicted once
    assert predicted(["--videos-from", "-"], "stdin", input=f"{inside}\n") == [str(inside)]
    (tmp_path / "val_list.txt").write_text("more/b.mp4 2\n")  # a dataset's list, relative to its root
    assert predicted(["--videos-from", str(tmp_path / "val_list.txt"), "--videos-root", str(tmp_path)], "root") == [str(inside)]
    none = CliRunner().invoke(main, ["predict", *options])
    assert none.exit_code == 2 and "no videos: give VIDEOS, or --videos-from a file listing them" in none.output
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    empty = CliRunner().invoke(main, ["predict", "--videos-from", str(tmp_path / "empty.txt"), *options])
    assert empty.exit_code == 2 and f"({tmp_path / 'empty.txt'} lists none)" in empty.output
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9.mp4\n".encode("latin-1"))
    bad = CliRunner().invoke(main, ["predict", "--videos-from", str(latin), *options])
    assert bad.exit_code == 1 and f"{latin}: not UTF-8 text (byte 3" in bad.output


def test_a_datasets_annotation_list_serves_as_the_list_of_videos(tmp_path, monkeypatch):
    """An annotation list given to ``--videos-from`` (mmaction2's ``val/x.mp4 3``, a rawframe
    list's ``frames/z 300 1``, a csv's ``"x y.mp4",abseiling`` after its header, ``x.mp4;2``) gives its
    videos, where every line had been a missing file named with its labels (before
    2026-12-06); a line that is a path whole is one, spaces and all; a line whose video is not
    there is reported by its longest part named as a video file (the line whole before
    2026-12-06: ``val/gone.mp4 4: not found``), or whole where none is or the line is one (a
    file's name may hold spaces); the part before a break must be a video or frames.
    Run from elsewhere, ``--videos-root`` is the folder the list's relative paths lie under;
    without it, a path not found from the current folder is looked for beside the list
    (``find . > list.txt`` run in the videos' folder; missing before 2026-12-07, the
    fifty-fourth session)."""
    monkeypatch.chdir(tmp_path)
    for name in ("val/x.mp4", "val/x y.mp4", "val/a 3.webm", "frames/z/img_00001.jpg", "notes"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_bytes(b"")
    listing = tmp_path / "val_list.txt"
    listing.write_text("val/x.mp4 3\nval/x y.mp4 0 2\nval/a 3.webm\nframes/z 300 1\nval/gone.mp4 4\nval/gone.mp4 copy.mkv\nnotes 1\n")
    assert [str(p) for p in listed_videos(listing)] == ["val/x.mp4", "val/x y.mp4", "val/a 3.webm", "frames/z", "val/gone.mp4", "val/gone.mp4 copy.mkv", "notes 1"]
    listing.write_text('video_path,label\n"val/x y.mp4",abseiling\nval/x.mp4;2\n')
    assert [str(p) for p in listed_videos(listing)] == ["val/x y.mp4", "val/x.mp4"]
    monkeypatch.chdir(tmp_path / "frames")  # elsewhere, the list's paths under --videos-root; an absolute one as written
    listing.write_text(f"path label\nval/x.mp4 3\n{tmp_path / 'val' / 'x y.mp4'} 1\nframes/z 300 1\n")
    assert listed_videos(listing, tmp_path) == [tmp_path / "val/x.mp4", tmp_path / "val/x y.mp4", tmp_path / "frames/z"]
    assert listed_videos(listing) == [tmp_path / "val/x.mp4", tmp_path / "val/x y.mp4", tmp_path / "frames/z"]  # not from here: beside the list (since 2026-12-07, #54)
    elsewhere = tmp_path / "lists" / "val_list.txt"
    elsewhere.parent.mkdir()
    elsewhere.write_text(listing.read_text())
    assert listed_videos(elsewhere) == [Path("val/x.mp4"), tmp_path / "val/x y.mp4", Path("frames/z 300 1")]  # in neither place: reported by the video file named, else whole


def test_quoted_paths_in_a_list_of_videos_are_found_under_any_root(tmp_path, monkeypatch):
    """A line in double quotes whole (Windows Explorer's "Copy as path", ``ls -Q``), and a
    csv's quoted path under ``--videos-root``, kept their quotes and were not found (before
    2026-12-07, evening); the root's name may hold a space."""
    root = tmp_path / "my videos"
    for name in ("val/x y.mp4", "val/x.mp4"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    monkeypatch.chdir(root)
    listing = tmp_path / "list.txt"
    listing.write_text('"val/x y.mp4"\n"val/x y.mp4",3\nval/x.mp4 3\n"val/x.mp4" "abseiling"\n')
    assert listed_videos(listing) == [Path("val/x y.mp4"), Path("val/x y.mp4"), Path("val/x.mp4"), Path("val/x.mp4")]
    monkeypatch.chdir(tmp_path)
    assert listed_videos(listing, root) == [root / "val/x y.mp4", root / "val/x y.mp4", root / "val/x.mp4", root / "val/x.mp4"]


def test_a_run_folder_copied_without_its_feature_cache_predicts_as_the_original(trained, tmp_path, onnx_exports):
    """Predict read how the backbones were built from the run's feature cache, the dataset's
    features (gigabytes), so a run folder copied to another machine could not predict (before
    2026-12-07, the fifty-fourth session); its ``model.pth`` keeps what predict reads of the
    cache now, and the copy predicts what the original does."""
    features, _, run, root = trained
    copied = tmp_path / "elsewhere" / run.name
    shutil.copytree(run, copied)
    assert not features_of_run(copied).exists()
    videos = [root / v["path"] for v in _val_videos(features)]
    with FeatureCache(features) as cache:
        classes = tuple(cache.attrs["manifest"]["classes"])
    lines = {}
    for name, which in (("original", run), ("copy", copied)):
        result = run_predict(videos, which, tmp_path / name, EVAL, workers=0, progress=False, export_dir=onnx_exports)
        assert not result.failures and result.pipeline.classes == classes
        lines[name] = [{k: v for k, v in json.loads(line).items() if k != "at"} for line in result.jsonl.read_text().splitlines()]
    assert lines["copy"] == lines["original"] and len(lines["copy"]) == len(videos)


def test_predict_refuses_runs_that_do_not_fit(trained, tmp_path, onnx_exports):
    features, prototypes, run, _ = trained
    device = torch.device("cpu")
    with pytest.raises(CacheError, match="trained on the 'demo' dataset, not 'fcvid'"):
        load_pipeline(run, EVAL, device, dataset="fcvid", export_dir=onnx_exports)
    with FeatureCache(features) as cache:
        t = cache["frame_indices"].shape[1]
    with pytest.raises(ValueError, match=f"K={t + 1} is more than the T={t} frames observed a video"):
        load_pipeline(run, replace(EVAL, k=t + 1), device, export_dir=onnx_exports)
    with pytest.raises(CacheError, match=r"a prototypes folder \(`nsnet prototypes`' output\), read by --prototypes; not a sampler run$"):
        load_pipeline(prototypes, EVAL, device, export_dir=onnx_exports)
    (tmp_path / "some_folder").mkdir()
    with pytest.raises(CacheError, match="not a sampler run directory"):
        load_pipeline(tmp_path / "some_folder", EVAL, device, export_dir=onnx_exports)
    with pytest.raises(CacheError, match="no such sampler run directory"):
        load_pipeline(tmp_path / "nowhere.train-0", EVAL, device, export_dir=onnx_exports)
    # a run whose feature cache is not there, made before its model.pth kept the backbones' (2026-12-07, #54)
    orphan = tmp_path / (features.name + ".train-0123")
    shutil.copytree(run, orphan)
    torch.save({key: value for key, value in torch.load(run / "model.pth", weights_only=False).items() if key not in ("backbones", "shape")}, orphan / "model.pth")
    with pytest.raises(CacheError, match=r"feature cache of the sampler run .* is missing; predict reads how the backbones were built from it \(a run trained since 2026-12-07 keeps that in its model.pth\)$"):
        load_pipeline(orphan, EVAL, device, export_dir=onnx_exports)
    # a run trained on another cache of the same name (another configuration)
    saved = torch.load(run / "model.pth", weights_only=False)
    foreign = features.with_name(features.name + ".train-foreign")
    foreign.mkdir()
    torch.save({**saved, "features_fingerprint": "0" * 64}, foreign / "model.pth")
    with pytest.raises(CacheError, match="trained on another feature cache"):
        load_pipeline(foreign, EVAL, device, export_dir=onnx_exports)


def test_a_changed_checkpoint_is_refused(trained, tmp_path):
    features = trained[0]
    with FeatureCache(features) as cache:
        attrs = cache.attrs
    checkpoint = tmp_path / "recognizer.pth"
    checkpoint.write_bytes(b"weights trained later")
    config = {**attrs["config"], "recognizer": {**attrs["config"]["recognizer"], "weights": str(checkpoint)}}
    identity = json.loads(json.dumps(attrs["identity"]))
    identity["models"]["recognizer"]["weights"] = "file:" + "0" * 64
    with pytest.raises(CacheError, match="recognizer weights changed since the feature cache was built"):
        cached_model({**attrs, "config": config, "identity": identity}, "recognizer")


def test_find_videos(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/x.mp4", "a/deep/y.MKV", "a/readme.txt", "z.avi"):
        (tmp_path / name).write_bytes(b"")
    frames = tmp_path / "a" / "rawframes_v1"
    frames.mkdir()
    (frames / "img_00001.jpg").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    found = find_videos([tmp_path / "a", tmp_path / "z.avi", tmp_path / "empty", tmp_path / "missing.mp4", frames])
    rel = [str(p.relative_to(tmp_path)) for p in found]
    assert rel == ["a/deep/y.MKV", "a/rawframes_v1", "a/x.mp4", "z.avi", "empty", "missing.mp4"]  # the frame folder found under a/ and given again: once
    (tmp_path / "disk2").mkdir()
    (tmp_path / "disk2" / "w.webm").write_bytes(b"")
    (tmp_path / "a" / "more").symlink_to(tmp_path / "disk2")  # data put together from two disks
    (tmp_path / "disk2" / "back").symlink_to(tmp_path / "a")  # a cycle: entered once
    rel = [str(p.relative_to(tmp_path)) for p in find_videos([tmp_path / "a"])]
    assert rel == ["a/deep/y.MKV", "a/more/w.webm", "a/rawframes_v1", "a/x.mp4"]
    # downloads with their thumbnails (yt-dlp --write-thumbnail): a folder of videos, not of frames
    for name in ("disk2/w.jpg", "a/x.jpg", "a/deep/y.png"):
        (tmp_path / name).write_bytes(b"")
    assert [str(p.relative_to(tmp_path)) for p in find_videos([tmp_path / "a"])] == rel
    assert find_videos([tmp_path / "disk2"]) == [tmp_path / "disk2" / "back" / "deep" / "y.MKV", tmp_path / "disk2" / "back" / "rawframes_v1", tmp_path / "disk2" / "back" / "x.mp4", tmp_path / "disk2" / "w.webm"]
    (tmp_path / "disk2" / "loop").symlink_to("loop")  # a link that loops: passed over (it stopped the listing)
    (tmp_path / "disk2" / "gone.mp4").symlink_to(tmp_path / "unmounted" / "gone.mp4")  # a video linked to nothing: kept, to be said
    assert find_videos([tmp_path / "disk2"])[-2:] == [tmp_path / "disk2" / "gone.mp4", tmp_path / "disk2" / "w.webm"]
    (tmp_path / "disk2" / "gone.mp4").unlink()
    (tmp_path / "disk2" / "loop").unlink()
    # hidden files and folders: macOS's metadata companions, trash folders, a NAS's thumbnails; a hidden path named is kept
    for name in ("a/._x.mp4", "a/rawframes_v1/._img_00001.jpg", "a/.Trash-1000/files/old.mp4", "a/.cache/frames/img_00001.jpg",
                 "a/@eaDir/x.mp4/SYNOVIDEO_VIDEO_SCREENSHOT.jpg", "a/#recycle/old.mp4"):  # a Synology share's thumbnails and recycle bin
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [str(p.relative_to(tmp_path)) for p in find_videos([tmp_path / "a"])] == rel
    assert find_videos([tmp_path / "a" / "._x.mp4"]) == [tmp_path / "a" / "._x.mp4"]
    # a download stopped before yt-dlp merged its picture and sound: passed over, said; named, kept
    for name in ("a/v.f137.mp4", "a/v.f251.webm", "a/deep/u.f22.mp4", "a/deep/t.f4v", "a/w.f18.mp4.part", "a/s.f140.m4v", "a/m.temp.mp4"):
        (tmp_path / name).write_bytes(b"")
    with pytest.warns(UserWarning, match=r"^\S+/a: passed over 5 file\(s\) of downloads yt-dlp never merged \(m.temp.mp4, s.f140.m4v, u.f22.mp4 and 2 more\): finish or redo"):
        assert [str(p.relative_to(tmp_path)) for p in find_videos([tmp_path / "a"])] == ["a/deep/t.f4v", *rel]  # Flash's .f4v is a video
    assert find_videos([tmp_path / "a" / "v.f137.mp4"]) == [tmp_path / "a" / "v.f137.mp4"]


def test_k_larger_than_t_is_refused_before_a_prediction_is_written(trained, tmp_path, onnx_exports):
    """K above the T frames observed is a mistake about the run (it took every frame before
    2026-12-06, while the table said the K asked): refused, naming T, before any line."""
    features, _, run, root = trained
    video = root / _val_videos(features)[0]["path"]
    with pytest.raises(ValueError, match=r"K=50 is more than the T=\d+ frames observed a video"):
        run_predict([video], run, tmp_path / "out", replace(EVAL, k=50), workers=0, progress=False, export_dir=onnx_exports)
    assert not (tmp_path / "out" / "predictions.jsonl").exists()


def test_avi_without_timestamps_gets_times_from_the_frame_rate(trained, tmp_path, video_writer, onnx_exports):
    """An AVI with B-frames has no presentation times (decord gave -1e17 s and wrong frames):
    predict reads it through PyAV and its times are frame index / frame rate everywhere."""
    from pipeline.video import FrameSource

    features, _, run, root = trained
    source = FrameSource(root / _val_videos(features)[0]["path"])
    avi = video_writer(tmp_path / "clip.avi", source.read(np.arange(source.num_frames)), 25, "avi", "mpeg4", {"bf": "2"})
    assert FrameSource(avi).decoder == "pyav"
    result = run_predict([avi], run, tmp_path / "out", EVAL, workers=0, plot=True, progress=False, export_dir=onnx_exports)
    (p,) = result.shown
    assert p.ok
    np.testing.assert_allclose(p.timestamps, p.frame_indices / 25.0)
    line = json.loads(result.jsonl.read_text())
    np.testing.assert_allclose(line["timestamps"], np.asarray(line["frames"]) / 25.0, atol=1e-4)
    assert f"{p.frame_indices[0]}@{p.frame_indices[0] / 25:.2f}s" in result.table()


def test_on_a_gpu_the_observation_loader_pins_the_uint8_crops(tiny_videos, monkeypatch):
    """As the features stage's blocks: the loader pins each batch (its pin thread calls each
    observation's ``pin_memory``); page-locked memory needs a GPU, so a copy stands in for it."""
    from types import SimpleNamespace

    from torch.utils.data._utils.pin_memory import pin_memory

    from pipeline import inference
    from pipeline.extract import ModelFrames, Rescale
    from pipeline.inference import Observation

    pinned: list[torch.Tensor] = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *args: pinned.append(self.clone()) or pinned[-1])
    light = ModelFrames(torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4), None)
    rec = ModelFrames(torch.arange(2 * 3 * 6 * 6, dtype=torch.uint8).reshape(2, 3, 6, 6), None)
    good, failed = Observation(0, Path("a.mp4"), light, rec, np.array([0, 5])), Observation(1, Path("b.mp4"), error="b.mp4: file not found")
    shared = Observation(2, Path("c.mp4"), light, ModelFrames(light.pixels, Rescale((1.0,), (0.0,))), np.array([0, 5]))  # crops alike
    out = pin_memory([good, failed, shared])
    assert out[0].light.pixels is pinned[0] and out[0].rec.pixels is pinned[1] and out[2].light.pixels is out[2].rec.pixels is pinned[2]
    assert torch.equal(pinned[0], light.pixels) and torch.equal(pinned[1], rec.pixels) and pinned[0].dtype == torch.uint8
    assert len(pinned) == 3 and out[1] is failed and out[0].frame_indices is good.frame_indices and out[2].rec.rescale == shared.rec.rescale
    # the loader asks for it on a GPU only
    asked = []
    monkeypatch.setattr(inference, "decoding_loader", lambda *args, **kw: asked.append(kw["pin_memory"]) or [])
    for device in ("cuda", "cpu"):
        assert list(inference.predict_videos(SimpleNamespace(device=torch.device(device)), inference.ObservationDecoder([tiny_videos], 4, None))) == []
    assert asked == [True, False]


def test_predict_fails_the_video_a_decoder_hangs_or_crashes_on_and_goes_on(trained, tmp_path, onnx_exports, monkeypatch, forked_workers):
    """A frame that blocks its reader for good, and a file whose decoding aborts the process:
    each comes back with its reason, and the other videos' predictions are a plain run's."""
    import faulthandler
    import os

    import pipeline.inference
    from pipeline import decode_watch

    features, _, run, root = trained
    videos = [root / v["path"] for v in _val_videos(features)]
    expected = run_predict(videos, run, tmp_path / "plain", EVAL, batch_size=2, workers=0, progress=False, export_dir=onnx_exports)
    hangs = tmp_path / "hangs"
    hangs.mkdir()
    os.mkfifo(hangs / "img_00001.png")
    crashes = tmp_path / "crashes.mp4"
    crashes.write_bytes(videos[0].read_bytes())
    source = pipeline.inference.FrameSource

    def aborts_on_one(path, *args, **kwargs):  # forked into the decoding worker
        if Path(path).name == "crashes.mp4":
            faulthandler.disable()
            os.abort()
        return source(path, *args, **kwargs)

    monkeypatch.setattr(pipeline.inference, "FrameSource", aborts_on_one)
    monkeypatch.setattr(decode_watch, "WATCH_POLL_S", 0.5)
    inputs = [videos[0], hangs, videos[1], crashes, videos[2]]
    result = run_predict(inputs, run, tmp_path / "out", EVAL, batch_size=2, workers=1, progress=False, export_dir=onnx_exports, decode_timeout=2.0)
    assert [p.error for p in result.shown] == [
        "", f"{hangs}: decoder hung (no frames after 2 s; re-encode the file to use it)",
        "", f"{crashes}: decoder crashed (SIGABRT: its process died on this file; re-encode it to use it)", "",
    ]
    got = [json.loads(line) for line in result.jsonl.read_text().splitlines() if "error" not in line]
    plain = [json.loads(line) for line in expected.jsonl.read_text().splitlines()]
    assert [(g["video"], g["frames"], g["positions"], [c["class"] for c in g["top5"]]) for g in got] == [
        (p["video"], p["frames"], p["positions"], [c["class"] for c in p["top5"]]) for p in plain
    ]  # the batches differ once a video is out (their scores agree to float rounding)
    np.testing.assert_allclose([c["score"] for g in got for c in g["top5"]], [c["score"] for p in plain for c in p["top5"]], rtol=1e-5, atol=1e-6)
    assert result.table().endswith("2 video(s) failed: decoder crashed 1, decoder hung 1")


def test_a_predict_result_keeps_the_rows_it_shows_and_the_failures_not_every_prediction():
    """A folder of 100,000 videos: the predictions go to the JSONL as they come; the result keeps
    the first rows (without thumbnails: ~80 KB a 1080p video with --plot) and the failed ones."""
    from stages.predict import PREDICT_ROWS_SHOWN, PredictResult, VideoPrediction

    result = PredictResult(None, Path("predictions.jsonl"))
    for i in range(PREDICT_ROWS_SHOWN + 5):
        failed = i in (3, PREDICT_ROWS_SHOWN + 2)
        result.add(VideoPrediction(f"v{i}.mp4", error=f"v{i}.mp4: file not found" if failed else "", scores=None if failed else np.ones(3), thumbnails=None if failed else np.zeros((5, 54, 96, 3), np.uint8)))
    assert result.videos == PREDICT_ROWS_SHOWN + 5 and [p.path for p in result.shown] == [f"v{i}.mp4" for i in range(PREDICT_ROWS_SHOWN)]
    assert all(p.thumbnails is None for p in result.shown) and [p.path for p in result.failures] == ["v3.mp4", f"v{PREDICT_ROWS_SHOWN + 2}.mp4"]


def test_a_plot_without_matplotlib_is_refused_before_any_work(tmp_path, monkeypatch):
    """matplotlib is an optional extra, looked up rather than imported: predict's --plot without
    it is one clear error, before a video is read or a folder made."""
    import importlib.util

    from pipeline import plots

    assert plots.matplotlib_available()  # the dev install has it
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "matplotlib" else find_spec(name, *args))
    assert not plots.matplotlib_available()
    with pytest.raises(ValueError, match=r"--plot needs matplotlib: install the 'plots' extra"):
        run_predict([tmp_path / "x.mp4"], tmp_path / "run", tmp_path / "out", plot=True)
    assert not (tmp_path / "out" / "predictions.jsonl").exists()


def test_a_plot_that_cannot_be_drawn_is_one_warning_and_every_video_is_predicted(trained, tmp_path, onnx_exports, monkeypatch):
    """matplotlib installed but failing to import (a build against another numpy): the first
    video's plot is a warning naming it and why, no later one is tried, and every video is
    predicted, its line without a plot."""
    from pipeline import plots

    features, _, run, root = trained
    videos = [root / v["path"] for v in _val_videos(features)]
    tries: list[str] = []

    def broken() -> None:
        tries.append("import")
        raise ImportError("numpy.core.multiarray failed to import")

    monkeypatch.setattr(plots, "_pyplot", broken)
    with pytest.warns(UserWarning) as warned:
        result = run_predict(videos, run, tmp_path / "out", EVAL, workers=0, plot=True, progress=False, export_dir=onnx_exports)
    first = tmp_path / "out" / (Path(sorted(map(str, videos))[0]).stem + ".png")
    assert [str(w.message) for w in warned if "figure not drawn" in str(w.message)] == [f"{first}: figure not drawn (ImportError: numpy.core.multiarray failed to import)"]
    assert tries == ["import"] and result.plots == [] and not list((tmp_path / "out").glob("*.png*"))
    lines = [json.loads(line) for line in result.jsonl.read_text().splitlines()]
    assert len(lines) == len(videos) and all("top5" in line and "plot" not in line for line in lines)
