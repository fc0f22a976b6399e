"""A group's shared cache folder, its members each writing with the common umask of 022: an
unfinished output one member began (a sampler run a preempted job left, a feature cache half
computed) is another's to go on with only where its files can be written. Refused before any
work, naming whose the output is and what to do (before: ``Permission denied`` at the first
write, after a shard's compute, or at the killed writer's leftovers)."""

import errno
import os
import pwd
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import TINY_MODEL_OPTIONS, kill_while_logging, modes_bind_prefix
from pipeline import row_store
from pipeline.cache import CacheError, FeatureCache
from pipeline.file_rights import first_unwritable, owner_said
from stages.cli import file_error_line, main

REPO = Path(__file__).resolve().parents[1]
OTHER_UID = 65534


class AnotherMember:
    """Leaves an output as a member who is not this process made it under a umask of 022, and runs
    commands as this process's user: as root, the output is uid 65534's (group root, folders 755
    and files 644) and the commands run without the capabilities that override file modes
    (setpriv's), so that the file system itself refuses; as another user, the output stays this
    user's own, without write (555 and 444)."""

    def __init__(self) -> None:
        self.prefix = modes_bind_prefix()
        self.root = bool(self.prefix)
        self.owner = self._owner_name() if self.root else None

    @staticmethod
    def _owner_name() -> str:
        try:
            return pwd.getpwuid(OTHER_UID).pw_name
        except KeyError:
            return f"uid {OTHER_UID}"

    def said(self, mode: int) -> str:
        """How the error names a folder or file of the output, its ``mode`` as made."""
        return f"{self.owner}'s, mode {mode:o}" if self.root else f"this user's own, mode {mode & 0o555:o}"

    def make(self, *outputs: Path) -> None:
        for output in outputs:
            for path in (output, *output.rglob("*")):
                if self.root:
                    os.chown(path, OTHER_UID, 0, follow_symlinks=False)
                    path.chmod(0o755 if path.is_dir() else 0o644)
                else:
                    path.chmod(0o555 if path.is_dir() else 0o444)

    def hide(self, path: Path, mode: int) -> str:
        """``path`` left as another member made it under a umask of 077 (``mode``; as another
        user, this user's own without any rights); how the listing names it."""
        if self.root:
            os.chown(path, OTHER_UID, 0)
            path.chmod(mode)
            return f"{self.owner}'s, mode {mode:o}"
        path.chmod(0)
        return "this user's own, mode 0"

    def give(self, *outputs: Path) -> None:
        """What the owner runs to let the group go on: ``chmod -R g+w`` (its own ``u+w`` as
        another user)."""
        for output in outputs:
            for path in (output, *output.rglob("*")):
                path.chmod(path.stat().st_mode | (0o020 if self.root else 0o200))

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, sys.executable, "-m", "stages.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})

    def done(self, *outputs: Path) -> None:
        """Everything back as this process's, writable, for the test's cleanup."""
        for output in outputs:
            for path in (output, *output.rglob("*")):
                if self.root:
                    os.chown(path, 0, 0, follow_symlinks=False)
                path.chmod(path.stat().st_mode | 0o200)


@pytest.fixture
def member():
    made = AnotherMember()
    yield made


def _error(run: subprocess.CompletedProcess) -> str:
    """The CLI's error line of a run (libraries' warnings at import may come before it)."""
    return next((line for line in run.stderr.splitlines() if line.startswith("Error: ")), "")


def _listing(folder: Path) -> dict[str, int]:
    """Every file and folder under ``folder`` with its modification time, the lock files (each
    command's holder line written into them) aside."""
    return {str(p.relative_to(folder)): p.lstat().st_mtime_ns for p in folder.rglob("*") if not p.name.endswith(".lock")}


def test_a_sampler_run_another_member_began_is_refused_before_training_and_goes_on_once_given(tiny_pipeline, member, monkeypatch):
    """The run a member's job left after two epochs of three: another member's `nsnet train` stopped
    at its files (``last.pth: Permission denied``, after the inputs were loaded); it stops at once
    naming the run, whose it is and the owner's `chmod -R g+w`, writing nothing; once given, it
    resumes the run where it stopped, and what the owner's killed writer left beside the run,
    which it cannot remove, stays with a warning."""
    features, prototypes, _ = tiny_pipeline
    args = ["train", "--features", str(features), "--prototypes", str(prototypes), "--epochs", "3", "--seed", "3", "--val-every", "0", "--device", "cpu", "--no-progress"]
    with monkeypatch.context() as patched:
        kill_while_logging(patched, 2)
        killed = CliRunner().invoke(main, args)
    assert killed.exit_code == 1, killed.output
    (run_dir,) = features.parent.glob(f"{features.name}.train-*")
    assert torch.load(run_dir / "last.pth", weights_only=False)["epoch"] == 1 and not (run_dir / "model.pth").exists()  # two epochs of three
    leftover = run_dir.with_name(run_dir.name + ".4321.tmp")  # a killed writer's, beside the run
    (leftover / "part").mkdir(parents=True)
    member.make(run_dir, leftover)
    before = _listing(features.parent)
    try:
        refused = member.run(*args)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert _error(refused).startswith(f"Error: {run_dir}: unfinished, {member.said(0o755)}, which this process cannot write and this command goes on with; run it as the owner, or again once the owner has run `chmod -R g+w {run_dir}`"), refused.stderr
        assert _error(refused).endswith("stopped before computing anything") and _listing(features.parent) == before
        member.give(run_dir)
        resumed = member.run(*args)
        assert resumed.returncode == 0 and resumed.stdout.startswith(f"sampler run {run_dir}  (1 epochs trained now)"), resumed.stdout + resumed.stderr
        assert f"warning: {leftover}: what a killed writer left ({member.said(0o755)}), which this process cannot remove, is left there for its owner to remove" in resumed.stderr, resumed.stderr
        assert (run_dir / "model.pth").is_file() and leftover.is_dir()
    finally:
        member.done(run_dir, leftover)


def test_a_feature_cache_another_member_half_computed_is_refused_before_any_video(tiny_videos, member, tmp_path):
    """A feature cache a member's `--shard 0/2` job left half computed: another member's run
    of the whole stopped at its lock file in the store (``Permission denied``; a store the
    member's whole run left, after computing a shard's videos, at the shard file, the videos
    lost); it stops before decoding a video, naming the store and its failures folder for the
    owner's `chmod -R g+w`; once given, it computes the videos left and no more."""
    options = ["features", "--dataset", "demo", "--data-root", str(tiny_videos), "--cache-dir", str(tmp_path / "team"), "--videos-per-batch", "2", "--videos-per-shard", "2", "--workers", "0", "--backend", "torch", "--no-progress", *TINY_MODEL_OPTIONS]
    half = CliRunner().invoke(main, [*options, "--shard", "0/2"])
    assert half.exit_code == 0, half.output
    (store,) = (tmp_path / "team" / "demo").glob("features-*.zarr")
    failures = store.with_name(store.name + ".failures.d")
    with FeatureCache(store) as cache:
        status = np.asarray(cache["status"][:])
    assert 0 < (status == 1).sum() < len(status)
    member.make(store, failures)
    before = _listing(store.parent)
    try:
        refused = member.run(*options)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"Error: {store}: unfinished, {member.said(0o755)}, which this process cannot write and this command goes on with; run it as the owner, or again once the owner has run `chmod -R g+w {store} {failures}`" in refused.stderr, refused.stderr
        assert _listing(store.parent) == before
        member.give(store, failures)
        finished = member.run(*options)
        assert finished.returncode == 0, finished.stdout + finished.stderr
        assert f"computed this run           {int((status != 1).sum())}\n" in finished.stdout and "done / pending              %d / 0" % len(status) in finished.stdout, finished.stdout
    finally:
        member.done(store, failures)


def test_first_unwritable_finds_a_file_within_and_leaves_out_locks_and_links(tmp_path, monkeypatch):
    """The walk's own logic, this process's rights told (``_can_write``): the first file or
    folder refused, in an output's folders; lock files (opened for reading where they cannot
    be written) and links (not written through) not asked; an output not there none; a folder
    that cannot be listed refused."""
    from pipeline import file_rights

    output = tmp_path / "run"
    (output / "c").mkdir(parents=True)
    for name in ("c/0", "c/1", "shard.lock"):
        (output / name).write_bytes(b"x")
    (output / "elsewhere").symlink_to(tmp_path)
    refused = {output / "c" / "1", output / "shard.lock", output / "elsewhere"}
    asked: list[Path] = []
    monkeypatch.setattr(file_rights, "_can_write", lambda path, found: asked.append(path) or path not in refused)
    assert first_unwritable([tmp_path / "none", output]) == output / "c" / "1"
    assert output / "shard.lock" not in asked and output / "elsewhere" not in asked
    refused.discard(output / "c" / "1")
    assert first_unwritable([output]) is None
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: (_ for _ in ()).throw(PermissionError(errno.EACCES, "Permission denied", path)) if Path(path) == output / "c" else real_scandir(path))
    assert first_unwritable([output]) == output / "c"


def test_a_refused_file_is_said_with_whose_it_is(tmp_path):
    """The CLI's line for a file system's refusal names whose the file is and its mode (of its
    folder, where the file was to be made; neither for a bare name not there): the cause in a
    group's shared folder."""
    made = tmp_path / "log.jsonl"
    made.write_text("")
    made.chmod(0o640)
    if os.geteuid() == 0:
        os.chown(made, OTHER_UID, 0)
    owner = f"{AnotherMember._owner_name()}'s" if os.geteuid() == 0 else "this user's own"
    assert file_error_line(PermissionError(errno.EACCES, "Permission denied", str(made))) == f"{made}: Permission denied ({owner}, mode 640)"
    assert file_error_line(PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "new.json"))) == f"{tmp_path / 'new.json'}: Permission denied (its folder {owner_said(tmp_path)})"
    assert file_error_line(FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "x"))) == f"{tmp_path / 'x'}: No such file or directory"
    assert file_error_line(PermissionError(errno.EACCES, "Permission denied", "no-such-part")) == "no-such-part: Permission denied"  # shutil.rmtree's bare name within a folder: not the current folder's


def test_a_row_store_another_member_began_is_refused_before_its_rows_are_computed(tmp_path, monkeypatch):
    """An all-frames or decoded-rows store filled row by row: where it cannot be written, the
    error comes before the computer is made (a model loaded, videos decoded)."""
    from pipeline.cache import PENDING

    path = tmp_path / "rows.zarr"
    arrays = {"status": ((4,), "int8"), "x": ((4, 2), "float32")}
    made: list[int] = []

    def computer():
        made.append(1)
        return lambda rows: ((row, {"x": np.ones(2, np.float32)}) for row in rows)

    monkeypatch.setattr("pipeline.cache.first_unwritable", lambda outputs: path / "zarr.json")  # made with the store, before its rows
    with pytest.raises(CacheError, match=f"^{path / 'zarr.json'}: .*, in {path}, unfinished, which this process cannot write"):
        row_store.fill_rows(path, "fp", {}, arrays, computer, progress=False)
    assert made == [] and (np.asarray(row_store.ZarrWriter(path, "fp", {}, arrays, 4).status()) == PENDING).all()


def test_a_model_without_an_export_in_another_member_s_exports_folder_says_to_give_one_s_own(tiny_videos, member, tmp_path):
    """The ONNX exports' folder of a group's shared ``--cache-dir`` (``<cache-dir>/onnx``), made
    by a member under a umask of 022, has no export of the model another member runs: it stopped
    at the export's lock file (``Permission denied``); the error says whose the folder is and to
    give ``--onnx-dir`` a folder of one's own, or ``--backend torch``."""
    exports = tmp_path / "team" / "onnx"
    exports.mkdir(parents=True)
    member.make(exports)
    options = ["features", "--dataset", "demo", "--data-root", str(tiny_videos), "--cache-dir", str(tmp_path / "mine"), "--onnx-dir", str(exports), "--workers", "0", "--backend", "onnxruntime", "--no-progress", *TINY_MODEL_OPTIONS]
    try:
        refused = member.run(*options)
    finally:
        member.done(exports)
    assert refused.returncode == 1 and _error(refused).startswith(f"Error: {exports}: no export of test_efficientnet for these weights and input size in this folder of ONNX exports, {member.said(0o755)}, which this process cannot write (a group's shared --cache-dir); give --onnx-dir a folder of yours, or run again once its owner has run `chmod g+w {exports}`, or run with --backend torch"), refused.stderr
    assert list(exports.iterdir()) == []


def test_predictions_another_member_wrote_say_to_give_out_a_folder_of_one_s_own(tiny_pipeline, member, tmp_path, onnx_exports):
    """Predict goes on from the predictions in ``--out``, by default ``<cache-dir>/predict``,
    one for all the members of a group sharing a ``--cache-dir``: where another member's are
    there, which this process cannot write, it stopped at ``predictions.jsonl: Permission
    denied``; it says whose they are and to give ``--out`` a folder of one's own, before the
    run is loaded."""
    from pipeline.config import TrainConfig
    from stages.train import run_train

    features, prototypes, truth = tiny_pipeline
    run = Path(run_train(features, prototypes, TrainConfig(epochs=1, batch_size=4, seed=1), progress=False).path)
    team = tmp_path / "team"
    args = ["predict", str(next((truth.parent / "videos").glob("*.mp4"))), "--run", str(run), "--out", str(team), "--k", "2", "--workers", "0", "--device", "cpu", "--onnx-dir", str(onnx_exports), "--no-progress"]
    made = CliRunner().invoke(main, args)
    assert made.exit_code == 0, made.output
    member.make(team)
    before = _listing(team)
    try:
        refused = member.run(*args)
    finally:
        member.done(team)
    assert refused.returncode == 1 and _error(refused).startswith(f"Error: {team}: {member.said(0o755)}, which this process cannot write, and predict goes on from the predictions in {team}; give --out a folder of yours"), refused.stderr
    assert _listing(team) == before


def test_outputs_another_member_keeps_private_are_listed_as_not_readable_here(tiny_pipeline, member):
    """``nsnet outputs`` in a group's shared folder where a member's sampler run is theirs alone
    (umask 077): the listing stopped at its first record (``Permission denied``), and a record
    another member cannot read was said damaged, to be removed; each is listed as not readable
    here, with whose it is, and the rest as before."""
    from pipeline.config import TrainConfig
    from stages.train import run_train

    features, prototypes, _ = tiny_pipeline
    hidden, unread = (Path(run_train(features, prototypes, TrainConfig(epochs=epochs, batch_size=4, seed=1), progress=False).path) for epochs in (1, 2))
    args = ["outputs", "--dataset", "demo", "--cache-dir", str(features.parent.parent)]
    short = {path: path.name[len(features.name) + 1 :] for path in (hidden, unread, prototypes)}  # as the listing names them, under their cache
    mine = CliRunner().invoke(main, args)
    assert mine.exit_code == 0 and f"    {short[hidden]}: 1 epoch, " in mine.output and f"    {short[unread]}: 2 epochs, " in mine.output, mine.output
    try:
        said = {hidden: member.hide(hidden, 0o700), unread: member.hide(unread / "metrics.json", 0o600)}
        listed = member.run(*args)
    finally:
        member.done(hidden, unread)
    assert listed.returncode == 0, listed.stderr
    assert f"  {short[hidden]}: not readable here ({said[hidden]})\n" in listed.stdout and f"  {short[unread]}: its metrics.json not readable here ({said[unread]})\n" in listed.stdout, listed.stdout
    assert f"  {short[prototypes]}: prototype guide" in listed.stdout and "damaged" not in listed.stdout


def test_a_sibling_cache_another_member_keeps_to_themselves_is_said_and_its_videos_computed(tiny_videos, member, tmp_path):
    """A member's feature cache of the same models, kept to themselves (umask 077), beside the
    cache another member computes in another storage: its videos were computed again without a
    word (a copy from it takes seconds where computing takes hours); the run warns, naming whose
    it is and the owner's ``chmod -R g+rX``, and computes them; ``outputs --verify`` says it is
    not verified and checks the rest."""
    options = ["features", "--dataset", "demo", "--data-root", str(tiny_videos), "--cache-dir", str(tmp_path / "team"), "--workers", "0", "--backend", "torch", "--no-progress", *TINY_MODEL_OPTIONS]
    made = CliRunner().invoke(main, options)
    assert made.exit_code == 0, made.output
    (theirs,) = (tmp_path / "team" / "demo").glob("features-*.zarr")
    try:
        said = member.hide(theirs, 0o700)
        computed = member.run(*options, "--storage", "hdf5")
        verified = member.run("outputs", "--dataset", "demo", "--cache-dir", str(tmp_path / "team"), "--verify", "--no-progress")
    finally:
        member.done(theirs)
    assert computed.returncode == 0, computed.stdout + computed.stderr
    # `outputs --verify` says it did not verify the cache it cannot read (it stopped at its zarr.json: Permission denied)
    assert verified.returncode == 0 and f"not verified {theirs.name}: not readable here ({said})\n" in verified.stdout and f"verified {theirs.with_suffix('.h5').name}: every chunk read whole" in verified.stdout, verified.stdout + verified.stderr
    assert f"warning: {theirs}: a feature cache not readable here ({said}); what it may hold of this run's videos is computed, not copied from it (its owner can `chmod -R g+rX {theirs}`)" in computed.stderr, computed.stderr
    assert "computed this run           12\n" in computed.stdout and "copied from sibling caches" not in computed.stdout, computed.stdout


def test_beginning_a_run_in_a_group_s_folder_under_a_umask_of_022_warns_once(tiny_pipeline):
    """A sampler run begun in a folder its group writes, by a process whose umask takes group
    write away (022): the other members could not go on with it had the process stopped, found
    only then; the warning says so once a folder, and nothing is said under 002."""
    import grp
    import warnings

    from pipeline.config import TrainConfig
    from pipeline.file_rights import warn_if_kept_from_the_group
    from stages.train import run_train

    features, prototypes, _ = tiny_pipeline
    folder = features.parent
    folder.chmod(0o2775)
    group = grp.getgrgid(folder.stat().st_gid).gr_name
    warn_if_kept_from_the_group.cache_clear()
    before = os.umask(0o022)
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            for epochs in (1, 2):
                run_train(features, prototypes, TrainConfig(epochs=epochs, batch_size=4, seed=1), progress=False)
        os.umask(0o002)
        warn_if_kept_from_the_group.cache_clear()
        with warnings.catch_warnings(record=True) as quiet:
            warnings.simplefilter("always")
            run_train(features, prototypes, TrainConfig(epochs=3, batch_size=4, seed=1), progress=False)
    finally:
        os.umask(before)
        warn_if_kept_from_the_group.cache_clear()
        folder.chmod(0o755)
    kept = [w for w in said if "a folder its group writes" in str(w.message)]
    assert [str(w.message) for w in kept] == [f"{folder}: a folder its group writes (group {group}, mode 2775), where this process's umask, 022, keeps what it begins from the other members: none of them can go on with it if this command stops; `umask 002` before it lets them"]
    assert kept[0].filename.endswith(str(Path("pipeline") / "cache.py"))  # the toolkit's line, which the CLI prints as `warning: ...`
    assert not [w for w in quiet if "a folder its group writes" in str(w.message)]


def test_a_file_gone_while_looked_at_is_not_refused_nor_made(tmp_path, monkeypatch):
    """A writer sharing the store renames its temporary files while the look walks it: a file
    gone between the listing and the look is not the one refused, and the look, which opens
    files to append, makes none."""
    from pipeline import file_rights

    output = tmp_path / "store"
    output.mkdir()
    gone = output / "c.0.partial"
    gone.write_bytes(b"x")
    real = file_rights._can_write

    def renamed_meanwhile(path, found):
        if path == gone:
            gone.unlink()
        return real(path, found)

    monkeypatch.setattr(file_rights, "_can_write", renamed_meanwhile)
    assert first_unwritable([output]) is None and not gone.exists()
