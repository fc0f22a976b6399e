"""A decoder that hangs or crashes on one video (decord loops forever on some files, FFmpeg
aborts on others) fails that video, and the features stage goes on: the other videos' rows are
those of a run where that video was merely missing."""

import faulthandler
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import zarr

import pipeline.extract
from pipeline import decode_watch
from pipeline.cache import ARRAY_NAMES, DONE, FAILED, CacheError, FeatureCache
from pipeline.decode_watch import Culprit, DecoderFailure, DecodingWatch, WatchedDecoding, death_reason, loader_workers, process_alive, watched
from pipeline.video import NO_SOURCE
from stages.features import run_features

REPO = Path(__file__).resolve().parents[1]
VICTIM = 5  # the video of the tiny set (12 videos, shards of 4, blocks of 2) that goes wrong


@pytest.fixture(autouse=True)
def short_waits(monkeypatch):
    """The loader waits half a second at a time (5 in a run): the same steps, sooner."""
    monkeypatch.setattr(decode_watch, "WATCH_POLL_S", 0.5)


def _repoint(root: Path, row: int, path: str) -> None:
    """Make the manifest's ``row``-th video ``path`` (relative to ``root``)."""
    lines = (root / "manifest.csv").read_text().splitlines()
    _, label, split = lines[1 + row].split(",")
    lines[1 + row] = f"{path},{label},{split}"
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")


def _assert_same_but_the_victim(summary, reference) -> None:
    with FeatureCache(Path(summary.cache)) as a, FeatureCache(Path(reference.cache)) as b:
        status = a["status"][:]
        assert status.tolist() == [FAILED if i == VICTIM else DONE for i in range(12)] == b["status"][:].tolist()
        for name in ARRAY_NAMES:
            mine, theirs = a[name][:], b[name][:]
            if name == "source_sizes":  # the victim's file is there in one run, missing in the other
                assert mine[VICTIM] != NO_SOURCE == theirs[VICTIM]
                mine, theirs = np.delete(mine, VICTIM), np.delete(theirs, VICTIM)
            np.testing.assert_array_equal(mine, theirs, err_msg=name)


def _abort(*args) -> None:
    """What decord does on some corrupt files (FFmpeg's "terminate called ..."), quietly: without
    pytest's fault handler printing the worker's stack."""
    faulthandler.disable()
    os.abort()


def _reference(videos: Path, tmp_path: Path, config, opts):
    """The same run where the victim is a file that is not there."""
    _repoint(videos, VICTIM, "videos/not-there.mp4")
    return run_features("demo", videos, config, replace(opts, cache_dir=tmp_path / "reference", workers=0))


def test_the_video_a_decoder_hangs_on_is_failed_and_the_run_goes_on(tiny_videos, tiny_config, run_options, tmp_path):
    hang = tiny_videos / "videos" / "hangs"
    hang.mkdir()
    os.mkfifo(hang / "img_00001.png")  # a frame that blocks its reader for good
    _repoint(tiny_videos, VICTIM, "videos/hangs")
    opts = replace(run_options, workers=1, decode_timeout=2.0)
    started = time.perf_counter()
    summary = run_features("demo", tiny_videos, tiny_config, opts)
    assert time.perf_counter() - started < 60  # not the hour a hung decoder would hold it for
    reasons = {f["video_id"]: f["reason"] for f in summary.failures}
    assert list(reasons.values()) == ["decoder hung (no frames after 2 s; re-encode the file to use it)"]
    assert (summary.done, summary.failed, summary.pending, summary.computed, summary.failed_now) == (11, 1, 0, 11, 1)
    _assert_same_but_the_victim(summary, _reference(tiny_videos, tmp_path, tiny_config, opts))


def test_the_video_a_decoder_crashes_on_is_failed_and_the_run_goes_on(tiny_videos, tiny_config, run_options, tmp_path, monkeypatch, forked_workers):
    decode = pipeline.extract.decode_candidates

    def aborts_on_one(root, record, t, offsets):  # as FFmpeg's "terminate called ..." in decord
        if record.path.endswith("crashes.mp4"):
            _abort()
        return decode(root, record, t, offsets)

    monkeypatch.setattr(pipeline.extract, "decode_candidates", aborts_on_one)  # the workers are forked with it
    _repoint(tiny_videos, VICTIM, "videos/crashes.mp4")
    (tiny_videos / "videos" / "crashes.mp4").write_bytes(b"")
    opts = replace(run_options, workers=1)
    summary = run_features("demo", tiny_videos, tiny_config, opts)
    assert [f["reason"] for f in summary.failures] == ["decoder crashed (SIGABRT: its process died on this file; re-encode it to use it)"]
    assert (summary.done, summary.failed, summary.pending) == (11, 1, 0)
    monkeypatch.undo()
    _assert_same_but_the_victim(summary, _reference(tiny_videos, tmp_path, tiny_config, opts))


CRASHING_DECODER = """
import ctypes
from pathlib import Path
import torch
from pipeline.decoders import decord_quietly
from pipeline.extract import decoding_loader

class Decoded(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):  # a segmentation fault in decord on the second video, its standard error taken
        return decord_quietly(lambda: ctypes.string_at(0), Path("b.mp4"), "decoding failed") if i == 1 else i

try:
    list(decoding_loader(Decoded(), 1, watched=False))
except RuntimeError as error:
    print(error)
"""


@pytest.mark.parametrize("flags", [[], ["-X", "faulthandler"]])
def test_a_decoders_segmentation_fault_prints_its_python_stack_where_the_fault_handler_is_on(flags, tmp_path):
    """Torch's worker sets its own crash handlers, which printed one line naming no place even
    where the fault handler was on; now the handler prints where the decoder crashed, to the
    standard error the worker began with, not the one decord's call takes from it meanwhile,
    where torch's line now goes (the decode watch names the video: ``decoder crashed``)."""
    script = tmp_path / "crashes.py"
    script.write_text(CRASHING_DECODER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONFAULTHANDLER", None)
    proc = subprocess.run([sys.executable, *flags, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert re.fullmatch(r"DataLoader worker \(pid\(s\) \d+\) exited unexpectedly\n", proc.stdout)
    if flags:
        assert "Fatal Python error: Segmentation fault" in proc.stderr
        assert re.search(r'Current thread .*\n(  File .*\n)*  File ".*crashes\.py", line 13 in __getitem__\n', proc.stderr)
    else:
        assert proc.stderr == ""


CRASHING_IN_THIS_PROCESS = """
import ctypes, faulthandler, os, sys
from pathlib import Path
from pipeline.decoders import decord_quietly

if sys.argv[1:] == ["own-file"]:  # the handler turned on by code, on a file of the caller's
    faulthandler.enable(open(os.environ["OWN_FILE"], "w"))
decord_quietly(lambda: ctypes.string_at(0), Path("b.mp4"), "decoding failed")  # decord crashing, standard error taken
"""


@pytest.mark.parametrize(("flags", "arg", "printed"), [([], "", False), (["-X", "faulthandler"], "", True), (["-X", "dev"], "", True), ([], "own-file", False)])
def test_a_crash_in_a_decord_call_of_the_main_process_prints_its_python_stack_where_python_began_the_fault_handler(flags, arg, printed, tmp_path):
    """With ``--workers 0`` decord runs in the main process: a crash inside its call, where the
    fault handler was turned on at Python's start, wrote its stack into the standard error the
    call had taken, lost with the process (2026-12-07, before the fifty-first session); now it is
    printed. A handler turned on by code writes where it was told, as before."""
    script = tmp_path / "crashes.py"
    script.write_text(CRASHING_IN_THIS_PROCESS)
    own = tmp_path / "own.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OWN_FILE": str(own)}
    env.pop("PYTHONFAULTHANDLER", None)
    proc = subprocess.run([sys.executable, *flags, str(script), *([arg] if arg else [])], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGSEGV
    assert ("Fatal Python error: Segmentation fault" in proc.stderr) is printed
    if printed:
        assert re.search(r'  File ".*crashes\.py", line 8 in <module>\n', proc.stderr)
    if arg:
        assert proc.stderr == "" and 'crashes.py", line 8 in <module>' in own.read_text()


def test_decoders_that_keep_dying_stop_the_run(tiny_videos, tiny_config, run_options, monkeypatch, forked_workers):
    """Every video killing its decoder is not a bad file but a bad machine (no memory, no
    /dev/shm): after a few in a row with no video decoded between, the run stops and says so."""
    monkeypatch.setattr(pipeline.extract, "decode_candidates", _abort)
    with pytest.raises(CacheError, match=r"\.zarr: the decoders failed on 4 videos in a row, none decoded between \(.*\); more than single videos is wrong"):
        run_features("demo", tiny_videos, tiny_config, replace(run_options, workers=1))


def test_the_watch_names_a_dead_workers_video_then_the_longest_stuck_one():
    watch = DecodingWatch(3)
    now = time.time()
    gone = 2**22 + 12345  # above the largest pid Linux hands out by default
    worker = subprocess.Popen(["sleep", "60"])  # stands for a decoding worker
    watch.table[:] = torch.tensor([[7, now - 5, worker.pid], [9, now - 50, worker.pid], [-1, now - 99, gone]], dtype=torch.float64)
    assert watch.culprit(timeout=60) is None  # 50 s is not yet hung; the idle row's process does not count
    assert watch.culprit(timeout=30) == Culprit(9, "decoder hung (no frames after 30 s; re-encode the file to use it)")
    watch.table[0, 2] = gone
    assert watch.culprit(timeout=30) == Culprit(7, "decoder crashed (its process died on this file; re-encode it to use it)")  # how it died not known
    assert watch.culprit(timeout=30, workers=[_ended(gone, -signal.SIGSEGV)]) == Culprit(7, "decoder crashed (SIGSEGV: its process died on this file; re-encode it to use it)")
    watch.clear()  # kills the worker still on a video
    assert worker.wait(timeout=10) == -signal.SIGKILL and watch.culprit(timeout=0) is None
    assert process_alive(os.getpid()) and not process_alive(worker.pid) and not process_alive(gone)


class _Loader:
    """A loader's iterator that raises or gives each of ``events`` in turn (torch's goes on
    after a wait that ran out, as this one does)."""

    def __init__(self, *events):
        self.events = list(events)

    def __iter__(self):
        return self

    def __next__(self):
        if not self.events:
            raise StopIteration
        event = self.events.pop(0)
        if isinstance(event, Exception):
            raise event
        return event() if callable(event) else event


def test_a_loader_error_is_a_decoder_failure_only_where_the_watch_names_a_video():
    watch = DecodingWatch(1)
    waits = RuntimeError("DataLoader timed out after 5 seconds")
    assert list(watched(_Loader("a", waits, waits, "b"), watch, timeout=60)) == ["a", "b"]  # no video decoding for 60 s: the waits go on
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        list(watched(_Loader("a", RuntimeError("CUDA out of memory")), watch, timeout=60))
    watch.table[0] = torch.tensor([4, time.time() - 90, os.getpid()], dtype=torch.float64)
    with pytest.raises(DecoderFailure, match=r"^video 4: decoder hung \(no frames after 60 s") as hung:
        list(watched(_Loader(waits), watch, timeout=60))
    assert hung.value.__cause__ is waits
    watch.table[0, 2] = 2**22 + 12345  # its worker is gone, and a block it sent with it
    with pytest.raises(DecoderFailure, match=r"^video 4: decoder crashed") as crashed:
        list(watched(_Loader(ConnectionResetError(104, "Connection reset by peer")), watch, timeout=60))
    assert isinstance(crashed.value.__cause__, ConnectionResetError) and crashed.value.index == 4


def test_a_worker_dead_once_the_process_has_a_stop_signal_ends_the_items_and_fails_no_video():
    """A worker that a scheduler's SIGTERM ended (it reaches every process of a job; one just
    started has not yet left it to the command) while the command has the signal to act on:
    the items end there, no video is failed nor a new loader opened, and the command stops the
    run; without the signal the same death fails the worker's video, and the loader's other
    errors are raised as they are. So too a loader whose processes cannot start."""
    dead = subprocess.Popen(["true"])
    dead.wait()

    def dies_on_video_2():
        decoding.watch.table[0] = torch.tensor([2, time.time(), dead.pid], dtype=torch.float64)
        raise RuntimeError(f"DataLoader worker (pid(s) {dead.pid}) exited unexpectedly")

    for stopping, given_then in ((True, []), (False, ["v2 failed"])):
        decoding = WatchedDecoding(1, timeout=60, where="a pass", describe=lambda video: f"v{video}.mp4", stopping=lambda: stopping)
        opened = []
        with decoding:
            given = list(decoding.items(lambda: opened.append(1) or (_Loader("v0", dies_on_video_2) if len(opened) == 1 else _Loader("v2 failed")), lambda item: True))
        assert given == ["v0", *given_then] and len(opened) == 1 + len(given_then)
        assert decoding.skip == ({} if stopping else {2: "decoder crashed (its process died on this file; re-encode it to use it)"})
    unexpected = WatchedDecoding(1, timeout=60, where="a pass", describe=str, stopping=lambda: False)
    with pytest.raises(RuntimeError, match="exited unexpectedly"), unexpected:
        list(unexpected.items(lambda: _Loader(RuntimeError("DataLoader worker (pid(s) 1) exited unexpectedly")), lambda item: True))
    stopping_anyway = WatchedDecoding(1, timeout=60, where="a pass", describe=str, stopping=lambda: True)
    with stopping_anyway:
        assert list(stopping_anyway.items(lambda: _Loader("v0", RuntimeError("DataLoader worker (pid(s) 1) exited unexpectedly")), lambda item: True)) == ["v0"]

    def cannot_start():
        raise EOFError  # what starts the processes gone (a fork server the signal ended)

    assert list(stopping_anyway.items(cannot_start, lambda item: True)) == []
    with pytest.raises(EOFError):
        unexpected.items(cannot_start, lambda item: True)


def test_a_decode_timeout_that_is_not_positive_is_refused():
    for timeout in (0.0, -5.0, float("nan")):
        with pytest.raises(ValueError, match="the decode timeout must be a positive number of seconds"):
            WatchedDecoding(1, timeout, "a pass", str)


def test_a_failure_opens_a_new_loader_from_where_the_caller_got(capsys):
    worker = subprocess.Popen(["sleep", "60"])  # stands for the worker stuck on video 2
    decoding = WatchedDecoding(1, timeout=60, where="a pass", describe=lambda video: f"v{video}.mp4")

    def hangs_on_video_2():
        decoding.watch.table[0] = torch.tensor([2, time.time() - 90, worker.pid], dtype=torch.float64)
        raise RuntimeError("DataLoader timed out after 5 seconds")

    given, opened = [], []

    def open_items():
        opened.append(len(given))
        return _Loader("v0", "v1", hangs_on_video_2) if len(opened) == 1 else _Loader("v2 failed", "v3")

    with decoding:
        for item in decoding.items(open_items, lambda item: True):
            given.append(item)
    assert given == ["v0", "v1", "v2 failed", "v3"] and opened == [0, 2]
    assert decoding.skip == {2: "decoder hung (no frames after 60 s; re-encode the file to use it)"}
    assert worker.wait(timeout=10) == -signal.SIGKILL  # the stuck worker is killed before the next loader
    assert capsys.readouterr().err == "v2.mp4: decoder hung (no frames after 60 s; re-encode the file to use it): failed, and decoding goes on\n"


def test_why_a_worker_died_by_hand():
    """SIGKILL is a kill from outside, the video not at fault: by the out-of-memory killer where
    the machine's count of its kills rose meanwhile; any other end is a crash on the file."""
    vmstat = "/proc/vmstat"
    assert death_reason(-signal.SIGKILL, 12, 10) == (f"decoder killed (SIGKILL while the kernel's out-of-memory killer counted 2 more kill(s) in {vmstat}: give the decoders more memory, or fewer --workers)", True)
    assert death_reason(-signal.SIGKILL, 10, 10) == (f"decoder killed (SIGKILL from outside the run, not the kernel's out-of-memory killer: {vmstat} counts no more)", True)
    assert death_reason(-signal.SIGKILL, None, None) == ("decoder killed (SIGKILL from outside the run: the kernel's out-of-memory killer or another process)", True)
    assert death_reason(-signal.SIGABRT, 12, 10) == ("decoder crashed (SIGABRT: its process died on this file; re-encode it to use it)", False)
    assert death_reason(-signal.SIGBUS, None, None) == ("decoder crashed (SIGBUS: its process died on this file; re-encode it to use it)", False)
    assert death_reason(-200, None, None) == ("decoder crashed (signal 200: its process died on this file; re-encode it to use it)", False)
    assert death_reason(1, None, None) == ("decoder crashed (exit status 1: its process died on this file; re-encode it to use it)", False)
    assert death_reason(None, None, None) == ("decoder crashed (its process died on this file; re-encode it to use it)", False)


def _ended(pid: int, status: int) -> SimpleNamespace:
    """A worker process that ended with ``status``."""
    return SimpleNamespace(pid=pid, exitcode=status, join=lambda timeout=None: None, is_alive=lambda: False)


def _running(pid: int, killed: list[int]) -> SimpleNamespace:
    """A worker process still running, whose kill is noted in ``killed``."""
    return SimpleNamespace(pid=pid, exitcode=None, join=lambda timeout=None: None, is_alive=lambda: pid not in killed, kill=lambda: killed.append(pid))


class _Workers(_Loader):
    """A loader's iterator whose worker processes are known, as torch's keeps them."""

    def __init__(self, workers, *events):
        super().__init__(*events)
        self._workers = workers


def test_a_video_whose_worker_is_killed_from_outside_is_decoded_once_more_before_it_is_failed(monkeypatch, capsys):
    """The kernel's out-of-memory killer, or a person's ``kill -9``, ends a decoding worker on
    whatever video it has: that video is decoded once more in the next loader (here it comes
    back), and failed only where its worker is killed on that go too. The count of failures in a
    row still stops a machine that kills every decoder."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    counts = itertools.chain([5], itertools.repeat(6))  # the machine's out-of-memory kills: at the watch's start, then at each kill
    monkeypatch.setattr(decode_watch, "oom_kills", lambda: next(counts))

    def killed_on(video):
        def kill():
            decoding.watch.table[0] = torch.tensor([video, time.time(), dead.pid], dtype=torch.float64)
            raise RuntimeError(f"DataLoader worker (pid(s) {dead.pid}) exited unexpectedly")
        return kill

    killed = [_ended(dead.pid, -signal.SIGKILL)]
    loaders = iter([
        _Workers(killed, "v0", killed_on(1)),  # killed for memory on v1
        _Workers(killed, "v1", "v2", killed_on(3)),  # v1 decoded on its second go; killed on v3, not for memory
        _Workers(killed, killed_on(3)),  # and again on v3
        _Workers(killed, "v3 failed", "v4"),
    ])
    decoding = WatchedDecoding(1, timeout=60, where="a pass", describe=lambda video: f"v{video}.mp4")
    with decoding:
        assert list(decoding.items(lambda: next(loaders), lambda item: True)) == ["v0", "v1", "v2", "v3 failed", "v4"]
    not_memory = "decoder killed (SIGKILL from outside the run, not the kernel's out-of-memory killer: /proc/vmstat counts no more)"
    assert decoding.skip == {3: f"{not_memory}; killed on its second go too"} and decoding.killed == {1, 3}
    assert capsys.readouterr().err.splitlines() == [
        "v1.mp4: decoder killed (SIGKILL while the kernel's out-of-memory killer counted 1 more kill(s) in /proc/vmstat: give the decoders more memory, or fewer --workers): decoding it once more",
        f"v3.mp4: {not_memory}: decoding it once more",
        f"v3.mp4: {not_memory}; killed on its second go too: failed, and decoding goes on",
    ]
    every_one = WatchedDecoding(1, timeout=60, where="a pass", describe=str)
    decoding = every_one
    with pytest.raises(CacheError, match=r"^a pass: the decoders failed on 4 videos in a row, none decoded between"), every_one:
        list(every_one.items(lambda: _Workers(killed, killed_on(len(every_one.skip) + len(every_one.killed))), lambda item: True))


def test_decoders_the_out_of_memory_killer_keeps_killing_stop_the_pass_saying_so(monkeypatch):
    """A node short of memory kills every decoder: the pass stops at the fourth failure in a row,
    its line counting those the out-of-memory killer's (each one's count rose), which the job's
    log ends with."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    counts = itertools.count(20)  # the machine's count rises by one at each read after the watch's start
    monkeypatch.setattr(decode_watch, "oom_kills", lambda: next(counts))
    decoding = WatchedDecoding(1, timeout=60, where="a pass", describe=str)

    def killed_on_the_next():
        decoding.watch.table[0] = torch.tensor([len(decoding.killed) + len(decoding.skip), time.time(), dead.pid], dtype=torch.float64)
        raise RuntimeError(f"DataLoader worker (pid(s) {dead.pid}) exited unexpectedly")

    with pytest.raises(CacheError, match=r"^a pass: the decoders failed on 4 videos in a row, none decoded between \(.*\); more than single videos is wrong \(4 of them the kernel's out-of-memory killer's: give the decoders more memory, or fewer --workers\): see the failures above$"), decoding:
        list(decoding.items(lambda: _Workers([_ended(dead.pid, -signal.SIGKILL)], killed_on_the_next), lambda item: True))


@pytest.mark.parametrize("kills", [1, 2])
def test_a_features_run_decodes_once_more_the_video_whose_worker_was_killed(kills, tiny_videos, tiny_config, run_options, tmp_path, monkeypatch, forked_workers, capsys):
    """A worker killed on the victim once: every video computed, as in a run with no kill; killed
    on both goes: the victim failed as killed, the rest as in a run where it is missing."""
    victim = (tiny_videos / "manifest.csv").read_text().splitlines()[1 + VICTIM].split(",")[0]
    decode, kills_made = pipeline.extract.decode_candidates, tmp_path / "kills"

    def killed_on_the_victim(root, record, t, offsets):  # in the forked worker
        if record.path == victim and (not kills_made.exists() or len(kills_made.read_text()) < kills):
            with kills_made.open("a") as made:
                made.write("k")
            os.kill(os.getpid(), signal.SIGKILL)
        return decode(root, record, t, offsets)

    monkeypatch.setattr(pipeline.extract, "decode_candidates", killed_on_the_victim)
    monkeypatch.setattr(decode_watch, "oom_kills", lambda: 3)  # no out-of-memory kill on the machine meanwhile
    opts = replace(run_options, workers=1)
    summary = run_features("demo", tiny_videos, tiny_config, opts)
    assert kills_made.read_text() == "k" * kills
    where = tiny_videos / victim
    reason = "decoder killed (SIGKILL from outside the run, not the kernel's out-of-memory killer: /proc/vmstat counts no more)"
    lines = [f"{where}: {reason}: decoding it once more"] + ([f"{where}: {reason}; killed on its second go too: failed, and decoding goes on"] if kills == 2 else [])
    assert [line for line in capsys.readouterr().err.splitlines() if "decoder killed" in line] == lines
    monkeypatch.undo()
    if kills == 1:
        assert (summary.done, summary.failed, summary.computed) == (12, 0, 12)
        plain = run_features("demo", tiny_videos, tiny_config, replace(opts, cache_dir=tmp_path / "plain", workers=0))
        with FeatureCache(Path(summary.cache)) as a, FeatureCache(Path(plain.cache)) as b:
            for name in ARRAY_NAMES:
                np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
    else:
        assert [f["reason"] for f in summary.failures] == [f"{reason}; killed on its second go too"]
        _assert_same_but_the_victim(summary, _reference(tiny_videos, tmp_path, tiny_config, opts))


def test_a_features_run_loses_nothing_to_a_worker_killed_between_videos(tiny_videos, tiny_config, run_options, tmp_path, monkeypatch, forked_workers, capsys):
    """A worker killed with a decoded block in hand (the out-of-memory killer picks a process,
    not a moment): torch's error ended the run with its traceback before 2026-12-08, and the
    process then waited for its other worker for good (it ignores SIGTERM); now a new loader
    decodes that block again and every video comes out as in a run with no kill."""
    blocks, made = pipeline.extract.BlockDecoder.__getitem__, tmp_path / "killed"

    def killed_with_the_victims_block(self, item):  # in the forked worker, after the block's videos are decoded
        block = blocks(self, item)
        if VICTIM in block.members and not made.exists():
            made.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return block

    monkeypatch.setattr(pipeline.extract.BlockDecoder, "__getitem__", killed_with_the_victims_block)
    monkeypatch.setattr(decode_watch, "oom_kills", lambda: None)  # a machine without the count
    opts = replace(run_options, workers=2)
    summary = run_features("demo", tiny_videos, tiny_config, opts)
    assert made.exists() and (summary.done, summary.failed, summary.computed) == (12, 0, 12)
    reason = "decoder killed (SIGKILL from outside the run: the kernel's out-of-memory killer or another process)"
    assert [line for line in capsys.readouterr().err.splitlines() if "decoder" in line] == [f"{summary.cache}: a decoding process {reason}, between videos: decoding goes on"]
    monkeypatch.undo()
    plain = run_features("demo", tiny_videos, tiny_config, replace(opts, cache_dir=tmp_path / "plain", workers=0))
    with FeatureCache(Path(summary.cache)) as a, FeatureCache(Path(plain.cache)) as b:
        for name in ARRAY_NAMES:
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)


def test_a_worker_dead_between_videos_costs_no_video_and_says_how_it_died(monkeypatch, capsys):
    """A worker killed, or crashed, while it held no video (sending a decoded block, the
    out-of-memory killer choosing it between two): a new loader goes on from the first item
    not given, no video failed; it counts among the failures in a row."""
    monkeypatch.setattr(decode_watch, "oom_kills", lambda: 4)
    watch, ended_at_the_exit = DecodingWatch(2), []
    alive = _running(41, ended_at_the_exit)
    assert watch.culprit(timeout=60, workers=[alive]) is None
    assert watch.culprit(timeout=60, workers=[alive, _ended(42, -signal.SIGBUS)]) == Culprit(None, "decoder crashed (SIGBUS)")
    lost = RuntimeError("DataLoader worker (pid(s) 42) exited unexpectedly")
    loaders = iter([_Workers([alive, _ended(42, -signal.SIGKILL)], "v0", lost), _Workers([_running(43, ended_at_the_exit)], "v1", "v2")])
    decoding = WatchedDecoding(2, timeout=60, where="a pass", describe=lambda video: f"v{video}.mp4")
    with decoding:
        assert list(decoding.items(lambda: next(loaders), lambda item: True)) == ["v0", "v1", "v2"]
    assert decoding.skip == {} and decoding.killed == set() and ended_at_the_exit == [41, 43]  # the pass's end kills its loaders' workers still alive
    assert capsys.readouterr().err == "a pass: a decoding process decoder killed (SIGKILL from outside the run, not the kernel's out-of-memory killer: /proc/vmstat counts no more), between videos: decoding goes on\n"
    with pytest.raises(DecoderFailure, match=r"^between videos: decoder crashed \(exit status 1\)$"):
        list(watched(_Workers([_ended(43, 1)], lost), DecodingWatch(1), timeout=60))
    assert loader_workers(_Loader()) == ()  # a loader that keeps no processes


EXITS_AFTER_AN_ERROR = """
import sys, time
import torch
from pipeline.decode_watch import WatchedDecoding
from pipeline.extract import decoding_loader

class Frames(torch.utils.data.Dataset):
    def __len__(self):
        return 1000

    def __getitem__(self, i):
        time.sleep(0.01)
        return i

def decoded():  # as predict's passes: a generator of the items, its pass open while it waits
    with WatchedDecoding(2, 60, "a pass", str) as decoding:
        yield from decoding.items(lambda: iter(decoding_loader(decoding.attached(Frames()), 2)), lambda item: True)

if sys.argv[1] == "in the pass":
    with WatchedDecoding(2, 60, "a pass", str) as decoding:
        items = decoding.items(lambda: iter(decoding_loader(decoding.attached(Frames()), 2)), lambda item: True)
        next(items)
        raise RuntimeError("the models failed " + sys.argv[1])
items = decoded() if sys.argv[1] == "in its caller" else iter(decoding_loader(Frames(), 2, watched=False))  # as bench-features' decode-only pass
next(items)
raise RuntimeError("the models failed " + sys.argv[1])
"""


@pytest.mark.parametrize("where", ["in the pass", "in its caller", "beside an unwatched loader"])
def test_a_pass_left_by_an_error_ends_its_workers_and_the_process_exits(where, tmp_path):
    """The workers ignore SIGTERM, the stop signal being the command's; Python ends a
    process's workers at its exit with SIGTERM and then waits for them, so a pass that an
    error left, its loader held by the traceback, waited for good (found with the kernel's
    out-of-memory killer on a worker, 2026-12-08). Now the pass's end kills them, and the
    process's exit those of any decoding loader still alive (a generator of items whose caller
    failed, a loader no watch holds)."""
    script = tmp_path / "pass.py"
    script.write_text(EXITS_AFTER_AN_ERROR)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script), where], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1 and done.stderr.rstrip().endswith(f"RuntimeError: the models failed {where}")


def _hangs_reading_the_last_frame_or_crashes(open_record, hangs: str, crashes: str):
    """``open_record`` whose source for ``hangs`` blocks for good when asked for its last frame
    (decord's loop on a container that over-reports its frames, dmlc/decord#373) and which aborts
    the process for ``crashes``."""

    def opened(root, record):
        source = open_record(root, record)
        if record.path == crashes:
            _abort()
        if record.path == hangs:
            read, last = source.read, source.num_frames - 1
            source.read = lambda indices: time.sleep(3600) if last in indices else read(indices)
        return source

    return opened


def test_the_all_frames_pass_fails_the_videos_a_decoder_hangs_or_crashes_on_and_keeps_the_rest(tiny_pipeline, monkeypatch, forked_workers):
    import stages.all_frames
    from pipeline.config import AllFramesConfig
    from stages.all_frames import run_all_frames
    from tests.test_all_frames import eval_videos

    features, _, truth = tiny_pipeline
    videos, _, manifest = eval_videos(features)
    cfg = AllFramesConfig(budget=3, seed=2)
    plain = run_all_frames(features, videos, truth.parent, cfg, torch.device("cpu"), workers=0, progress=False)
    shutil.rmtree(plain.path)
    hangs, crashes = manifest.videos[videos[1]].path, manifest.videos[videos[2]].path
    monkeypatch.setattr(stages.all_frames, "open_record", _hangs_reading_the_last_frame_or_crashes(stages.all_frames.open_record, hangs, crashes))
    monkeypatch.setattr(stages.all_frames, "CHUNK_FRAMES", 4)  # the hung video gives chunks before its last
    started = time.perf_counter()
    with pytest.raises(CacheError, match=r"2 evaluation video\(s\) could not be decoded") as failed:
        run_all_frames(features, videos, truth.parent, cfg, torch.device("cpu"), workers=1, progress=False, decode_timeout=2.0)
    assert time.perf_counter() - started < 60
    assert f"{truth.parent / hangs}: decoder hung (no frames after 2 s; re-encode the file to use it); {truth.parent / crashes}: decoder crashed (SIGABRT: its process died" in str(failed.value)
    status = np.asarray(zarr.open_group(str(plain.path), mode="r")["status"][:])
    assert status.tolist() == [FAILED if row in (1, 2) else DONE for row in range(len(videos))]
    monkeypatch.undo()
    again = run_all_frames(features, videos, truth.parent, cfg, torch.device("cpu"), workers=1, progress=False)
    assert again.computed == 2  # the two retried; the others were kept
    for name, scores in plain.scores.items():
        np.testing.assert_allclose(again.scores[name], scores, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(again.frames, plain.frames)


def test_the_decoded_path_fails_the_videos_a_decoder_hangs_or_crashes_on_and_recognizes_the_rest(tiny_pipeline, monkeypatch, forked_workers):
    import pipeline.recognition
    from pipeline.backends import TorchRunner
    from pipeline.config import FeaturesConfig
    from pipeline.datasets import Manifest
    from pipeline.models import frame_transform
    from conftest import recognize_all
    from pipeline.recognition import ChosenFrameDecoder
    from stages.features import build_recognizer

    features, _, truth = tiny_pipeline
    with FeatureCache(features) as cache:
        attrs, frame_ids = cache.attrs, np.asarray(cache["frame_indices"][:])
    manifest = Manifest.from_json(json.dumps(attrs["manifest"]))
    recognizer, data_cfg = build_recognizer(FeaturesConfig.from_dict(attrs["config"]), manifest.classes)
    runner, cpu = TorchRunner(recognizer, torch.device("cpu")), torch.device("cpu")
    records = list(manifest.videos[:6])
    decoder = ChosenFrameDecoder(truth.parent, records, [ids[[0, 2]] for ids in frame_ids[:6]], frame_transform(data_cfg))
    plain, none = recognize_all(decoder, runner, cpu, videos_per_batch=2, workers=0)
    decode = pipeline.recognition.decode_chosen

    def hangs_or_aborts(source, *args):  # forked into the decoding worker
        if source.path.name == Path(records[1].path).name:
            time.sleep(3600)
        if source.path.name == Path(records[4].path).name:
            _abort()
        return decode(source, *args)

    monkeypatch.setattr(pipeline.recognition, "decode_chosen", hangs_or_aborts)
    logits, errors = recognize_all(decoder, runner, cpu, videos_per_batch=2, workers=1, decode_timeout=2.0)
    assert none == {} and errors == {
        1: f"{truth.parent / records[1].path}: decoder hung (no frames after 2 s; re-encode the file to use it)",
        4: f"{truth.parent / records[4].path}: decoder crashed (SIGABRT: its process died on this file; re-encode it to use it)",
    }
    assert logits[1] is None and logits[4] is None
    for item in (0, 2, 3, 5):
        np.testing.assert_allclose(logits[item], plain[item], atol=1e-5)


def test_fine_tuning_leaves_out_the_videos_a_decoder_hangs_or_crashes_on(tiny_videos, run_options, monkeypatch, tmp_path, forked_workers):
    """Two training videos and a validation one fail in their decoders: each is left out for the
    rest of the run, and the weights are bit for bit those of a run where the three are missing
    (every item's frames and augmentation are seeded by its index, whichever loader gives it)."""
    import pipeline.training
    from pipeline.checkpoints import read_checkpoint
    from pipeline.config import FinetuneConfig, ModelSpec
    from pipeline.datasets import get_dataset
    from stages.finetune import run_finetune

    manifest = get_dataset("demo").load(tiny_videos)
    train = [v.path for v in manifest.videos if v.split == "train"]
    val = [v.path for v in manifest.videos if v.split != "train"]
    hangs, crashes, val_hangs = train[1], train[4], val[0]
    spec, ft = ModelSpec("test_resnet", weights="none", resolution=32), FinetuneConfig(segments=2, epochs=2, repeats=2, batch_size=4, lr=0.01, warmup_epochs=0, seed=3)
    open_record = pipeline.training.open_record  # what opens training and validation videos alike

    def stuck_or_dead(root, record):  # forked into the decoding workers
        if record.path in (hangs, val_hangs):
            time.sleep(3600)
        if record.path == crashes:
            _abort()
        return open_record(root, record)

    monkeypatch.setattr(pipeline.training, "open_record", stuck_or_dead)
    started = time.perf_counter()
    watched = run_finetune("demo", tiny_videos, "recognizer", spec, ft, 4, replace(run_options, workers=1, decode_timeout=2.0))
    assert time.perf_counter() - started < 120
    monkeypatch.undo()
    for path in (hangs, crashes, val_hangs):
        (tiny_videos / path).rename(tiny_videos / (path + ".away"))
    missing = run_finetune("demo", tiny_videos, "recognizer", spec, ft, 4, replace(run_options, cache_dir=tmp_path / "missing"))
    assert [(h["clips"], h["skipped"], h["videos"]) for h in watched.history] == [(2 * (len(train) - 2), 4, len(val) - 1)] * 2
    assert [{k: h[k] for k in ("loss", "top1", "mAP")} for h in watched.history] == [{k: h[k] for k in ("loss", "top1", "mAP")} for h in missing.history]
    a, b = read_checkpoint(watched.checkpoint)["state_dict"], read_checkpoint(missing.checkpoint)["state_dict"]
    assert all(torch.equal(a[key], b[key]) for key in a)
    hung, crashed = "decoder hung (no frames after 2 s; re-encode the file to use it)", "decoder crashed (SIGABRT: its process died on this file; re-encode it to use it)"
    assert watched.left_out == {"train": {hangs: hung, crashes: crashed}, "val": {val_hangs: hung}}
    assert missing.left_out == {"train": {hangs: "file not found", crashes: "file not found"}, "val": {val_hangs: "file not found"}}
    assert "left out of train: 2 video(s) that could not be read, by reason  decoder crashed 1, decoder hung 1  (each in left_out.json" in watched.table()
    assert json.loads((Path(watched.checkpoint).parent / "left_out.json").read_text()) == watched.left_out


def test_a_resumed_fine_tuning_does_not_read_the_videos_left_out_before(tiny_videos, run_options):
    """The videos a run left out are in its left_out.json: a run resumed in that folder leaves
    them out without reading them (a hung one would cost the timeout again)."""
    from pipeline.config import FinetuneConfig, ModelSpec
    from pipeline.datasets import get_dataset
    from stages.finetune import run_dir_for, run_finetune

    manifest = get_dataset("demo").load(tiny_videos)
    train = [v.path for v in manifest.videos if v.split == "train"]
    spec, ft = ModelSpec("test_resnet", weights="none", resolution=32), FinetuneConfig(segments=1, epochs=1, repeats=2, batch_size=4, lr=0.01, warmup_epochs=0, seed=3)
    run_dir, _ = run_dir_for("demo", manifest, "recognizer", spec, ft, 4, run_options)
    run_dir.mkdir(parents=True)
    (run_dir / "left_out.json").write_text(json.dumps({"train": {train[2]: "decoder hung (no frames after 900 s; re-encode the file to use it)"}, "val": {}}))
    result = run_finetune("demo", tiny_videos, "recognizer", spec, ft, 4, run_options)
    assert result.history[0]["clips"] == 2 * (len(train) - 1) and result.left_out["train"] == {train[2]: "decoder hung (no frames after 900 s; re-encode the file to use it)"}
    # the record damaged (a byte changed): the run reads the video again and goes on, where the
    # remedy said before was to remove the run
    shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "left_out.json").write_bytes(b"\xff" + json.dumps({"train": {train[2]: "decoder hung"}, "val": {}}).encode()[1:])
    with pytest.warns(RuntimeWarning, match=re.escape(f"{run_dir / 'left_out.json'}: damaged, not JSON ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte: a copy cut short, or a disk error): the videos it named are read again, as the run meets them")):
        again = run_finetune("demo", tiny_videos, "recognizer", spec, ft, 4, run_options)
    assert again.history[0]["clips"] == 2 * len(train) and again.left_out == {"train": {}, "val": {}} and json.loads((run_dir / "left_out.json").read_text()) == {"train": {}, "val": {}}
