"""tradewarden._io: files are written whole or not at all."""

from __future__ import annotations

import os
import stat

import pytest

from tradewarden._io import atomic_write, atomic_write_text


def test_a_failure_while_writing_leaves_neither_a_partial_file_nor_a_temp_file(tmp_path):
    target = tmp_path / "out" / "report.html"
    with pytest.raises(RuntimeError, match="renderer broke"), atomic_write(target) as fh:
        fh.write("<html>" + "x" * 100_000)          # half a page, then the renderer fails
        raise RuntimeError("renderer broke")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_failure_keeps_the_previous_version(tmp_path):
    target = tmp_path / "trades.csv"
    target.write_text("old\n")
    with pytest.raises(OSError), atomic_write(target) as fh:
        fh.write("new,partial")
        raise OSError(28, "No space left on device")
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["trades.csv"]


def test_success_replaces_the_file_with_ordinary_permissions(tmp_path):
    target = tmp_path / "r.json"
    assert atomic_write_text(target, '{"a": 1}\n') == target
    assert target.read_text() == '{"a": 1}\n'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask     # as open(path, "w") gives
    target.chmod(0o640)
    atomic_write_text(target, "{}\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_text() == "{}\n"
    assert os.listdir(tmp_path) == ["r.json"]


def test_newline_is_passed_through_for_csv(tmp_path):
    import csv

    with atomic_write(tmp_path / "t.csv", newline="") as fh:
        csv.writer(fh).writerow(["a", "b"])
    assert (tmp_path / "t.csv").read_bytes() == b"a,b\r\n"
