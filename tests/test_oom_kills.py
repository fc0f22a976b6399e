"""The machine's count of the kernel's out-of-memory kills, read from ``/proc/vmstat``."""

import sys

import pytest

from pipeline.oom_kills import VMSTAT, oom_kills


def test_the_count_is_the_oom_kill_line(tmp_path):
    vmstat = tmp_path / "vmstat"
    vmstat.write_text("nr_free_pages 1204\noom_kill_disable 0\noom_kill 17\npgfault 99\n")
    assert oom_kills(vmstat) == 17


def test_no_count_where_the_file_or_its_line_is_not_there(tmp_path):
    assert oom_kills(tmp_path / "vmstat") is None  # not Linux
    (tmp_path / "vmstat").write_text("nr_free_pages 1204\noom_kill  \n")  # a kernel before 4.13 has no such line
    assert oom_kills(tmp_path / "vmstat") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's /proc")
def test_this_machine_has_a_count():
    assert VMSTAT.exists() and isinstance(oom_kills(), int)
