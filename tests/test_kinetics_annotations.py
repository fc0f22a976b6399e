"""Kinetics' annotations as they are shared: DeepMind's csv and JSON, 3D-ResNets' one JSON of
every split, and Mini-Kinetics-200's YouTube id lists labelled by them; each read into the same
manifest, with errors naming the file and line."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.datasets import AnnotationFiles, ManifestError, Rejected, get_dataset
from stages.cli import main
from conftest import load_rows, manifest_rows

CSV_HEADER = "label,youtube_id,time_start,time_end,split,is_cc\n"
TRAIN_CSV = CSV_HEADER + "abseiling,aaaaaaaaaaa,10,20,train,0\n\"air drumming\",bbbbbbbbbbb,3,13,train,0\nzumba,zzzzzzzzzzz,0,10,train,0\n"
VAL_CSV = CSV_HEADER + "abseiling,ccccccccccc,0.0,10.0,val,0\nair drumming,ddddddddddd,5,15,val,0\n"
TEST_CSV = "youtube_id,time_start,time_end,split\nqqqqqqqqqqq,0,10,test\n"

# What the rows of TRAIN_CSV and VAL_CSV become (no class subset): (id, path, labels, split).
ROWS = [
    ("aaaaaaaaaaa_000010_000020", "train/abseiling/aaaaaaaaaaa_000010_000020.mp4", (0,), "train"),
    ("bbbbbbbbbbb_000003_000013", "train/air drumming/bbbbbbbbbbb_000003_000013.mp4", (1,), "train"),
    ("zzzzzzzzzzz_000000_000010", "zzzzzzzzzzz_000000_000010.mp4", (2,), "train"),  # not downloaded
    ("ccccccccccc_000000_000010", "val/ccccccccccc_000000_000010.webm", (0,), "val"),
    ("ddddddddddd_000005_000015", "val/ddddddddddd.mp4", (1,), "val"),  # saved under the bare id
]


def _deepmind_json(csv_text: str) -> str:
    """The csv rows as DeepMind's JSON release writes them (subset ``validate`` for val)."""
    lines = csv_text.splitlines()[1:]
    out = {}
    for line in lines:
        fields = [f.strip('"') for f in line.replace('"air drumming"', "air drumming").split(",")]
        label, youtube_id, start, end, split = fields[:5]
        out[youtube_id] = {"annotations": {"label": label, "segment": [float(start), float(end)]}, "duration": 10.0,
                           "subset": {"val": "validate"}.get(split, split), "url": f"https://www.youtube.com/watch?v={youtube_id}"}
    return json.dumps(out)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "k400"
    for name in ("train/abseiling/aaaaaaaaaaa_000010_000020.mp4", "train/air drumming/bbbbbbbbbbb_000003_000013.mp4",
                 "val/ccccccccccc_000000_000010.webm", "val/ddddddddddd.mp4"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def _write(folder: Path, **files: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return {name: folder / name for name in files}


def test_a_csv_labelled_by_class_index_orders_its_classes_by_number(tmp_path):
    """A Kinetics-style csv labelled by class index (a Mini-Kinetics csv in the wild has
    ``label`` 0-199): the classes are 0 to the largest in numeric order (before 2026-12-07 in
    code-point order, label 10 class 2 of 12)."""
    rows = "".join(f"{i},{chr(97 + i) * 11},0,10,train\n" for i in range(12))
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n" + rows)
    m, found = load_rows("kinetics", tmp_path, train=tmp_path / "train.csv")
    assert m.classes == tuple(str(i) for i in range(12))
    assert [r[2] for r in found] == [(i,) for i in range(12)]


def test_deepmind_json_reads_as_its_csv(root, tmp_path):
    f = _write(tmp_path / "ann", **{"train.csv": TRAIN_CSV, "validate.csv": VAL_CSV, "kinetics_train.json": _deepmind_json(TRAIN_CSV),
                                    "kinetics_val.json": _deepmind_json(VAL_CSV),
                                    "kinetics_test.json": json.dumps({"qqqqqqqqqqq": {"annotations": {"label": "", "segment": [0.0, 10.0]}, "subset": "test"}})})
    from_csv, rows = load_rows("kinetics", root, train=f["train.csv"], val=f["validate.csv"])
    assert from_csv.classes == ("abseiling", "air drumming", "zumba") and rows == ROWS
    from_json = get_dataset("kinetics").load(root, AnnotationFiles(train=f["kinetics_train.json"], val=f["kinetics_val.json"], test=f["kinetics_test.json"]))
    assert from_json == from_csv  # the unlabelled test clip is left out, as in the csv


def test_one_file_of_every_split_alone_or_named_per_split(root, tmp_path):
    """3D-ResNets' kinetics.json: one file, each clip's split in its 'subset', keys clip names
    (its older scripts) or bare ids (its newer ones), segments in frames (not used)."""
    database = {
        "aaaaaaaaaaa_000010_000020": {"subset": "training", "annotations": {"label": "abseiling", "segment": [1, 301]}},
        "bbbbbbbbbbb_000003_000013": {"subset": "training", "annotations": {"label": "air drumming", "segment": [1, 251]}},
        "zzzzzzzzzzz_000000_000010": {"subset": "training", "annotations": {"label": "zumba"}},
        "ccccccccccc_000000_000010": {"subset": "validation", "annotations": {"label": "abseiling"}},
        "ddddddddddd": {"subset": "validation", "annotations": {"label": "air drumming", "segment": [1, 300]}},
        "qqqqqqqqqqq_000000_000010": {"subset": "testing", "annotations": {}},
    }
    f = _write(tmp_path / "ann", **{"kinetics.json": json.dumps({"labels": ["abseiling", "air drumming", "zumba"], "database": database})})
    alone, rows = load_rows("kinetics", root, annotations=f["kinetics.json"])
    expected = ROWS[:4] + [("ddddddddddd", "val/ddddddddddd.mp4", (1,), "val")]
    assert rows == expected
    per_split, _ = load_rows("kinetics", root, train=f["kinetics.json"], val=f["kinetics.json"])  # each split its own subset
    assert per_split == alone
    assert [r[0] for r in load_rows("kinetics", root, val=f["kinetics.json"])[1]] == ["ccccccccccc_000000_000010", "ddddddddddd"]


def test_3d_resnets_labels_set_the_class_order(root, tmp_path):
    """3D-ResNets' 'labels' is the order of its recognizers' outputs: kept (not sorted), with a
    class no clip has; a clip whose label it lacks, or two files that disagree, are errors. An
    id list labelled by such a file takes the listed clips' classes, a subset as before."""
    database = {
        "aaaaaaaaaaa_000010_000020": {"subset": "training", "annotations": {"label": "abseiling"}},
        "bbbbbbbbbbb_000003_000013": {"subset": "training", "annotations": {"label": "air drumming"}},
        "ccccccccccc_000000_000010": {"subset": "validation", "annotations": {"label": "abseiling"}},
    }
    labels = ["zumba", "air drumming", "abseiling"]
    f = _write(tmp_path / "ann", **{"kinetics.json": json.dumps({"labels": labels, "database": database})})
    m, rows = load_rows("kinetics", root, annotations=f["kinetics.json"])
    assert m.classes == ("zumba", "air drumming", "abseiling")
    assert [(r[0], r[2], r[3]) for r in rows] == [(ROWS[0][0], (2,), "train"), (ROWS[1][0], (1,), "train"), (ROWS[3][0], (2,), "val")]
    per_split, _ = load_rows("kinetics", root, train=f["kinetics.json"], val=f["kinetics.json"])
    assert per_split.classes == m.classes
    subset = tmp_path / "subset.txt"
    subset.write_text("abseiling\nair drumming\n")
    assert load_rows("kinetics", root, annotations=f["kinetics.json"], classes=subset)[0].classes == ("abseiling", "air drumming")  # --class-names wins
    ids = _write(tmp_path / "mini", **{"train_ytid_list.txt": "bbbbbbbbbbb\n"})
    assert load_rows("kinetics", root, train=ids["train_ytid_list.txt"], annotations=f["kinetics.json"])[0].classes == ("air drumming",)
    f["kinetics.json"].write_text(json.dumps({"labels": ["zumba", "abseiling"], "database": database}))
    with pytest.raises(ManifestError, match=r"kinetics.json: bbbbbbbbbbb_000003_000013: label 'air drumming' is not one of the 2 classes of the file's 'labels'"):
        load_rows("kinetics", root, annotations=f["kinetics.json"])
    f["kinetics.json"].write_text(json.dumps({"labels": ["abseiling", "Abseiling", "air drumming"], "database": database}))
    with pytest.raises(ManifestError, match=r"kinetics.json: 'labels': these class names are the same class .*: Abseiling, abseiling"):
        load_rows("kinetics", root, annotations=f["kinetics.json"])
    f["kinetics.json"].write_text(json.dumps({"labels": "abseiling", "database": database}))
    with pytest.raises(ManifestError, match=r"kinetics.json: 'labels' must be a list of class names"):
        load_rows("kinetics", root, annotations=f["kinetics.json"])
    _write(tmp_path / "ann", **{"kinetics.json": json.dumps({"labels": labels, "database": database}),
                                "kinetics_b.json": json.dumps({"labels": sorted(labels), "database": {}})})
    with pytest.raises(ManifestError, match=r"kinetics_b.json and .*kinetics.json declare different class lists"):
        load_rows("kinetics", root, annotations=tmp_path / "ann")


def test_a_file_named_by_the_bare_id_carries_the_clips_segment(root, tmp_path):
    """A file named by the clip is the clip; one named by the bare YouTube id may be the whole
    video, so its record carries the clip's times (csv, DeepMind's JSON, or a 3D-ResNets key
    that is a clip name), which the decoders apply where the file is longer than the clip. The
    manifest's JSON leaves an absent segment out, so manifests without any keep their digest."""
    from pipeline.datasets.manifest import Manifest

    f = _write(tmp_path / "ann", **{"train.csv": TRAIN_CSV, "validate.csv": VAL_CSV, "kinetics_val.json": _deepmind_json(VAL_CSV),
                                    "kinetics.json": json.dumps({"labels": ["abseiling", "air drumming"], "database": {
                                        "ddddddddddd_000005_000015": {"subset": "validation", "annotations": {"label": "air drumming"}}}})})
    m = get_dataset("kinetics").load(root, AnnotationFiles(train=f["train.csv"], val=f["validate.csv"]))
    assert [(v.video_id, v.segment) for v in m.videos] == [
        ("aaaaaaaaaaa_000010_000020", None), ("bbbbbbbbbbb_000003_000013", None), ("zzzzzzzzzzz_000000_000010", None),
        ("ccccccccccc_000000_000010", None), ("ddddddddddd_000005_000015", (5.0, 15.0)),  # val/ddddddddddd.mp4
    ]
    for other in (AnnotationFiles(val=f["kinetics_val.json"]), AnnotationFiles(val=f["kinetics.json"])):
        assert get_dataset("kinetics").load(root, other).videos[-1].segment == (5.0, 15.0)
    assert Manifest.from_json(m.to_json()) == m
    assert m.to_json().count('"segment"') == 1


def test_videos_named_by_a_downloaders_default_template_are_found_by_their_id(tmp_path):
    """Videos fetched with yt-dlp's default name (``<title> [<id>].<ext>``; ``<title>_[<id>]``
    with --restrict-filenames) or youtube-dl's (``<title>-<id>.<ext>``) are whole videos found
    by their YouTube id, with the clip's segment; a file named by the id alone wins wherever it
    lies, and a bracketed word that is no id (``[720p]``) names nothing."""
    root = tmp_path / "k400"
    for name in ("a/Abseiling at the Cliffs [aaaaaaaaaaa].mp4", "a/Air drumming!!-bbbbbbbbbbb.webm", "a/Ski trip [ccccccccccc].mp4",
                 "z/ccccccccccc.mkv", "a/Zumba_night_[ddddddddddd].mkv", "a/zumba [720p].mp4"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    f = _write(tmp_path / "ann", **{"train.csv": TRAIN_CSV, "validate.csv": VAL_CSV})
    m = get_dataset("kinetics").load(root, AnnotationFiles(train=f["train.csv"], val=f["validate.csv"]))
    assert [(v.video_id, v.path, v.segment) for v in m.videos] == [
        ("aaaaaaaaaaa_000010_000020", "a/Abseiling at the Cliffs [aaaaaaaaaaa].mp4", (10.0, 20.0)),
        ("bbbbbbbbbbb_000003_000013", "a/Air drumming!!-bbbbbbbbbbb.webm", (3.0, 13.0)),
        ("zzzzzzzzzzz_000000_000010", "zzzzzzzzzzz_000000_000010.mp4", None),  # not downloaded
        ("ccccccccccc_000000_000010", "z/ccccccccccc.mkv", (0.0, 10.0)),  # the file named by the id, though walked later
        ("ddddddddddd_000005_000015", "a/Zumba_night_[ddddddddddd].mkv", (5.0, 15.0)),
    ]


def test_unfinished_downloads_are_named_where_they_lie_under_the_root(tmp_path):
    """A clip whose download stopped, in a class folder, under yt-dlp's titled name, or before
    its formats were merged, gets the path the download is to make, so that ``nsnet data`` (and
    the features stage) name what it left; a finished video of the clip or its whole video wins
    over any unfinished download."""
    root = tmp_path / "k400"
    for name in ("train/abseiling/aaaaaaaaaaa_000010_000020.mp4.part", "dl/Air drumming [bbbbbbbbbbb].webm.part",
                 "dl/Ski trip [ccccccccccc].f137.mp4", "dl/Ski trip [ccccccccccc].f251.webm.part",
                 "val/ddddddddddd_000005_000015.mp4.ytdl", "z/ddddddddddd.mkv", "dl/notes [zzzzzzzzzzz].txt.part"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    (root / "z/ddddddddddd.mkv").write_bytes(b"\x1aE\xdf\xa3")  # finished (an empty file is counted apart)
    f = _write(tmp_path / "ann", **{"train.csv": TRAIN_CSV, "validate.csv": VAL_CSV})
    args = ["--train-list", str(f["train.csv"]), "--val-list", str(f["validate.csv"])]
    m = get_dataset("kinetics").load(root, AnnotationFiles(train=f["train.csv"], val=f["validate.csv"]))
    assert [(v.path, v.segment) for v in m.videos] == [
        ("train/abseiling/aaaaaaaaaaa_000010_000020.mp4", None),
        ("dl/Air drumming [bbbbbbbbbbb].webm", (3.0, 13.0)),  # the whole video, titled
        ("zzzzzzzzzzz_000000_000010.mp4", None),  # a .txt.part is no video's
        ("dl/Ski trip [ccccccccccc].mp4", (0.0, 10.0)),
        ("z/ddddddddddd.mkv", (5.0, 15.0)),  # finished, though the clip's download was left
    ]
    result = CliRunner().invoke(main, ["data", "--dataset", "kinetics", "--data-root", str(root), *args])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = lines.index(f"videos on disk under {root}: 1 of 5")
    assert lines[at + 1 :] == [
        "missing: 4 (train 3, val 1; unfinished downloads 3), the features stage records each as failed; the first:",
        "  train/abseiling/aaaaaaaaaaa_000010_000020.mp4: unfinished download (aaaaaaaaaaa_000010_000020.mp4.part lies where the video should be)",
        "  dl/Air drumming [bbbbbbbbbbb].webm: unfinished download (Air drumming [bbbbbbbbbbb].webm.part lies where the video should be)",
        "  zzzzzzzzzzz_000000_000010.mp4",
        "  dl/Ski trip [ccccccccccc].mp4: unfinished download (Ski trip [ccccccccccc].f137.mp4 and Ski trip [ccccccccccc].f251.webm.part lie where the video should be, yt-dlp's separate picture and sound never merged)",
    ]


def test_annotation_folder_alone_splits_by_each_rows_split(root, tmp_path):
    f = _write(tmp_path / "annotations", **{"train.csv": TRAIN_CSV, "val.csv": VAL_CSV, "test.csv": TEST_CSV, "readme.md": "not read",
                                            "kinetics_400_labels.csv": "id,name\n0,abseiling\n", "categories.json": '{"arts": ["abseiling"]}', "classes.json": '["abseiling"]',
                                            "activity_net.v1-3.min.json": json.dumps({"database": {"abc": {"subset": "training", "annotations": [{"label": "Hopscotch", "segment": [1, 2]}]}}})})
    (tmp_path / "annotations" / "._train.csv").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X\xb0\xff")  # macOS's metadata of train.csv
    trashed = root / ".Trash-1000" / "files" / "zzzzzzzzzzz_000000_000010.mp4"  # a deleted copy of the clip not downloaded
    trashed.parent.mkdir(parents=True)
    trashed.write_bytes(b"")
    (root / "train" / "abseiling" / "._aaaaaaaaaaa_000010_000020.mp4").write_bytes(b"\x00\x05\x16\x07")
    _, rows = load_rows("kinetics", root, annotations=tmp_path / "annotations")
    assert rows == ROWS  # the class list, the downloader's categories, an ActivityNet file (an error before 2026-12-07, evening) and hidden files and folders passed over
    f["val.csv"].write_text(VAL_CSV.replace(",val,", ",,", 1))
    with pytest.raises(ManifestError, match=r"val.csv:2 \(its split, read from its 'split' or 'subset'.*unknown split ''"):
        load_rows("kinetics", root, annotations=tmp_path / "annotations")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ManifestError, match=r"empty: no Kinetics annotation file \(.csv or .json\) in this folder$"):
        load_rows("kinetics", root, annotations=empty)
    _write(empty, **{"labels.csv": "id,name\n0,abseiling\n", "classes.json": '["abseiling"]'})
    with pytest.raises(ManifestError, match=r"empty: no Kinetics annotation file \(.csv or .json\) in this folder \(.*classes.json: not a Kinetics JSON .*; .*labels.csv: not a Kinetics csv \(no column youtube_id"):
        load_rows("kinetics", root, annotations=empty)
    _write(tmp_path / "annotations", **{"broken.json": '{"aaaaaaaaaaa": '})  # broken, not foreign: an error
    with pytest.raises(ManifestError, match=r"broken.json: not valid JSON"):
        load_rows("kinetics", root, annotations=tmp_path / "annotations")


def test_the_annotation_folder_of_the_data_root_is_read_without_options(root):
    """mmaction2's download_annotations.sh writes DeepMind's csv files into the dataset's
    annotations/ (kinetics_train.csv, kinetics_val.csv, kinetics_test.csv), as cvdfoundation's
    download holds k400/annotations/: read as --annotations would read it."""
    with pytest.raises(ManifestError, match=r"needs its annotations: .*, or them in .*k400/annotations/$"):
        load_rows("kinetics", root)
    _write(root / "annotations", **{"kinetics_train.csv": TRAIN_CSV, "kinetics_val.csv": VAL_CSV, "kinetics_test.csv": TEST_CSV})
    assert load_rows("kinetics", root)[1] == ROWS


def test_minikinetics_200_youtube_id_lists_labelled_by_the_kinetics_annotations(root, tmp_path):
    """Xie et al.'s Mini-Kinetics-200: ids one a line, their labels and times from Kinetics-400's
    files; an id no file knows is rejected with its line."""
    _write(tmp_path / "annotations", **{"train.csv": TRAIN_CSV, "validate.csv": VAL_CSV})
    lists = _write(tmp_path / "mini", **{"train_ytid_list.txt": "bbbbbbbbbbb\naaaaaaaaaaa\n\ngone_000000\n", "val_ytid_list.txt": "ddddddddddd\r\n"})
    m, rows = load_rows("kinetics", root, train=lists["train_ytid_list.txt"], val=lists["val_ytid_list.txt"], annotations=tmp_path / "annotations")
    assert m.classes == ("abseiling", "air drumming")  # the listed clips' labels: zumba's clip is not listed
    assert rows == [ROWS[1], ROWS[0], ROWS[4]]  # in the lists' order, each in its list's split
    assert m.rejected == (Rejected("gone_000000", "gone_000000", f"{lists['train_ytid_list.txt']}:4: in no annotation file under {tmp_path / 'annotations'}"),)
    one_file, _ = load_rows("kinetics", root, train=lists["train_ytid_list.txt"], annotations=tmp_path / "annotations" / "train.csv")
    assert [v.video_id for v in one_file.videos] == [ROWS[1][0], ROWS[0][0]]
    with pytest.raises(ManifestError, match=r"train_ytid_list.txt: a list of YouTube ids .* is labelled by --annotations"):
        load_rows("kinetics", root, train=lists["train_ytid_list.txt"])
    with pytest.raises(ManifestError, match=r"--annotations: the kinetics dataset reads it alone .* here --train-list/--val-list/--test-list are annotation files"):
        load_rows("kinetics", root, train=tmp_path / "annotations" / "train.csv", annotations=tmp_path / "annotations")
    with pytest.raises(ManifestError, match=r"train_ytid_list.txt:1: expected 'path label \[label ...\]', got 'bbbbbbbbbbb'; a list of bare YouTube ids .* is read by --dataset kinetics or minikinetics with --annotations"):
        get_dataset("list").load(root, AnnotationFiles(train=lists["train_ytid_list.txt"]))
    classes = tmp_path / "mini_categories.txt"
    classes.write_text("abseiling\nrock climbing\n")
    with pytest.raises(ManifestError, match=r"train_ytid_list.txt:1: expected 'path num_frames label \[label ...\]', got 'bbbbbbbbbbb'; a list of bare YouTube ids .* is read by --dataset kinetics or minikinetics with --annotations"):
        get_dataset("minikinetics").load(root, AnnotationFiles(train=lists["train_ytid_list.txt"], classes=classes))  # read as AR-Net's lists: --annotations forgotten
    _write(tmp_path / "annotations", **{"k600_train.csv": CSV_HEADER + "rock climbing,aaaaaaaaaaa,10,20,train,0\n"})
    with pytest.raises(ManifestError, match=r"aaaaaaaaaaa is labelled 'rock climbing' at .*k600_train.csv:2 and 'abseiling' at .*train.csv:2; name one of the files"):
        load_rows("kinetics", root, train=lists["train_ytid_list.txt"], annotations=tmp_path / "annotations")


def test_minikinetics_dataset_reads_the_id_lists_with_the_paper_profile(root, tmp_path):
    """``--dataset minikinetics`` with the id lists and ``--annotations``: Kinetics' reading, the
    Mini-Kinetics name and feature profile (light model at 112, A.1)."""
    _write(tmp_path / "annotations", **{"train.csv": TRAIN_CSV, "validate.csv": VAL_CSV})
    lists = _write(tmp_path / "mini", **{"train_ytid_list.txt": "bbbbbbbbbbb\naaaaaaaaaaa\n", "val_ytid_list.txt": "ddddddddddd\n"})
    files = AnnotationFiles(train=lists["train_ytid_list.txt"], val=lists["val_ytid_list.txt"], annotations=tmp_path / "annotations")
    mini = get_dataset("minikinetics").load(root, files)
    kinetics = get_dataset("kinetics").load(root, files)
    assert mini.name == "minikinetics" and (mini.classes, mini.videos) == (kinetics.classes, kinetics.videos)
    assert manifest_rows(mini) == [ROWS[1], ROWS[0], ROWS[4]]
    assert get_dataset("minikinetics").features.light.resolution == 112
    with pytest.raises(ManifestError, match=r"^--list-format: not used with --annotations"):
        get_dataset("minikinetics").load(root, AnnotationFiles(train=lists["train_ytid_list.txt"], annotations=tmp_path / "annotations", list_format="rawframes"))


def test_malformed_kinetics_json_names_the_file(root, tmp_path):
    f = _write(tmp_path, **{"broken.json": '{"aaaaaaaaaaa": {', "list.json": "{\"x\": [1, 2]}",
                            "label_list.json": json.dumps({"aaaaaaaaaaa": {"annotations": [{"label": "abseiling"}], "subset": "train"}}),
                            "times.json": json.dumps({"aaaaaaaaaaa": {"annotations": {"label": "abseiling", "segment": ["start", 20]}, "subset": "train"}})})
    with pytest.raises(ManifestError, match=r"broken.json: not valid JSON"):
        load_rows("kinetics", root, train=f["broken.json"])
    with pytest.raises(ManifestError, match=r"list.json: not a Kinetics JSON"):
        load_rows("kinetics", root, train=f["list.json"])
    with pytest.raises(ManifestError, match=r"label_list.json: ActivityNet's annotation JSON \(a list of labelled segments a video\), read by --dataset activitynet; not a Kinetics JSON$"):
        load_rows("kinetics", root, train=f["label_list.json"])  # before 2026-12-07, evening: "must be an object with a 'label'"
    f["label_list.json"].write_text(json.dumps({"aaaaaaaaaaa": {"annotations": ["abseiling"], "subset": "train"}}))
    with pytest.raises(ManifestError, match=r"label_list.json: aaaaaaaaaaa: 'annotations' must be an object with a 'label', got \['abseiling'\]$"):
        load_rows("kinetics", root, train=f["label_list.json"])
    listed = tmp_path / "kinetics400_train_list_videos.txt"  # mmaction2's list given as the annotations
    listed.write_text("abseiling/aaaaaaaaaaa_000010_000020.mp4 0\n")
    with pytest.raises(ManifestError, match=r"not a Kinetics csv \(no column .*\): a list of videos \(a path, then numbers\), read by --dataset list as --train-list or --val-list$"):
        load_rows("kinetics", root, train=listed)
    with pytest.raises(ManifestError, match=r"times.json: aaaaaaaaaaa: time_start/time_end must be numbers, got 'start', 20"):
        load_rows("kinetics", root, train=f["times.json"])


def test_cli_takes_an_annotation_folder(root, tmp_path):
    _write(tmp_path / "annotations", **{"train.csv": TRAIN_CSV, "val.csv": VAL_CSV})
    result = CliRunner().invoke(main, ["data", "--dataset", "kinetics", "--data-root", str(root), "--annotations", str(tmp_path / "annotations")])
    assert result.exit_code == 0, result.output
    assert "kinetics: 5 videos, 3 classes" in result.output and "splits: train 3, val 2" in result.output
    assert "files named by the bare YouTube id: 1, each read as its clip's annotated segment where the file is the whole video" in result.output


def test_activitynet_annotations_may_name_their_folder(tmp_path):
    anet = {"database": {"abc": {"subset": "training", "annotations": [{"label": "Hopscotch"}]}}}
    _write(tmp_path / "anet_annotations", **{"activity_net.v1-3.min.json": json.dumps(anet)})
    m = get_dataset("activitynet").load(tmp_path / "data", AnnotationFiles(annotations=tmp_path / "anet_annotations"))
    assert [(v.video_id, v.labels, v.split) for v in m.videos] == [("v_abc", (0,), "train")]
    with pytest.raises(ManifestError, match=r"--train-list: not used by the activitynet dataset"):
        get_dataset("activitynet").load(tmp_path / "data", AnnotationFiles(train=tmp_path / "t.txt", annotations=tmp_path / "anet_annotations"))


def test_kinetics_refuses_a_list_format(root, tmp_path):
    f = _write(tmp_path / "ann", **{"train.csv": TRAIN_CSV})
    with pytest.raises(ManifestError, match=r"--list-format: not used by the kinetics dataset"):
        load_rows("kinetics", root, train=f["train.csv"], list_format="video")


def test_a_replacement_for_a_corrupted_clip_is_taken_over_the_original(tmp_path):
    """cvdfoundation's Kinetics-400: ``replacement/replacement_for_corrupted_k400/`` holds good
    copies of corrupted ``train/`` clips under the same names; its copy is the one read, even
    where the folders' names would sort the other way."""
    root = tmp_path / "k400"
    for name in ("a_train/aaaaaaaaaaa_000010_000020.mp4", "replacement/replacement_for_corrupted_k400/aaaaaaaaaaa_000010_000020.mp4",
                 "a_train/bbbbbbbbbbb_000003_000013.mp4"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    f = _write(tmp_path / "ann", **{"train.csv": CSV_HEADER + "abseiling,aaaaaaaaaaa,10,20,train,0\nabseiling,bbbbbbbbbbb,3,13,train,0\n"})
    _, rows = load_rows("kinetics", root, train=f["train.csv"])
    assert [r[1] for r in rows] == ["replacement/replacement_for_corrupted_k400/aaaaaaaaaaa_000010_000020.mp4", "a_train/bbbbbbbbbbb_000003_000013.mp4"]
