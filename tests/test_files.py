import os

import pytest

from nlu.files import atomic_path, write_text_atomic


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "report.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_text("half written")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]


def test_atomic_path_respects_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "r.csv") as temp:
            temp.write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "r.csv").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_write_text_atomic_replaces_content(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]
