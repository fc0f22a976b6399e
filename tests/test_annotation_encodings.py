"""Annotation files as Windows tools save them (UTF-8 or UTF-16 with a byte-order mark, UTF-16
without one, CRLF line ends) read exactly as their plain form, for every adapter; text that is
not UTF-8, a workbook and binary data are errors naming the file."""

import codecs
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.datasets import AnnotationFiles, ManifestError, get_dataset

ANET = {"version": "VERSION 1.3", "taxonomy": [], "database": {
    "abc": {"subset": "training", "annotations": [{"label": "Hopscotch", "segment": [1, 2]}]},
    "def": {"subset": "validation", "annotations": [{"label": "Rock climbing", "segment": [0, 5]}]},
}}

# dataset -> (annotation files: name -> plain text, AnnotationFiles fields naming some of them, videos)
FIXTURES = {
    "csv": ({"manifest.csv": "path,label,split\nvideos/a.mp4,cat,train\nvideos/b.mp4,dog,val\n", "classes.txt": "cat\ndog\n"}, {}, 2),
    "fcvid": ({
        "FCVID_Category.txt": "accordion\nbasketball\n",
        "FCVID_VideoName_TrainTestSplit.txt": "accordion/a.mp4 train\nbasketball/b.mp4 test\n",
        "FCVID_Label.txt": "1 0\n1 1\n",
    }, {}, 2),
    "activitynet": ({"activity_net.v1-3.min.json": json.dumps(ANET, indent=1)}, {}, 2),
    "minikinetics": ({
        "mini_categories.txt": "abseiling\nbaking\n",
        "mini_train_videofolder.txt": "train/abseiling/x1 300 0\n",
        "mini_val_videofolder.txt": "val/x4.mp4 120 1\n",
    }, {}, 2),
    "ucf101": ({
        "ucfTrainTestlist/classInd.txt": "1 ApplyEyeMakeup\n2 Archery\n",
        "ucfTrainTestlist/trainlist01.txt": "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n",
        "ucfTrainTestlist/testlist01.txt": "Archery/v_Archery_g01_c01.avi\n",
    }, {}, 2),
    "list": ({"train.txt": "a.mp4 0\nb.mp4 1 2\n", "val.txt": "c.mp4 2\n", "label_map.txt": "abseiling\nair drumming\nbaking cookies\n"},
             {"train": "train.txt", "val": "val.txt", "classes": "label_map.txt"}, 3),
    "kinetics": ({"train.csv": 'label,youtube_id,time_start,time_end,split\nabseiling,aaa,10,20,train\n"air drumming",bbb,3,13,train\n'},
                 {"train": "train.csv"}, 2),
}


def _load(dataset: str, root: Path, encode: Callable[[str], bytes] = str.encode):
    files, named, _ = FIXTURES[dataset]
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(encode(text))
    return get_dataset(dataset).load(root, AnnotationFiles(**{field: root / name for field, name in named.items()}))


# How Windows tools save text: UTF-8 with a byte-order mark (Excel's "CSV UTF-8", editors) and
# UTF-16 with one (Windows PowerShell's `>` and `Out-File`, little-endian; Excel's "Unicode Text"),
# CRLF line ends.
WINDOWS_FORMS = {
    "utf-8-bom-crlf": lambda text: ("\ufeff" + text.replace("\n", "\r\n")).encode(),
    "utf-16-le-crlf": lambda text: codecs.BOM_UTF16_LE + text.replace("\n", "\r\n").encode("utf-16-le"),
    "utf-16-be": lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    # without the mark: Python's encoding="utf-16-le", .NET's Encoding.Unicode written raw
    "utf-16-le-no-bom": lambda text: text.encode("utf-16-le"),
    "utf-16-be-no-bom-crlf": lambda text: text.replace("\n", "\r\n").encode("utf-16-be"),
}


@pytest.mark.parametrize("dataset", sorted(FIXTURES))
@pytest.mark.parametrize("form", sorted(WINDOWS_FORMS))
def test_annotation_files_as_windows_tools_save_them_read_as_the_plain_file(tmp_path: Path, dataset: str, form: str):
    """Each form reads as the plain UTF-8 file (UTF-16 since 2026-12-07: "not UTF-8 text" before;
    without its mark since 2026-12-07, evening: read as UTF-8, a NUL byte beside each letter of
    every path, class and field: "label '\\x000\\x00' is not an integer")."""
    plain = _load(dataset, tmp_path / "plain")
    assert len(plain.videos) == FIXTURES[dataset][2] and plain.rejected == ()
    assert _load(dataset, tmp_path / form, WINDOWS_FORMS[form]) == plain


def test_annotation_text_that_is_not_utf8_names_the_file(tmp_path: Path):
    (tmp_path / "train.txt").write_text("a.mp4 0\n")
    (tmp_path / "label_map.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(ManifestError, match=r"label_map.txt: not UTF-8 text \(byte 3: b'\\xe9'\); save it as UTF-8"):
        get_dataset("list").load(tmp_path, AnnotationFiles(train=tmp_path / "train.txt", classes=tmp_path / "label_map.txt"))


@pytest.mark.parametrize(("data", "said"), [
    (b"PK\x03\x04\x14\x00\x06\x00" + bytes(40), r"a zip archive \(an Excel .xlsx or LibreOffice .ods workbook\?\), not a text list file; save the sheet as CSV \(UTF-8\) and give that file$"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(40), r"an OLE2 compound file \(an Excel .xls workbook\?\), not a text list file; save the sheet"),
    (b"\x1aE\xdf\xa3\x01\x00\x00\x00\x00\x00\x00\x1fB\x86\x81\x01", r"holds NUL bytes \(byte 5\), not a text list file: binary data or an encoding other than UTF-8 and UTF-16; save it as UTF-8$"),
    ("a.mp4 0\n\u4e00\u4e8c.mp4 1\n".encode("utf-32-le"), r"holds NUL bytes \(byte 1\), not a text list file"),
])
def test_a_workbook_or_binary_file_given_as_a_list_names_the_file_and_what_it_is(tmp_path: Path, data: bytes, said: str):
    """The spreadsheet itself rather than a table saved from it, a video (a WebM's first bytes)
    or UTF-32 given as the list: an error saying what the file is, where each was "not UTF-8
    text (byte N ...)" or, its first bytes decoding, read as text, NUL bytes in its paths and
    labels (before 2026-12-07, evening)."""
    (tmp_path / "train.xlsx").write_bytes(data)
    with pytest.raises(ManifestError, match=rf"train.xlsx: {said}"):
        get_dataset("list").load(tmp_path, AnnotationFiles(train=tmp_path / "train.xlsx"))


def test_utf16_without_its_mark_is_told_by_where_its_nul_bytes_lie_whatever_the_script(tmp_path: Path):
    """Class names in Chinese (as FCVID's own category list gives them beside the English) and
    paths in ASCII, UTF-16 without the mark: the ASCII's NUL high bytes tell the byte order,
    though a CJK letter's low byte may be NUL too (U+4E00 is 00 4E little-endian)."""
    text = "a.mp4 0\nb.mp4 1\n"
    names = "\u4e00\u4e8c\u4e09\u4e00 \u97f3\u4e50\nbasketball\n"
    for codec in ("utf-16-le", "utf-16-be"):
        (tmp_path / "train.txt").write_bytes(text.encode(codec))
        (tmp_path / "names.txt").write_bytes(names.encode(codec))
        manifest = get_dataset("list").load(tmp_path, AnnotationFiles(train=tmp_path / "train.txt", classes=tmp_path / "names.txt"))
        assert manifest.classes == ("\u4e00\u4e8c\u4e09\u4e00 \u97f3\u4e50", "basketball") and [v.path for v in manifest.videos] == ["a.mp4", "b.mp4"], codec
