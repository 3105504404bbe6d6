"""Checkpoints are verified before they are trusted: a damaged newest checkpoint is named, set aside
and the previous one resumed from, exactly; random states that cannot be restored are never
skipped silently; the manifest is written last, after every file is on disk."""

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nlu.errors import CheckpointError
from nlu.training import checkpoints
from nlu.training.checkpoints import (MANIFEST_NAME, clean_checkpoints, published_checkpoints, replace_directory,
                                      seal)
from test_training import one_thread, scripted_run  # noqa: F401 — one_thread is an autouse fixture

RUN = {"examples": 16, "max_steps": 8, "save_every": 4, "keep_checkpoints": 3}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model" / "model.safetensors"))


def max_difference(first: dict, second: dict) -> float:
    assert first.keys() == second.keys()
    return max((first[name] - second[name]).abs().max().item() for name in first)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The weights after 8 uninterrupted steps (dropout on, so the random states matter)."""
    folder = tmp_path_factory.mktemp("reference")
    scripted_run(folder, **RUN)
    return weights(folder)


def finished_run(folder: Path) -> Path:
    """A run that saved checkpoints at steps 4 and 8; its final model is removed, and rerunning it
    resumes from the newest checkpoint. Returns the checkpoints folder."""
    scripted_run(folder, **RUN)
    assert [path.name for path in published_checkpoints(folder / "checkpoints")] == ["step-00000004", "step-00000008"]
    return folder / "checkpoints"


def truncate(path: Path) -> None:
    """A torn write: the first half of the file."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def make_legacy(directory: Path) -> None:
    """What nlu wrote before manifests: no manifest.json, no ``format`` in trainer_state.json."""
    (directory / MANIFEST_NAME).unlink()
    saved = json.loads((directory / "trainer_state.json").read_text())
    del saved["format"]
    (directory / "trainer_state.json").write_text(json.dumps(saved))


def test_a_checkpoint_lists_every_file_with_size_and_checksum(tmp_path):
    folder = finished_run(tmp_path / "run")
    newest = folder / "step-00000008"
    manifest = json.loads((newest / MANIFEST_NAME).read_text())
    assert manifest["format"] == 2
    assert sorted(manifest["files"]) == ["model.safetensors", "optimizer.bin", "random_states_0.pkl",
                                         "trainer_state.json"]
    for name, entry in manifest["files"].items():
        assert entry["size"] == (newest / name).stat().st_size and entry["sha256"] == checkpoints.sha256(newest / name)
    assert json.loads((newest / "trainer_state.json").read_text())["format"] == 2


@pytest.mark.parametrize("damaged, reason", [
    ("model.safetensors", r"model.safetensors has [\d,]+ bytes, the manifest says [\d,]+"),
    ("optimizer.bin", r"optimizer.bin has [\d,]+ bytes"),
    ("trainer_state.json", r"trainer_state.json has [\d,]+ bytes"),
    ("random_states_0.pkl", r"random_states_0.pkl has [\d,]+ bytes"),
])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one_exactly(tmp_path, reference, damaged, reason,
                                                                            capsys):
    folder = finished_run(tmp_path / "run")
    truncate(folder / "step-00000008" / damaged)
    with pytest.warns(UserWarning, match=rf"skipping checkpoint .*step-00000008: {reason}"):
        result, _ = scripted_run(tmp_path / "run", **RUN)
    assert f"resuming from {folder / 'step-00000004'} (step 4 of 8)" in capsys.readouterr().out
    assert result.state.step == 8 and max_difference(weights(tmp_path / "run"), reference) == 0.0
    # The damaged one is kept aside for inspection, outside the step-* names; step 8 was written anew.
    assert (folder / "step-00000008.rejected" / damaged).is_file()
    assert checkpoints.problem_with(folder / "step-00000008") is None


def test_a_checkpoint_without_its_manifest_is_not_complete(tmp_path, reference):
    folder = finished_run(tmp_path / "run")
    (folder / "step-00000008" / MANIFEST_NAME).unlink()
    with pytest.warns(UserWarning, match="step-00000008: no manifest.json: the save did not finish"):
        scripted_run(tmp_path / "run", **RUN)
    assert max_difference(weights(tmp_path / "run"), reference) == 0.0


def test_a_save_that_dies_before_the_manifest_publishes_nothing(tmp_path, reference, monkeypatch):
    original = checkpoints.write_text_atomic

    def power_cut_at_step_8(path, text):
        if Path(path).name == MANIFEST_NAME and Path(path).parent.name == ".step-00000008":
            raise OSError("power cut")
        original(path, text)

    monkeypatch.setattr(checkpoints, "write_text_atomic", power_cut_at_step_8)
    with pytest.raises(OSError, match="power cut"):
        scripted_run(tmp_path / "run", **RUN)
    folder = tmp_path / "run" / "checkpoints"
    assert [path.name for path in published_checkpoints(folder)] == ["step-00000004"]
    assert (folder / ".step-00000008" / "model.safetensors").is_file()
    monkeypatch.setattr(checkpoints, "write_text_atomic", original)
    scripted_run(tmp_path / "run", **RUN)
    assert not (folder / ".step-00000008").exists()
    assert max_difference(weights(tmp_path / "run"), reference) == 0.0


def test_files_and_renames_are_on_disk_before_the_checkpoint_counts(tmp_path, monkeypatch):
    events = []
    original_fsync, original_write, original_replace = checkpoints.fsync, checkpoints.write_text_atomic, os.replace
    monkeypatch.setattr(checkpoints, "fsync", lambda path: events.append(("fsync", Path(path).name))
                        or original_fsync(path))
    monkeypatch.setattr(checkpoints, "write_text_atomic", lambda path, text: events.append(("write", Path(path).name))
                        or original_write(path, text))
    monkeypatch.setattr(checkpoints.os, "replace", lambda source, target: events.append(
        ("rename", Path(target).name)) or original_replace(source, target))
    scripted_run(tmp_path / "run", examples=16, max_steps=4, save_every=4)
    start = events.index(("fsync", "model.safetensors"))
    assert events[start:start + 9] == [
        ("fsync", "model.safetensors"), ("fsync", "optimizer.bin"), ("fsync", "random_states_0.pkl"),
        ("fsync", "trainer_state.json"), ("write", MANIFEST_NAME), ("rename", MANIFEST_NAME),
        ("fsync", ".step-00000004"), ("rename", "step-00000004"), ("fsync", "checkpoints"),
    ]


def test_a_legacy_checkpoint_is_resumed_with_a_warning(tmp_path, reference):
    folder = finished_run(tmp_path / "run")
    make_legacy(folder / "step-00000008")
    with pytest.warns(UserWarning, match="step-00000008 has no manifest.json .written by an older nlu.: its files "
                                         "could not be verified, only loaded"):
        result, _ = scripted_run(tmp_path / "run", **RUN)
    assert result.state.step == 8 and max_difference(weights(tmp_path / "run"), reference) == 0.0


def test_truncated_random_states_are_never_skipped_silently(tmp_path, reference):
    """Without a manifest to catch it (a legacy checkpoint), Accelerate skipped an unreadable RNG
    file with an info log and the run ended 0.027 away from the uninterrupted one. Now the
    checkpoint is passed over; when there is no other, it is an error."""
    folder = finished_run(tmp_path / "run")
    for directory in published_checkpoints(folder):
        make_legacy(directory)
    truncate(folder / "step-00000008" / "random_states_0.pkl")
    with pytest.warns(UserWarning, match="step-00000008: random_states_0.pkl: random states cannot be restored"):
        scripted_run(tmp_path / "run", **RUN)
    assert max_difference(weights(tmp_path / "run"), reference) == 0.0

    folder = finished_run(tmp_path / "only")
    for directory in published_checkpoints(folder):
        make_legacy(directory)
        truncate(directory / "random_states_0.pkl")
    with pytest.raises(CheckpointError, match=r"no checkpoint can be resumed from \(step-00000008: random_states_0.pkl: "
                                              r"random states cannot be restored .*; step-00000004: random_states_0"):
        scripted_run(tmp_path / "only", **RUN)


class Payload:
    """Pickled code: loading this file with plain pickle would create ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_code_is_refused_even_with_a_matching_manifest(tmp_path, reference):
    folder = finished_run(tmp_path / "run")
    marker = tmp_path / "payload-ran"
    newest = folder / "step-00000008"
    with open(newest / "optimizer.bin", "wb") as handle:
        pickle.dump(Payload(marker), handle)
    seal(newest)  # the manifest rewritten to match, as an attacker would
    with pytest.warns(UserWarning, match=r"step-00000008: cannot be loaded \(UnpicklingError: Weights only load failed"):
        scripted_run(tmp_path / "run", **RUN)
    assert not marker.exists()
    assert max_difference(weights(tmp_path / "run"), reference) == 0.0


def test_replacing_a_directory_that_exists_is_safe(tmp_path):
    target, source = tmp_path / "step-00000008", tmp_path / ".step-00000008"
    target.mkdir()
    (target / "old.bin").write_text("old")
    source.mkdir()
    (source / "new.bin").write_text("new")
    replace_directory(source, target)
    assert [path.name for path in target.iterdir()] == ["new.bin"] and not source.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["step-00000008"]


def test_an_interrupted_swap_is_finished_and_partials_dropped(tmp_path):
    (tmp_path / "step-00000004.old").mkdir()  # killed between the two renames of a swap
    (tmp_path / ".step-00000008").mkdir()  # killed while writing
    (tmp_path / "step-00000009.rejected").mkdir()
    clean_checkpoints(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["step-00000004", "step-00000009.rejected"]
    assert [path.name for path in published_checkpoints(tmp_path)] == ["step-00000004"]
