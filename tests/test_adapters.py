"""Every adapter on a small fixture written in its dataset's official format."""

import json
from pathlib import Path

import pytest

from pipeline.datasets import DATASETS, AnnotationFiles, Manifest, ManifestError, get_dataset, load_manifest
from pipeline.datasets.manifest import Rejected, VideoRecord
from pipeline.datasets.adapters import activitynet_manifest, csv_manifest, fcvid_manifest, minikinetics_manifest, ucf101_manifest
from conftest import manifest_rows


def test_csv_manifest_multi_label_and_unknown_labels(tmp_path: Path):
    (tmp_path / "classes.txt").write_text("cat\ndog\nbird\n")
    (tmp_path / "manifest.csv").write_text(
        "path,label,split\n"
        "videos/a.mp4,cat,train\n"
        "videos/b.mp4,dog,bird,validation\n"
        "frames/c,bird,test\n"
        "videos/d.mp4,horse,train\n"
    )
    m = csv_manifest(tmp_path)
    assert m.classes == ("cat", "dog", "bird")
    assert manifest_rows(m) == [
        ("videos/a", "videos/a.mp4", (0,), "train"),
        ("videos/b", "videos/b.mp4", (1, 2), "val"),
        ("frames/c", "frames/c", (2,), "test"),
    ]
    assert len(m.rejected) == 1 and m.rejected[0].video_id == "videos/d" and "horse" in m.rejected[0].reason


@pytest.mark.parametrize("mark", ["\t", ";"])
def test_csv_manifest_as_spreadsheets_separate_its_fields(tmp_path: Path, mark: str):
    """Excel saves a table with tabs ("Text (Tab delimited)", "Unicode Text") or, as "CSV" where
    the decimal mark is a comma (German, French), with semicolons: read as the comma file
    (since 2026-12-07: "expected path,label[,label...],split, got ['videos/a.mp4\\tcat\\ttrain']").
    A path with a comma stays whole so."""
    rows = ["path,label,split", "videos/a.mp4,cat,train", "videos/b.mp4,dog,bird,val", "videos/c, take 2.mp4,bird,val"]
    (tmp_path / "manifest.csv").write_text("\n".join(rows[:3]) + '\n"videos/c, take 2.mp4",bird,val\n')
    commas = csv_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("\n".join(row.replace(",", mark) if " take " not in row else row.replace(",bird,val", f"{mark}bird{mark}val") for row in rows) + "\n")
    assert csv_manifest(tmp_path) == commas
    assert commas.classes == ("bird", "cat", "dog") and manifest_rows(commas)[-1] == ("videos/c, take 2", "videos/c, take 2.mp4", (0,), "val")


def test_csv_manifest_labelled_by_class_index_orders_the_classes_by_number(tmp_path: Path):
    """A manifest written by a training script labels by class index: without classes.txt the
    classes are the indices 0 to the largest in numeric order, as a list file's are (before
    2026-12-07 in code-point order: label 10 became class 2 of 12); labels 1 to C, none 0, leave
    class 0 empty with a warning; labels that are not all plain numbers stay names. With
    classes.txt, indices name its classes (they were rejected as unknown labels), from 1 where
    they run 1 to its class count."""
    (tmp_path / "manifest.csv").write_text("path,label,split\n" + "".join(f"v{i}.mp4,{i},train\n" for i in range(12)))
    m = csv_manifest(tmp_path)
    assert m.classes == tuple(str(i) for i in range(12))
    assert [v.labels for v in m.videos] == [(i,) for i in range(12)]
    (tmp_path / "manifest.csv").write_text("path,label,split\nv1.mp4,1,train\nv3.mp4,3,val\n")
    with pytest.warns(UserWarning, match=r"manifest.csv: no video is labelled 0, so class '0' has none; the labels are read as class indices from 0"):
        m = csv_manifest(tmp_path)
    assert m.classes == ("0", "1", "2", "3") and [v.labels for v in m.videos] == [(1,), (3,)]
    (tmp_path / "manifest.csv").write_text("path,label,split\nv1.mp4,01,train\nv3.mp4,10,val\nv4.mp4,2,val\n")
    assert csv_manifest(tmp_path).classes == ("01", "10", "2")  # a leading zero: names, in code-point order
    (tmp_path / "manifest.csv").write_text("path,label,split\nv1.mp4,1,train\nv2.mp4,\u00b2,val\n")
    assert csv_manifest(tmp_path).classes == ("1", "\u00b2")  # a digit that is not ASCII's: names
    (tmp_path / "classes.txt").write_text("abseiling\nbaking\ncooking\n")  # with a class file, the indices name its classes
    (tmp_path / "manifest.csv").write_text("path,label,split\nv0.mp4,0,train\nv2.mp4,2,val\n")
    m = csv_manifest(tmp_path)
    assert m.classes == ("abseiling", "baking", "cooking") and [v.labels for v in m.videos] == [(0,), (2,)] and m.rejected == ()
    (tmp_path / "manifest.csv").write_text("path,label,split\nv1.mp4,1,train\nv2.mp4,2,val\nv3.mp4,3,val\n")
    with pytest.warns(UserWarning, match=r"the labels are 1 to 3 for the 3 classes of .*classes.txt, none 0, so they are read as class indices from 1"):
        assert [v.labels for v in csv_manifest(tmp_path).videos] == [(0,), (1,), (2,)]
    (tmp_path / "manifest.csv").write_text("path,label,split\nv1.mp4,1,train\nv5.mp4,5,val\n")
    with pytest.raises(ManifestError, match=r"manifest.csv: label 5 is beyond the 3 classes of .*classes.txt \(the labels are class indices, from 0\)"):
        csv_manifest(tmp_path)


def test_same_stem_files_get_distinct_ids(tmp_path: Path):
    (tmp_path / "manifest.csv").write_text("clips/clip.avi,cat,train\nclips/clip.mp4,dog,val\nclips/other.mp4,cat,train\nclips/other.mp4,cat,val\n")
    m = csv_manifest(tmp_path)
    assert [(v.video_id, v.path) for v in m.videos] == [("clips/clip.avi", "clips/clip.avi"), ("clips/clip.mp4", "clips/clip.mp4"), ("clips/other", "clips/other.mp4")]
    assert [(r.video_id, r.reason) for r in m.rejected] == [("clips/other", "duplicate video id in the annotations")]


def test_a_class_list_naming_a_class_twice_is_refused_with_the_names(tmp_path: Path):
    (tmp_path / "manifest.csv").write_text("a.mp4,cat,train\n")
    (tmp_path / "classes.txt").write_text("cat\ndog\ncat\nbird\ndog\n")
    with pytest.raises(ManifestError, match=r"classes.txt: these class names are the same class \(case, quotes and underscores aside\): cat, dog$"):
        csv_manifest(tmp_path)
    (tmp_path / "classes.txt").write_text("Cat\nbird\ncat\n")  # one class spelt two ways
    with pytest.raises(ManifestError, match=r"classes.txt: these class names are the same class .*: Cat, cat$"):
        csv_manifest(tmp_path)


def test_csv_manifest_labels_match_their_class_whatever_the_case(tmp_path: Path):
    """A label spelt otherwise than its class (``Cat`` for ``cat``, ``ice_skating`` for ``ice
    skating``) is that class, as lists labelled by name match them; before 2026-12-06 it was
    rejected against a class file, and made a second class without one."""
    (tmp_path / "manifest.csv").write_text("a.mp4,Cat,train\nb.mp4,cat,train\nc.mp4,ice_skating,CAT,val\nd.mp4,ice skating,val\n")
    m = csv_manifest(tmp_path)
    assert m.classes == ("CAT", "ice skating") and [v.labels for v in m.videos] == [(0,), (0,), (0, 1), (1,)]  # sorted; each spelt as first so
    (tmp_path / "classes.txt").write_text("ice skating\ncat\n")
    m = csv_manifest(tmp_path)
    assert m.classes == ("ice skating", "cat") and [v.labels for v in m.videos] == [(1,), (1,), (0, 1), (0,)] and not m.rejected


def test_csv_manifest_paths_are_resolved(tmp_path: Path):
    for name in ("videos/a.mp4", "videos/b.webm", "frames/c/img_00001.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "manifest.csv").write_text(f"videos\\a.mp4,cat,train\nvideos/b.mp4,dog,train\nframes/c.avi,cat,val\n{tmp_path}/videos/a.mp4,dog,val\n")
    m = csv_manifest(tmp_path)
    assert [(v.video_id, v.path) for v in m.videos] == [("videos/a", "videos/a.mp4"), ("videos/b", "videos/b.webm"), ("frames/c", "frames/c")]
    assert [(r.video_id, r.reason) for r in m.rejected] == [("videos/a", "duplicate video id in the annotations")]  # the absolute path, made relative


def test_csv_manifest_finds_paths_not_where_written_as_lists_do(tmp_path: Path):
    """A manifest written on another machine (absolute paths there) or relative to a folder under
    the root is read as a list would be; before 2026-12-06 only paths as written (or absolute
    under the root) were found, every other video reported missing."""
    for name in ("k400/videos_train/abseiling/a.mp4", "k400/videos_val/abseiling/b.mp4", "k400/videos_val/zumba/c.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    root = tmp_path / "k400"
    (root / "manifest.csv").write_text("abseiling/a.mp4,abseiling,train\n/home/ann/kinetics/videos_val/abseiling/b.mp4,abseiling,val\nD:\\k400\\videos_val\\zumba\\c.mp4,zumba,val\nzumba/gone.mp4,zumba,val\n")
    m = csv_manifest(root)
    assert [(v.video_id, v.path, v.split) for v in m.videos] == [
        ("videos_train/abseiling/a", "videos_train/abseiling/a.mp4", "train"),
        ("videos_val/abseiling/b", "videos_val/abseiling/b.mp4", "val"),
        ("videos_val/zumba/c", "videos_val/zumba/c.mp4", "val"),
        ("zumba/gone", "zumba/gone.mp4", "val"),  # kept as written: the features stage reports it missing
    ]


def test_csv_manifest_without_class_file_uses_sorted_labels(tmp_path: Path):
    (tmp_path / "manifest.csv").write_text("x.mp4,zebra,train\ny.mp4,ant,val\n")
    m = csv_manifest(tmp_path)
    assert m.classes == ("ant", "zebra") and [v.labels for v in m.videos] == [(1,), (0,)]
    for header in ("video_path,labels,subset", "Video,Class Name,Split"):  # column names as a list's header may give them
        (tmp_path / "manifest.csv").write_text(f"{header}\nx.mp4,zebra,train\n")
        assert csv_manifest(tmp_path).classes == ("zebra",), header


def test_csv_manifest_errors_name_file_and_line(tmp_path: Path):
    (tmp_path / "manifest.csv").write_text("x.mp4,train\n")
    with pytest.raises(ManifestError, match=r"manifest.csv:1: expected"):
        csv_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("x.mp4,a,holdout\n")
    with pytest.raises(ManifestError, match=r"manifest.csv:1: unknown split 'holdout'"):
        csv_manifest(tmp_path)
    with pytest.raises(ManifestError, match="manifest file not found"):
        csv_manifest(tmp_path / "nowhere")


def test_fcvid_release_files_multi_label(tmp_path: Path):
    materials = tmp_path / "materials"
    materials.mkdir()
    (tmp_path / "videos").mkdir()
    (materials / "FCVID_Category.txt").write_text("accordion\nbasketball\ncooking\n")
    (materials / "FCVID_VideoName_TrainTestSplit.txt").write_text(
        "accordion/v1.mp4 train\nbasketball/v2.mp4 test\ncooking/v3.mp4 train\nbasketball/v4.mp4 train\n"
    )
    (materials / "FCVID_Label.txt").write_text("1 0 0\n0 1 1\n0 0 1\n0 0 0\n")
    m = fcvid_manifest(tmp_path)
    assert m.num_classes == 3
    assert manifest_rows(m) == [
        ("accordion/v1", "videos/accordion/v1.mp4", (0,), "train"),
        ("basketball/v2", "videos/basketball/v2.mp4", (1, 2), "test"),
        ("cooking/v3", "videos/cooking/v3.mp4", (2,), "train"),
    ]
    assert [(r.video_id, r.reason) for r in m.rejected] == [("basketball/v4", "no label")]


def test_fcvid_videos_kept_in_another_format_or_folder_are_found(tmp_path: Path):
    (tmp_path / "FCVID_Category.txt").write_text("a\nb\n")
    (tmp_path / "FCVID_VideoName_TrainTestSplit.txt").write_text("a/x1.mp4 train\nb/x2.mp4 test\nb/x3.mp4 train\nb/x4.mp4 test\n")
    (tmp_path / "FCVID_Label.txt").write_text("1 0\n0 1\n0 1\n1 1\n")
    for name in ("videos/a/x1.mp4", "videos/b/x2.webm", "videos/x3.mkv", "frames/x1/x4.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [(v.video_id, v.path) for v in fcvid_manifest(tmp_path).videos] == [
        ("a/x1", "videos/a/x1.mp4"),
        ("b/x2", "videos/b/x2.webm"),  # re-encoded, or downloaded as WebM
        ("b/x3", "videos/x3.mkv"),  # in a flat folder
        ("b/x4", "videos/b/x4.mp4"),  # as written: the frame folder of x1 is not entered
    ]


def test_fcvid_label_width_mismatch_is_an_error(tmp_path: Path):
    (tmp_path / "FCVID_Category.txt").write_text("a\nb\n")
    (tmp_path / "FCVID_VideoName_TrainTestSplit.txt").write_text("a/x.mp4 train\n")
    (tmp_path / "FCVID_Label.txt").write_text("1 0 0\n")
    with pytest.raises(ManifestError, match=r"FCVID_Label.txt:1: 3 label columns, the class list has 2"):
        fcvid_manifest(tmp_path)
    (tmp_path / "FCVID_Label.txt").write_text("1 yes\n")
    with pytest.raises(ManifestError, match=r"FCVID_Label.txt:1: label columns must be 0 or 1, got '1 yes'"):
        fcvid_manifest(tmp_path)


def _fcvid_files(root: Path, split: str, labels: str) -> None:
    (root / "materials").mkdir(parents=True, exist_ok=True)
    (root / "materials" / "FCVID_VideoName_TrainTestSplit.txt").write_text(split)
    (root / "materials" / "FCVID_Label.txt").write_text(labels)


FCVID_SPLIT = "accordion/v1.mp4 train\nbasketball/v2.mp4 test\ncooking/v3.mp4 train\nbasketball/v4.mp4 train\n"
FCVID_LABELS = "1\t0\t0\n0\t1\t1\n0\t0\t1\n0\t1\t0\n"


def test_fcvid_classes_named_by_the_category_folders_without_a_class_file(tmp_path: Path):
    _fcvid_files(tmp_path, FCVID_SPLIT, FCVID_LABELS)
    inferred = fcvid_manifest(tmp_path)  # v2 (two labels) names no column; v1, v4, v3 name 1, 2, 3
    assert inferred.classes == ("accordion", "basketball", "cooking")
    assert [(v.video_id, v.labels) for v in inferred.videos] == [("accordion/v1", (0,)), ("basketball/v2", (1, 2)), ("cooking/v3", (2,)), ("basketball/v4", (1,))]
    (tmp_path / "materials" / "FCVID_Category.txt").write_text("accordion\nbasketball\ncooking\n")
    assert fcvid_manifest(tmp_path) == inferred


@pytest.mark.parametrize(
    "split, labels, problem",
    [
        (FCVID_SPLIT, "1 0 0\n0 1 1\n0 0 1\n0 0 1\n", "label column 2: no video is labelled with it alone"),
        (FCVID_SPLIT, "1 0 0\n0 1 0\n0 0 1\n0 0 1\n", "label column 3: the videos labelled with it alone lie in 2 folders ('basketball', 'cooking')"),
        (FCVID_SPLIT, "1 0 0\n0 1 0\n0 0 1\n1 0 0\n", "label column 1: the videos labelled with it alone lie in 2 folders ('accordion', 'basketball')"),
        ("a/v1.mp4 train\na/v2.mp4 train\n", "1 0\n0 1\n", "label column 2: folder 'a' holds the videos of column 1 too"),
        ("v1.mp4 train\nv2.mp4 train\n", "1 0\n0 1\n", "label column 1: the videos labelled with it alone lie in no folder"),
    ],
)
def test_fcvid_folders_that_cannot_name_the_classes_are_an_error(tmp_path: Path, split, labels, problem):
    _fcvid_files(tmp_path, split, labels)
    with pytest.raises(ManifestError) as error:
        fcvid_manifest(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'materials' / 'FCVID_Category.txt'} not found and no --class-names given, and the category folders do not name {problem}. "
        "Pass the class names, one a line in the order of the label columns, with --class-names"
    )


def test_fcvid_class_names_given_by_option(tmp_path: Path):
    _fcvid_files(tmp_path, FCVID_SPLIT, FCVID_LABELS)
    (tmp_path / "materials" / "FCVID_Category.txt").write_text("accordion\nbasketball\ncooking\n")
    (tmp_path / "categories.txt").write_text("0 Accordion performance\n2 Cooking\n1 Basketball\n")  # AR-Net's name, index order
    m = get_dataset("fcvid").load(tmp_path, AnnotationFiles(classes=tmp_path / "categories.txt"))
    assert m.classes == ("Accordion performance", "Basketball", "Cooking")


def test_fcvid_labels_separated_by_commas_or_tabs(tmp_path: Path):
    (tmp_path / "FCVID_Category.txt").write_text("a\nb\nc\n")
    (tmp_path / "FCVID_VideoName_TrainTestSplit.txt").write_text("a/x.mp4 train\nb/y.mp4 test\n")
    (tmp_path / "FCVID_Label.txt").write_text("1,0,1\n0\t1\t0\n")
    assert [v.labels for v in fcvid_manifest(tmp_path).videos] == [(0, 2), (1,)]


def test_activitynet_v13_json(tmp_path: Path):
    db = {
        "version": "VERSION 1.3",
        "taxonomy": [],
        "database": {
            "abc": {"subset": "training", "annotations": [{"label": "Hopscotch", "segment": [1, 2]}, {"label": "Hopscotch", "segment": [3, 4]}]},
            "def": {"subset": "validation", "annotations": [{"label": "Rock climbing", "segment": [0, 5]}, {"label": "Hopscotch", "segment": [6, 7]}]},
            "ghi": {"subset": "testing", "annotations": []},
        },
    }
    (tmp_path / "activity_net.v1-3.min.json").write_text(json.dumps(db))
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v_abc.mkv").write_bytes(b"")
    m = activitynet_manifest(tmp_path)
    assert m.classes == ("Hopscotch", "Rock climbing")
    assert manifest_rows(m) == [
        ("v_abc", "videos/v_abc.mkv", (0,), "train"),
        ("v_def", "videos/v_def.mp4", (0, 1), "val"),
    ]


def test_activitynet_class_order_from_a_class_file(tmp_path: Path):
    """A recognizer trained with another class order: ``--class-names`` sets it (names matched
    to the labels with case and underscores aside, spelt as in the file); a video of a label
    not in the file is rejected, a name that is no label is an error."""
    db = {"database": {
        "a1": {"subset": "training", "annotations": [{"label": "Rock climbing"}]},
        "b2": {"subset": "validation", "annotations": [{"label": "Hopscotch"}, {"label": "Rock climbing"}]},
        "c3": {"subset": "training", "annotations": [{"label": "Archery"}]},
    }}
    (tmp_path / "activity_net.v1-3.min.json").write_text(json.dumps(db))
    assert activitynet_manifest(tmp_path).classes == ("Archery", "Hopscotch", "Rock climbing")
    (tmp_path / "order.txt").write_text("1 rock_climbing\n2 Hopscotch\n")
    m = activitynet_manifest(tmp_path, AnnotationFiles(classes=tmp_path / "order.txt"))
    assert m.classes == ("rock_climbing", "Hopscotch")
    assert [(v.video_id, v.labels) for v in m.videos] == [("v_a1", (0,)), ("v_b2", (0, 1))]
    assert [(r.video_id, r.reason) for r in m.rejected] == [("v_c3", "label(s) not in the class list: Archery")]
    (tmp_path / "order.txt").write_text("Rock climbing\nHop scotch\n")
    with pytest.raises(ManifestError, match=r"order.txt: 1 of its 2 classes are the label of no video in .*activity_net.v1-3.min.json: Hop scotch"):
        activitynet_manifest(tmp_path, AnnotationFiles(classes=tmp_path / "order.txt"))


def test_activitynet_v12_json_found_or_named(tmp_path: Path):
    db = {"version": "VERSION 1.2", "taxonomy": [], "database": {
        "k1": {"subset": "training", "annotations": [{"label": "Archery", "segment": [0, 3]}], "duration": 30.0, "resolution": "640x360", "url": "u"},
        "k2": {"subset": "validation", "annotations": [{"label": "Bathing dog", "segment": [1, 2]}], "duration": 12.5, "resolution": "480x360", "url": "u"},
    }}
    (tmp_path / "activity_net.v1-2.min.json").write_text(json.dumps(db))
    (tmp_path / "k2.webm").write_bytes(b"")
    expected = [("v_k1", "v_k1.mp4", (0,), "train"), ("v_k2", "k2.webm", (1,), "val")]
    m = activitynet_manifest(tmp_path)
    assert m.classes == ("Archery", "Bathing dog") and manifest_rows(m) == expected
    elsewhere = tmp_path / "annotations" / "anet12.json"
    elsewhere.parent.mkdir()
    (tmp_path / "activity_net.v1-2.min.json").rename(elsewhere)
    with pytest.raises(ManifestError, match="activity_net.v1-3.min.json: annotation file not found"):
        activitynet_manifest(tmp_path)
    m = get_dataset("activitynet").load(tmp_path, AnnotationFiles(annotations=elsewhere))
    assert manifest_rows(m) == expected


def test_activitynet_videos_anywhere_under_the_root(tmp_path: Path):
    """The official download keeps them in ``v1-2/train/``, ``v1-2/val/``, ``v1-3/train_val/``."""
    db = {"database": {
        "a1": {"subset": "training", "annotations": [{"label": "Archery"}]},
        "b2": {"subset": "validation", "annotations": [{"label": "Archery"}]},
        "c3": {"subset": "validation", "annotations": [{"label": "Archery"}]},
        "d4": {"subset": "training", "annotations": [{"label": "Archery"}]},
        "e5": {"subset": "training", "annotations": [{"label": "Archery"}]},
    }}
    (tmp_path / "activity_net.v1-3.min.json").write_text(json.dumps(db))
    for name in ("v1-3/train_val/v_a1.mp4", "v1-2/val/v_b2.webm", "v1-2/train/v_b2.mp4", "v1-2/val/c3.mkv", "frames/v_d4/img_00001.jpg", "frames/v_d4/v_e5.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    m = activitynet_manifest(tmp_path)
    assert [(v.video_id, v.path) for v in m.videos] == [
        ("v_a1", "v1-3/train_val/v_a1.mp4"),
        ("v_b2", "v1-2/train/v_b2.mp4"),  # the first in name order
        ("v_c3", "v1-2/val/c3.mkv"),
        ("v_d4", "frames/v_d4"),  # a folder of frames, not entered
        ("v_e5", "v_e5.mp4"),  # inside that folder: not found, reported missing by the features stage
    ]
    (tmp_path / "v_a1.avi").write_bytes(b"")
    assert activitynet_manifest(tmp_path).videos[0].path == "v_a1.avi"  # in the root first, as before
    other_disk = tmp_path.parent / f"{tmp_path.name}-disk2"
    (other_disk / "test").mkdir(parents=True)
    (other_disk / "test" / "v_e5.mp4").write_bytes(b"")
    (other_disk / "test" / "loop").symlink_to(other_disk)  # a cycle: entered once
    (tmp_path / "v1-3" / "test").symlink_to(other_disk / "test")
    assert activitynet_manifest(tmp_path).videos[-1].path == "v1-3/test/v_e5.mp4"  # through a link to another disk


def test_activitynet_frame_folders_that_bear_their_videos_file_name_are_found(tmp_path: Path):
    """FrameExit keeps each video's frames in a folder named as its file, ``v_<id>.mp4/`` of
    ``.jpeg`` frames: such a folder is the video's frames wherever it lies under the root and is
    not entered (before 2026-12-07 only one in the root itself was found); a video file named
    by the id is still taken first."""
    db = {"database": {vid: {"subset": "validation", "annotations": [{"label": "Archery"}]} for vid in ("a1", "b2", "c3")}}
    (tmp_path / "activity_net.v1-3.min.json").write_text(json.dumps(db))
    for name in ("frames/v_a1.mp4/000001.jpeg", "frames/v_b2.webm/000001.jpeg", "frames/v_b2.webm/v_c3.mp4", "frames/c3.mkv/000001.jpeg", "videos/v_c3.avi"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    m = activitynet_manifest(tmp_path)
    assert [(v.video_id, v.path) for v in m.videos] == [("v_a1", "frames/v_a1.mp4"), ("v_b2", "frames/v_b2.webm"), ("v_c3", "videos/v_c3.avi")]


def test_activitynet_videos_named_by_yt_dlp_are_found_by_their_id(tmp_path: Path):
    """ActivityNet fetched with yt-dlp's default name, ``<title> [<id>].<ext>``: found by the
    id (without ActivityNet's ``v_``), where no file bears the id alone; a download not finished
    gives the path it is to make."""
    db = {"database": {
        "Q0lSCBRmfWY": {"subset": "training", "annotations": [{"label": "Archery"}]},
        "-7ozA4hJkQb": {"subset": "validation", "annotations": [{"label": "Archery"}]},
        "sJFgo9H6zNo": {"subset": "validation", "annotations": [{"label": "Archery"}]},
    }}
    (tmp_path / "activity_net.v1-3.min.json").write_text(json.dumps(db))
    (tmp_path / "downloads").mkdir()
    for name in ("Archery lesson, part 1 [Q0lSCBRmfWY].webm", "Target practice [-7ozA4hJkQb].mp4", "Target practice [-7ozA4hJkQb].jpg",
                 "Bow hunting [sJFgo9H6zNo].mkv.part"):
        (tmp_path / "downloads" / name).write_bytes(b"")
    assert {v.video_id: v.path for v in activitynet_manifest(tmp_path).videos} == {
        "v_Q0lSCBRmfWY": "downloads/Archery lesson, part 1 [Q0lSCBRmfWY].webm",
        "v_-7ozA4hJkQb": "downloads/Target practice [-7ozA4hJkQb].mp4",  # the thumbnail (--write-thumbnail) is no video
        "v_sJFgo9H6zNo": "downloads/Bow hunting [sJFgo9H6zNo].mkv",  # still downloading: the file it is to make
    }
    (tmp_path / "v_Q0lSCBRmfWY.mp4").write_bytes(b"")
    assert {v.video_id: v.path for v in activitynet_manifest(tmp_path).videos}["v_Q0lSCBRmfWY"] == "v_Q0lSCBRmfWY.mp4"


def test_activitynet_as_mmaction2_keeps_it(tmp_path: Path):
    """mmaction2's ActivityNet: BSN's ``anet_anno_action.json`` (``v_<id>`` keys, no subsets),
    its subsets in ``video_info_new.csv``, the videos in ``videos/v_<id>.mp4`` (its download.py);
    or one of the per-subset files its process_annotations.py writes."""
    anno = {
        "v_a1": {"duration_second": 30.0, "duration_frame": 900, "feature_frame": 896, "annotations": [{"segment": [1.0, 9.5], "label": "Rock climbing"}, {"segment": [12.0, 20.0], "label": "Archery"}]},
        "v_b2": {"duration_second": 12.5, "duration_frame": 375, "feature_frame": 368, "annotations": [{"segment": [0.0, 5.0], "label": "Archery"}]},
        "v_c3": {"duration_second": 40.0, "duration_frame": 1200, "feature_frame": 1200, "annotations": []},
    }
    (tmp_path / "anet_anno_action.json").write_text(json.dumps(anno))
    (tmp_path / "video_info_new.csv").write_text("video,numFrame,seconds,fps,rfps,subset,featureFrame\nv_a1,900,30.0,30.0,30,training,896\nv_b2,375,12.5,30.0,30,validation,368\nv_c3,1200,40.0,30.0,30,testing,1200\nv_d4,300,10.0,30.0,30,training,288\n")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v_a1.mp4").write_bytes(b"")
    expected = [("v_a1", "videos/v_a1.mp4", (0, 1), "train"), ("v_b2", "videos/v_b2.mp4", (0,), "val")]  # v_c3 testing, v_d4 never downloaded
    m = activitynet_manifest(tmp_path)  # found in the data root without options
    assert m.classes == ("Archery", "Rock climbing") and manifest_rows(m) == expected
    split = tmp_path / "annotations" / "anet_anno_val.json"
    split.parent.mkdir()
    split.write_text(json.dumps({"v_b2": anno["v_b2"]}))
    assert manifest_rows(activitynet_manifest(tmp_path, AnnotationFiles(annotations=split))) == expected[1:]  # the subset from the name
    (tmp_path / "video_info_new.csv").write_text("video,numFrame,seconds,fps,rfps,subset,featureFrame\nv_a1,900,30.0,30.0,30,training,896\n")
    with pytest.raises(ManifestError, match=r"anet_anno_action.json: video v_b2 is not in .*video_info_new.csv \(2 of 3 are not\), which gives the subsets"):
        activitynet_manifest(tmp_path)
    (tmp_path / "video_info_new.csv").unlink()
    with pytest.raises(ManifestError, match=r"anet_anno_action.json: mmaction2's \(BSN's\) ActivityNet annotations hold no subsets, and video_info_new.csv .* is in neither"):
        activitynet_manifest(tmp_path)


def test_activitynet_bad_json_is_named(tmp_path: Path):
    (tmp_path / "activity_net.v1-3.min.json").write_text("{}")
    with pytest.raises(ManifestError, match=r"not an ActivityNet v1.2/v1.3 annotation file \(no 'database'\), nor mmaction2's \(BSN's\) anet_anno_action.json"):
        activitynet_manifest(tmp_path)
    (tmp_path / "activity_net.v1-3.min.json").write_text(json.dumps({"database": ["abc"]}))
    with pytest.raises(ManifestError, match=r"not an ActivityNet v1.2/v1.3 annotation file \('database' must map video ids to objects\)"):
        activitynet_manifest(tmp_path)
    for annotations in ({"label": "Hopscotch"}, [{"segment": [0.0, 5.0]}]):  # a Kinetics-style object; a segment without its label
        database = {"abc": {"subset": "training", "annotations": [{"label": "Hopscotch"}]}, "def": {"subset": "training", "annotations": annotations}}
        (tmp_path / "activity_net.v1-3.min.json").write_text(json.dumps({"database": database}))
        with pytest.raises(ManifestError, match=r"activity_net.v1-3.min.json: video def: 'annotations' must be a list of segments each with a 'label'"):
            activitynet_manifest(tmp_path)


@pytest.mark.parametrize(("text", "said"), [
    (json.dumps({"aaaaaaaaaaa": {"annotations": {"label": "abseiling", "segment": [10, 20]}, "subset": "train"}}), r"not an ActivityNet v1.2/v1.3 annotation file but a Kinetics annotation JSON, read by --dataset kinetics \(or minikinetics\) with --annotations$"),
    (json.dumps({"database": {"v_x": {"subset": "training", "annotations": {"label": "abseiling", "segment": [0, 300]}}}}), r"not an ActivityNet v1.2/v1.3 annotation file but a Kinetics annotation JSON"),  # 3D-ResNets' kinetics.json
    ("label,youtube_id,time_start,time_end,split\nabseiling,aaaaaaaaaaa,10,20,train\n", r"not an ActivityNet v1.2/v1.3 annotation file \(Expecting value: .*\): a Kinetics annotation csv \(label,youtube_id,time_start,time_end,...\), read by --dataset kinetics, or minikinetics with --annotations$"),
    ("v_abc 3783 7\nv_def 2040 3\n", r"not an ActivityNet v1.2/v1.3 annotation file \(Expecting value: .*\): a list of videos \(a path, then numbers\), read by --dataset list as --train-list or --val-list$"),
])
def test_activitynet_given_another_datasets_annotations_names_the_dataset_that_reads_them(tmp_path: Path, text: str, said: str):
    """Kinetics' JSON (its own or 3D-ResNets'), its csv or an ActivityNet list of videos given
    as the ActivityNet annotations: the error names what the file is and what reads it (before
    2026-12-07, evening: "no 'database'", a JSON decoder's message, or a Kinetics JSON under
    3D-ResNets' "database" read as ActivityNet's: "'annotations' must be a list of segments")."""
    (tmp_path / "given").write_text(text)
    with pytest.raises(ManifestError, match=rf"given: {said}"):
        activitynet_manifest(tmp_path, AnnotationFiles(annotations=tmp_path / "given"))


def test_minikinetics_arnet_lists(tmp_path: Path):
    (tmp_path / "mini_categories.txt").write_text("abseiling\nbaking\n")
    (tmp_path / "mini_train_videofolder.txt").write_text("train/abseiling/x1 300 0\ntrain/baking/x2 250 1\n")
    (tmp_path / "mini_val_videofolder.txt").write_text("val/x4.mp4 120 1\nval/x5 90 0\n")
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "x5.mkv").write_bytes(b"")  # kept as a file, listed as AR-Net's frame folder
    m = minikinetics_manifest(tmp_path)
    assert manifest_rows(m) == [
        ("train/abseiling/x1", "train/abseiling/x1", (0,), "train"),
        ("train/baking/x2", "train/baking/x2", (1,), "train"),
        ("val/x4", "val/x4.mp4", (1,), "val"),
        ("val/x5", "val/x5.mkv", (0,), "val"),
    ]
    assert m.rejected == ()
    (tmp_path / "mini_categories.txt").rename(tmp_path / "minik_classInd.txt")  # AdaFocus' name for it
    assert minikinetics_manifest(tmp_path) == m
    lists = tmp_path / "lists"  # the same lists and class names under other names, given as options
    lists.mkdir()
    for old, new in (("mini_train_videofolder.txt", "train.txt"), ("mini_val_videofolder.txt", "val.txt"), ("minik_classInd.txt", "classes.txt")):
        (tmp_path / old).rename(lists / new)
    assert minikinetics_manifest(tmp_path, AnnotationFiles(train=lists / "train.txt", val=lists / "val.txt", classes=lists / "classes.txt")) == m
    with (lists / "train.txt").open("a") as train:  # a label the class file does not have: the wrong class file, most likely
        train.write("train/baking/x3 250 5\n")
    with pytest.raises(ManifestError, match=r"train.txt:3: label 5 is beyond the 2 classes of the class list \(labels are 0-based\)"):
        minikinetics_manifest(tmp_path, AnnotationFiles(train=lists / "train.txt", val=lists / "val.txt", classes=lists / "classes.txt"))
    (lists / "train.txt").write_text("train/abseiling/x1 300 0\n")
    (lists / "val.txt").write_text("val/x4.mp4 one\n")
    with pytest.raises(ManifestError, match=r"val.txt:1: expected 'path num_frames label"):
        minikinetics_manifest(tmp_path, AnnotationFiles(train=lists / "train.txt", val=lists / "val.txt", classes=lists / "classes.txt"))


def test_minikinetics_arnet_lists_find_cvdfoundations_flat_download(tmp_path: Path):
    """AR-Net's and AdaFuse's Mini-Kinetics lists name ``images/train/<class name>/<clip>`` (the
    class name with its spaces), written for their frames; cvdfoundation's download keeps the
    clips flat, ``train/<clip>.mp4``, and good copies of corrupted ones in
    ``replacement_for_corrupted_k400/``: each clip is found by its name (before 2026-12-07 every
    one was missing), the good copy first."""
    for name in ("train/aaaaaaaaaaa_000010_000020.mp4", "replacement_for_corrupted_k400/aaaaaaaaaaa_000010_000020.mp4", "val/bbbbbbbbbbb_000001_000011.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "minik_classInd.txt").write_text("abseiling\nair drumming\n")
    (tmp_path / "mini_train_videofolder.txt").write_text("images/train/air drumming/aaaaaaaaaaa_000010_000020 300 1\n")
    (tmp_path / "mini_val_videofolder.txt").write_text("images/val/abseiling/bbbbbbbbbbb_000001_000011 250 0\n")
    assert [(v.path, v.labels, v.split) for v in minikinetics_manifest(tmp_path).videos] == [
        ("replacement_for_corrupted_k400/aaaaaaaaaaa_000010_000020.mp4", (1,), "train"), ("val/bbbbbbbbbbb_000001_000011.mp4", (0,), "val")]


def test_minikinetics_lists_without_a_class_file_name_the_classes_by_index(tmp_path: Path):
    """AR-Net's code reads Mini-Kinetics with 200 classes and no class-name file: without one the
    classes are named by their index, as the list dataset names them, and a warning says so
    (before 2026-12-07: "mini_categories.txt: class-name file not found")."""
    (tmp_path / "mini_train_videofolder.txt").write_text("a 300 0\nb 300 2\n")
    (tmp_path / "mini_val_videofolder.txt").write_text("c 300 1\n")
    with pytest.warns(UserWarning, match=r"no class-name file \(mini_categories.txt or minik_classInd.txt, or --class-names\): the classes are named by their index"):
        m = minikinetics_manifest(tmp_path)
    assert m.classes == ("0", "1", "2")
    assert [(v.video_id, v.labels, v.split) for v in m.videos] == [("a", (0,), "train"), ("b", (2,), "train"), ("c", (1,), "val")]
    with pytest.raises(ManifestError, match=r"names.txt: class-name file not found"):  # one named is still needed
        minikinetics_manifest(tmp_path, AnnotationFiles(classes=str(tmp_path / "names.txt")))


def _hmdb51(root: Path, folder: str) -> None:
    """HMDB51's layout in small: two classes, one a prefix of the other's name (``kick``,
    ``kick_ball``), two splits, the videos in the official rar's class folders."""
    splits = root / folder
    splits.mkdir(parents=True, exist_ok=True)
    for k in (1, 2):
        (splits / f"kick_test_split{k}.txt").write_text(f"a_kick_0.avi {k} \nb_kick_1.avi {3 - k} \nc_kick_2.avi 0 \n")  # the release's trailing spaces
        (splits / f"kick_ball_test_split{k}.txt").write_text("d_kick_ball_0.avi 1 \ne_kick_ball_1.avi 2 \n")
    for name in ("kick/a_kick_0.avi", "kick/b_kick_1.avi", "kick/c_kick_2.avi", "kick_ball/d_kick_ball_0.avi", "kick_ball/e_kick_ball_1.avi"):
        (root / "hmdb51_org" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "hmdb51_org" / name).write_bytes(b"x")


def test_hmdb51_split_files(tmp_path: Path):
    """HMDB51 (new in the fifty-fourth session, 2026-12-07): a class's split file marks each
    video 1 train, 2 test (val here, as UCF101's test list) or 0 in neither; the classes in
    sorted order (``kick`` before ``kick_ball``, as mmaction2 numbers them, where the files'
    names sort the other way); split 1 by default, another named by one of its files; the split
    folder as the release's or mmaction2's ``annotations/``."""
    _hmdb51(tmp_path, "testTrainMulti_7030_splits")
    m = get_dataset("hmdb51").load(tmp_path)
    assert m.classes == ("kick", "kick_ball")
    assert manifest_rows(m) == [
        ("hmdb51_org/kick/a_kick_0", "hmdb51_org/kick/a_kick_0.avi", (0,), "train"),
        ("hmdb51_org/kick/b_kick_1", "hmdb51_org/kick/b_kick_1.avi", (0,), "val"),
        ("hmdb51_org/kick_ball/d_kick_ball_0", "hmdb51_org/kick_ball/d_kick_ball_0.avi", (1,), "train"),
        ("hmdb51_org/kick_ball/e_kick_ball_1", "hmdb51_org/kick_ball/e_kick_ball_1.avi", (1,), "val"),
    ]
    second = get_dataset("hmdb51").load(tmp_path, AnnotationFiles(annotations=tmp_path / "testTrainMulti_7030_splits" / "kick_ball_test_split2.txt"))
    assert [(v.video_id, v.split) for v in second.videos][:2] == [("hmdb51_org/kick/a_kick_0", "val"), ("hmdb51_org/kick/b_kick_1", "train")]
    mmaction2 = tmp_path / "mm"
    _hmdb51(mmaction2, "annotations")
    (mmaction2 / "annotations" / "classInd.txt").write_text("1 kick\n2 kick_ball\n")  # what mmaction2's parse_file_list.py adds beside them
    assert len(get_dataset("hmdb51").load(mmaction2).videos) == 4
    with pytest.raises(ManifestError, match=rf"\({mmaction2} holds the hmdb51 dataset's annotation files: --dataset hmdb51\?\)$"):
        load_manifest("fcvid", mmaction2)
    (tmp_path / "testTrainMulti_7030_splits" / "kick_test_split1.txt").write_text("a_kick_0.avi 3\n")
    with pytest.raises(ManifestError, match=r"kick_test_split1.txt:1: expected '<video>.avi 0\|1\|2' \(HMDB51's split file\), got 'a_kick_0.avi 3'$"):
        get_dataset("hmdb51").load(tmp_path)
    with pytest.raises(ManifestError, match=r"--train-list: not used by the hmdb51 dataset"):
        get_dataset("hmdb51").load(tmp_path, AnnotationFiles(train=tmp_path / "x.txt"))
    with pytest.raises(ManifestError, match=r"no HMDB51 split files \(<class>_test_split1.txt, from test_train_splits.rar\)"):
        get_dataset("hmdb51").load(tmp_path / "hmdb51_org")


def test_ucf101_classind_and_split_lists(tmp_path: Path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (tmp_path / "UCF-101").mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g08_c01.avi 2\n")
    (lists / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\nBowling/v_Bowling_g01_c01.avi\n")
    m = ucf101_manifest(tmp_path)
    assert manifest_rows(m) == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", (0,), "train"),
        ("Archery/v_Archery_g08_c01", "UCF-101/Archery/v_Archery_g08_c01.avi", (1,), "train"),
        ("Archery/v_Archery_g01_c01", "UCF-101/Archery/v_Archery_g01_c01.avi", (1,), "val"),
    ]
    assert "Bowling" in m.rejected[0].reason
    (lists / "trainlist02.txt").write_text("Archery/v_Archery_g01_c01.avi 2\n")
    (lists / "testlist02.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi\n")
    split2 = get_dataset("ucf101").load(tmp_path, AnnotationFiles(train=lists / "trainlist02.txt", val=lists / "testlist02.txt"))
    assert [(v.video_id, v.labels, v.split) for v in split2.videos] == [("Archery/v_Archery_g01_c01", (1,), "train"), ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", (0,), "val")]
    with pytest.raises(ManifestError, match=r"classInd.txt: not 3D-ResNets' UCF101 JSON"):
        get_dataset("ucf101").load(tmp_path, AnnotationFiles(annotations=lists / "classInd.txt"))
    with pytest.raises(ManifestError, match=r"--list-format: not used by the ucf101 dataset"):
        get_dataset("ucf101").load(tmp_path, AnnotationFiles(list_format="video"))
    for name in ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.mp4", "Archery/v_Archery_g08_c01/img_00001.jpg"):  # transcoded; frames
        (tmp_path / "UCF-101" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "UCF-101" / name).write_bytes(b"")
    found = ucf101_manifest(tmp_path)
    assert [(v.video_id, v.path) for v in found.videos] == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.mp4"),
        ("Archery/v_Archery_g08_c01", "UCF-101/Archery/v_Archery_g08_c01"),
        ("Archery/v_Archery_g01_c01", "UCF-101/Archery/v_Archery_g01_c01.avi"),  # not there: as the list says
    ]
    (lists / "trainlist01.txt").write_text("Archery/v_Archery_g08_c01.avi 2\nArchery/v_Archery_g09_c01.avi two\n")
    with pytest.raises(ManifestError, match=r"trainlist01.txt:2: expected 'Class/v_x.avi \[class index\]' \(or mmaction2's 'Class/v_x.avi index', 'Class/v_x num_frames index'\), got 'Archery/v_Archery_g09_c01.avi two'$"):
        ucf101_manifest(tmp_path)
    for index in ("3", "0"):  # beyond classInd.txt, or 0 in a 1-based list: a class file of another split or dataset
        (lists / "trainlist01.txt").write_text(f"Archery/v_Archery_g08_c01.avi 2\nArchery/v_Archery_g09_c01.avi {index}\n")
        with pytest.raises(ManifestError, match=rf"trainlist01.txt:2: class index {index} is not one of the 2 classes of the class list \(1-based, as in classInd.txt\)"):
            ucf101_manifest(tmp_path)


def test_ucf101_in_mmaction2s_layout_and_videos_found_by_name(tmp_path: Path):
    """mmaction2's layout (data/ucf101/annotations/ from its download_annotations.sh, which
    unzips the split files flat there; videos/Class/v_x.avi; rawframes/Class/v_x/), and frames
    kept without class folders (jpegs_256/v_x/): each video found, the ids as the lists give them."""
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (tmp_path / "annotations" / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g08_c01.avi 2\n")
    (tmp_path / "annotations" / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
    for name in ("videos/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "videos/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01/img_00001.jpg", "rawframes/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01/img_00001.jpg", "rawframes/Archery/v_Archery_g08_c01/img_00001.jpg", "jpegs_256/v_Archery_g01_c01/frame000001.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    m = get_dataset("ucf101").load(tmp_path)
    assert manifest_rows(m) == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", "videos/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", (0,), "train"),  # the file as listed, not its frames beside it
        ("Archery/v_Archery_g08_c01", "rawframes/Archery/v_Archery_g08_c01", (1,), "train"),  # no video: its frames, by name
        ("Archery/v_Archery_g01_c01", "jpegs_256/v_Archery_g01_c01", (1,), "val"),
    ] and not m.rejected
    (tmp_path / "annotations" / "testlist01.txt").unlink()
    with pytest.raises(ManifestError, match=r": no testlist01.txt in ucfTrainTestlist/, annotations/ or the data root .* --class-names, --train-list and --val-list$"):
        get_dataset("ucf101").load(tmp_path)
    split = get_dataset("ucf101").load(tmp_path, AnnotationFiles(train=tmp_path / "annotations" / "trainlist01.txt"))  # the class file found, the list given
    assert [v.split for v in split.videos] == ["train", "train"]


def test_ucf101_with_mmaction2s_lists_numbered_from_0(tmp_path: Path):
    """mmaction2's ``ucf101_{train,val}_split_1_videos.txt`` (``Class/v_x.avi 0``) and
    ``_rawframes.txt`` (``Class/v_x 120 0``) number the classes from 0 (its build_file_list.py):
    read so, with a warning, where the classes the videos' names hold say so, else where a label
    is 0 (before 2026-12-07, evening: "class index 0 is not one of the 101 classes", and a list
    without class 0 was read one class off). The official lists, and a 0 among labels that agree
    with their videos from 1, stay 1-based."""
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n3 HandstandPushups\n")
    videos = tmp_path / "ucf101_train_split_1_videos.txt"
    videos.write_text("Archery/v_Archery_g08_c01.avi 1\nHandstandPushups/v_HandStandPushups_g08_c01.avi 2\n")  # no class 0 among them
    frames = tmp_path / "ucf101_val_split_1_rawframes.txt"
    frames.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01 120 0\nArchery/v_Archery_g01_c01 95 1\n")
    for name in ("videos/Archery/v_Archery_g08_c01.avi", "videos/HandstandPushups/v_HandStandPushups_g08_c01.avi", "rawframes/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01/img_00001.jpg", "rawframes/Archery/v_Archery_g01_c01/img_00001.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    with pytest.warns(UserWarning, match=r"_split_1_(videos|rawframes).txt: class indices read from 0, as mmaction2 numbers them") as said:
        m = get_dataset("ucf101").load(tmp_path, AnnotationFiles(train=videos, val=frames))
    assert len(said) == 2 and manifest_rows(m) == [
        ("Archery/v_Archery_g08_c01", "videos/Archery/v_Archery_g08_c01.avi", (1,), "train"),
        ("HandstandPushups/v_HandStandPushups_g08_c01", "videos/HandstandPushups/v_HandStandPushups_g08_c01.avi", (2,), "train"),
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", "rawframes/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", (0,), "val"),
        ("Archery/v_Archery_g01_c01", "rawframes/Archery/v_Archery_g01_c01", (1,), "val"),
    ]
    renamed = tmp_path / "train.txt"  # names that hold no class: told by the 0
    renamed.write_text("clips/a.avi 0\nclips/b.avi 2\n")
    with pytest.warns(UserWarning, match=r"train.txt: class indices read from 0"):
        assert [v.labels for v in get_dataset("ucf101").load(tmp_path, AnnotationFiles(train=renamed)).videos] == [(0,), (2,)]
    official = tmp_path / "annotations" / "trainlist01.txt"
    official.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g08_c01.avi 2\nArchery/v_Archery_g09_c01.avi 0\n")
    with pytest.raises(ManifestError, match=r"trainlist01.txt:3: class index 0 is not one of the 3 classes of the class list \(1-based, as in classInd.txt\)$"):
        get_dataset("ucf101").load(tmp_path, AnnotationFiles(train=official))
    videos.write_text("Archery/v_Archery_g08_c01.avi 1\nArchery/v_Archery_g09_c01.avi 3\n")
    with pytest.raises(ManifestError, match=r"ucf101_train_split_1_videos.txt:2: class index 3 is not one of the 3 classes of the class list \(0-based, as mmaction2 numbers them\)$"):
        with pytest.warns(UserWarning, match="from 0"):
            get_dataset("ucf101").load(tmp_path, AnnotationFiles(train=videos))


def test_ucf101_handstand_pushups_as_the_official_files_spell_it(tmp_path: Path):
    """The official release names one class two ways: ``classInd.txt`` and the lists' folders
    say ``HandstandPushups``, the rar's folder and every file ``HandStandPushups``. The videos
    are found under the rar's spelling, the class is classInd's, none rejected."""
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n")
    (lists / "trainlist01.txt").write_bytes(b"HandstandPushups/v_HandStandPushups_g08_c01.avi 2\r\n")
    (lists / "testlist01.txt").write_bytes(b"HandstandPushups/v_HandStandPushups_g01_c01.avi\r\n")
    for name in ("v_HandStandPushups_g08_c01", "v_HandStandPushups_g01_c01"):
        (tmp_path / "UCF-101" / "HandStandPushups").mkdir(parents=True, exist_ok=True)
        (tmp_path / "UCF-101" / "HandStandPushups" / f"{name}.avi").write_bytes(b"x")
    m = ucf101_manifest(tmp_path)
    assert manifest_rows(m) == [
        ("HandstandPushups/v_HandStandPushups_g08_c01", "UCF-101/HandStandPushups/v_HandStandPushups_g08_c01.avi", (1,), "train"),
        ("HandstandPushups/v_HandStandPushups_g01_c01", "UCF-101/HandStandPushups/v_HandStandPushups_g01_c01.avi", (1,), "val"),
    ] and not m.rejected and m.classes == ("ApplyEyeMakeup", "HandstandPushups")


def test_ucf101_3d_resnets_json(tmp_path: Path):
    """3D-ResNets' ucf101_01.json: its 'labels' in classInd's order (JumpingJack before JumpRope,
    which a plain sort swaps), videos by their key as frame folders (its jpg/ tree) or files."""
    database = {
        "v_JumpRope_g01_c01": {"subset": "training", "annotations": {"label": "JumpRope"}},
        "v_JumpingJack_g01_c01": {"subset": "training", "annotations": {"label": "JumpingJack"}},
        "v_JumpRope_g02_c01": {"subset": "validation", "annotations": {"label": "JumpRope"}},
    }
    annotations = tmp_path / "ucf101_01.json"
    annotations.write_text(json.dumps({"labels": ["JumpingJack", "JumpRope"], "database": database}))
    root = tmp_path / "data"
    for name in ("jpg/JumpRope/v_JumpRope_g01_c01/image_00001.jpg", "jpg/JumpingJack/v_JumpingJack_g01_c01/image_00001.jpg", "UCF-101/JumpRope/v_JumpRope_g02_c01.avi"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    m = get_dataset("ucf101").load(root, AnnotationFiles(annotations=annotations))
    assert m.name == "ucf101" and m.classes == ("JumpingJack", "JumpRope")
    assert manifest_rows(m) == [
        ("v_JumpRope_g01_c01", "jpg/JumpRope/v_JumpRope_g01_c01", (1,), "train"),
        ("v_JumpingJack_g01_c01", "jpg/JumpingJack/v_JumpingJack_g01_c01", (0,), "train"),
        ("v_JumpRope_g02_c01", "UCF-101/JumpRope/v_JumpRope_g02_c01.avi", (1,), "val"),
    ]
    with pytest.raises(ManifestError, match=r"--annotations: 3D-ResNets' ucf101_0N.json holds every split .* reads it alone"):
        get_dataset("ucf101").load(root, AnnotationFiles(annotations=annotations, train=annotations))


def test_manifest_round_trip_and_digest(tmp_path: Path):
    (tmp_path / "manifest.csv").write_text("a.mp4,x,train\nb.mp4,y,z,val\nc.mp4,q,train\n")
    (tmp_path / "classes.txt").write_text("x\ny\nz\n")
    m = csv_manifest(tmp_path)
    again = Manifest.from_json(m.to_json())
    assert again == m and again.digest() == m.digest() and len(m.digest()) == 64
    assert m.split("train") == [0] and m.split("val") == [1]
    (tmp_path / "manifest.csv").write_text("a.mp4,x,train\nb.mp4,y,val\n")
    assert csv_manifest(tmp_path).digest() != m.digest()


def test_the_manifest_json_is_the_form_caches_are_keyed_by():
    """Byte for byte the JSON every cache's manifest digest was taken of (keys sorted, no
    spaces, ``segment`` and ``source`` only where there are some), so that existing caches stay
    valid however it is built."""
    videos = (VideoRecord("x", "x.mp4", (0, 1), "train", (1.5, 11.5)), VideoRecord("d/y", "d/y", (1,), "val"))
    m = Manifest("k", ("a", "b c"), videos, (Rejected("z", "z.mp4", "no label"),))
    assert m.to_json() == (
        '{"classes":["a","b c"],"name":"k","rejected":[{"path":"z.mp4","reason":"no label","video_id":"z"}],'
        '"videos":[{"labels":[0,1],"path":"x.mp4","segment":[1.5,11.5],"split":"train","video_id":"x"},'
        '{"labels":[1],"path":"d/y","split":"val","video_id":"d/y"}]}'
    )
    assert Manifest("k", ("a",), (), (), "spec").to_json() == '{"classes":["a"],"name":"k","rejected":[],"source":"spec","videos":[]}'


def test_registry_names_and_profiles():
    assert set(DATASETS) == {"demo", "csv", "fcvid", "activitynet", "minikinetics", "ucf101", "list", "kinetics", "hmdb51"}
    assert get_dataset("fcvid").features.light.name == "mobilenetv2_100"
    assert get_dataset("fcvid").features.recognizer.name == "resnet50"
    assert get_dataset("fcvid").features.recognizer.resolution == 224
    assert get_dataset("minikinetics").features.light.resolution == 112
    with pytest.raises(ManifestError, match="unknown dataset 'kinetics700'"):
        get_dataset("kinetics700")


def test_root_only_datasets_refuse_list_options(tmp_path: Path):
    with pytest.raises(ManifestError, match="--train-list, --class-names: not used by this dataset"):
        get_dataset("csv").load(tmp_path, AnnotationFiles(train=tmp_path / "a.txt", classes=tmp_path / "c.txt"))
    with pytest.raises(ManifestError, match="--train-list: not used by the fcvid dataset"):
        get_dataset("fcvid").load(tmp_path, AnnotationFiles(train=tmp_path / "a.txt", classes=tmp_path / "c.txt"))
