"""One owner per run folder, settings validated before the disk is touched, resume only with the
settings a folder started with, and a failed start that leaves nothing behind."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from nlu import cli
from nlu.errors import ConfigError, NluError
from nlu.files import changed_files, fingerprint, link_identical_files
from nlu.runs import TASKS, check_settings, make_folder, resolve, run, run_folder_lock
from nlu.reporting import command_line
from nlu.settings import RunSettings, load_settings, made_by
from nlu.training.config import TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
NER_TASK = str(ROOT / "tasks" / "wnut16_ner.yaml")
TOKENIZER_DIR = ROOT / "tests" / "data" / "news120_wordpiece1000"


def _settings(tmp_path, **training) -> RunSettings:
    return resolve(RunSettings(task="pretrain", data={"max_length": 64},
                               training=TrainingConfig(output_dir=str(tmp_path / "run"), **training)))


def test_same_settings_resume_and_changed_ones_are_refused_by_name(tmp_path):
    (tmp_path / "run").mkdir()
    assert check_settings(_settings(tmp_path), tmp_path / "run") is True
    assert made_by(tmp_path / "run" / "settings.yaml") == command_line()  # the command that started it, kept
    assert check_settings(_settings(tmp_path), tmp_path / "run") is False
    with pytest.raises(ConfigError, match=r"other settings \(training\.learning_rate\)"):
        check_settings(_settings(tmp_path, learning_rate=1e-2), tmp_path / "run")


def test_a_run_whose_data_or_init_changed_since_is_refused_not_reused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths, as a run reads them
    corpus, heldout, model = Path("corpus.txt"), Path("heldout.txt"), Path("runs/pretrain/best")
    corpus.write_text("One.\nTwo.\n\nThree.\nFour.\n")
    heldout.write_text("Five.\nSix.\n\nSeven.\nEight.\n")
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    settings = dataclasses.replace(resolve(RunSettings(task="pretrain", data={
        "train_files": [str(corpus)], "heldout_files": [str(heldout)]}, training=TrainingConfig(output_dir="run"))),
        init="runs/pretrain")  # a run folder: its best/ is the model (only fingerprinted here: nothing is trained)
    Path("run").mkdir()
    assert check_settings(settings, Path("run")) is True
    recorded = json.loads(Path("run/inputs.json").read_text())
    assert set(recorded) == {"corpus.txt", "heldout.txt", "runs/pretrain/best/config.json"}
    assert recorded["corpus.txt"][""]["size"] == 24

    corpus.write_text(corpus.read_text())  # the same text written again: a new time, the same input
    later = time.time_ns() + 10**9
    os.utime(corpus, ns=(later, later))
    Path("runs/pretrain/evaluation").mkdir()  # what is written beside the model is not the model
    (Path("runs/pretrain/evaluation") / "report.md").write_text("scores")
    assert check_settings(settings, Path("run")) is False
    assert json.loads(Path("run/inputs.json").read_text())["corpus.txt"][""]["mtime_ns"] == later  # not read again
    corpus.write_text("One.\nTwo.\n\nThree.\nFive.\n")  # same size, other text
    (model / "config.json").write_text('{"hidden_size": 8}')
    with pytest.raises(ConfigError, match=r"^run was run on other inputs: corpus\.txt, runs/pretrain/best/config\.json "
                                          r"changed since it started; pass --force"):
        check_settings(settings, Path("run"))
    corpus.unlink()  # gone from here: the run keeps what it made from it
    with pytest.raises(ConfigError, match=r"other inputs: runs/pretrain/best/config\.json changed"):
        check_settings(settings, Path("run"))


def test_a_folder_input_is_read_through_linked_folders_once(tmp_path):
    data = tmp_path / "panx"
    (data / "de").mkdir(parents=True)
    (data / "de" / "train.conll").write_text("Berlin\tB-LOC\n")
    (tmp_path / "arrow").mkdir()
    (tmp_path / "arrow" / "data-0.arrow").write_text("rows")
    (data / "train").symlink_to(tmp_path / "arrow")  # a datasets folder linked in
    (data / "de" / "up").symlink_to(data)  # a link back up the tree is not followed round
    (data / ".cache").mkdir()
    (data / ".cache" / "x").write_text("hidden")
    recorded = fingerprint(data)
    assert sorted(recorded) == ["de/train.conll", "train/data-0.arrow"]
    (tmp_path / "arrow" / "data-0.arrow").write_text("more rows")
    assert changed_files(recorded, data) == [str(data / "train" / "data-0.arrow")]


def test_equal_files_of_a_final_model_become_links_to_the_best_one(tmp_path):
    best, final = tmp_path / "best", tmp_path / "model"
    for folder, weights in ((best, b"best weights"), (final, b"last weights")):
        folder.mkdir()
        (folder / "config.json").write_text('{"hidden_size": 8}')
        (folder / "model.safetensors").write_bytes(weights)
    assert link_identical_files(final, best) == len('{"hidden_size": 8}')  # the config only: other weights stay
    assert os.path.samefile(final / "config.json", best / "config.json")
    assert not os.path.samefile(final / "model.safetensors", best / "model.safetensors")
    assert (final / "model.safetensors").read_bytes() == b"last weights" and sorted(os.listdir(final)) == [
        "config.json", "model.safetensors"]  # no link left half-made


def test_saved_settings_are_resolved_with_every_default(tmp_path):
    (tmp_path / "run").mkdir()
    check_settings(_settings(tmp_path), tmp_path / "run")
    saved = yaml.safe_load((tmp_path / "run" / "settings.yaml").read_text())
    assert saved["data"]["max_length"] == 64 and saved["data"]["mlm_probability"] == 0.15
    assert saved["training"]["mixed_precision"] == "auto"


def test_an_option_added_later_at_its_default_still_resumes(tmp_path):
    """A folder written before ``training.compile`` (or a data option) existed lacks the key."""
    (tmp_path / "run").mkdir()
    check_settings(_settings(tmp_path), tmp_path / "run")
    saved = tmp_path / "run" / "settings.yaml"
    older = yaml.safe_load(saved.read_text())
    del older["training"]["compile"], older["data"]["short_seq_probability"]
    saved.write_text(yaml.safe_dump(older))
    assert check_settings(_settings(tmp_path), tmp_path / "run") is False
    with pytest.raises(ConfigError, match=r"training\.compile"):
        check_settings(_settings(tmp_path, compile=True), tmp_path / "run")


@pytest.mark.parametrize("override, expected", [
    ("training.mixed_precision=no", ("training", "mixed_precision", "no")),
    ("training.cpu=yes", ("training", "cpu", True)),
    ("training.cpu=off", ("training", "cpu", False)),
    ("training.learning_rate=5e-5", ("training", "learning_rate", 5e-5)),
    ("training.max_steps=3.0", ("training", "max_steps", 3)),
    ("model.layer_norm_eps=1e-12", ("model", "layer_norm_eps", 1e-12)),
    ("data.repair=yes", ("data", "repair", True)),
    ("training.learning_rate=auto", ("training", "learning_rate", "auto")),
    ("training.seed=010", ("training", "seed", 10)),  # YAML 1.2: not octal 8
    ("training.max_steps=1_000", ("training", "max_steps", 1000)),  # as PyYAML read it before
    ("data.panx_lang=no", ("data", "panx_lang", "no")),  # Norwegian, not False
])
def test_yaml_words_and_numbers_arrive_as_the_declared_type(override, expected):
    settings = resolve(load_settings(NER_TASK, [override, "data.tokenizer=x"], task="ner"))
    section, key, value = expected
    got = getattr(settings.training, key) if section == "training" else getattr(settings, section)[key]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("override, message", [
    ("training.batch_size=1.5", "command line: training.batch_size: expected an integer, got 1.5"),
    ("training.max_steps=[1", "command line: override 'training.max_steps=[1' is not valid YAML"),
    ("model.layer_norm_eps=tiny", "command line: model.layer_norm_eps: expected a number, got 'tiny'"),
    ("data.repair=maybe", "command line: data.repair: expected true or false"),
    ("data.max_lenght=64", "command line: data: unknown option(s) ['max_lenght'] (did you mean 'max_length'?)"),
    ("trainig.seed=1", "command line: unknown section 'trainig' (did you mean 'training'?)"),
    ("label_column=party", "unknown section 'label_column' (an option is written section.key: data.label_column, if "
                           "it is a data option of the task)"),
    ("max_steps=3", "unknown section 'max_steps' (an option is written section.key: training.max_steps?)"),
    ("hidden_size=64", "unknown section 'hidden_size' (an option is written section.key: model.hidden_size?)"),
    ("training.learning_rate=fast", "command line: training.learning_rate must be a number or auto, got 'fast'"),
    ("data.scheme=iob3", "command line: data.scheme must be one of iob2, iob1; got 'iob3'"),
    ("model.hiden_size=64", "command line: model: unknown option(s) ['hiden_size']"),
    ("data.stride=1:30", "command line: data.stride: expected an integer, got '1:30'"),  # not 90, base 60
    ("data.tokenizer=1.5", "command line: data.tokenizer: expected text or an integer, got 1.5"),  # a folder or a size
    ("data.tokenizer=true", "command line: data.tokenizer: expected text or an integer, got True"),
    ("training.learning_rate=[1e-3]", "command line: training.learning_rate: expected text or a number, got ['1e-3']"),
])
def test_bad_values_are_named_with_where_they_came_from(override, message):
    with pytest.raises(ConfigError) as error:
        resolve(load_settings(NER_TASK, [override], task="ner"))
    assert message in str(error.value)


def test_an_automatic_learning_rate_is_refused_for_pretraining_before_anything_runs():
    with pytest.raises(ConfigError, match="command line: training.learning_rate: auto is chosen for fine-tuning"):
        resolve(load_settings(str(ROOT / "tasks" / "pretrain_news.yaml"), ["training.learning_rate=auto"], task="pretrain"))


@pytest.mark.parametrize("override", ["training.select_metric=loss", "training.select_mode=min"])
def test_fine_tuning_refuses_a_selection_it_would_otherwise_rewrite(override, tmp_path):
    settings = load_settings(NER_TASK, [override, f"training.output_dir={tmp_path / 'run'}"])
    with pytest.raises(ConfigError, match=rf"command line: {override}: fine-tuning selects by a dev task metric"):
        run(settings)
    assert not (tmp_path / "run").exists()


def test_a_bad_key_in_the_task_file_names_the_file_and_line(tmp_path):
    task = tmp_path / "task.yaml"
    task.write_text("task: ner\ndata:\n  stride: 3\n  strides: 3\ntraining:\n  batch_size: 1.5\n")
    with pytest.raises(ConfigError, match=rf"^{task}:6: training.batch_size: expected an integer, got 1.5$"):
        resolve(load_settings(task, [], task="ner"))
    task.write_text("task: ner\ndata:\n  stride: 3\n  strides: 3\n")
    with pytest.raises(ConfigError, match=rf"^{task}:4: data: unknown option\(s\) \['strides'\] \(did you mean 'stride'\?\)"):
        resolve(load_settings(task, [], task="ner"))


def test_a_typo_with_an_existing_run_folder_is_an_unknown_key_not_a_changed_setting(tmp_path, capsys):
    output = tmp_path / "run"
    output.mkdir()
    check_settings(resolve(load_settings(NER_TASK, [f"training.output_dir={output}"], task="ner")), output)
    status = cli.main(["finetune", "ner", "--config", NER_TASK, f"training.output_dir={output}", "data.strid=3"])
    assert status == 2
    assert "command line: data: unknown option(s) ['strid']" in capsys.readouterr().err


def test_validation_fails_before_the_run_folder_exists(tmp_path, capsys):
    output = tmp_path / "never"
    status = cli.main(["finetune", "ner", "--config", NER_TASK, f"training.output_dir={output}", "training.epochs=-1",
                       "training.max_steps=0"])
    assert status == 2 and "training needs max_steps > 0 or epochs > 0" in capsys.readouterr().err
    assert not output.exists()


def test_bad_data_found_while_reading_leaves_no_folder_and_the_corrected_command_is_accepted(tmp_path):
    output = tmp_path / "run"
    missing = tmp_path / "missing.conll"
    settings = load_settings(NER_TASK, [f"training.output_dir={output}", f"data.train={missing}"], task="ner")
    with pytest.raises(NluError, match="missing.conll"):
        run(settings)
    assert not output.exists()
    corrected = resolve(load_settings(NER_TASK, [f"training.output_dir={output}"], task="ner"))
    output.mkdir()
    assert check_settings(corrected, output) is True


def test_a_bug_before_the_first_checkpoint_leaves_no_settings_to_block_the_corrected_command(tmp_path, monkeypatch):
    """Not only bad input: any failure before training starts (here a bug raising TypeError) forgets the start."""
    def broken(settings):
        raise TypeError("a bug")

    monkeypatch.setitem(TASKS, "ner", dataclasses.replace(TASKS["ner"], run=broken))
    output = tmp_path / "run"
    with pytest.raises(TypeError):
        run(load_settings(NER_TASK, [f"training.output_dir={output}", "training.seed=1"], task="ner"))
    assert not output.exists()

    def logs_then_breaks(settings):
        (output / "log.jsonl").write_text('{"step": 1}\n')
        raise TypeError("a bug at step 1")

    monkeypatch.setitem(TASKS, "ner", dataclasses.replace(TASKS["ner"], run=logs_then_breaks))
    with pytest.raises(TypeError):
        run(load_settings(NER_TASK, [f"training.output_dir={output}", "training.seed=1"], task="ner"))
    assert sorted(path.name for path in output.iterdir()) == [".lock", "log.jsonl"]  # the log stays, not the settings


def test_a_folder_of_other_files_is_not_taken_as_a_run_folder(tmp_path, capsys):
    """training.output_dir=<a data folder> by mistake: nothing is written there, and --force deletes nothing."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.conll").write_text("Anna\tB-PER\n")
    assert cli.main(["finetune", "ner", "--config", NER_TASK, f"training.output_dir={folder}", "--force"]) == 2
    assert "is not an nlu run folder" in capsys.readouterr().err
    assert sorted(path.name for path in folder.iterdir()) == ["train.conll"]
    hidden_only = tmp_path / "fresh"
    hidden_only.mkdir()
    (hidden_only / ".gitkeep").write_text("")
    assert make_folder(hidden_only) is False  # a folder that looks empty is taken


def test_an_unwritable_place_for_the_run_folder_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings = load_settings(NER_TASK, [f"training.output_dir={blocker / 'run'}"], task="ner")
    with pytest.raises(ConfigError, match=r"cannot write the run folder here"):
        run(settings)


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from nlu.runs import run_folder_lock
    with run_folder_lock(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(60)
""")


def _hold(folder: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_command_on_a_held_folder_names_the_owner_and_exits(tmp_path, capsys):
    output = tmp_path / "run"
    output.mkdir()
    holder = _hold(output)
    try:
        status = cli.main(["finetune", "ner", "--config", NER_TASK, f"training.output_dir={output}"])
        error = capsys.readouterr().err
        assert status == 2
        assert f"{output} is in use by process {holder.pid}" in error and error.count("\n") == 1
        assert not (output / "settings.yaml").exists()
    finally:
        holder.kill()
        holder.wait()
    # The owner died with kill -9: its lock file stays, and is taken over.
    assert json.loads((output / ".lock").read_text())["pid"] == holder.pid
    with run_folder_lock(output):
        assert json.loads((output / ".lock").read_text())["pid"] == os.getpid()


WORKER = textwrap.dedent("""
    import os, sys, time
    from nlu.runs import follow_launcher
    follow_launcher()
    with open(os.path.join(sys.argv[1], f"worker-{os.environ['RANK']}"), "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state not in ("Z", "X")


@pytest.mark.slow
def test_torchrun_workers_stop_when_their_launcher_is_killed(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    launcher = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                 str(script), str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(list(tmp_path.glob("worker-*"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    pids = [int(path.read_text()) for path in tmp_path.glob("worker-*") if path.read_text()]
    assert len(pids) == 2
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.time() + 10
    while any(_alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)


def test_what_only_changes_the_display_does_not_block_a_resume(tmp_path):
    (tmp_path / "run").mkdir()
    check_settings(_settings(tmp_path, progress_label="pretrain"), tmp_path / "run")
    assert check_settings(_settings(tmp_path, progress=False, progress_label="other", keep_finished_checkpoints=True),
                          tmp_path / "run") is False  # nor what the folder keeps once the run has finished


def test_init_takes_a_hub_id_when_the_hub_can_provide_it(tmp_path, monkeypatch):
    """The hub is out of reach here: a stand-in for snapshot_download serves a saved BERT folder."""
    import transformers

    from nlu import sources
    from nlu.model import ForTokenClassification
    from nlu.parity import PARITY_CONFIGS
    from nlu.tasks.finetune import initial_model

    folder = tmp_path / "hub" / "bert"
    bert = transformers.BertModel(transformers.BertConfig(**{**PARITY_CONFIGS["tiny"], "vocab_size": 1000}))
    bert.save_pretrained(folder)
    (folder / "tokenizer.json").write_text((TOKENIZER_DIR / "tokenizer.json").read_text())
    (folder / "tokenizer_config.json").write_text((TOKENIZER_DIR / "tokenizer_config.json").read_text())
    asked = []
    monkeypatch.setattr(sources, "snapshot_download", lambda repo_id, **_: asked.append(repo_id) or str(folder))
    settings = resolve(load_settings(NER_TASK, ["init=someone/tiny-bert"], task="ner"))
    model, tokenizer = initial_model(settings, ForTokenClassification, ["O", "B-X"], None)
    assert asked == ["someone/tiny-bert"] and len(tokenizer) == 1000
    assert torch.equal(model.encoder.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight)


def test_an_unreachable_hub_id_is_one_line_and_leaves_no_folder(tmp_path, offline_hub):
    output = tmp_path / "run"
    with pytest.raises(NluError, match=r"someone/bert: no such local folder, and the Hugging Face hub cannot provide it"):
        run(load_settings(NER_TASK, ["init=someone/bert", f"training.output_dir={output}"], task="ner"))
    assert not output.exists()


def test_an_init_that_names_nothing_is_refused_before_any_folder_is_made(tmp_path):
    """A sweep's init naming another sweep's run that has not happened yet: not even the parents
    of the run folder are created."""
    output = tmp_path / "sweeps" / "ner" / "row" / "seed-1"
    missing = tmp_path / "sweeps" / "pretrain" / "row" / "seed-1" / "model"
    with pytest.raises(NluError, match=f"^{missing}: no such model folder or run folder$"):
        run(load_settings(NER_TASK, [f"init={missing}", f"training.output_dir={output}"], task="ner"))
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.slow
def test_bad_data_under_torchrun_is_reported_once_and_leaves_no_folder(tmp_path):
    broken = tmp_path / "broken.conll"
    broken.write_text("Obama\tB-person\nvisited\tO\nLondon\tI-geo-loc\n")
    output = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "nlu.cli",
                             "finetune", "ner", "--config", NER_TASK, f"data.train={broken}",
                             f"training.output_dir={output}", "training.cpu=true"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    ours = [line for line in result.stderr.splitlines() if line.startswith("nlu: error: ")]
    assert result.returncode != 0
    assert len(ours) == 1 and f"{broken}:3" in ours[0]
    assert not output.exists()


def test_pretraining_without_held_out_files_says_which_files_it_needs():
    with pytest.raises(ConfigError, match=r"data.heldout_files is empty: pretraining needs corpus files for training"):
        resolve(load_settings(str(ROOT / "tasks" / "pretrain_news.yaml"), ["data.heldout_files=[]"], task="pretrain"))


def test_list_items_arrive_as_the_declared_type_or_are_named():
    classify = str(ROOT / "tasks" / "rotten_tomatoes.yaml")
    data = resolve(load_settings(classify, ["data.class_weights=[1, 2e-1, 3.5]"], task="classify")).data
    assert data["class_weights"] == [1.0, 0.2, 3.5] and all(type(weight) is float for weight in data["class_weights"])
    assert resolve(load_settings(classify, ["data.class_weights=0.5"], task="classify")).data["class_weights"] == [0.5]
    with pytest.raises(ConfigError, match=r"command line: data.class_weights\[1\]: expected a number, got 'heavy'"):
        resolve(load_settings(classify, ["data.class_weights=[1, heavy]"], task="classify"))
