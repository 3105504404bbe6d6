"""An existing run folder means "resume", which is only sound with the settings it started with."""

import pytest
import yaml

from nlu.cli import check_run_folder
from nlu.errors import ConfigError
from nlu.settings import RunSettings
from nlu.training.config import TrainingConfig


def _settings(tmp_path, **training) -> RunSettings:
    return RunSettings(task="pretrain", data={"max_length": 64},
                       training=TrainingConfig(output_dir=str(tmp_path / "run"), **training))


def test_same_settings_resume_and_changed_ones_are_refused_by_name(tmp_path):
    check_run_folder(_settings(tmp_path), tmp_path / "run", force=False)
    check_run_folder(_settings(tmp_path), tmp_path / "run", force=False)
    with pytest.raises(ConfigError, match=r"other settings \(training\.learning_rate\)"):
        check_run_folder(_settings(tmp_path, learning_rate=1e-2), tmp_path / "run", force=False)
    check_run_folder(_settings(tmp_path, learning_rate=1e-2), tmp_path / "run", force=True)


def test_a_training_option_added_later_at_its_default_still_resumes(tmp_path):
    """A folder written before ``training.compile`` existed lacks the key."""
    check_run_folder(_settings(tmp_path), tmp_path / "run", force=False)
    saved = tmp_path / "run" / "settings.yaml"
    older = yaml.safe_load(saved.read_text())
    del older["training"]["compile"]
    saved.write_text(yaml.safe_dump(older))
    check_run_folder(_settings(tmp_path), tmp_path / "run", force=False)
    saved.write_text(yaml.safe_dump(older))
    with pytest.raises(ConfigError, match=r"training\.compile"):
        check_run_folder(_settings(tmp_path, compile=True), tmp_path / "run", force=False)
