"""The command line's own surface: help text, --version, config show."""

import dataclasses
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import nlu
from nlu import cli
from nlu.config import EncoderConfig
from nlu.describe import field_docs
from nlu.runs import TASKS
from nlu.training.config import TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
REST_MARKUP = re.compile(r"``|:(func|class|mod|meth):`")


def help_of(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", [(), ("predict",), ("evaluate",), ("export",), ("config", "show"), ("finetune",)])
def test_help_is_plain_text(capsys, command):
    text = help_of(capsys, *command)
    assert text.startswith("usage: nlu") and not REST_MARKUP.search(text), text


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    completed = subprocess.run([sys.executable, "-m", "nlu.cli", "--version"], capture_output=True, text=True, check=True)
    assert completed.stdout == f"nlu {version('nlu')}\n" == f"nlu {nlu.__version__}\n"


def test_import_nlu_does_not_import_torch():
    code = "import sys, nlu; print('torch' in sys.modules, callable(nlu.load))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout == "False True\n"


@pytest.mark.parametrize("task_file", ["wnut16_ner.yaml", "rotten_tomatoes.yaml", "pretrain_news.yaml"])
def test_config_show_lists_every_option_the_validation_knows(capsys, task_file):
    path = ROOT / "tasks" / task_file
    assert cli.main(["config", "show", str(path)]) == 0
    text = capsys.readouterr().out
    task = {"wnut16_ner.yaml": "ner", "rotten_tomatoes.yaml": "classify", "pretrain_news.yaml": "pretrain"}[task_file]
    sections = {"model": EncoderConfig, "data": TASKS[task].data_options, "training": TrainingConfig}
    listed = re.findall(r"^  ([\w.]+): (.+?) = ", text, flags=re.MULTILINE)
    expected = [("init", "str | None"), ("from_scratch", "bool"), ("framework", "str")] + [
        (f"{section}.{f.name}", str(f.type)) for section, cls in sections.items() for f in dataclasses.fields(cls)]
    assert listed == expected
    assert "  training.max_steps: int = 0" in text
    meanings = {name: " ".join(meaning.split()) for name, meaning in
                re.findall(r"^  ([\w.]+): .*\n((?:      .*\n)*)", text + "\n", flags=re.MULTILINE)}
    for section, cls in sections.items():  # every docstring in the source is shown, as plain text
        for name, doc in field_docs(cls).items():
            assert meanings[f"{section}.{name}"] == doc
    assert not REST_MARKUP.search(text)


def test_config_show_marks_the_values_the_file_sets(capsys):
    assert cli.main(["config", "show", str(ROOT / "tasks" / "wnut16_ner.yaml")]) == 0
    text = capsys.readouterr().out
    assert "  training.output_dir: str = runs/default   (this file: runs/wnut16_ner)" in text


def test_config_show_reads_a_yaml_word_as_nlu_reads_it(tmp_path, capsys):
    """`no` is fp32's name, not YAML 1.1's false: the file's value is shown as the run will read it."""
    task_file = tmp_path / "fp32.yaml"
    task_file.write_text("task: ner\ntraining:\n  mixed_precision: no\n")
    assert cli.main(["config", "show", str(task_file)]) == 0
    assert "  training.mixed_precision: str = auto   (this file: 'no')" in capsys.readouterr().out


def test_config_show_of_a_missing_or_broken_file_is_one_line(tmp_path, capsys):
    assert cli.main(["config", "show", str(tmp_path / "absent.yaml")]) == 2
    assert capsys.readouterr().err == f"nlu: error: {tmp_path / 'absent.yaml'}: task file not found\n"


def test_every_option_has_a_meaning():
    """A new option without a docstring after its field would show up in config show without one."""
    for cls in (EncoderConfig, TrainingConfig, *(entry.data_options for entry in TASKS.values())):
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in field_docs(cls)]
        assert missing == [], f"{cls.__name__}: write a docstring after the field(s) {missing}"


def test_nlu_warnings_are_one_line_and_said_once_under_torchrun(monkeypatch, capsys):
    inside, outside = str(Path(cli.__file__).parent / "tasks" / "ner.py"), "/elsewhere/library.py"
    cli.show_warning(UserWarning("two words are cut"), UserWarning, inside, 12)
    cli.show_warning(UserWarning("deprecated"), FutureWarning, outside, 3)
    err = capsys.readouterr().err
    assert err.startswith("nlu: warning: two words are cut\n") and "library.py:3: FutureWarning: deprecated" in err
    monkeypatch.setenv("RANK", "1")  # a second torchrun process: the first one said it
    cli.show_warning(UserWarning("two words are cut"), UserWarning, inside, 12)
    cli.show_warning(UserWarning("deprecated"), FutureWarning, outside, 3)
    err = capsys.readouterr().err
    assert "two words" not in err and "FutureWarning: deprecated" in err


def test_evaluating_the_training_file_is_said_to_read_high(tmp_path):
    train, other = tmp_path / "de.csv", tmp_path / "new.csv"
    (tmp_path / "run" / "best").mkdir(parents=True)
    (tmp_path / "run" / "settings.yaml").write_text(f"task: classify\ndata:\n  train: {train}\n  dev: null\n  test: null\n")
    with pytest.warns(UserWarning, match=rf"^{train} is data.train of {tmp_path / 'run'}: the model was trained on its "
                                         rf"rows, so these figures read high; its test data: the rows "
                                         rf"{tmp_path / 'run'}/data_splits.json lists as test$"):
        cli.warn_if_seen_in_training(train, tmp_path / "run" / "best")
    (tmp_path / "run" / "settings.yaml").write_text(f"task: classify\ndata:\n  dev: {other}\n  test: {other}\n")
    with pytest.warns(UserWarning, match=r"the model was selected on its rows, so these figures read high; its test "
                                         r"data: this same file \(the run's dev and test are one\)$"):
        cli.warn_if_seen_in_training(other, tmp_path / "run" / "best")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cli.warn_if_seen_in_training(train, tmp_path / "run" / "best")  # another file: nothing to say
        cli.warn_if_seen_in_training(train, tmp_path / "elsewhere")  # no run folder: nothing known


def test_a_runs_relative_paths_are_read_from_where_it_was_started_whatever_the_folder_now(tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "runs" / "x" / "best").mkdir(parents=True)
    elsewhere.mkdir()
    (project / "runs" / "x" / "settings.yaml").write_text(
        "task: classify\ndata:\n  train: data/train.csv\n  test: data/test.csv\ntraining:\n  output_dir: runs/x\n")
    monkeypatch.chdir(elsewhere)
    with pytest.warns(UserWarning, match=r"^\.\./project/data/train.csv is data.train of .*; its test data: "
                                         r"\.\./project/data/test.csv$"):
        cli.warn_if_seen_in_training(Path("../project/data/train.csv"), Path("../project/runs/x/best"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cli.warn_if_seen_in_training(Path("data/train.csv"), Path("../project/runs/x/best"))  # another file, here
    # runs/ a link to a bigger disk, or moved there: the run's files are still found where it was started
    (project / "data").mkdir()
    for name in ("train.csv", "test.csv"):
        (project / "data" / name).write_text("text,label\n")
    (tmp_path / "big").mkdir()
    (project / "runs").rename(tmp_path / "big" / "runs")
    (project / "runs").symlink_to(tmp_path / "big" / "runs")
    monkeypatch.chdir(project)
    for model in (Path("runs/x/best"), tmp_path / "big" / "runs" / "x" / "best"):  # linked; moved (read from here)
        with pytest.warns(UserWarning, match=r"^data/train.csv is data.train of .*; its test data: data/test.csv$"):
            cli.warn_if_seen_in_training(Path("data/train.csv"), model)


def test_evaluating_panx_files_a_run_read_from_its_local_dir_is_said_to_read_high(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    panx, wnut = tmp_path / "panx", tmp_path / "wnut_train.conll"
    panx.mkdir()
    for name in ("train", "dev.jsonl", "test"):  # XTREME's raw train and test, a JSONL dev
        (panx / name).write_text("de:Berlin\tB-LOC\n")
    (tmp_path / "run" / "best").mkdir(parents=True)
    # A PAN-X run's settings keep data.train's default, which it never read.
    (tmp_path / "run" / "settings.yaml").write_text(
        f"task: ner\ndata:\n  train: {wnut}\n  panx_lang: de\n  local_dir: {panx}\n")
    with pytest.warns(UserWarning, match=rf"^{panx / 'train'} is the train split under data.local_dir of "
                                         rf"{tmp_path / 'run'}: the model was trained on its rows, so these figures "
                                         r"read high; its test data: panx/test$"):
        cli.warn_if_seen_in_training(panx / "train", tmp_path / "run" / "best")
    with pytest.warns(UserWarning, match=r"dev.jsonl is the dev split under data.local_dir .* selected on its rows"):
        cli.warn_if_seen_in_training(panx / "dev.jsonl", tmp_path / "run" / "best")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cli.warn_if_seen_in_training(panx / "test", tmp_path / "run" / "best")  # its test file: as it should be
        cli.warn_if_seen_in_training(wnut, tmp_path / "run" / "best")  # the unused default: not trained on
        (tmp_path / "run" / "settings.yaml").write_text(f"task: ner\ndata:\n  train: {wnut}\n  panx_lang: de\n")
        cli.warn_if_seen_in_training(panx / "train", tmp_path / "run" / "best")  # from the hub: no file of it here
