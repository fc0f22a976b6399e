"""A feature cache in a folder this process cannot write (a lab's shared features, a read-only
mount): the later stages read it where it is, use what it holds finished, and write what they
make of it beside a link to it under their own ``--cache-dir``."""

import errno
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pipeline import file_rights, row_store, shared_caches
from pipeline.cache import CacheError, FeatureCache, file_lock, lock_holder
from pipeline.config import AllFramesConfig
from pipeline.datasets import get_dataset
from pipeline.file_rights import can_write_in
from pipeline.shared_caches import writable_place
from stages.cli import evaluation_inputs, latest_prototypes_file, latest_run_file, main, record_latest, resolve_run, resolve_sampler_inputs
from conftest import TINY_MODEL_OPTIONS, modes_bind_prefix
from stages.all_frames import fill_all_frames
from stages.train import run_train

REPO = Path(__file__).resolve().parents[1]


def _listing(folder: Path) -> dict[str, int]:
    """Every file and folder under ``folder`` with its modification time: what a stage wrote."""
    return {str(p.relative_to(folder)): p.lstat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture
def unwritable(monkeypatch):
    """Makes a folder one this process cannot write: mode 0o555 within, and, where the process
    is root, whom modes do not bind, the write check told so (an unwritten folder is then what a
    test shows); modes given back at the end."""
    made: list[Path] = []

    def make(folder: Path) -> None:
        real_check = file_rights.can_write_in
        check = lambda path: folder not in (path, *path.parents) and real_check(path)  # noqa: E731
        for module in (shared_caches, row_store, file_rights):  # where it is looked up
            monkeypatch.setattr(module, "can_write_in", check)
        made.extend([folder, *(p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink())])
        for each in made:
            each.chmod(0o555)

    yield make
    for each in made:
        each.chmod(0o755)


@pytest.fixture
def shared(tiny_pipeline, unwritable):
    """The tiny pipeline's cache folder (its feature cache, prototypes and a sampler run of one
    epoch) as a folder this process cannot write."""
    features, prototypes, truth = tiny_pipeline
    record_latest(latest_prototypes_file(features), prototypes)  # the shared folder's latest, as `nsnet prototypes` records it
    run_train(features, prototypes, replace(get_dataset("demo").train, epochs=1), progress=False)  # as `nsnet train --epochs 1` makes it
    unwritable(features.parent)
    return features, prototypes, truth


def test_the_stages_write_beside_a_link_to_a_cache_whose_folder_they_cannot_write(shared, tmp_path):
    """``nsnet prototypes`` and ``nsnet train`` given a cache in a folder they cannot write make
    a link to it in ``<--cache-dir>/<its dataset>/`` (once, warned) and write beside the link:
    nothing is written in the shared folder; what it holds finished under the name of an output
    (the same inputs) is used where it lies, its run's curves not drawn there; a run trained on
    the shared folder's own prototypes is recorded beside the link; the stages after take the
    link for either path (the prototypes made here the default, else the shared folder's
    latest), an evaluation given the run the prototypes it was trained on; ``nsnet outputs``
    says what the link names and lists what the shared folder holds under it, said so."""
    features, team_prototypes, truth = shared
    (team_run,) = features.parent.glob(features.name + ".train-*")
    before = _listing(features.parent)
    mine = tmp_path / "mine"
    link = mine / "demo" / features.name
    common = ["--features", str(features), "--cache-dir", str(mine), "--data-root", str(truth.parent), "--no-progress"]

    # the shared folder's latest prototypes are the default until prototypes are made here
    with pytest.warns(RuntimeWarning, match="made now"):
        assert resolve_sampler_inputs(mine, "demo", features, None) == (link, team_prototypes)
    assert link.is_symlink() and link.resolve() == features.resolve()
    found = CliRunner().invoke(main, ["prototypes", *common])  # the shared folder's, of the same parameters
    assert found.exit_code == 0 and found.output.startswith(f"prototypes      {team_prototypes}  (already there, nothing to do)"), found.output
    made = CliRunner().invoke(main, ["prototypes", *common, "--epsilon", "20"])
    assert made.exit_code == 0, made.output
    mine_prototypes = Path(latest_prototypes_file(link).read_text().strip())
    assert mine_prototypes.parent == link.parent.resolve() and mine_prototypes.name.startswith(features.name + ".prototypes-") and (mine_prototypes / "guides.npz").is_file()
    assert resolve_sampler_inputs(mine, "demo", features, None) == (link, mine_prototypes)

    train = ["train", *common, "--prototypes", str(team_prototypes), "--val-every", "0"]
    used = CliRunner().invoke(main, [*train, "--epochs", "1"])  # the shared folder's run: trained with these options
    assert used.exit_code == 0 and used.output.startswith(f"sampler run {team_run}  (0 epochs trained now)") and "curves " not in used.output, used.output
    assert Path(latest_run_file(team_prototypes, link).read_text().strip()) == team_run.resolve()
    trained = CliRunner().invoke(main, [*train, "--epochs", "2"])
    assert trained.exit_code == 0 and "(2 epochs trained now)" in trained.output, trained.output
    run = Path(latest_run_file(team_prototypes, link).read_text().strip())
    assert run.parent == link.parent.resolve() and (run / "model.pth").is_file() and (run / "curves.png").is_file()
    assert not latest_run_file(team_prototypes, team_prototypes).exists()
    assert resolve_run(link, team_prototypes, "demo", None) == run
    # an evaluation given the run takes the link beside it and the shared prototypes it was trained
    # on, with the shared path as --features too (the link's latest prototypes, mine, before)
    for given in (None, features):
        assert evaluation_inputs(mine, "demo", None, given, None, link.with_name(run.name), None)[:3] == (link, team_prototypes, link.with_name(run.name))
    assert _listing(features.parent) == before

    # the listing: the link's cache, what was made beside it, and under it what the shared folder
    # holds that the stages use where it lies, said so, the latest marked as the stages take them
    listed = CliRunner().invoke(main, ["outputs", "--dataset", "demo", "--cache-dir", str(mine)])
    assert listed.exit_code == 0 and listed.output.splitlines()[0].endswith(f"; a link to {features.resolve()}"), listed.output
    lines, there = listed.output.splitlines(), f"; in {features.resolve().parent}, used there"
    short = {path: path.name.split(".zarr.")[1] for path in (mine_prototypes, team_prototypes, team_run, run)}
    assert any(line.startswith(f"  {short[mine_prototypes]} (latest): prototype guide, ") and not line.endswith(there) for line in lines)
    assert any(line.startswith(f"  {short[team_prototypes]}: prototype guide, ") and line.endswith(there) for line in lines)
    assert any(line.startswith(f"    {short[team_run]}: 1 epoch, ") and line.endswith(there) for line in lines)
    assert any(line.startswith(f"    {short[run]} (latest): 2 epochs, ") and not line.endswith(there) for line in lines)


def test_an_evaluation_s_finished_decoding_in_the_shared_folder_is_read_where_it_lies(tiny_pipeline, unwritable, tmp_path):
    """The all-frames pass (hours at a dataset's size) finished in the shared folder for the same
    videos and settings is read there, without a lock, by the whole and by a --shard share
    (nothing to compute); other settings make their own store beside the link."""
    features, _, truth = tiny_pipeline
    with FeatureCache(features) as cache:
        videos = np.array([i for i, v in enumerate(cache.attrs["manifest"]["videos"]) if v["split"] != "train"])
    cfg = AllFramesConfig(budget=3, seed=2)
    team = fill_all_frames(features, videos, truth.parent, cfg, torch.device("cpu"), workers=0, progress=False)
    unwritable(features.parent)
    before = _listing(features.parent)
    with pytest.warns(RuntimeWarning, match="made now"):
        link = writable_place(features, tmp_path / "mine", "demo")
    used = fill_all_frames(link, videos, truth.parent, cfg, torch.device("cpu"), workers=0, progress=False)
    assert (used.path, used.computed, used.errors) == (team.path, 0, {}) and used.arrays.keys() == team.arrays.keys()
    assert all((used.arrays[name] == team.arrays[name]).all() for name in team.arrays)
    share = fill_all_frames(link, videos, truth.parent, cfg, torch.device("cpu"), workers=0, progress=False, share=(1, 2))
    assert (share.path, share.computed, share.arrays) == (team.path, 0, {})
    assert _listing(features.parent) == before
    other = fill_all_frames(link, videos, truth.parent, replace(cfg, budget=2), torch.device("cpu"), workers=0, progress=False)
    assert other.path.parent == link.parent and other.computed == len(videos)


def test_a_link_is_made_once_mended_when_its_cache_moved_and_never_put_over_another_store(shared, tmp_path, monkeypatch):
    """The link is made by the first stage (a warning naming both paths) and taken as it is by
    the next; one left naming where the shared cache lay before is made anew; a store of the
    same name already in its place (a copy of another cache) is an error naming both, and so are
    a ``--cache-dir`` that is the shared cache's own and a file system that makes no links."""
    features, _, _ = shared
    mine = tmp_path / "mine"
    link = mine / "demo" / features.name
    with pytest.warns(RuntimeWarning, match=f"{features}: its folder cannot be written here, so what this stage makes of it goes beside a link to it, {link} "):
        assert writable_place(features, mine, "ucf101") == link  # the cache's own dataset names the folder
    assert writable_place(features, mine, "demo") == link and os.readlink(link) == str(features.resolve())
    link.unlink()
    link.symlink_to(tmp_path / "gone" / features.name)  # where the shared cache lay before it moved
    with pytest.warns(RuntimeWarning, match="made now"):
        assert writable_place(features, mine, "demo") == link
    assert link.resolve() == features.resolve()
    link.unlink()
    shutil.copytree(features, link, symlinks=True)  # a store of the same name: not the shared one
    with pytest.raises(CacheError, match=f"{link}: holds another store than {features}, of the same name"):
        writable_place(features, mine, "demo")
    assert writable_place(features.parent / "nothing-here.zarr", mine, "demo") == features.parent / "nothing-here.zarr"  # named by its reader
    with pytest.raises(CacheError, match=f"{features}: its folder cannot be written here, and --cache-dir \\({features.parent.parent}\\) is the one it lies in; give a --cache-dir of yours"):
        writable_place(features, features.parent.parent, "demo")  # the shared folder's --cache-dir (a command run in its project)
    for copied in (link, *link.rglob("*")):  # the copy took the shared folder's modes, which bind a user who is not root
        copied.chmod(copied.stat().st_mode | 0o200)
    shutil.rmtree(link)
    refused = OSError(errno.EPERM, "Operation not permitted")

    def no_links(self, target, target_is_directory=False):  # as a FUSE or SMB mount answers
        raise refused

    monkeypatch.setattr(Path, "symlink_to", no_links)
    with pytest.raises(CacheError, match=f"{link}: no link to {features} can be made here \\(Operation not permitted\\), where its outputs would go, its own folder not writable here; give a --cache-dir on a file system that keeps links"):
        writable_place(features, mine, "demo")


def test_a_cache_in_a_writable_folder_is_used_where_it_is(tiny_pipeline, tmp_path, monkeypatch):
    """Where the folder takes a file, the cache is used where it is, the probe file gone; where
    the file system refuses one though the process's rights allow it (an NFS server mapping root
    to nobody), the folder is not writable."""
    features, _, _ = tiny_pipeline
    before = sorted(features.parent.iterdir())
    assert writable_place(features, tmp_path / "mine", "demo") == features and not (tmp_path / "mine").exists()
    assert sorted(features.parent.iterdir()) == before
    real_open = os.open

    def squashed(path, flags, *args, **kwargs):
        if Path(path).parent == features.parent:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", squashed)
    assert os.access(features.parent, os.W_OK) and not can_write_in(features.parent)


def test_prototypes_of_a_cache_in_a_folder_the_process_cannot_write(tiny_pipeline, tmp_path):
    """The same as a user without write access runs it: the file system's refusal, not a test's
    stand-in (as root, with the capability to override file modes dropped, setpriv's)."""
    features, _, truth = tiny_pipeline
    shared = features.parent
    prefix = modes_bind_prefix()
    if prefix:
        os.chown(shared, 65534, 65534)  # not the owner: its mode's other bits (r-x) bind
    shared.chmod(0o755 if prefix else 0o555)
    before = _listing(shared)
    mine = tmp_path / "mine"
    try:
        run = subprocess.run([*prefix, sys.executable, "-m", "stages.cli", "prototypes", "--features", str(features), "--cache-dir", str(mine), "--data-root", str(truth.parent), "--epsilon", "20", "--no-progress"],
                             cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        if prefix:
            os.chown(shared, 0, 0)
        shared.chmod(0o755)
    assert run.returncode == 0, run.stderr
    assert f"warning: {features}: its folder cannot be written here" in run.stderr
    assert run.stdout.startswith(f"prototypes      {mine / 'demo' / features.name}.prototypes-")
    assert _listing(shared) == before


def test_a_lock_file_is_made_group_writable_so_that_a_group_s_members_can_lock_it(tmp_path):
    """A group's shared cache folder with a umask of 022: a lock file made by one member was
    theirs alone to open for writing, and every other member's command stopped at it
    (``Permission denied``); it is made group-writable, its other bits as the umask left them."""
    before = os.umask(0o022)
    try:
        with file_lock(tmp_path / ".x.lock"):
            pass
    finally:
        os.umask(before)
    assert (tmp_path / ".x.lock").stat().st_mode & 0o777 == 0o664


def test_another_user_s_lock_file_is_locked_open_for_reading(tmp_path, monkeypatch):
    """A lock file another member made before (without group write) is opened for reading and
    locked where the file system allows it (a local disk, Lustre); where it locks only files
    open for writing (NFS), the error names the file and what its owner can do."""
    import fcntl

    lock = tmp_path / ".x.lock"
    lock.write_text("pid 1 on elsewhere")
    real_open = open

    def theirs(file, mode="r", *args, **kwargs):  # the file's mode 644 and another owner, as the OS refuses it
        if Path(file) == lock and mode != "r":
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("pipeline.cache.open", theirs, raising=False)
    with file_lock(lock):
        assert lock_holder(lock) is not None  # held: told by another open of it
    assert lock_holder(lock) is None and lock.read_text() == "pid 1 on elsewhere"  # not written

    def as_nfs(handle, operation, real=fcntl.flock):
        if operation & fcntl.LOCK_EX and not handle.writable():
            raise OSError(errno.EBADF, "Bad file descriptor")
        return real(handle, operation)

    monkeypatch.setattr("pipeline.cache.fcntl.flock", as_nfs)
    with pytest.raises(CacheError, match=f"{lock}: another user's lock file, which this process may read but not write, and this file system locks only files open for writing \\(NFS\\); ask its owner to `chmod g\\+w` it"):
        with file_lock(lock):
            pass



def test_the_features_stage_on_a_finished_cache_it_cannot_write_reads_it_in_place(tiny_videos, unwritable, tmp_path):
    """``nsnet features --cache <shared cache>`` (or a shared ``--cache-dir``): a run stopped at
    its first lock (``Permission denied``); where there is nothing to compute it says so, writes
    nothing there and records the cache for the later stages in a ``--cache-dir`` of one's own,
    ending as a run does where the cache holds failed videos (exit 1 without --allow-failures);
    where a video's file changed since, the error says what there is to compute and who can."""
    broken, changing = sorted((tiny_videos / "videos").glob("*.mp4"))[:2]
    broken.write_bytes(b"not a video")
    options = ["features", "--dataset", "demo", "--data-root", str(tiny_videos), "--workers", "0", "--backend", "torch", "--no-progress", "--allow-failures", *TINY_MODEL_OPTIONS]
    made = CliRunner().invoke(main, [*options, "--cache-dir", str(tmp_path / "team")])
    assert made.exit_code == 0 and "failed                      1" in made.output, made.output
    (store,) = (tmp_path / "team" / "demo").glob("features-*.zarr")
    args = [*options, "--cache", str(store)]
    unwritable(store.parent)
    before = _listing(store.parent)
    mine = tmp_path / "mine"
    with pytest.warns(RuntimeWarning, match="made now"):  # the link the later stages write beside
        refused = CliRunner().invoke(main, [*(a for a in args if a != "--allow-failures"), "--cache-dir", str(mine)])
    assert refused.exit_code == 1 and f"Error: 1 video(s) of the cache failed (see {store}.failures.jsonl); pass --allow-failures to accept" in refused.output, refused.output
    found = CliRunner().invoke(main, [*args, "--cache-dir", str(mine)])
    assert found.exit_code == 0 and found.output.rstrip().endswith("(the cache lies in a folder not written here, and has nothing to compute: read where it lies, nothing written there)"), found.output
    assert (mine / "demo" / "latest-features.txt").read_text() == f"{store.resolve()}\n" and _listing(store.parent) == before
    assert (mine / "demo" / store.name).resolve() == store.resolve()  # the link the later stages write beside, listed by `nsnet outputs`
    listed = CliRunner().invoke(main, ["outputs", "--dataset", "demo", "--cache-dir", str(mine)])
    assert listed.output.startswith(f"{store.name} (latest): ") and f"; a link to {store.resolve()}" in listed.output, listed.output
    with open(changing, "ab") as handle:  # the file changed since (root writes it where the test made modes bind others)
        handle.write(b"\0")
    changed = CliRunner().invoke(main, [*args, "--cache-dir", str(mine)])
    assert changed.exit_code == 1 and f"Error: {store}: its folder cannot be written here, and 1 video(s) to compute or copy in this share (`--dry-run` says which): its owner can run `nsnet features` on it" in changed.output, changed.output
    assert _listing(store.parent) == before
