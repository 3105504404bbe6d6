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


def test_saved_weights_are_as_readable_as_any_file_the_umask_allows(tmp_path):
    """safetensors writes 0600; a model folder (and its export) is read by others too."""
    from nlu.config import EncoderConfig
    from nlu.export import export
    from nlu.model import ForTokenClassification

    umask = os.umask(0o022)
    try:
        ForTokenClassification(EncoderConfig(vocab_size=30, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=16,
                                             labels=["O", "B-X"])).save_pretrained(tmp_path / "model")
        export(tmp_path / "model", tmp_path / "hf")
    finally:
        os.umask(umask)
    for weights in (tmp_path / "model" / "model.safetensors", tmp_path / "hf" / "model.safetensors"):
        assert weights.stat().st_mode & 0o777 == 0o644, weights


def test_write_text_atomic_replaces_content(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]
