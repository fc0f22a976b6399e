"""The list files of mmaction2, AR-Net and the Kinetics csv: every variant, multi-label lines,
paths resolved against the data root, and clear errors naming the file and line."""

import csv
import json
import re
import unicodedata
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.datasets import ManifestError
from pipeline.datasets.class_names import read_class_names
from pipeline.datasets.finding import PathResolver, folder_key, locate, titled_ids
from pipeline.datasets.lists import detect_format, table_delimiter
from pipeline.datasets.manifest import video_id
from stages.cli import main
from conftest import load_rows


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            (root / name).mkdir(exist_ok=True)
        else:
            (root / name).write_bytes(b"")


@pytest.fixture
def label_map(tmp_path: Path) -> Path:
    path = tmp_path / "label_map.txt"
    path.write_text("abseiling\nair drumming\nbaking cookies\n")  # names with spaces, as Kinetics'
    return path


def test_mmaction2_video_list_with_multi_label_lines(tmp_path, label_map):
    root = tmp_path / "videos"
    _touch(root, "train/a.mp4", "train/b.mkv", "val/c.webm")
    train = tmp_path / "train_list_videos.txt"
    train.write_text("train/a.mp4 0\ntrain/b.mkv 2 1\n\n# a comment line\n")
    val = tmp_path / "val_list_videos.txt"
    val.write_text("val/c.webm 1\n")
    m, rows = load_rows("list", root, train=train, val=val, classes=label_map)
    assert m.classes == ("abseiling", "air drumming", "baking cookies")
    assert rows == [("train/a", "train/a.mp4", (0,), "train"), ("train/b", "train/b.mkv", (1, 2), "train"), ("val/c", "val/c.webm", (1,), "val")]


def test_a_csv_list_of_paths_and_labels_with_or_without_its_header(tmp_path, label_map):
    """``path,label`` (a table saved by pandas or a spreadsheet, its column names first or not)
    was read as AR-Net's ``path,num_frames,label`` and refused (before 2026-12-06); a path in
    double quotes may hold a comma; a first line naming the columns, of any separator and in
    words of a column's name (``clip_name``, ``cls``, camel case), is passed over, where
    ``clip_name,label`` had stopped the read and ``path,cls`` made a class ``cls``; AR-Net's
    three fields stay AR-Net's; several labels need --list-format csv."""
    root = tmp_path / "videos"
    _touch(root, "a.mp4", "b, take 2.mp4", "clips/c.mp4", "video/")
    plain = tmp_path / "train.csv"
    plain.write_text('a.mp4,0\n"b, take 2.mp4",2\n')
    assert load_rows("list", root, train=plain, classes=label_map)[1] == [("a", "a.mp4", (0,), "train"), ("b, take 2", "b, take 2.mp4", (2,), "train")]
    for header in ("path,label", "video_path,label", '"filename","label"', "video label", "path\tlabel", "clip_name,label", "filepath,cls", "videoPath;classIndex", "Video Path,Class ID"):
        headed = tmp_path / "headed.csv"
        headed.write_text(f"{header}\na.mp4{',' if ',' in header else ' '}1\n")
        assert load_rows("list", root, train=headed, classes=label_map)[1] == [("a", "a.mp4", (1,), "train")], header
    first = tmp_path / "first.txt"  # a video named like a column, with its label: an entry, not a header
    first.write_text("video 0\nclips/c.mp4 1\n")
    assert [row[1] for row in load_rows("list", root, train=first, classes=label_map)[1]] == ["video", "clips/c.mp4"]
    first.write_text("video,abseiling\nclips/c.mp4,baking cookies\n")  # so labelled by name
    assert [row[1] for row in load_rows("list", root, train=first, classes=label_map)[1]] == ["video", "clips/c.mp4"]
    first.write_text("clip,abseiling\nclips/c.mp4,baking cookies\n")  # an entry even where no such file is there
    assert [row[1] for row in load_rows("list", root, train=first, classes=label_map)[1]] == ["clip", "clips/c.mp4"]
    headed.write_text("file_path,cls\na.mp4,baking cookies\n")  # a header of other words, labelled by name: no class 'cls'
    assert load_rows("list", root, train=headed)[0].classes == ("baking cookies",)
    headed.write_text("frame_dir num_frames label\nvideo 300 2\n")  # a rawframe list's columns
    assert load_rows("list", root, train=headed, classes=label_map)[1] == [("video", "video", (2,), "train")]
    arnet = tmp_path / "arnet.txt"
    arnet.write_text("a,300,1\n")
    assert load_rows("list", root, train=arnet, classes=label_map)[1] == [("a", "a.mp4", (1,), "train")]
    several = tmp_path / "several.csv"
    several.write_text("a.mp4,0,2\n")
    assert load_rows("list", root, train=several, classes=label_map, list_format="csv")[1] == [("a", "a.mp4", (0, 2), "train")]
    with pytest.warns(UserWarning, match=r"several.csv: read as AR-Net's 'path,num_frames,label' .*give --list-format csv$"):  # a .csv file: said
        assert load_rows("list", root, train=several, classes=label_map)[1] == [("a", "a.mp4", (2,), "train")]  # three fields are AR-Net's: 0 its frame count


def test_a_csv_list_may_label_by_class_name(tmp_path, label_map):
    """``path,label`` with the class's name (a table made by hand): the classes are the names
    sorted, or a class-name file's in its order, names matched with case and spaces against
    underscores aside; a name the file lacks, and lists labelling both ways, are errors naming
    the line."""
    root = tmp_path / "videos"
    _touch(root, "a.mp4", "b.mp4", "c.mp4")
    named = tmp_path / "train.csv"
    named.write_text('path,label\na.mp4,baking cookies\nb.mp4,"Air_Drumming"\nc.mp4,baking cookies,abseiling\n')
    m, rows = load_rows("list", root, train=named)
    assert m.classes == ("abseiling", "Air_Drumming", "baking cookies")  # sorted with case and underscores aside
    assert rows == [("a", "a.mp4", (2,), "train"), ("b", "b.mp4", (1,), "train"), ("c", "c.mp4", (0, 2), "train")]
    m, rows = load_rows("list", root, train=named, classes=label_map)  # abseiling, air drumming, baking cookies
    assert m.classes == ("abseiling", "air drumming", "baking cookies") and [row[2] for row in rows] == [(2,), (1,), (0, 2)]
    val = tmp_path / "val.csv"
    val.write_text("a.mp4,swimming\n")
    with pytest.raises(ManifestError, match=rf"val.csv:1: class 'swimming' is not in {label_map}$"):
        load_rows("list", root, train=named, val=val, classes=label_map)
    val.write_text("a.mp4,1\n")
    with pytest.raises(ManifestError, match=r"val.csv:1 labels by class index and .*train.csv:2 by class name; label every line one way$"):
        load_rows("list", root, train=named, val=val)
    spelt_twice = tmp_path / "classes.txt"  # both spellings would take one class's videos
    spelt_twice.write_text("abseiling\nAir drumming\nair_drumming\nbaking cookies\n")
    with pytest.raises(ManifestError, match=r"classes.txt: these class names are the same class \(case, quotes and underscores aside\): Air drumming, air_drumming$"):
        load_rows("list", root, train=named, classes=spelt_twice)


def test_a_quoted_name_after_a_comma_and_a_space_stays_one_label(tmp_path):
    """``a.mp4, "cooking, baking"`` (a space after the comma, as tables written by hand have):
    the quoted name is one class, as in a tab or semicolon table; it was split at its comma
    into two classes, ``cooking`` and ``baking`` (before 2026-12-07, evening)."""
    root = tmp_path / "videos"
    _touch(root, "a.mp4", "b.mp4")
    named = tmp_path / "train.csv"
    named.write_text('a.mp4, "cooking, baking"\nb.mp4, abseiling\n')
    m, rows = load_rows("list", root, train=named)
    assert m.classes == ("abseiling", "cooking, baking") and [row[2] for row in rows] == [(1,), (0,)]


def test_mmaction2_rawframe_list(tmp_path, label_map):
    root = tmp_path / "rawframes"
    _touch(root, "train/a/", "train/b/")
    train = tmp_path / "train_list_rawframes.txt"
    train.write_text("train/a 120 0\ntrain/b 95 2 0\n")
    _, rows = load_rows("list", root, train=train, classes=label_map)
    assert rows == [("train/a", "train/a", (0,), "train"), ("train/b", "train/b", (0, 2), "train")]


def test_lists_relative_to_a_folder_of_the_root_are_found_whole_under_it(tmp_path, label_map):
    """mmaction2's Kinetics lists are relative to videos_train/ and videos_val/ (its configs give
    each split its own prefix): with the data root above both, each path is found whole under
    one of them, the video for a path with an extension and the frames for one without where
    both are kept; a path is matched whole, so a name held under another class folder is not
    taken, and a file found where written is taken as before."""
    root = tmp_path / "kinetics400"
    _touch(root, "videos_train/abseiling/a_000010_000020.mp4", "videos_val/abseiling/b_000001_000011.webm", "rawframes_val/abseiling/b_000001_000011/img_00001.jpg",
           "rawframes_val/abseiling/c/img_00001.jpg", "videos_val/abseiling/c.mp4", "videos_val/cooking/001.mp4", "x.mp4")
    train = tmp_path / "kinetics400_train_list_videos.txt"
    train.write_text("abseiling/a_000010_000020.mp4 0\nx.mp4 1\n")
    val = tmp_path / "kinetics400_val_list_videos.txt"
    val.write_text("abseiling/b_000001_000011.mp4 0\nbaking/001.mp4 1\n")
    frames = tmp_path / "kinetics400_val_list_rawframes.txt"
    frames.write_text("abseiling/c 300 0\n")
    _, rows = load_rows("list", root, train=train, val=val, test=frames, classes=label_map)
    assert rows == [
        ("videos_train/abseiling/a_000010_000020", "videos_train/abseiling/a_000010_000020.mp4", (0,), "train"),
        ("x", "x.mp4", (1,), "train"),
        ("videos_val/abseiling/b_000001_000011", "videos_val/abseiling/b_000001_000011.webm", (0,), "val"),  # the video, not rawframes_val's frames
        ("baking/001", "baking/001.mp4", (1,), "val"),  # not cooking/001.mp4: kept as written, reported missing
        ("rawframes_val/abseiling/c", "rawframes_val/abseiling/c", (0,), "test"),  # the frames, not videos_val's c.mp4
    ]


def test_arnet_comma_lists(tmp_path, label_map):
    root = tmp_path / "data"
    _touch(root, "v_x1.mp4", "v_x2/")
    lst = tmp_path / "actnet_val_split.txt"
    lst.write_text("v_x1,2560,2\nv_x2,1800,0,1\n")
    _, rows = load_rows("list", root, val=lst, classes=label_map)
    assert rows == [("v_x1", "v_x1.mp4", (2,), "val"), ("v_x2", "v_x2", (0, 1), "val")]


def test_bare_list_names_find_the_videos_a_downloader_named_by_title(tmp_path, label_map):
    """AR-Net's ActivityNet lists name bare ids (``v_<id>``): videos fetched with yt-dlp's or
    youtube-dl's default name (a title, then the id) are found by the id, as are their unfinished
    downloads (by the file they are to make); a path with folders must still match whole, so
    ``a/x3`` is not taken for ``a/Title [x3].mp4``."""
    root = tmp_path / "data"
    _touch(root, "yt/Archery lesson [x1].mp4", "yt/Old download-Q0lSCBRmfWY.webm", "a/Title [x3].mp4", "yt/Archery again [x4].webm.ytdl", "z/v_x4.f251.webm")
    lst = tmp_path / "actnet_val_split.txt"
    lst.write_text("v_x1,2560,2\nv_Q0lSCBRmfWY,1800,0\na/x3,300,1\nv_x4,100,0\n")
    _, rows = load_rows("list", root, val=lst, classes=label_map)
    assert rows == [("yt/Archery lesson [x1]", "yt/Archery lesson [x1].mp4", (2,), "val"),  # a list video's id is its path, as ever
                    ("yt/Old download-Q0lSCBRmfWY", "yt/Old download-Q0lSCBRmfWY.webm", (0,), "val"), ("a/x3", "a/x3", (1,), "val"),
                    ("yt/Archery again [x4]", "yt/Archery again [x4].webm", (0,), "val")]  # unfinished: the walk's first of two
    (root / "x4.mkv").write_bytes(b"")
    assert load_rows("list", root, val=lst, classes=label_map)[1][-1][:2] == ("x4", "x4.mkv")  # finished, under the other alias


def test_frame_range_lists_of_whole_videos(tmp_path, label_map):
    root = tmp_path / "frames"
    _touch(root, "a/", "b/")
    lst = tmp_path / "train.txt"
    lst.write_text("a 1 300 2\nb 0 95 0 1\n")  # path start end label [label ...]
    _, rows = load_rows("list", root, train=lst, classes=label_map)  # detected: 300 and 95 are no labels
    assert rows == [("a", "a", (2,), "train"), ("b", "b", (0, 1), "train")]
    lst.write_text("a 1 300 2\na 301 600 1\n")
    with pytest.raises(ManifestError, match=r"train.txt:2: frames 301-600 are a part of the video; only whole videos"):
        load_rows("list", root, train=lst, classes=label_map, list_format="startend")


def test_semicolon_lists_of_ibm_action_recognition_pytorch(tmp_path, label_map):
    """Its Kinetics lists put ``;`` between the fields, as the class folders hold spaces."""
    root = tmp_path / "kinetics"
    _touch(root, "images/train/air drumming/aaa_000010_000020/", "images/train/abseiling/bbb_000001_000011/")
    lst = tmp_path / "mini_train.txt"
    lst.write_text("images/train/air drumming/aaa_000010_000020;1;300;1\nimages/train/abseiling/bbb_000001_000011;1;250;0\n")
    expected = [
        ("images/train/air drumming/aaa_000010_000020", "images/train/air drumming/aaa_000010_000020", (1,), "train"),
        ("images/train/abseiling/bbb_000001_000011", "images/train/abseiling/bbb_000001_000011", (0,), "train"),
    ]
    assert load_rows("list", root, train=lst, classes=label_map)[1] == expected  # detected: a frame-range list
    assert detect_format([(1, "gone, or not;1;300;2"), (2, "x;0;30;1")], PathResolver(root)) == "startend"  # a comma in a path
    videos = tmp_path / "videos.txt"
    videos.write_text("train/air drumming/x.mp4;1\n")
    assert load_rows("list", root, train=videos, classes=label_map)[1] == [("train/air drumming/x", "train/air drumming/x.mp4", (1,), "train")]
    lst.write_text("images/train/abseiling/bbb_000001_000011;1;250;zero\n")  # a name: see the test below
    with pytest.raises(ManifestError, match=rf"mini_train.txt:1: class 'zero' is not in {label_map}$"):
        load_rows("list", root, train=lst, classes=label_map, list_format="startend")


@pytest.mark.parametrize("mark", ["\t", ";"])
def test_a_tab_or_semicolon_table_may_label_by_class_name(tmp_path, label_map, mark):
    """A list made in a spreadsheet or by pandas and saved with tabs ("Text (Tab delimited)",
    ``sep="\\t"``) or semicolons (Excel's "CSV" where the decimal mark is a comma), labelled by
    class name, names and paths with spaces, is read as the csv list by name is, detected or as
    ``--list-format csv`` (before 2026-12-07: "label 'baking' is not an integer" with tabs, "label
    'baking cookies' is not an integer" with semicolons, and "expected 'path,label[,label
    ...]'" as a csv list, split at commas alone). Labels that are numbers stay indices, and a
    line of a number and a name, ``path 300 name``, needs its format named, which the error says."""
    root = tmp_path / "videos"
    _touch(root, "a.mp4", "b.mp4", "train/air drumming/c.mp4")
    lst = tmp_path / "train.txt"
    lines = ["video\tclass", "a.mp4\tbaking cookies", "b.mp4\tAir_Drumming\tabseiling", "train/air drumming/c.mp4\tair drumming"]
    lst.write_text("".join(line.replace("\t", mark) + "\n" for line in lines))
    expected = [("a", "a.mp4", (2,), "train"), ("b", "b.mp4", (0, 1), "train"), ("train/air drumming/c", "train/air drumming/c.mp4", (1,), "train")]
    for list_format in ("auto", "csv"):
        m, rows = load_rows("list", root, train=lst, classes=label_map, list_format=list_format)
        assert m.classes == ("abseiling", "air drumming", "baking cookies") and rows == expected, list_format
    m, rows = load_rows("list", root, train=lst)
    assert m.classes == ("abseiling", "Air_Drumming", "baking cookies") and rows == expected  # the names sorted, as a csv list's
    lst.write_text(f"a.mp4{mark}cooking, baking\nb.mp4{mark}abseiling\n")  # a comma in a name
    assert load_rows("list", root, train=lst)[0].classes == ("abseiling", "cooking, baking")
    lst.write_text(f"a.mp4{mark}2\nb.mp4{mark}0{mark}1\n")
    assert load_rows("list", root, train=lst, classes=label_map)[1] == [("a", "a.mp4", (2,), "train"), ("b", "b.mp4", (0, 1), "train")]
    lst.write_text(f"a.mp4{mark}300{mark}baking cookies\n")
    with pytest.raises(ManifestError, match=r"train.txt:1: label 'baking cookies' is a class name beside numbers; label a line by index or by name alone, or give --list-format rawframes for 'path num_frames name' \(read as 'path label \[label ...\]'\)$"):
        load_rows("list", root, train=lst, classes=label_map)
    assert load_rows("list", root, train=lst, classes=label_map, list_format="rawframes")[1] == [("a", "a.mp4", (2,), "train")]


def test_a_list_written_by_a_csv_writer_with_spaces_between_the_fields_unquotes_its_paths(tmp_path, label_map):
    """Python's ``csv.writer(delimiter=" ")`` and pandas' ``to_csv(sep=" ")`` quote a field
    that holds a space, as Kinetics' class folders do: ``"train/air drumming/x.mp4" 1``, whose
    path kept its quotes and was missing (before 2026-12-07, evening); class names so quoted
    are labels by name, as a tab table's."""
    root = tmp_path / "videos"
    _touch(root, "train/air drumming/x.mp4", "train/abseiling/y.mp4")
    lst = tmp_path / "train.txt"
    with open(lst, "w", newline="") as handle:
        csv.writer(handle, delimiter=" ").writerows([["train/air drumming/x.mp4", 1], ["train/abseiling/y.mp4", 0, 2]])
    assert lst.read_text().splitlines()[0] == '"train/air drumming/x.mp4" 1'
    expected = [("train/air drumming/x", "train/air drumming/x.mp4", (1,), "train"), ("train/abseiling/y", "train/abseiling/y.mp4", (0, 2), "train")]
    assert load_rows("list", root, train=lst, classes=label_map)[1] == expected
    with open(lst, "w", newline="") as handle:
        csv.writer(handle, delimiter=" ").writerows([["train/air drumming/x.mp4", "air drumming"], ["train/abseiling/y.mp4", "abseiling", "baking cookies"]])
    assert load_rows("list", root, train=lst, classes=label_map)[1] == expected


def test_tabs_separate_a_lists_fields_whatever_else_is_between_them(tmp_path, label_map):
    """A tab between every field, or between the path and numbers separated by spaces (a script's
    ``f"{path}\\t{n} {label}"``), or around a path with spaces: the fields are the same; a table's
    separator is the mark every line holds, not its first line's alone."""
    root = tmp_path / "frames"
    _touch(root, "train/a/", "train/b c/")
    lst = tmp_path / "train.txt"
    lst.write_text("train/a\t120\t0\ntrain/b c\t95 2 0\t\n")
    assert load_rows("list", root, train=lst, classes=label_map)[1] == [("train/a", "train/a", (0,), "train"), ("train/b c", "train/b c", (0, 2), "train")]
    assert table_delimiter(["path\tlabel", "a.mp4\tx, y", "b.mp4\tz"]) == "\t"
    assert table_delimiter(["path;label;split", "a, b.mp4;cat;train", "", "c.mp4;dog;val"]) == ";"
    assert table_delimiter(["a.mp4,cat\ttab", "b.mp4,dog"]) == "," and table_delimiter(["a.mp4 0"]) == table_delimiter([]) == ","


def test_ids_with_or_without_prefix_and_extension_are_resolved(tmp_path, label_map):
    root = tmp_path / "anet"
    _touch(root, "videos/v_abc.mp4", "videos/def.webm", "videos/v_ghi/", "videos/jkl.avi", "videos/jkl.mkv")
    lst = tmp_path / "list.txt"
    lst.write_text("videos/abc 0\nvideos/v_def 1\nvideos/ghi 2\nvideos/jkl 0\nvideos/gone 1\n")
    _, rows = load_rows("list", root, train=lst, classes=label_map, list_format="video")
    assert rows == [
        ("videos/v_abc", "videos/v_abc.mp4", (0,), "train"),
        ("videos/def", "videos/def.webm", (1,), "train"),
        ("videos/v_ghi", "videos/v_ghi", (2,), "train"),
        ("videos/jkl", "videos/jkl.avi", (0,), "train"),  # .avi before .mkv, as VIDEO_EXTENSIONS
        ("videos/gone", "videos/gone", (1,), "train"),  # not found: kept, the features stage reports it
    ]


def test_mmaction2_json_lists_read_as_their_text_form(tmp_path, label_map):
    root = tmp_path / "data"
    _touch(root, "train/a.mp4", "train/b/", "val/c.mkv")
    text = tmp_path / "train.txt"
    text.write_text("train/a.mp4 0\ntrain/b 2 1\n")
    as_json = tmp_path / "train.json"  # what mmaction2's anno_txt2json.py writes
    as_json.write_text('[{"filename": "train/a.mp4", "label": 0}, {"frame_dir": "train/b", "total_frames": 300, "label": [2, 1]}]')
    m_text, rows = load_rows("list", root, train=text, classes=label_map)
    assert rows == [("train/a", "train/a.mp4", (0,), "train"), ("train/b", "train/b", (1, 2), "train")]
    assert load_rows("list", root, train=as_json, classes=label_map)[0] == m_text
    for bad, message in (
        ('[{"filename": "a.mp4"}]', r"bad.json:1: expected \{\"filename\" or \"frame_dir\": path, \"label\": index or \[indices\]\}, or Something-Something v2's \{\"id\", \"template\"\}, got \{'filename': 'a.mp4'\}"),
        ('[{"filename": "a.mp4", "label": 0}, {"filename": "b.mp4", "label": "two"}]', r"bad.json:2: label 'two' is not an integer"),
        ('[{"filename": "a.mp4", "label": 0}', r"bad.json: not valid JSON"),
        ("[]", r"bad.json: the list file has no entries"),
    ):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(ManifestError, match=message):
            load_rows("list", root, train=tmp_path / "bad.json", classes=label_map)
    (tmp_path / "beyond.json").write_text('[{"filename": "val/c.mkv", "label": 3}]')
    with pytest.raises(ManifestError, match=r"beyond.json:1: label 3 is beyond the 3 classes"):
        load_rows("list", root, val=tmp_path / "beyond.json", classes=label_map)


def test_something_something_v2s_json_lists_are_read_by_their_templates(tmp_path):
    """Something-Something v2's ``something-something-v2-train.json`` (``{"id", "label",
    "template", "placeholders"}``) was "expected {"filename" ...}" (before 2026-12-07, the
    fifty-fourth session): its video is ``<id>.webm``, its class the template without brackets,
    as ``something-something-v2-labels.json`` (name -> index, given as ``--class-names``) names
    it; its test list, unlabelled, is said so."""
    root = tmp_path / "20bn-something-something-v2"
    _touch(root, "78687.webm", "42326.webm")
    labels = tmp_path / "something-something-v2-labels.json"
    labels.write_text('{"Holding something next to something": "1", "Approaching something with your camera": "0", "Putting something, something and something on the table": "2"}')
    train = tmp_path / "something-something-v2-train.json"
    train.write_text(json.dumps([
        {"id": "78687", "label": "holding potato next to vicks vaporub bottle", "template": "Holding [something] next to [something]", "placeholders": ["potato", "vicks vaporub bottle"]},
        {"id": "42326", "label": "putting a cup, a pen and a key on the table", "template": "Putting [something], [something] and [something] on the table", "placeholders": ["a cup", "a pen", "a key"]},
    ]))
    manifest, rows = load_rows("list", root, train=train, classes=labels)
    assert list(manifest.classes) == ["Approaching something with your camera", "Holding something next to something", "Putting something, something and something on the table"]
    assert rows == [("78687", "78687.webm", (1,), "train"), ("42326", "42326.webm", (2,), "train")]
    test = tmp_path / "something-something-v2-test.json"
    test.write_text('[{"id": "1420"}]')
    with pytest.raises(ManifestError, match=r"something-something-v2-test.json:1: a video without its label \(Something-Something v2's test list"):
        load_rows("list", root, test=test, classes=labels)


def test_charades_annotation_csv_is_read_as_a_multi_label_list(tmp_path):
    """Charades' ``Charades_v1_train.csv`` given as a list stopped at its header ("expected 'path
    label [label ...]'"; before 2026-12-07, the fifty-fourth session): a video a row by its id,
    labelled by the classes of its actions (``c092 11.90 21.20;c147 ...``, codes numbering the
    lines of ``Charades_v1_classes.txt``), quoted fields with commas and ``;`` read as csv; a
    video without actions rejected; an action not so written an error naming the line."""
    root = tmp_path / "Charades_v1_480"
    _touch(root, "46GP8.mp4", "N11GT.mp4", "EMPTY.mp4")
    classes = tmp_path / "Charades_v1_classes.txt"
    classes.write_text("c000 Holding some clothes\nc001 Putting clothes somewhere\nc002 Taking some clothes from somewhere\n")
    train = tmp_path / "Charades_v1_train.csv"
    header = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
    train.write_text(header + '46GP8,HR43,Kitchen,6,7,Yes,"A person holds clothes, then puts them away.",clothes;shelf,"A person; clothes.","c002 11.90 21.20;c000 0.00 12.60;c002 3.1 4.2",24.83\n'
                     "N11GT,0KZ7,Stairs,6,7,Yes,A person walks.,closet,A person walks.,c001 8.60 14.20,17.79\nEMPTY,0KZ7,Stairs,6,7,Yes,Nothing.,,,,17.79\n")
    manifest, rows = load_rows("list", root, train=train, classes=classes)
    assert rows == [("46GP8", "46GP8.mp4", (0, 2), "train"), ("N11GT", "N11GT.mp4", (1,), "train")]
    assert [(r.video_id, r.reason) for r in manifest.rejected] == [("EMPTY", "no label")] and len(manifest.classes) == 3
    train.write_text(header + "N11GT,0KZ7,Stairs,6,7,Yes,x,y,z,walking 8.60 14.20,17.79\n")
    with pytest.raises(ManifestError, match=r"Charades_v1_train.csv:2: expected Charades' id and actions \('c092 11.90 21.20;...'\), got id 'N11GT', actions 'walking 8.60 14.20'$"):
        load_rows("list", root, train=train, classes=classes)


def test_a_listed_extension_finds_the_video_kept_with_another_or_its_frames(tmp_path, label_map):
    """mmaction2's Kinetics lists name ``.mp4`` files; yt-dlp saves ``.webm`` or ``.mkv``, and
    extracted frames sit in a folder named by the clip."""
    root = tmp_path / "k400"
    _touch(root, "train/a.webm", "train/b.MP4", "train/c/img_00001.jpg", "train/v_d.mkv", "train/e.mp4", "train/e.mkv")
    lst = tmp_path / "kinetics400_train_list_videos.txt"
    lst.write_text("train/a.mp4 0\ntrain/b.mp4 1\ntrain/c.mp4 2\ntrain/d.mp4 0\ntrain/e.mp4 1\ntrain/gone.mp4 2\n")
    _, rows = load_rows("list", root, train=lst, classes=label_map)
    assert rows == [
        ("train/a", "train/a.webm", (0,), "train"),
        ("train/b", "train/b.MP4", (1,), "train"),
        ("train/c", "train/c", (2,), "train"),  # the clip's frames
        ("train/v_d", "train/v_d.mkv", (0,), "train"),
        ("train/e", "train/e.mp4", (1,), "train"),  # as listed, where it is
        ("train/gone", "train/gone.mp4", (2,), "train"),  # not found: kept as written
    ]


def test_absolute_paths_are_made_relative_under_the_root_and_found_outside_it(tmp_path, label_map):
    root, elsewhere = tmp_path / "kinetics", tmp_path / "extra"
    _touch(root, "train/abseiling/aaa.mp4", "videos/v_abc.webm")
    _touch(elsewhere, "bbb.mkv")
    lst = tmp_path / "list.txt"
    lst.write_text(f"{root}/train/abseiling/aaa.mp4 0\n{root}/train/abseiling/aaa_gone 1\n{elsewhere}/bbb 1\n/videos/abc 2\n")
    _, rows = load_rows("list", root, train=lst, classes=label_map, list_format="video")
    assert rows == [
        ("train/abseiling/aaa", "train/abseiling/aaa.mp4", (0,), "train"),  # portable: relative to the root
        (f"{root}/train/abseiling/aaa_gone", f"{root}/train/abseiling/aaa_gone", (1,), "train"),  # not found: kept as written
        (f"{elsewhere}/bbb", f"{elsewhere}/bbb.mkv", (1,), "train"),  # outside the root: found where it points
        ("videos/v_abc", "videos/v_abc.webm", (2,), "train"),  # no folder /videos: taken from the root
    ]


def test_paths_with_dot_dot_are_read_in_their_normal_form_and_found_beside_their_list(tmp_path, label_map):
    """A list's ``..`` kept: ``videos/a/../a/x.mp4`` became the id ``videos/a/../a/x``, another
    video than ``videos/a/x``; a list whose paths are relative to its own folder
    (``lists/train.txt`` naming ``../videos/a/x.mp4``, the data root holding both) had every
    video missing; a root below the list's folder named its videos ``../videos/a/x``, paths
    that leave the root and come back (before 2026-12-07, the fifty-fourth session). Now each
    is read in its normal form, found beside its list where not under the root as written (the
    root given as the videos' folder, the list's paths relative to the folder above), and named
    from the root; a path in neither place, or beside the list outside the root, is kept as
    written (missing: a root given wrong is said so)."""
    ds = tmp_path / "ds"
    _touch(ds, "videos/a/x.mp4", "videos/a/y.webm", "videos/b/z.mp4", "lists/near/w.mp4", "other/v.mp4")
    beside = ds / "lists" / "train.txt"
    beside.write_text("../videos/a/x.mp4 0\n..\\videos\\a\\y.mp4 1\nnear/w.mp4 1\n../videos/a/gone.mp4 2\n")
    inside = ds / "val.txt"
    inside.write_text("videos/a/../b/./z.mp4 2\nvideos/b/../../other/v.mp4 0\n")
    rows = load_rows("list", ds, train=beside, val=inside, classes=label_map)[1]
    assert rows == [
        ("videos/a/x", "videos/a/x.mp4", (0,), "train"), ("videos/a/y", "videos/a/y.webm", (1,), "train"),  # beside the list
        ("lists/near/w", "lists/near/w.mp4", (1,), "train"),
        ("../videos/a/gone", "../videos/a/gone.mp4", (2,), "train"),  # in neither place: as written
        ("videos/b/z", "videos/b/z.mp4", (2,), "val"), ("other/v", "other/v.mp4", (0,), "val"),  # normal form
    ]
    below = load_rows("list", ds / "videos", train=beside, val=inside, classes=label_map)[1]
    assert [(row[0], row[1]) for row in below] == [
        ("a/x", "a/x.mp4"), ("a/y", "a/y.webm"), ("near/w", "near/w.mp4"),  # beside the list but outside the root: missing
        ("../videos/a/gone", "../videos/a/gone.mp4"),  # leaves the root and comes back, to no file: as written
        ("b/z", "b/z.mp4"), ("other/v", "videos/b/../../other/v.mp4")]  # not under the root as written: beside the list


def test_absolute_paths_of_another_machine_are_found_by_their_last_folders(tmp_path, label_map):
    """A list written with absolute paths on another machine (PySlowFast's csv lists, a
    Windows share): found under the data root by the longest run of last folders it holds, or by
    its name alone where the tree holds the name once; relative paths still match whole."""
    root = tmp_path / "k400"
    _touch(root, "train/abseiling/aaa.mp4", "train/abseiling/bbb.mp4", "val/abseiling/bbb.mp4", "train/baking/ccc.mp4", "ddd.mp4", "train/abseiling/eee.mp4", "val/baking/eee.mp4", "val/baking/fff.mp4", "train/baking/ggg.mp4")
    lst = tmp_path / "list.txt"
    lst.write_text(
        f"{root}/train/baking/fff.mp4 2\n"  # under this root, not there: a path of this machine, matched whole (not val/baking/)
        "/home/ann/kinetics/train/abseiling/aaa.mp4 0\n"  # no /home/ann here: its tail train/abseiling/ is under the root
        "D:\\datasets\\k400\\val\\abseiling\\bbb.mp4 1\n"  # Windows, the drive dropped: val/abseiling/ is a longer tail than train's
        "/old/k400/other/ccc.mp4 2\n"  # no folder of its matches, but the name lies once in the tree
        "/old/ddd.mp4 0\n"  # the same, at the root
        "E:\\fff.mp4 2\n"  # Windows, at a drive's root (an external drive): the name once in the tree, not this machine's /
        "\\\\nas\\k400\\train\\baking\\ggg.mp4 2\n"  # a Windows share's UNC path: its tail train/baking/
        "/old/k400/other/eee.mp4 1\n"  # by name alone, and two folders hold it: none taken, kept as written
        "abseiling/bbb.mp4 1\n"  # relative: the whole path under a folder, the walk's first (train/)
    )
    _, rows = load_rows("list", root, train=lst, classes=label_map, list_format="video")
    assert [row[1] for row in rows] == [f"{root}/train/baking/fff.mp4", "train/abseiling/aaa.mp4", "val/abseiling/bbb.mp4", "train/baking/ccc.mp4", "ddd.mp4", "val/baking/fff.mp4", "train/baking/ggg.mp4", "/old/k400/other/eee.mp4", "train/abseiling/bbb.mp4"]


def test_paths_are_read_as_pathlib_writes_them(tmp_path):
    """The resolver works on strings (a Kinetics list's 240,000 paths): the same answers as
    pathlib's objects gave, for every way a list writes a path."""
    root = tmp_path / "root"
    _touch(root, "train/a.webm", "train/x.MP4", "train/x.mp4", "v_b/")
    resolver = PathResolver(root)
    cases = {
        "./train//a.mp4": "train/a.webm",  # empty and "." parts dropped; the video under its own extension
        "train/./a/": "train/a.webm",
        "\\train\\a.mp4": "train/a.webm",  # Windows separators, no folder /train: from the root
        "\\v_b": "v_b",  # Windows, at the drive's root: from this root (not this machine's /)
        "C:\\b": "v_b",
        f"{root}/train/a": "train/a.webm",  # absolute under the root: made relative
        f"{root}//train/x": "train/x.MP4",  # of two names told apart by case, the first in code-point order
        "b": "v_b",  # ActivityNet's prefix added: its folder of frames
        "train/gone.mp4": None,
    }
    assert {path: resolver.resolve(path) for path in cases} == cases
    assert resolver.written(f"{tmp_path}/elsewhere.mp4") == f"{tmp_path}/elsewhere.mp4"  # outside the root, its folder there
    assert resolver.written(str(root)) == "."
    ids = {"a//b/./c.MP4": "a/b/c", "x.tar.mp4": "x.tar", "a/.mp4": "a/.mp4", "a/b.c/": "a/b.c", "clip.avi/x": "clip.avi/x", "": "."}
    assert {path: video_id(path) for path in ids} == ids


def test_class_files_with_indices(tmp_path):
    one_based = tmp_path / "classInd.txt"
    one_based.write_text("2 Archery\n1 ApplyEyeMakeup\n3 Baby Crawling\n")
    assert read_class_names(one_based) == ["ApplyEyeMakeup", "Archery", "Baby Crawling"]
    zero_based = tmp_path / "label_map.txt"
    zero_based.write_text("0 a\n1 b c\n")
    assert read_class_names(zero_based) == ["a", "b c"]
    twice = tmp_path / "twice.txt"
    twice.write_text("0 a\n0 b\n")
    with pytest.raises(ManifestError, match="twice.txt: class index 0 is given twice"):
        read_class_names(twice)
    lst = tmp_path / "list.txt"
    lst.write_text("x.mp4 0\ny.mp4 2\n")
    _, rows = load_rows("list", tmp_path, train=lst, classes=one_based)
    assert [r[2] for r in rows] == [(0,), (2,)]  # 0-based labels against a 1-based classInd


KINETICS_FOUR = ["abseiling", "air drumming", "eating ice cream", "passing American football (not in game)"]


@pytest.mark.parametrize(
    "name, text",
    [
        # X-CLIP's and ActionCLIP's kinetics_400_labels.csv: a header, then index,name
        ("kinetics_400_labels.csv", 'id,name\n2,eating ice cream\n0,abseiling\n1,air drumming\n3,"passing American football (not in game)"\n'),
        ("labels.csv", "abseiling,0\nair drumming,1\neating ice cream,2\npassing American football (not in game),3\n"),  # name,index
        ("labels.txt", "1,abseiling\n2,air drumming\n3,eating ice cream\n4,passing American football (not in game)\n"),  # 1-based, no header
        # PySlowFast's kinetics_classnames.json: {name: index}, some keys with the csv's quotes
        ("kinetics_classnames.json", '{"\\"eating ice cream\\"": 2, "abseiling": 0, "air drumming": 1, "passing American football (not in game)": 3}'),
        # Something-Something's labels JSON: {name: index as a string}
        ("something-something-v2-labels.json", '{"passing American football (not in game)": "3", "eating ice cream": "2", "air drumming": "1", "abseiling": "0"}'),
        ("id2name.json", '{"3": "passing American football (not in game)", "0": "abseiling", "1": "air drumming", "2": "eating ice cream"}'),
        # a Hugging Face video model's config.json
        ("config.json", '{"model_type": "videomae", "id2label": {"0": "abseiling", "1": "air drumming", "2": "eating ice cream", "3": "passing American football (not in game)"}, "label2id": {}}'),
        ("names.json", '["abseiling", "air drumming", "eating ice cream", "passing American football (not in game)"]'),
        ("label_map.txt", "abseiling\nair drumming\n\"eating ice cream\"\npassing American football (not in game)\n"),
        # one-column csv files: mmaction2's ActivityNet action_name.csv has the header "action"
        ("action_name.csv", "action\nabseiling\nair drumming\neating ice cream\npassing American football (not in game)\n"),
        ("classes.csv", "Class_Name\nabseiling\nair drumming\neating ice cream\n\"passing American football (not in game)\"\n"),
        ("names.csv", "abseiling\nair drumming\neating ice cream\npassing American football (not in game)\n"),
    ],
)
def test_class_name_files_as_the_code_bases_share_them(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert read_class_names(path) == KINETICS_FOUR


def test_names_with_commas_or_numbers_stay_one_a_line(tmp_path):
    plain = tmp_path / "label_map.txt"
    plain.write_text("cooking, baking\n3d printing\n[bracketed] name\n2\n")  # no column is an index on every line
    assert read_class_names(plain) == ["cooking, baking", "3d printing", "[bracketed] name", "2"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("0,a\n2,b\n3,c\n", r"class indices must run from 0 or 1 without a gap \(label i is the i-th class\), but index 1 is missing \(3 classes, indices 0..3\)"),
        ('{"a": 5, "b": 6}', r"class indices must run from 0 or 1 without a gap \(label i is the i-th class\), but the first index is 5 \(2 classes, indices 5..6\)"),
        ('{"a": 0, "b": 0}', r"class index 0 is given twice"),
        ('{"classes": ["a", "b"]}', r"not a class-name JSON \(expected a list of names, \{name: index\}, \{index: name\} or a model config with 'id2label'\), got \{\"classes\""),
    ],
)
def test_class_name_files_that_cannot_give_label_order_are_errors(tmp_path, text, message):
    path = tmp_path / ("names.json" if text.startswith("{") else "names.csv")
    path.write_text(text)
    with pytest.raises(ManifestError, match=rf"names\.(json|csv): {message}"):
        read_class_names(path)


@pytest.mark.parametrize("text", ["a.mp4 0\nb.mp4 1\n", "train/a 120 0\ntrain/b 95 2 0\n", "v_x,300,3\nv_y,2560,1\n", "D:\\k400\\x.mp4;1\n", "x 1 300 2\n"])
def test_a_list_given_as_the_class_names_is_named_so(tmp_path, text):
    """A video list given as ``--class-names`` (the options swapped) made a class of each line,
    ``a.mp4 0`` and ``b.mp4 1``, labels in range and nothing said (before 2026-12-07, evening);
    class-name files whose lines hold one number beside a name are not taken for one."""
    path = tmp_path / "train.txt"
    path.write_text(text)
    first = text.splitlines()[0]
    with pytest.raises(ManifestError, match=rf"train.txt: a list of videos \({re.escape(repr(first))}: a video's path, then numbers or words\), not class names; give it as --train-list or --val-list, and the class names, one a line, as --class-names$"):
        read_class_names(path)
    for names in ("1 ApplyEyeMakeup\n2 Archery\n", "abseiling,0\nair drumming,1\n", "3d printing 2\nbaking/cooking\n", "clip 7\n", "0\n1\n"):
        path.write_text(names)
        assert len(read_class_names(path)) == 2 - names.endswith("7\n"), names


@pytest.mark.parametrize(("text", "said"), [
    ("accordion/a.mp4 train\nbasketball/b.mp4 test\n", r"a list of videos \('accordion/a.mp4 train': a video's path, then numbers or words\), not class names"),  # FCVID's split file
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n", r"a list of videos \('ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi'"),  # UCF101's test list
    ("1 0 0 1\n0 1 0 0\n", r"rows of numbers \('1 0 0 1'\), a label matrix as FCVID_Label.txt is, or a list of numbered videos, not class names; the class names are one a line$"),
    ("label,youtube_id,time_start,time_end,split\nabseiling,aaaaaaaaaaa,10,20,train\n", r"a Kinetics annotation csv \(label,youtube_id,time_start,time_end,...\), read by --dataset kinetics, or minikinetics with --annotations; not class names$"),
    ('{"database": {"abc": {"subset": "training", "annotations": [{"label": "Hopscotch", "segment": [1, 2]}]}}}', r"ActivityNet's annotation JSON .*, read by --dataset activitynet; not class names$"),
])
def test_other_annotation_files_given_as_the_class_names_are_named_so(tmp_path, text, said):
    """FCVID's split file or label matrix, UCF101's test list, or a Kinetics csv as
    ``--class-names``: each line became a class, the matrix's rows by their first number; an
    ActivityNet JSON was "not a class-name JSON" (before 2026-12-07, evening)."""
    path = tmp_path / "given.txt"
    path.write_text(text)
    with pytest.raises(ManifestError, match=rf"given.txt: {said}"):
        read_class_names(path)


@pytest.mark.parametrize(("on_disk", "in_list"), [("NFC", "NFD"), ("NFD", "NFC")])
def test_names_beyond_ascii_are_found_whichever_unicode_form_the_list_and_files_use(tmp_path, label_map, on_disk, in_list):
    """A list and the files each may have come through macOS, whose file names were decomposed
    (``é`` as ``e`` and a combining accent): the path is found in the other form (before
    2026-12-07, evening: missing), its manifest path and id the file's own."""
    def form(text: str, which: str) -> str:
        return unicodedata.normalize(which, text)

    root = tmp_path / "videos"
    _touch(root, form("clases/café au lait/crème brûlée.mp4", on_disk), "clases/plain/a.mp4")
    lst = tmp_path / "train.txt"
    lst.write_text(form("clases/café au lait/crème brûlée.mp4 1\nclases/plain/a.mp4 0\n", in_list))
    rows = load_rows("list", root, train=lst, classes=label_map)[1]
    disk = form("clases/café au lait/crème brûlée", on_disk)
    assert rows == [(disk, disk + ".mp4", (1,), "train"), ("clases/plain/a", "clases/plain/a.mp4", (0,), "train")]


@pytest.mark.parametrize(("on_disk", "in_list"), [("NFC", "NFD"), ("NFD", "NFC")])
def test_names_beyond_ascii_are_found_by_the_walks_whichever_unicode_form(tmp_path, label_map, on_disk, in_list):
    """The walks compared names as written (before 2026-12-07, the fifty-fourth session): a list
    relative to mmaction2's ``videos_train/`` whose names came through macOS was missing, and
    so was a video looked for by its name anywhere under the root (UCF101's, ActivityNet's and
    FCVID's videos, :func:`locate`); a renamed class folder (underscores for spaces) in the other
    form too. Found now, each path the file's own; a name no file bears in either form stays
    missing."""
    def form(text: str, which: str) -> str:
        return unicodedata.normalize(which, text)

    root = tmp_path / "videos"
    _touch(root, form("videos_train/café au lait/crème brûlée.mp4", on_disk), form("videos_train/fête_foraine/noël.webm", on_disk),
           "videos_train/plain/a.mp4", form("elsewhere/deep/v_Pâté_g01_c01.avi", on_disk))
    lst = tmp_path / "train.txt"
    lst.write_text(form("café au lait/crème brûlée.mp4 1\nfête foraine/noël.mp4 2\nplain/a.mp4 0\nplain/crème.mp4 0\n", in_list))
    rows = load_rows("list", root, train=lst, classes=label_map)[1]
    brulee, noel = form("videos_train/café au lait/crème brûlée", on_disk), form("videos_train/fête_foraine/noël", on_disk)
    assert [(row[0], row[1]) for row in rows] == [(brulee, brulee + ".mp4"), (noel, noel + ".webm"), ("videos_train/plain/a", "videos_train/plain/a.mp4"),
                                                  (form("plain/crème", in_list), form("plain/crème.mp4", in_list))]
    assert locate(root, [form("v_Pâté_g01_c01", in_list), form("v_Crème_g01_c01", in_list)]) == [form("elsewhere/deep/v_Pâté_g01_c01.avi", on_disk), None]


@pytest.mark.parametrize(("name", "text", "said"), [
    ("activity_net.v1-3.min.json", '{"database": {"abc": {"subset": "training", "annotations": [{"label": "Hopscotch", "segment": [1, 2]}]}}}', r"ActivityNet's annotation JSON \(a list of labelled segments a video\), read by --dataset activitynet; not a list of videos$"),
    ("kinetics_train.json", '{"aaaaaaaaaaa": {"annotations": {"label": "abseiling", "segment": [10, 20]}, "subset": "train"}}', r"a Kinetics annotation JSON, read by --dataset kinetics \(or minikinetics\) with --annotations; not a list of videos$"),
    ("train.csv", 'label,youtube_id,time_start,time_end,split\nabseiling,aaaaaaaaaaa,10,20,train\n"air drumming",bbbbbbbbbbb,3,13,train\n', r"a Kinetics annotation csv \(label,youtube_id,time_start,time_end,...\), read by --dataset kinetics, or minikinetics with --annotations; not a list of videos$"),
    ("config.json", '{"model_type": "videomae", "id2label": {"0": "abseiling"}}', r"a JSON object, not a list of videos \(mmaction2's JSON lists are arrays, \[...\]\)$"),
    ("brush_hair_test_split1.txt", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \nApril_09_brush_hair_u_nm_np1_ba_goo_1.avi 2 \nAmerican_History_X_brush_hair_h_nm_np1_ba_goo_2.avi 0 \n",
     r"HMDB51's split file \(one class's videos, each marked 1 train, 2 test or 0 unused: no labels\), read with the split's other 50 by --dataset hmdb51 \(--annotations naming it or its folder\); not a list of videos$"),
])
def test_a_datasets_annotations_given_as_a_list_are_named_so(tmp_path, name, text, said):
    """ActivityNet's JSON given as ``--train-list`` made a video of its first line, its other
    fields classes; a Kinetics csv made a video of each row, its header's too (``label``,
    ``abseiling``), and classes of the other fields (before 2026-12-07, evening; ``nsnet data``
    said only that none was on disk); HMDB51's split file gave each video its train/test mark
    for a label (before 2026-12-07, the fifty-fourth session)."""
    path = tmp_path / name
    path.write_text(text)
    for dataset in ("list", "minikinetics"):
        with pytest.raises(ManifestError, match=rf"{name}: {said}"):
            load_rows(dataset, tmp_path, train=path)


def test_a_list_named_as_hmdb51s_split_files_is_read_where_its_lines_are_a_lists(tmp_path):
    """Only a file named as HMDB51's split files that holds their lines (a bare video name and
    0, 1 or 2) is refused: a list of that name with class folders is read."""
    (tmp_path / "brush_hair").mkdir()
    (tmp_path / "brush_hair" / "a.avi").write_bytes(b"")
    listed = tmp_path / "brush_hair_test_split1.txt"
    listed.write_text("brush_hair/a.avi 0\n")
    assert [row[:3] for row in load_rows("list", tmp_path, train=listed)[1]] == [("brush_hair/a", "brush_hair/a.avi", (0,))]


def test_labels_filling_only_the_start_of_a_class_list_twice_as_long_are_warned_of(tmp_path):
    """Mini-Kinetics' lists (labels 0-199) with Kinetics-400's class list: label 5 took
    Kinetics-400's class 5, which is not Mini-Kinetics' class 5, without a word (before
    2026-12-07, evening). A warning says so where 20 or more labels fill the start of a class
    list at least twice their number; the dataset's own list, or a subset's, says nothing."""
    root = tmp_path / "videos"
    lst = tmp_path / "mini_train.txt"
    lst.write_text("".join(f"v{i}.mp4 {i % 200}\n" for i in range(400)))
    k400 = tmp_path / "label_map_k400.txt"
    k400.write_text("".join(f"class {i}\n" for i in range(400)))
    with pytest.warns(UserWarning, match=r"mini_train.txt: the labels are 0 to 199, each of them, so the class list's first 200 of its 400 classes name them: is it the dataset's own \(Mini-Kinetics' 200 classes are not Kinetics-400's first 200\)\?$"):
        load_rows("list", root, train=lst, classes=k400)
    own = tmp_path / "mini_categories.txt"
    own.write_text("".join(f"class {i}\n" for i in range(200)))
    few = tmp_path / "few.txt"
    few.write_text("".join(f"v{i}.mp4 {i}\n" for i in range(19)))
    sparse = tmp_path / "sparse.txt"
    sparse.write_text("".join(f"v{i}.mp4 {2 * i}\n" for i in range(100)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for listed, names in ((lst, own), (few, k400), (sparse, k400)):
            load_rows("list", root, train=listed, classes=names)


def test_a_class_name_file_given_as_a_list_is_named_so(tmp_path, label_map):
    """The other way round: the class names given as ``--train-list``. The error said a list of
    bare YouTube ids is read by the kinetics dataset (before 2026-12-07, evening), which it
    still says of an id's eleven characters; a list read in a format it is not in says so."""
    with pytest.raises(ManifestError, match=rf"{label_map.name}:1: expected 'path label \[label ...\]', got 'abseiling'; a file of class names, one a line, is --class-names$"):
        load_rows("list", tmp_path, train=label_map)
    ids = tmp_path / "train_ytid_list.txt"
    ids.write_text("-0H3T2B9PH4\n")
    with pytest.raises(ManifestError, match=r"got '-0H3T2B9PH4'; a list of bare YouTube ids"):
        load_rows("list", tmp_path, train=ids)
    for text, list_format in (("a.mp4 0\n", "arnet"), ("a.mp4 0\n", "csv"), ("v_x,300,3\n", "video")):  # a format named that the list is not in
        ids.write_text(text)
        with pytest.raises(ManifestError, match=rf"got '{text.strip()}'; its fields are separated otherwise than the '{list_format}' format's: leave --list-format auto, or name the format the list is in$"):
            load_rows("list", tmp_path, train=ids, list_format=list_format)


def test_a_list_dataset_takes_its_class_count_from_a_csv_label_map(tmp_path):
    labels = tmp_path / "kinetics_400_labels.csv"
    labels.write_text("id,name\n0,abseiling\n1,air drumming\n")
    lst = tmp_path / "list.txt"
    lst.write_text("x.mp4 1\n")
    manifest, rows = load_rows("list", tmp_path, train=lst, classes=labels)
    assert manifest.classes == ("abseiling", "air drumming")  # not "id,name" as a class
    assert [r[2] for r in rows] == [(1,)]


def test_labels_beyond_the_class_file_name_file_and_line(tmp_path, label_map):
    lst = tmp_path / "train.txt"
    lst.write_text("a.mp4 0\nb.mp4 1 3\n")
    with pytest.raises(ManifestError, match=r"train.txt:2: label 3 is beyond the 3 classes of the class list"):
        load_rows("list", tmp_path, train=lst, classes=label_map)


@pytest.mark.parametrize(
    "text,fmt,message",
    [
        ("a.mp4 cat\n", "video", r"bad.txt:1: label 'cat' is not an integer"),
        ("a 12x 0\n", "rawframes", r"bad.txt:1: frame count '12x' is not an integer"),
        ("a.mp4 0\nb.mp4\n", "video", r"bad.txt:2: expected 'path label \[label ...\]'"),
        # a path with spaces lacking its label: said so, not "label 'drumming/x.mp4' is not an integer"
        ("train/air drumming/x.mp4\n", "video", r"bad.txt:1: expected 'path label \[label ...\]', got 'train/air drumming/x.mp4'$"),
        ("air drumming/x 300\n", "rawframes", r"bad.txt:1: expected 'path num_frames label \[label ...\]', got 'air drumming/x 300'$"),
        ("a,10\n", "arnet", r"bad.txt:1: expected 'path,num_frames,label\[,label ...\]'"),
        ("a.mp4 -1\n", "video", r"bad.txt:1: label -1 is negative \(mmaction2's lists mark an unlabelled video so, as its Kinetics test list: .* leave its list out\)"),
        ("a 30 -2\n", "rawframes", r"bad.txt:1: label -2 is negative$"),
        ("a 1 x 0\n", "startend", r"bad.txt:1: end frame 'x' is not an integer"),
        ("a 1 30\n", "startend", r"bad.txt:1: expected 'path start_frame end_frame label \[label ...\]'"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, text, fmt, message):
    bad = tmp_path / "bad.txt"
    bad.write_text(text)
    with pytest.raises(ManifestError, match=message):
        load_rows("list", tmp_path, train=bad, list_format=fmt)


def test_mmaction2_activitynet_lists_numbered_from_1_are_read_so(tmp_path):
    """mmaction2's generate_rawframes_filelist.py numbers each ActivityNet label by its line in
    action_name.csv, the header ``action`` counted: labels 1 to 200 for 200 classes."""
    root = tmp_path / "ActivityNet"
    _touch(root, "rawframes/v_a/", "rawframes/v_b/", "rawframes/v_c/")
    (tmp_path / "action_name.csv").write_text("action\nApplying sunscreen\nArm wrestling\nBMX\n")
    (tmp_path / "label_map.txt").write_text("Applying sunscreen\nArm wrestling\nBMX\n")
    train, val = tmp_path / "anet_train_video.txt", tmp_path / "anet_val_video.txt"
    train.write_text("v_a 120 1\nv_b 90 3")  # no newline at the end, as the script writes them
    val.write_text("v_c 100 2")
    for names in ("action_name.csv", "label_map.txt"):
        with pytest.warns(UserWarning, match=r"anet_train_video.txt, .*anet_val_video.txt: the labels are 1 to 3 for the 3 classes, none 0, so they are read as 1-based"):
            manifest, rows = load_rows("list", root, train=train, val=val, classes=tmp_path / names)
        assert manifest.classes == ("Applying sunscreen", "Arm wrestling", "BMX")
        assert rows == [("rawframes/v_a", "rawframes/v_a", (0,), "train"), ("rawframes/v_b", "rawframes/v_b", (2,), "train"), ("rawframes/v_c", "rawframes/v_c", (1,), "val")]
    val.write_text("v_c 100 0")  # a label 0 among them: 0-based
    with pytest.raises(ManifestError, match=r"anet_train_video.txt:2: label 3 is beyond the 3 classes of the class list \(labels are 0-based\)$"):
        load_rows("list", root, train=train, val=val, classes=tmp_path / "label_map.txt")
    val.write_text("v_c 100 2")
    with pytest.warns(UserWarning, match=r"anet_train_video.txt, .*anet_val_video.txt: no video is labelled 0, so class '0' has none; labels numbered from 1 .* are read so with --class-names$"):
        manifest, _ = load_rows("list", root, train=train, val=val)  # without class names: classes named by index, 0 to 3
    assert manifest.classes == ("0", "1", "2", "3")
    val.write_text("v_c 100 3")  # class 2 without a video: nothing to tell the base by
    with pytest.raises(ManifestError, match=r"anet_train_video.txt:2: label 3 is beyond the 3 classes of the class list \(labels are 0-based; these have no 0 and reach 3, as 1-based lists do, but the base cannot be told while a class has no video in them: 1 of the 3\)"):
        load_rows("list", root, train=train, val=val, classes=tmp_path / "label_map.txt")


def test_the_commands_print_the_toolkits_warnings_as_one_line(tmp_path):
    """A command prints the toolkit's warning as ``warning: <message>`` on the standard error,
    without the file, line and source line of the toolkit's code that Python adds; another
    library's warning, and a library's deprecation met in the toolkit's code, keep Python's
    form. The command runs in its own interpreter, as a user's: pytest records the warnings of
    its own process instead of printing them."""
    import subprocess
    import sys

    from stages.cli import toolkit_warning_line

    _touch(tmp_path, "a.mp4", "b.mp4")
    (tmp_path / "l.txt").write_text("a.mp4 1\nb.mp4 2\n")
    (tmp_path / "c.txt").write_text("x\ny\n")
    run = subprocess.run([sys.executable, "-m", "stages.cli", "data", "--dataset", "list", "--data-root", str(tmp_path), "--train-list", str(tmp_path / "l.txt"),
                          "--class-names", str(tmp_path / "c.txt")], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "dataset list: 2 videos, 2 classes" in run.stdout
    assert run.stderr == f"warning: {tmp_path / 'l.txt'}: the labels are 1 to 2 for the 2 classes, none 0, so they are read as 1-based (mmaction2's ActivityNet lists number the classes as the lines of action_name.csv, its header line first)\n"
    elsewhere = toolkit_warning_line("x is slow", UserWarning, "/opt/lib/site-packages/other/mod.py", 7, "warn()")
    assert elsewhere == "/opt/lib/site-packages/other/mod.py:7: UserWarning: x is slow\n  warn()\n"
    ours = str(Path(toolkit_warning_line.__code__.co_filename))  # stages/cli.py
    assert toolkit_warning_line("x is slow", UserWarning, ours, 7, "warn()") == "warning: x is slow\n"
    assert toolkit_warning_line("y() is deprecated", FutureWarning, ours, 7, "y()") == f"{ours}:7: FutureWarning: y() is deprecated\n  y()\n"


def test_without_class_file_classes_are_indices(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("a.mp4 3\nb.mp4 0 1\n")
    m, rows = load_rows("list", tmp_path, val=lst)
    assert m.classes == ("0", "1", "2", "3") and [r[2] for r in rows] == [(3,), (0, 1)]


def test_paths_with_spaces_are_read_whole_where_they_are_on_disk(tmp_path, label_map):
    """Kinetics' class folders as downloaded hold spaces; mmaction2 would split such a line."""
    _touch(tmp_path, "train/air drumming/x 1.mp4", "train/abseiling/y.mp4", "frames/air drumming/z/", "frames/abseiling/w/")
    videos = tmp_path / "videos.txt"
    videos.write_text("train/air drumming/x 1.mp4 1\ntrain/abseiling/y 0 2\n")  # auto: a video list
    _, rows = load_rows("list", tmp_path, train=videos, classes=label_map)
    assert rows == [("train/air drumming/x 1", "train/air drumming/x 1.mp4", (1,), "train"), ("train/abseiling/y", "train/abseiling/y.mp4", (0, 2), "train")]
    frames = tmp_path / "frames.txt"
    frames.write_text("frames/air drumming/z 300 1\nframes/abseiling/w 120 0\n")  # auto: a rawframe list
    _, rows = load_rows("list", tmp_path, val=frames, classes=label_map)
    assert [(r[1], r[2]) for r in rows] == [("frames/air drumming/z", (1,)), ("frames/abseiling/w", (0,))]
    named = tmp_path / "named.txt"
    named.write_text("train/air drumming/x.mp4 baking\n")  # no number after the path: split, the label named
    with pytest.raises(ManifestError, match=r"named.txt:1: label 'drumming/x.mp4' is not an integer"):
        load_rows("list", tmp_path, train=named, list_format="video", classes=label_map)


def test_paths_with_spaces_not_at_the_root_are_found_or_reported_missing(tmp_path, label_map):
    """A Kinetics list relative to ``videos_train/`` with a tenth of its clips not downloaded:
    a path with spaces is found under the per-split folder as any other, and a missing one is a
    missing video; before 2026-12-06 such a line split at its spaces and the list was refused
    (``label 'drumming/a.mp4' is not an integer``)."""
    root = tmp_path / "k400"
    _touch(root, "videos_train/air drumming/a.mp4", "videos_train/abseiling/b.mp4", "rawframes_train/air drumming/c/img_00001.jpg")
    videos = tmp_path / "train.txt"
    videos.write_text("air drumming/a.mp4 1\nabseiling/b.mp4 0\nair drumming/gone.mp4 1\n")  # auto: a video list
    _, rows = load_rows("list", root, train=videos, classes=label_map)
    assert rows == [("videos_train/air drumming/a", "videos_train/air drumming/a.mp4", (1,), "train"),
                    ("videos_train/abseiling/b", "videos_train/abseiling/b.mp4", (0,), "train"),
                    ("air drumming/gone", "air drumming/gone.mp4", (1,), "train")]
    frames = tmp_path / "frames.txt"
    frames.write_text("air drumming/c 300 1\nair drumming/d 120 1\n")  # auto: nothing found at the root, no extension
    _, rows = load_rows("list", root, val=frames, classes=label_map)
    assert [(r[1], r[2]) for r in rows] == [("rawframes_train/air drumming/c", (1,)), ("air drumming/d", (1,))]


def test_lists_find_videos_under_class_folders_renamed_as_mmaction2_renames_them(tmp_path, label_map):
    """mmaction2's Kinetics lists name the class folders as its rename_classnames.sh leaves them
    (``air_drumming``, ``passing_American_football_-in_game-``); a download keeps Kinetics' names
    (``air drumming``, ``passing American football (in game)``), and the other way round: the
    videos are found under either, the folders matched with case, quotes, spaces, underscores,
    hyphens and parentheses aside (before 2026-12-06 every such video was missing). A folder
    bearing the name as written wins, and a folder of another name is no match."""
    _touch(tmp_path, "train/air drumming/a.mp4", "train/passing American football (in game)/b.mp4", "train/massaging person's head/c.mp4",
           "val/baking_cookies/d.mp4", "train/abseiling/e.mp4", "train/Abseiling/e.mp4", "train/zumba/f.mp4")
    listing = tmp_path / "train.txt"
    listing.write_text("air_drumming/a.mp4 1\npassing_American_football_-in_game-/b.mp4 1\nmassaging_person's_head/c.mp4 1\nbaking cookies/d.mp4 2\nabseiling/e.mp4 0\nabseiling/f.mp4 0\n")
    _, rows = load_rows("list", tmp_path, train=listing, classes=label_map)
    assert [r[1] for r in rows] == ["train/air drumming/a.mp4", "train/passing American football (in game)/b.mp4", "train/massaging person's head/c.mp4",
                                    "val/baking_cookies/d.mp4", "train/abseiling/e.mp4", "abseiling/f.mp4"]  # f lies under zumba/ alone: missing
    assert folder_key("passing_American_football_-in_game-") == folder_key("Passing American football (in game)") == "passing american football in game"


def test_kinetics_clips_listed_by_name_are_found_in_files_named_by_the_bare_id(tmp_path, label_map):
    """mmaction2's lists name each clip ``<id>_<start>_<end>.mp4``; Showmax's kinetics-downloader
    saves the cut clip as ``<id>.mp4``, and a download of whole videos is named by the id (or
    titled by yt-dlp): such a file is the clip's, with the segment its name gives, as the kinetics
    dataset reads it (before 2026-12-06 every such clip was missing). A file named by the clip
    wins; a clip of neither stays as written."""
    root = tmp_path / "k400"
    _touch(root, "train/abseiling/aaaaaaaaaaa.mp4", "dl/Air drumming [bbbbbbbbbbb].webm", "train/abseiling/ccccccccccc_000001_000011.mp4", "train/abseiling/ccccccccccc.mp4")
    listing = tmp_path / "train.txt"
    listing.write_text("abseiling/aaaaaaaaaaa_000010_000020.mp4 0\nair_drumming/bbbbbbbbbbb_000003_000013.mp4 1\nabseiling/ccccccccccc_000001_000011.mp4 0\nzumba/ddddddddddd_000000_000010.mp4 2\n")
    m, rows = load_rows("list", root, train=listing, classes=label_map)
    assert [(r[0], r[1]) for r in rows] == [("abseiling/aaaaaaaaaaa_000010_000020", "train/abseiling/aaaaaaaaaaa.mp4"),
                                          ("air_drumming/bbbbbbbbbbb_000003_000013", "dl/Air drumming [bbbbbbbbbbb].webm"),
                                          ("train/abseiling/ccccccccccc_000001_000011", "train/abseiling/ccccccccccc_000001_000011.mp4"),
                                          ("zumba/ddddddddddd_000000_000010", "zumba/ddddddddddd_000000_000010.mp4")]
    assert [v.segment for v in m.videos] == [(10.0, 20.0), (3.0, 13.0), None, None]


def test_kinetics_clips_listed_under_class_folders_are_found_in_a_flat_download(tmp_path, label_map):
    """mmaction2's Kinetics lists name ``abseiling/<clip>.mp4``; cvdfoundation's download keeps
    the clips flat, ``train/<clip>.mp4``, good copies of corrupted ones in
    ``replacement/replacement_for_corrupted_k400/``: a cut clip's name is no other video's, so it
    is found by its name alone where no folder matches (before 2026-12-07 every such video was
    missing), the replacement's copy first, and before one under matching folders, which comes
    before other folders; a name that is not a clip's still needs its folders."""
    root = tmp_path / "k400"
    _touch(root, "train/aaaaaaaaaaa_000010_000020.mp4", "replacement/replacement_for_corrupted_k400/aaaaaaaaaaa_000010_000020.mp4",
           "val/bbbbbbbbbbb_000001_000011.mp4", "other/ccccccccccc_000002_000012.mp4", "videos_train/abseiling/ccccccccccc_000002_000012.mp4", "train/001.mp4",
           "videos_train/abseiling/ddddddddddd_000003_000013.mp4", "replacement/replacement_for_corrupted_k400/ddddddddddd_000003_000013.mp4")
    listing = tmp_path / "kinetics400_train_list_videos.txt"
    listing.write_text("abseiling/aaaaaaaaaaa_000010_000020.mp4 0\nair_drumming/bbbbbbbbbbb_000001_000011.mp4 1\nabseiling/ccccccccccc_000002_000012.mp4 0\nbaking/001.mp4 2\n"
                       "abseiling/ddddddddddd_000003_000013.mp4 0\n")
    _, rows = load_rows("list", root, train=listing, classes=label_map)
    assert [r[1] for r in rows] == ["replacement/replacement_for_corrupted_k400/aaaaaaaaaaa_000010_000020.mp4", "val/bbbbbbbbbbb_000001_000011.mp4",
                                    "videos_train/abseiling/ccccccccccc_000002_000012.mp4", "baking/001.mp4",
                                    "replacement/replacement_for_corrupted_k400/ddddddddddd_000003_000013.mp4"]  # the good copy, over the class folder's


def test_lists_of_bare_youtube_ids_find_the_cut_clips_a_download_holds(tmp_path, label_map):
    """OCSampler's Mini-Kinetics lists name each clip by its bare YouTube id
    (``7LSJ2Ryv1a8 299 0``), the folder of frames mmaction2 extracted; a Kinetics download
    (cvdfoundation's, mmaction2's) holds the cut clips as ``<id>_<start>_<end>.mp4``: the clip's
    file or frame folder is found by its id (before 2026-12-07 every such video was missing). A
    file named by the id wins, then the clip, then a downloader's titled name; a path's folders
    must match as ever, and a name that merely ends in the id is not the clip."""
    root = tmp_path / "k400"
    _touch(root, "train/abseiling/aaaaaaaaaaa_000010_000020.mp4", "train/air drumming/-bbbbbbbbbb_000002_000012.mkv",
           "rawframes_val/abseiling/ccccccccccc_000001_000011/img_00001.jpg", "videos/ddddddddddd.mp4", "videos/ddddddddddd_000005_000015.mp4",
           "train/cooking/eeeeeeeeeee_000000_000010.mp4", "train/abseiling/xfffffffffff_000000_000010.mp4",
           "dl/Some title [ggggggggggg].webm", "train/abseiling/ggggggggggg_000030_000040.mp4")
    listing = tmp_path / "mini_kinetics_val.txt"
    listing.write_text("aaaaaaaaaaa 299 0\n-bbbbbbbbbb 300 1\nccccccccccc 250 0\nddddddddddd 300 2\nabseiling/eeeeeeeeeee 300 0\nfffffffffff 300 0\nggggggggggg 300 0\n")
    m, rows = load_rows("list", root, val=listing, classes=label_map)
    assert [(r[1], r[2]) for r in rows] == [
        ("train/abseiling/aaaaaaaaaaa_000010_000020.mp4", (0,)),
        ("train/air drumming/-bbbbbbbbbb_000002_000012.mkv", (1,)),
        ("rawframes_val/abseiling/ccccccccccc_000001_000011", (0,)),  # frames, the folder not entered
        ("videos/ddddddddddd.mp4", (2,)),  # the file named by the id, not its clip beside it
        ("abseiling/eeeeeeeeeee", (0,)),  # only under cooking/: kept as written, reported missing
        ("fffffffffff", (0,)),  # xfffffffffff_... is another video's clip
        ("train/abseiling/ggggggggggg_000030_000040.mp4", (0,)),  # the clip before the whole video's titled download
    ]
    assert [v.segment for v in m.videos] == [None] * 7  # a cut clip is read whole


def test_a_list_of_videos_with_frame_counts_second_is_read_so(tmp_path, label_map):
    """OCSampler's and FrameExit's lists hold ``path num_frames label`` for the frames; beside the
    videos (``v_<id>.mp4``) such a list was read as a multi-label video list, and stopped at
    "label 3783 is beyond the 3 classes": where the second field is the largest of the line's
    on nine lines in ten, it is the frame count, which a warning says."""
    root = tmp_path / "anet"
    _touch(root, *(f"v_{i}.mp4" for i in range(10)))
    listing = tmp_path / "anet_val_video.txt"
    listing.write_text("".join(f"v_{i} {3000 + i} {i % 3}\n" for i in range(9)) + "v_9 1 2\n")  # one video shorter than its label
    with pytest.warns(UserWarning, match=r"anet_val_video.txt: read as 'path num_frames label'.*give --list-format video$"):
        _, rows = load_rows("list", root, val=listing, classes=label_map)
    assert [(r[1], r[2]) for r in rows] == [(f"v_{i}.mp4", (i % 3,)) for i in range(9)] + [("v_9.mp4", (2,))]
    listing.write_text("".join(f"v_{i} {3000 + i} {i % 3}\n" for i in range(8)) + "v_8 0 2\nv_9 1 2\n")  # two in ten: labels
    with pytest.raises(ManifestError, match=r"anet_val_video.txt:1: label 3000 is beyond the 3 classes"):
        load_rows("list", root, val=listing, classes=label_map)


def test_format_detection(tmp_path):
    resolver = PathResolver(tmp_path)
    _touch(tmp_path, "f/", "v.mp4")
    lines = lambda *texts: list(enumerate(texts, start=1))  # noqa: E731
    assert detect_format(lines("a,10,1"), resolver) == "arnet"
    assert detect_format(lines("x 1", "y 2"), resolver) == "video"
    assert detect_format(lines("f 30 1 2"), resolver) == "rawframes"  # a folder on disk
    assert detect_format(lines("v 1 2"), resolver) == "video"  # v.mp4 on disk: multi-label video list
    with pytest.warns(UserWarning, match="read as 'path num_frames label'"):
        assert detect_format(lines("v 300 2 1"), resolver) == "rawframes"  # a frame count, the largest, then labels
    assert detect_format(lines("v 300 2 x"), resolver) == "video"  # not numbers after the path
    assert detect_format(lines("gone.mp4 1 2"), resolver) == "video"  # nothing on disk, an extension
    assert detect_format(lines("gone 30 1", "gone2 40 2"), resolver) == "rawframes"
    assert detect_format(lines("gone 1 30 1", "gone2 0 40 2 5"), resolver) == "startend"  # starts 0/1, ends beyond
    assert detect_format(lines("gone 1 30 1", "gone2 40 2 5"), resolver) == "rawframes"  # not on every line


def test_list_needs_a_list_and_refuses_a_missing_one(tmp_path):
    with pytest.raises(ManifestError, match="needs at least one of --train-list"):
        load_rows("list", tmp_path)
    with pytest.raises(ManifestError, match="nowhere.txt: list file not found"):
        load_rows("list", tmp_path, train=tmp_path / "nowhere.txt")
    (tmp_path / "train.txt").write_text("a.mp4 0\n")
    with pytest.raises(ManifestError, match="--annotations: not used by the list dataset"):
        load_rows("list", tmp_path, train=tmp_path / "train.txt", annotations=tmp_path / "anet.json")


def test_kinetics_csv_with_a_class_subset(tmp_path):
    root = tmp_path / "kinetics"
    _touch(root, "train/abseiling/aaa_000010_000020.mp4", "train/air_drumming/bbb_000003_000013.mp4", "val/ccc_000000_000010.webm", "val/ddd.mp4")
    train = tmp_path / "train.csv"
    train.write_text('label,youtube_id,time_start,time_end,split,is_cc\nabseiling,aaa,10,20,train,0\n"air drumming",bbb,3,13,train,0\nzumba,zzz,0,10,train,0\n')
    val = tmp_path / "validate.csv"
    val.write_text("label,youtube_id,time_start,time_end,split\nabseiling,ccc,0.0,10.0,val\nair drumming,ddd,5,15,val\nabseiling,eee,1,11,val\n")
    subset = tmp_path / "mini_classes.txt"
    subset.write_text("abseiling\nair drumming\n")
    m, rows = load_rows("kinetics", root, train=train, val=val, classes=subset)
    assert m.classes == ("abseiling", "air drumming")
    assert rows == [
        ("aaa_000010_000020", "train/abseiling/aaa_000010_000020.mp4", (0,), "train"),
        ("bbb_000003_000013", "train/air_drumming/bbb_000003_000013.mp4", (1,), "train"),
        ("ccc_000000_000010", "val/ccc_000000_000010.webm", (0,), "val"),
        ("ddd_000005_000015", "val/ddd.mp4", (1,), "val"),  # saved under the bare id
        ("eee_000001_000011", "eee_000001_000011.mp4", (0,), "val"),  # not downloaded
    ]
    folder_names = tmp_path / "minik_classes.txt"  # a subset listed by folder name, as many are
    folder_names.write_text("Abseiling\nair_drumming\n")
    spelt, spelt_rows = load_rows("kinetics", root, train=train, val=val, classes=folder_names)
    assert spelt.classes == ("Abseiling", "air_drumming") and spelt_rows == rows
    renamed = tmp_path / "renamed_folders.txt"  # made from mmaction2's renamed class folders: parentheses turned to hyphens
    val.write_text(val.read_text() + '"passing American football (in game)",fff,0,10,val\n')
    renamed.write_text("abseiling\npassing_American_football_-in_game-\n")
    loose, loose_rows = load_rows("kinetics", root, val=val, classes=renamed)
    assert loose.classes == ("abseiling", "passing American football (in game)") and [r[2] for r in loose_rows] == [(0,), (0,), (1,)]  # spelt as the csv spells it; it was "label of no video"
    typo = tmp_path / "typo.txt"
    typo.write_text("abseiling\nair drums\nzumba\n")
    with pytest.raises(ManifestError, match=r"typo.txt: 1 of its 3 classes are the label of no video in .*train.csv, .*validate.csv: air drums \(names"):
        load_rows("kinetics", root, train=train, val=val, classes=typo)
    twice = tmp_path / "twice.txt"
    twice.write_text("air drumming\nAir_Drumming\n")
    with pytest.raises(ManifestError, match="twice.txt: these class names are the same class .*: Air_Drumming, air drumming"):
        load_rows("kinetics", root, train=train, classes=twice)
    _touch(root, "rawframes/abseiling/eee_000001_000011/img_00001.jpg")
    assert load_rows("kinetics", root, val=val, classes=subset)[1][-1][1] == "rawframes/abseiling/eee_000001_000011"  # frames
    _, rows = load_rows("kinetics", root, train=train)  # no subset: every label of the csv, sorted
    assert [r[2] for r in rows] == [(0,), (1,), (2,)]
    test = tmp_path / "test.csv"
    test.write_text("youtube_id,time_start,time_end,split\nqqq,0,10,test\n")
    assert load_rows("kinetics", root, test=test, classes=subset)[1] == []  # no labels: left out
    bad = tmp_path / "bad.csv"
    bad.write_text("label,id,start,end\nx,y,0,10\n")
    with pytest.raises(ManifestError, match="bad.csv: not a Kinetics csv \\(no column youtube_id, time_start, time_end"):
        load_rows("kinetics", root, train=bad)


def test_cli_reads_list_files(tmp_path, label_map):
    lst = tmp_path / "train.txt"
    lst.write_text("a.mp4 0\nb.mp4 1 2\n")
    result = CliRunner().invoke(main, ["data", "--dataset", "list", "--data-root", str(tmp_path), "--train-list", str(lst), "--class-names", str(label_map)])
    assert result.exit_code == 0, result.output
    assert "dataset list: 2 videos, 3 classes" in result.output and "multi-label videos: 1" in result.output
    beyond = tmp_path / "beyond.txt"
    beyond.write_text("a.mp4 7\n")
    result = CliRunner().invoke(main, ["data", "--dataset", "list", "--data-root", str(tmp_path), "--val-list", str(beyond), "--class-names", str(label_map)])
    assert result.exit_code == 1 and "beyond.txt:1: label 7 is beyond the 3 classes" in result.output


def test_the_ids_a_downloaders_default_file_name_carries():
    assert titled_ids("Me at the zoo [jNQXAC9IVRw]") == ["jNQXAC9IVRw"]  # yt-dlp
    assert titled_ids("Me_at_the_zoo_[jNQXAC9IVRw]") == ["jNQXAC9IVRw"]  # yt-dlp --restrict-filenames
    assert titled_ids("Me at the zoo-jNQXAC9IVRw") == ["jNQXAC9IVRw"]  # youtube-dl
    assert titled_ids("a [b] [c-d]") == ["c-d"]  # the last brackets, closing the name
    assert titled_ids("x [-abcdefghij]") == ["-abcdefghij"]  # an id that begins with a dash, once
    assert titled_ids("jNQXAC9IVRw") == [] and titled_ids("jNQXAC9IVRw_000010_000020") == []  # named by the id
    assert titled_ids("v_-7ozA4hJkQb") == [] and titled_ids("x-jNQXAC9IVR") == [] and titled_ids("x-jNQXAC9IV.w") == []
    assert titled_ids("[720p] clip") == [] and titled_ids("clip []") == []


def test_annotations_not_found_under_a_data_root_that_is_not_there_say_so(tmp_path, monkeypatch):
    """A mistyped --data-root, or the default where the data lies elsewhere, is named beside
    the annotation error; a list of absolute paths needs no root and is read without one."""
    from pipeline.datasets import AnnotationFiles, load_manifest

    with pytest.raises(ManifestError, match=rf"FCVID_VideoName_TrainTestSplit.txt: annotation file not found \(the data root {tmp_path}/nowhere does not exist\)$"):
        load_manifest("fcvid", tmp_path / "nowhere")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ManifestError, match=r"manifest file not found \(the csv dataset's default data root data/csv does not exist: give --data-root\)$"):
        load_manifest("csv", None)
    with pytest.raises(ManifestError, match="annotation file not found$"):  # a root that is there: the error alone
        load_manifest("fcvid", tmp_path)
    (tmp_path / "fcvid").symlink_to("/mnt/unmounted/fcvid")  # a root linked in from a disk not mounted
    with pytest.raises(ManifestError, match=r"annotation file not found \(the data root fcvid does not exist: fcvid links to /mnt/unmounted/fcvid, which is not there\)$"):
        load_manifest("fcvid", Path("fcvid"))
    video = tmp_path / "videos" / "a.mp4"
    video.parent.mkdir()
    video.write_bytes(b"x")
    listing = tmp_path / "train.txt"
    listing.write_text(f"{video} 0\n")
    root, manifest = load_manifest("list", None, AnnotationFiles(train=listing))
    assert root == Path("data/list") and [v.path for v in manifest.videos] == [str(video)]


@pytest.mark.parametrize(("files", "holds"), [
    ({"ucfTrainTestlist/classInd.txt": "1 ApplyEyeMakeup\n"}, "ucf101"),
    ({"activity_net.v1-3.min.json": "{}"}, "activitynet"),
    ({"materials/FCVID_VideoName_TrainTestSplit.txt": ""}, "fcvid"),
    ({"mini_train_videofolder.txt": ""}, "minikinetics"),
    ({"annotations/train.csv": "label,youtube_id,time_start,time_end,split\nabseiling,aaaaaaaaaaa,x,20,train\n"}, "kinetics"),  # cvdfoundation's download
    ({"manifest.csv": "path,label,split\nx.mp4\n"}, "csv"),
])
def test_a_root_read_as_another_datasets_names_the_dataset_it_holds(tmp_path, files, holds):
    """A data root read with the wrong ``--dataset`` (or the demo's, left at its default) said
    only that the dataset's own file was not found (before 2026-12-07, the fifty-fourth
    session): the dataset whose annotation files the root holds is named; where the files are
    given on the command line, or the root holds the dataset's own, the error is the reader's."""
    from pipeline.datasets import AnnotationFiles, load_manifest

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    wrong = "fcvid" if holds != "fcvid" else "activitynet"
    with pytest.raises(ManifestError, match=rf"not found \({tmp_path} holds the {holds} dataset's annotation files: --dataset {holds}\?\)$"):
        load_manifest(wrong, tmp_path)
    with pytest.raises(ManifestError) as given:
        load_manifest("ucf101", tmp_path, AnnotationFiles(train=tmp_path / "gone.txt"))
    with pytest.raises(ManifestError) as own:
        load_manifest(holds, tmp_path)
    assert "--dataset" not in str(given.value) + str(own.value)
