"""``nsnet outputs``: a dataset's caches and what was made from each, said by what they hold."""

import json
import re
import shutil
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import flip_byte
from pipeline.cache import REPAIR_FEATURES, FeatureCache, clear_partials, file_lock, found_beside, is_partial, output_lock_path, read_pointer, settled_path, write_text_alone
from pipeline.config import EvalConfig, FinetuneConfig, ModelSpec
from stages.cli import latest_features_file, latest_prototypes_file, main, record_latest, resolve_run, resolve_sampler_inputs
from stages.evaluate import run_evaluate
from stages.finetune import run_finetune


def test_outputs_tells_each_cache_and_what_was_made_from_it(tiny_pipeline, run_options, tmp_path):
    """The cache's models and finished videos (the default of a preset's stages marked); under it
    the prototypes (the latest marked),
    under them the sampler runs trained on them (epochs and objectives, the latest marked), under
    each run its evaluations (split, K, the headline mAPs, as in its results.json); a run cut
    short says so from its log. No cache: one line saying where none was found."""
    features, prototypes, truth = tiny_pipeline
    train = ["train", "--dataset", "demo", "--data-root", str(truth.parent), "--features", str(features), "--prototypes", str(prototypes), "--epochs", "1", "--no-progress"]
    for target in ("video", "ns"):  # the second is the latest
        result = CliRunner().invoke(main, [*train, "--fsm-target", target])
        assert result.exit_code == 0, result.output
    run = Path((prototypes.with_name(prototypes.name + ".latest-run.txt")).read_text().strip())
    report = run_evaluate(features, prototypes, run, truth.parent, EvalConfig(k=2, curve_k=(2,), all_frames=False), workers=0, progress=False, nsnet_from_cache=True)
    maps = {row["method"]: row["map"] for row in report["methods"]}
    cut_short = features.with_name(features.name + ".train-0123456789abcdef")
    cut_short.mkdir()
    (cut_short / "log.jsonl").write_bytes(b'{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3, "lr": "\xff')  # a line cut short, a byte no UTF-8 (a UnicodeDecodeError before 2026-12-07)
    (features.parent / "latest-features-table1.txt").write_text(f"{features}\n")  # as `nsnet features --preset table1` records it
    partial = features.with_name(features.name + ".prototypes-0123456789abcdef.4242.tmp")  # a writer's, at work or killed
    partial.mkdir()

    listing = CliRunner().invoke(main, ["outputs", "--dataset", "demo", "--cache-dir", str(run_options.cache_dir), "--json", str(tmp_path / "outputs.json")])
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    (cache,) = json.loads((tmp_path / "outputs.json").read_text())["caches"]
    assert (cache["path"], cache["latest"]) == (str(features), "latest of --preset table1") and cache["made_from_it"][0]["path"] == str(prototypes)
    assert {run["path"]: [e["path"] for e in run["made_from_it"]] for run in cache["made_from_it"][0]["made_from_it"]}[str(run)] == [report["output"]]
    with FeatureCache(features) as cache:
        t, videos = cache.attrs["config"]["num_frames"], cache["status"].shape[0]
    assert lines[0].startswith(f"{features.name} (latest of --preset table1): T={t}, test_efficientnet @32 (none) + test_resnet @32 (none), zarr; {videos} of {videos} videos done, 0 failed; ")
    trained_on = json.loads((prototypes / "info.json").read_text())["train_videos"]
    assert lines[1] == f"  {prototypes.name.split('.zarr.')[1]}: prototype guide, {trained_on} training videos"
    assert not any(partial.name.split(".zarr.")[1] in line for line in lines)
    runs = [line for line in lines if line.lstrip().startswith("train-")]
    # each run's last validation while training (`nsnet train` validates after its last epoch)
    validated = json.loads((run / "metrics.json").read_text())["history"][-1]
    run_line = f"    {run.name.split('.zarr.')[1]} (latest): 1 epoch, FSM ns, VGM ns, FEM transformer, gamma 0.2; val mAP at K=5, epoch 1: NSNet {validated['val_map']:.1f}, UNIFORM {validated['val_uniform_map']:.1f}"
    assert run_line in runs
    assert any(line.startswith("    train-") and ": 1 epoch, FSM video, VGM ns, FEM transformer, gamma 0.2; val mAP at K=5, epoch 1: NSNet " in line for line in runs)
    assert any(line.startswith("    train-") and line.endswith(": 1 epoch, FSM video, VGM video, FEM transformer, gamma 0.2") for line in runs)  # evaluate's w/o-NS run: no validation
    evaluation = f"      {Path(report['output']).name.split('.zarr.')[1]}: {report['videos']} val videos, K=2 union: NSNet {maps['NSNet (K=2)']:.1f}, UNIFORM {maps['UNIFORM (K=2)']:.1f}, DENSE(T={t}) {maps[f'DENSE (T={t})']:.1f} mAP"
    assert lines[lines.index(run_line) + 1] == evaluation
    assert "  train-0123456789abcdef: unfinished: 2 epochs so far" in lines  # its prototypes not known until it finishes
    assert json.loads((run / "metrics.json").read_text())["prototypes"] == str(prototypes)
    empty = CliRunner().invoke(main, ["outputs", "--dataset", "ucf101", "--cache-dir", str(tmp_path / "none")])
    assert empty.exit_code == 0 and empty.output == f"no feature cache in {tmp_path / 'none' / 'ucf101'}\n"
    latest_run = prototypes.with_name(prototypes.name + ".latest-run.txt")
    latest_run.write_bytes(b"\xff" + latest_run.read_bytes()[1:])  # a byte damaged: the listing goes on, the run no longer marked
    with pytest.warns(RuntimeWarning, match=re.escape(f"{latest_run}: damaged, names no output ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte); remove it")):
        damaged = CliRunner().invoke(main, ["outputs", "--dataset", "demo", "--cache-dir", str(run_options.cache_dir)])
    assert damaged.exit_code == 0 and run_line.replace(" (latest)", "") in damaged.output.splitlines()
    # records damaged (a byte changed): said of each output, where they read as none before 2026-12-07
    # (a guide of "?", the run "unfinished", the evaluation left out); --verify counts them
    for record in (prototypes / "info.json", run / "metrics.json", Path(report["output"]) / "results.json"):
        flip_byte(record, 0)
    with pytest.warns(RuntimeWarning):  # the pointer, still damaged
        said = CliRunner().invoke(main, ["outputs", "--dataset", "demo", "--cache-dir", str(run_options.cache_dir), "--verify", "--no-progress"])
    lines = said.output.splitlines()
    eval_name = Path(report["output"]).name.split(".zarr.")[1]
    assert said.exit_code == 1 and lines[1] == f"  {prototypes.name.split('.zarr.')[1]}: its info.json is damaged: remove {prototypes} and run `nsnet prototypes` again"
    assert f"  {run.name.split('.zarr.')[1]}: 1 epoch logged; its metrics.json is damaged: its heads stand (`nsnet train` warns of it and uses them)" in lines  # its prototypes unknown
    assert f"  {eval_name}: its results.json is damaged: remove {report['output']} and run `nsnet evaluate` again" in lines  # what it was made from is not known
    assert lines[-4:] == ["3 output(s) with a damaged JSON record:", f"  {prototypes}: {lines[1].split(': ', 1)[1]}", f"  {run}: 1 epoch logged; its metrics.json is damaged: its heads stand (`nsnet train` warns of it and uses them)", f"  {report['output']}: its results.json is damaged: remove {report['output']} and run `nsnet evaluate` again"]


def test_a_cache_folder_moved_elsewhere_keeps_its_defaults_and_its_tree(tiny_pipeline, run_options, tmp_path):
    """A dataset's cache folder moved (a scratch disk's purge, a copy for another machine, one file
    system mounted at another path on another node): its pointers and the paths its outputs wrote
    down name the old place; each output is found by its name beside them, so the later stages'
    defaults and ``nsnet outputs`` read the moved folder as they read it before (before
    2026-12-07, fifty-first session: ``<old path>: no feature cache here``, and the tree lost its
    latest marks and runs)."""
    features, prototypes, truth = tiny_pipeline
    cache_dir = run_options.cache_dir
    record_latest(latest_features_file(cache_dir, "demo"), features)  # as `nsnet features` and `nsnet prototypes` record them
    record_latest(latest_prototypes_file(features), prototypes)
    trained = CliRunner().invoke(main, ["train", "--dataset", "demo", "--data-root", str(truth.parent), "--cache-dir", str(cache_dir), "--epochs", "1", "--val-every", "0", "--no-progress"])
    assert trained.exit_code == 0, trained.output
    run = resolve_run(features, prototypes, "demo", None)
    cfg = EvalConfig(k=2, curve_k=(2,), all_frames=False)
    evaluated = Path(run_evaluate(features, prototypes, run, truth.parent, cfg, workers=0, progress=False, nsnet_from_cache=True)["output"])
    listed = CliRunner().invoke(main, ["outputs", "--dataset", "demo", "--cache-dir", str(cache_dir)]).output
    assert f"    {run.name.split('.zarr.')[1]} (latest): " in listed  # the run, under its prototypes
    moved = tmp_path / "moved"
    shutil.move(cache_dir, moved)
    assert CliRunner().invoke(main, ["outputs", "--dataset", "demo", "--cache-dir", str(moved)]).output == listed
    here = moved / "demo"
    assert resolve_sampler_inputs(moved, "demo", None, None) == (here / features.name, here / prototypes.name)
    assert resolve_run(here / features.name, here / prototypes.name, "demo", None) == here / run.name
    again = run_evaluate(here / features.name, here / prototypes.name, here / run.name, truth.parent, cfg, workers=0, progress=False, nsnet_from_cache=True)
    assert not again["computed"] and again["output"] == str(here / evaluated.name)  # where its report lies now (the old place's before the fifty-eighth session)


def test_a_recorded_path_is_taken_where_it_is_else_by_its_tail_beside(tmp_path):
    old, folder = tmp_path / "old", tmp_path / "new"
    (old / "a.zarr").mkdir(parents=True)
    folder.mkdir()
    (folder / "latest.txt").write_text(f"{old / 'a.zarr'}\n")
    assert read_pointer(folder / "latest.txt") == old / "a.zarr"  # there: taken, whatever lies beside
    (folder / "a.zarr").mkdir()
    assert read_pointer(folder / "latest.txt") == old / "a.zarr"
    (old / "a.zarr").rmdir()
    assert read_pointer(folder / "latest.txt") == folder / "a.zarr"
    assert found_beside(old / "b.zarr", folder) == old / "b.zarr"  # nowhere: the path written, for the error to name
    (folder / "finetune" / "r").mkdir(parents=True)
    for path in (folder / "finetune" / "r" / "m.pth", folder / "m.pth"):
        path.write_bytes(b"")
    assert found_beside(old / "finetune" / "r" / "m.pth", folder) == folder / "finetune" / "r" / "m.pth"  # the longest tail there


@pytest.mark.parametrize(("name", "partial"), [("f.zarr.prototypes-ab.4242.tmp", True), ("f.zarr.latest-run.txt.17.tmp", True), ("f.zarr.eval-ab", False), ("notes.tmp", False), ("f.zarr.train-ab.x1.tmp", False), (".4242.tmp", False)])
def test_a_partial_output_is_named_by_its_writer_s_process(name, partial):
    """What :func:`pipeline.cache.written_whole` and :func:`replacing` write before the rename,
    ``<output>.<pid>.tmp``, and nothing else, is a partial that ``nsnet outputs`` passes over."""
    assert is_partial(Path(name)) is partial


def test_a_partial_path_is_named_as_the_output_it_becomes():
    assert settled_path(Path("/c/f.zarr.eval-ab.4242.tmp/budget_curve.png")) == Path("/c/f.zarr.eval-ab/budget_curve.png")
    assert settled_path(Path("run/curves.png.17.tmp")) == Path("run/curves.png")
    assert settled_path(Path("run/notes.tmp/x.1.png")) == Path("run/notes.tmp/x.1.png")  # no writer's partial in it


def test_clearing_an_outputs_partials_leaves_those_of_the_files_named_after_it(tmp_path):
    """An HDF5 export clears what killed exports left, ``<cache>.h5.<pid>.tmp``; the partials of the
    cache's summary and failures list, which other runs may be writing that moment, stay (before
    2026-12-07 its pattern took them too, and such a writer's rename failed)."""
    final = tmp_path / "f.h5"
    for name in ("f.h5.4242.tmp", "f.h5.summary.json.4242.tmp", "f.h5.staging.zarr.failures.jsonl.17.tmp", "f.h5.x1.tmp"):
        (tmp_path / name).write_text("{")
    (tmp_path / "f.h5.77.tmp").mkdir()  # a folder written whole, killed
    clear_partials(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5.staging.zarr.failures.jsonl.17.tmp", "f.h5.summary.json.4242.tmp", "f.h5.x1.tmp"]


def test_a_small_file_written_alone_clears_what_killed_writers_left_and_waits_for_its_lock(tmp_path):
    path = tmp_path / "f.zarr.summary.json"
    left = path.with_name(path.name + ".99999999.tmp")
    left.write_text("{")
    write_text_alone(path, "first")
    assert path.read_text() == "first" and not left.exists() and output_lock_path(path).is_file()
    with file_lock(output_lock_path(path)):  # another writer at work
        second = threading.Thread(target=write_text_alone, args=(path, "second"))
        second.start()
        second.join(timeout=0.5)
        assert second.is_alive() and path.read_text() == "first"
    second.join(timeout=10)
    assert not second.is_alive() and path.read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".f.zarr.summary.json.lock", "f.zarr.summary.json"]


def test_outputs_lists_the_fine_tuning_runs(tiny_videos, run_options):
    """A fine-tuning run: its model, resolution, initial weights, segments, epochs and last
    validation figures (from its metrics.json); one cut short: its epochs so far of those asked."""
    result = run_finetune("demo", tiny_videos, "recognizer", ModelSpec("test_resnet", weights="none", resolution=32), FinetuneConfig(epochs=1, repeats=1, batch_size=8, warmup_epochs=0), 6, run_options)
    run = Path(result.checkpoint).parent
    last = result.history[-1]
    cut_short = run.with_name("light-test_efficientnet-0123456789abcdef")
    cut_short.mkdir()
    identity = json.loads((run / "identity.json").read_text())
    (cut_short / "identity.json").write_text(json.dumps({**identity, "model": {**identity["model"], "name": "test_efficientnet", "weights": "file:" + "ab" * 32}, "finetune": {**identity["finetune"], "epochs": 30, "segments": 3}}))
    (cut_short / "log.jsonl").write_text('{"epoch": 1}\n{"epoch": 2, "lo')  # killed in the middle of epoch 2's line
    listing = CliRunner().invoke(main, ["outputs", "--dataset", "demo", "--cache-dir", str(run_options.cache_dir), "--json", str(run_options.cache_dir / "outputs.json")])
    assert listing.exit_code == 0, listing.output
    written = json.loads((run_options.cache_dir / "outputs.json").read_text())  # the same listing, for scripts
    assert written["caches"] == [] and [r["path"] for r in written["finetune_runs"]] == [str(cut_short), str(run)]
    assert written["finetune_runs"][1]["what"] == listing.output.splitlines()[-1].split(": ", 1)[1] and written["finetune_runs"][1]["made_from_it"] == []
    assert listing.output.splitlines()[-3:] == [
        "fine-tuning runs (finetune/):",
        f"  {cut_short.name}: test_efficientnet @32 from checkpoint sha256 abababababab, 3 segments; unfinished: 1 of 30 epochs",
        f"  {run.name}: test_resnet @32 from none, 1 segment; 1 epoch, val top-1 {100 * last['top1']:.1f}%, mAP {100 * last['mAP']:.1f}%",
    ]
    flip_byte(cut_short / "identity.json", 0)  # a traceback (KeyError: 'model') before 2026-12-07
    (run / "metrics.json").write_text("[]")  # JSON of another shape: read as an unfinished run before
    said = CliRunner().invoke(main, ["outputs", "--dataset", "demo", "--cache-dir", str(run_options.cache_dir), "--json", str(run_options.cache_dir / "outputs.json")])
    assert said.exit_code == 0 and said.output.splitlines()[-2:] == [
        f"  {cut_short.name}: its identity.json is damaged: the run's model and options are not shown",
        f"  {run.name}: test_resnet @32 from none, 1 segment; its metrics.json is damaged: its model.pth is used as it is (`nsnet finetune` warns of it)",
    ]
    assert [r["damaged"] for r in json.loads((run_options.cache_dir / "outputs.json").read_text())["finetune_runs"]] == [True, True]


def test_a_runs_validation_is_given_as_its_summary_gives_it(tmp_path):
    """The last validated epoch's NSNet and UNIFORM mAP where ``metrics.json`` says the run
    validated; none where it does not (a run resumed with ``--val-every 0`` keeps the earlier
    epochs' scores in its history, and its summary gives none either)."""
    from stages.outputs import describe_run

    cfg = {"fsm_target": "ns", "vgm_target": "ns", "fem": "transformer", "gamma": 0.2}
    history = [{"epoch": 1, "val_map": 61.04, "val_uniform_map": 50.0}, {"epoch": 2, "val_map": 62.96, "val_uniform_map": 51.25}, {"epoch": 3}]
    validation = {"split": "val", "videos": 8, "k": 5, "t": 16, "fusion": "union", "alpha": 0.6, "every": 2}
    assert describe_run(tmp_path, {"config": cfg, "history": history, "validation": validation}) == "3 epochs, FSM ns, VGM ns, FEM transformer, gamma 0.2; val mAP at K=5, epoch 2: NSNet 63.0, UNIFORM 51.2"
    assert describe_run(tmp_path, {"config": cfg, "history": history}) == "3 epochs, FSM ns, VGM ns, FEM transformer, gamma 0.2"


def test_a_cache_dir_given_wrong_is_said_so(tmp_path):
    """A dataset's folder given as ``--cache-dir`` (``cache/fcvid`` for ``cache``), or
    ``--dataset`` left at its default beside other datasets' caches, said only that no cache was
    recorded for the dataset, and so did a dataset whose caches were made with another
    ``--preset`` (before 2026-12-07, the fifty-fourth session); what the folders hold is said
    now, by the stages after features and by ``nsnet outputs``."""
    for dataset, pointer in (("fcvid", "latest-features.txt"), ("kinetics", "latest-features-table1.txt")):
        (tmp_path / dataset).mkdir()
        (tmp_path / dataset / pointer).write_text(str(tmp_path / dataset / "features-0.zarr") + "\n")
    forgot = CliRunner().invoke(main, ["train", "--cache-dir", str(tmp_path), "--no-progress"])
    assert forgot.exit_code == 1 and forgot.output.endswith(f"or pass --features; {tmp_path} holds the caches of fcvid, kinetics: --dataset fcvid?\n")
    listed = CliRunner().invoke(main, ["outputs", "--cache-dir", str(tmp_path)])
    assert listed.output == f"no feature cache in {tmp_path / 'demo'}; {tmp_path} holds the caches of fcvid, kinetics: --dataset fcvid?\n"
    too_deep = CliRunner().invoke(main, ["prototypes", "--dataset", "fcvid", "--cache-dir", str(tmp_path / "fcvid"), "--no-progress"])
    assert too_deep.output.endswith(f"; {tmp_path / 'fcvid'} is a dataset's folder: --cache-dir is the folder above it, {tmp_path}\n")
    assert CliRunner().invoke(main, ["outputs", "--dataset", "ucf101", "--cache-dir", str(tmp_path / "nothing")]).output == f"no feature cache in {tmp_path / 'nothing' / 'ucf101'}\n"
    (tmp_path / "fcvid" / "latest-features-table1.txt").write_text(str(tmp_path / "fcvid" / "features-1.zarr") + "\n")
    (tmp_path / "kinetics" / "latest-features-table6.txt").write_text(str(tmp_path / "kinetics" / "features-2.zarr") + "\n")
    without = CliRunner().invoke(main, ["train", "--dataset", "kinetics", "--cache-dir", str(tmp_path), "--no-progress"])
    assert without.output.endswith("or pass --features; the dataset's caches were made with --preset table1 or table6\n")
    other = CliRunner().invoke(main, ["train", "--dataset", "fcvid", "--preset", "table2", "--cache-dir", str(tmp_path), "--no-progress"])
    assert other.output.endswith("or pass --features; the dataset's caches were made with --preset table1\n")


def test_outputs_verify_reads_every_cache_whole_against_its_checksums(tiny_pipeline, run_options):
    """``nsnet outputs --verify`` (new in the fifty-fourth session, 2026-12-07): every chunk of
    each cache read, a cache copied from another node checked before training on it; a damaged
    chunk is named with its array and rows, and the command exits 1."""
    features, _, _ = tiny_pipeline
    args = ["outputs", "--dataset", "demo", "--cache-dir", str(run_options.cache_dir), "--verify", "--no-progress"]
    whole = CliRunner().invoke(main, args)
    assert whole.exit_code == 0 and whole.output.splitlines()[-2:] == [f"verified {features.name}: every chunk read whole", "verified 1 checkpoint and .npz file(s): every member matched its CRC-32"]
    shard = next(p for p in sorted((features / "rec_logits").rglob("*")) if p.is_file() and p.name != "zarr.json")
    flip_byte(shard, 20)  # in the first chunk, past Blosc's header
    damaged = CliRunner().invoke(main, args)
    assert damaged.exit_code == 1 and damaged.output.splitlines()[-3:] == [
        f"verified {features.name}: 1 block(s) damaged",
        f"  {features}: rec_logits[0:4] is damaged (a chunk's checksum does not match what was written: a copy cut short, or a disk error); {REPAIR_FEATURES}",
        "verified 1 checkpoint and .npz file(s): every member matched its CRC-32"]


def test_outputs_verify_checks_the_outputs_checkpoints_and_npz_files(tiny_pipeline, run_options):
    """A prototypes folder's ``guides.npz`` and a checkpoint lying in the dataset's folder (the
    demo's ``recognizer.pth``) checked against their zip members' CRC-32s (the fifty-fifth
    session): a damaged member is named and the command exits 1."""
    import torch

    features, prototypes, _ = tiny_pipeline
    torch.save({"w": torch.arange(100.0)}, features.parent / "recognizer.pth")
    (features.parent / "recognizer.pth.123.tmp").write_bytes(b"a partial: not read")
    args = ["outputs", "--dataset", "demo", "--cache-dir", str(run_options.cache_dir), "--verify", "--no-progress"]
    assert CliRunner().invoke(main, args).output.splitlines()[-1] == "verified 2 checkpoint and .npz file(s): every member matched its CRC-32"
    flip_byte(prototypes / "guides.npz", 200, 0x01)  # in g.npy's data (its local header and numpy's header come first)
    damaged = CliRunner().invoke(main, args)
    assert damaged.exit_code == 1 and damaged.output.splitlines()[-2:] == [
        "verified 2 checkpoint and .npz file(s): 1 damaged",
        f"  {prototypes / 'guides.npz'}: damaged (g.npy, whose CRC-32 does not match what was written: a copy cut short, or a disk error)"]
