"""nlu sweep: rows from a grid, runs reused, statistics and the paired bootstrap against hand-computed values."""

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from seqeval.metrics import f1_score as seqeval_f1
from sklearn.metrics import f1_score

from nlu import cli
from nlu.data.classification import read_table
from nlu.errors import ConfigError
from nlu import sweep as sweep_module
from nlu.model import ForPreTraining
from nlu.runs import RunRecord, run_settings_file
from nlu.settings import MADE_BY, load_settings, made_by
from nlu.tokenizer import load_tokenizer, save_tokenizer
from nlu.sweep import (Sweep, grid_rows, load_sweep, prepare_data, render_sweep, resampled_metric, run_figures,
                       noise_verdicts, run_sweep, seed_differences, statistics)

ROOT = Path(__file__).resolve().parents[1]


def test_grid_rows_are_the_product_named_by_their_values():
    rows = grid_rows(["data.loss=ce,focal", "training.learning_rate=1e-3,3e-4"])
    assert list(rows) == ["loss=ce,learning_rate=1e-3", "loss=ce,learning_rate=3e-4",
                          "loss=focal,learning_rate=1e-3", "loss=focal,learning_rate=3e-4"]
    assert rows["loss=focal,learning_rate=3e-4"] == {"data.loss": "focal", "training.learning_rate": "3e-4"}
    with pytest.raises(ConfigError, match="must look like section.key=value1,value2"):
        grid_rows(["data.loss"])


def test_a_sweep_file_names_its_rows_and_refuses_unknown_keys(tmp_path):
    good = tmp_path / "s.yaml"
    good.write_text("task: sweep\nconfig: tasks/rotten_tomatoes.yaml\nseeds: [1, 2]\n"
                    "rows:\n  ce: {data.loss: ce}\n  oversample: {data.oversample: true, data.oversample_power: 1.0}\n")
    sweep = load_sweep(good)
    assert sweep.seeds == [1, 2] and list(sweep.rows) == ["ce", "oversample"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: sweep\nconfig: x.yaml\nrows: {a: {}}\nseed: [1]\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['seed'\]"):
        load_sweep(bad)


def test_statistics_are_mean_and_sample_std_over_seeds():
    results = {"rows": {"a": {"runs": [{"figures": {"f1": 0.2}}, {"figures": {"f1": 0.4}}, {"figures": {"f1": 0.9}}]}}}
    entry = statistics(results)["a"]["f1"]
    assert entry["mean"] == pytest.approx(0.5) and entry["std"] == pytest.approx(np.std([0.2, 0.4, 0.9], ddof=1))


def test_a_figure_fewer_runs_report_says_how_many():
    results = {"rows": {"a": {"runs": [{"figures": {"f1": 0.2, "process.peak_rss_mib": 900.0}},
                                       {"figures": {"f1": 0.4}}]}}}
    entry = statistics(results)["a"]
    assert sweep_module.counted_cell(entry["process.peak_rss_mib"], 2) == "900.0000 (1 of 2 runs)"
    assert sweep_module.counted_cell(entry["f1"], 2) == f"0.3000 ± {np.std([0.2, 0.4], ddof=1):.4f}"


def test_the_compact_table_gives_the_headline_on_every_test_set_and_training_seconds():
    runs = lambda *values: [{"seed": seed, "figures": figures} for seed, figures in zip((42, 1), values)]  # noqa: E731
    results = {"headline_figure": "test_f1", "test_sets": {"ru": {}},
               "rows": {"de": {"runs": runs({"test_f1": 0.7, "test_f1@ru": 0.5, "train_seconds": 100.0},
                                            {"test_f1": 0.8, "test_f1@ru": 0.6, "train_seconds": 120.0})},
                        "de+ru": {"runs": runs({"test_f1": 0.6, "train_seconds": 90.4})}}}
    results["statistics"] = statistics(results)
    assert sweep_module.compact_table(results) == [
        "| row | seeds | test_f1 | test_f1@ru | train_seconds |", "|---|---:|---:|---:|---:|",
        f"| de | 42, 1 | 0.7500 ± {np.std([0.7, 0.8], ddof=1):.4f} | 0.5500 ± {np.std([0.5, 0.6], ddof=1):.4f} | 110 ± 14 |",
        "| de+ru | 42 | 0.6000 | — | 90 |"]


def test_resampled_macro_f1_equals_scikit_learn_on_every_resample():
    rng = np.random.default_rng(3)
    outcomes = rng.integers(0, 3, size=(50, 2))
    samples = rng.integers(0, 50, size=(20, 50))
    ours = resampled_metric(outcomes, samples, "classify", 3)
    for row, value in zip(samples, ours):
        gold, guess = outcomes[row, 0], outcomes[row, 1]
        present = sorted(set(gold) | set(guess))
        assert value == pytest.approx(f1_score(gold, guess, labels=present, average="macro", zero_division=0))


def test_resampled_entity_f1_equals_seqeval_micro_f1():
    gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O"], ["O", "B-ORG"], ["B-PER", "O"]]
    pred = [["B-PER", "I-PER", "O"], ["B-ORG", "O"], ["O", "B-ORG"], ["O", "O"]]
    from nlu.evaluation.confusion import entity_spans

    counts = np.array([[len(set(entity_spans(g)) & set(entity_spans(p))), len(entity_spans(p)), len(entity_spans(g))]
                       for g, p in zip(gold, pred)])
    samples = np.array([[0, 1, 2, 3], [0, 0, 1, 1], [2, 3, 3, 3]])
    ours = resampled_metric(counts, samples, "ner", 0)
    for row, value in zip(samples, ours):
        assert value == pytest.approx(seqeval_f1([gold[i] for i in row], [pred[i] for i in row], mode="strict",
                                                 zero_division=0) if any(entity_spans(gold[i]) for i in row) else 0.0)


def test_a_sweep_file_checks_its_data_steps(tmp_path):
    for text, problem in (("subsets: {train: 0}", "subsets maps train, dev or test"),
                          ("subsets: {validation: 10}", "subsets maps train, dev or test"),
                          ("vocabulary: lots", "vocabulary is a vocabulary size"),
                          ("baselines: maybe", "baselines is true or false"),
                          ("headline: [a, b]", "headline names one figure"),
                          ("isolate: sometimes", "isolate is true or false"),
                          ("columns: tokens_per_second", "columns is a list of figures"),
                          ("test_sets: [tasks/panx_ru.yaml]", "test_sets maps a name to a task file"),
                          ("test_sets: {ru: {config: tasks/panx_ru.yaml, data: x}}", "test_sets maps a name")):
        path = tmp_path / "s.yaml"
        path.write_text(f"task: sweep\nconfig: tasks/rotten_tomatoes.yaml\nrows: {{a: {{}}}}\n{text}\n")
        with pytest.raises(ConfigError, match=problem):
            load_sweep(path)


def test_a_word_that_is_neither_a_sweep_file_nor_an_override_is_one_line(capsys):
    assert cli.main(["sweep", str(ROOT / "tasks" / "sweeps" / "init_ner.yaml"), "training.epochs"]) == 2
    assert capsys.readouterr().err.strip() == (
        "nlu: error: nlu sweep: 'training.epochs' is neither a sweep file nor an override (section.key=value)")


def test_rows_may_not_change_the_data_a_sweep_draws_once(tmp_path):
    sweep = Sweep(name="s", config="tasks/rotten_tomatoes.yaml", rows={"a": {}, "b": {"data.train": "other.csv"}},
                  baselines=True)
    with pytest.raises(ConfigError, match=r"rows change where the data comes from \(b: data.train\)"):
        prepare_data(sweep, "classify", tmp_path)
    per_row = Sweep(name="s", config="tasks/rotten_tomatoes.yaml", rows={"a": {}}, overrides={"data.train": "{row}.csv"},
                    baselines=True)
    with pytest.raises(ConfigError, match=r"\(data.train\).*without \{row\} or \{seed\}"):
        prepare_data(per_row, "classify", tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_columns_that_cannot_be_measured_are_refused_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sweep_module, "run", lambda settings, force=False: pytest.fail("a run started"))
    for columns, problem in ((["process.peak_rss_mib"], "measured only with isolate: true"),
                             (["test_f1@ru"], "names no test set; test_sets are none")):
        sweep = Sweep(name="s", config="tasks/wnut16_ner.yaml", rows={"a": {}}, columns=columns)
        with pytest.raises(ConfigError, match=problem):
            run_sweep(sweep, "ner", tmp_path)
    assert cli.main(["config", "show", "tasks/sweeps/init_ner.yaml"]) == 2
    assert "a sweep file; nlu config show describes task files, such as its config (tasks/wnut16_ner.yaml)" in (
        capsys.readouterr().err)


def test_every_row_is_validated_before_the_first_run(tmp_path, monkeypatch):
    """A Trainer row the task file's options rule out (learning_rate: auto) stops the sweep before the
    nlu row before it has run, and before its data steps write anything."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sweep_module, "run", lambda settings, force=False: pytest.fail("a run started"))
    sweep = Sweep(name="s", config="tasks/rotten_tomatoes.yaml", rows={"nlu": {}, "Trainer": {"framework": "transformers"}},
                  overrides={"init": "all-MiniLM-L6-v2"}, subsets={"train": 60}, seeds=[1, 2])
    refusal = r"sweep s, row 'Trainer', seed 1: framework: .* tasks/rotten_tomatoes.yaml:\d+: training.learning_rate=auto"
    with pytest.raises(ConfigError, match=refusal):
        run_sweep(sweep, "classify", tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_shared_vocabulary_goes_only_to_rows_from_scratch_and_the_headline_must_be_reported(tmp_path, monkeypatch):
    given = {}

    def fake_run(settings, force=False):
        given[settings.training.output_dir] = settings
        return RunRecord("classify", Path(settings.training.output_dir), {"test_macro_f1": 0.5}, False, 1.0, 1.0, {}, "")

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sweep_module, "run", fake_run)
    sweep = Sweep(name="s", config="tasks/rotten_tomatoes.yaml", rows={
        "scratch": {}, "pretrained": {"init": "some/model"}, "same size": {"data.tokenizer": 200},
        "own size": {"data.tokenizer": 300}, "own folder": {"data.tokenizer": "some/tokenizer"}},
        subsets={"train": 60}, vocabulary=200)
    with pytest.warns(UserWarning) as caught:
        results = run_sweep(sweep, "classify", tmp_path)
    tokenizers = {Path(folder).parent.name: settings.data.get("tokenizer") for folder, settings in given.items()}
    shared = results["data"]["vocabulary"]
    assert tokenizers == {"pretrained": None, "scratch": shared, "same_size": shared, "own_size": 300,
                          "own_folder": "some/tokenizer"}  # a size the sweep trains once is its one vocabulary
    assert sorted(str(w.message).split(": ", 1)[1] for w in caught if "sweep's vocabulary" in str(w.message)) == [
        "data.tokenizer=300 is used, not the sweep's vocabulary: 200",
        "data.tokenizer=some/tokenizer is used, not the sweep's vocabulary: 200"]
    assert (Path(results["data"]["vocabulary"]) / "tokenizer.json").is_file()
    sweep.headline = "test_f1"
    with pytest.raises(ConfigError, match=r"no run reports 'test_f1' \(headline or columns\); they report test_macro_f1"):
        run_sweep(sweep, "classify", tmp_path)


def test_a_pretraining_row_that_sets_its_own_vocabulary_size_keeps_it():
    from nlu.sweep import shares_vocabulary

    pretrain = ROOT / "tasks" / "pretrain_news.yaml"  # its task file's own vocab_size is not a row's choice
    assert shares_vocabulary(load_settings(pretrain), {}, 8000)
    with pytest.warns(UserWarning, match=r"data\.vocab_size=16000 is used, not the sweep's vocabulary: 8000$"):
        assert not shares_vocabulary(load_settings(pretrain, ["data.vocab_size=16000"]), {"data.vocab_size": 16000}, 8000)


def test_a_row_names_another_sweeps_run_and_a_pretraining_sweep_shares_one_vocabulary(tmp_path, monkeypatch):
    """``{sweeps}``, ``{row}`` and ``{seed}`` fill in text overrides (a fine-tuning sweep's init names
    the pretraining sweep's run of the same row and seed), a row's own value wins over the sweep's,
    and a pretraining sweep's ``vocabulary`` is trained once on its corpus files for every run."""
    given = {}

    def fake_run(settings, force=False):
        given[settings.training.output_dir] = settings
        return RunRecord(settings.task, Path(settings.training.output_dir), {"final_eval": {"mlm_loss": 5.0}},
                         False, 1.0, 1.0, {}, "")

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sweep_module, "run", fake_run)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("The river rose above the old bridge. People watched it." for _ in range(40)))
    pretrain = Sweep(name="p", config="tasks/pretrain_news.yaml", seeds=[1, 2], vocabulary=120,
                     overrides={"data.train_files": [str(corpus)]},
                     rows={"post LN": {"model.norm_placement": "post"}, "pre LN": {"model.norm_placement": "pre"}})
    results = run_sweep(pretrain, "pretrain", tmp_path)
    vocabulary = results["data"]["vocabulary"]
    assert {settings.data["tokenizer"] for settings in given.values()} == {vocabulary} and len(given) == 4
    assert "river" in json.loads((Path(vocabulary) / "tokenizer.json").read_text())["model"]["vocab"]
    with pytest.raises(ConfigError, match="subsets and baselines are for fine-tuning sweeps, not pretrain"):
        prepare_data(Sweep(name="p", config="tasks/pretrain_news.yaml", rows={"a": {}}, baselines=True), "pretrain",
                     tmp_path)
    template = "{sweeps}/p/{row}/seed-{seed}/model"
    finetune = Sweep(name="f", config="tasks/rotten_tomatoes.yaml", seeds=[2], overrides={"init": template},
                     rows={"post LN": {}, "pre LN": {"init": "elsewhere/seed-{seed}"}})
    filled = {row: sweep_module.run_overrides(finetune, row, 2, tmp_path)["init"] for row in finetune.rows}
    assert filled == {"post LN": f"{tmp_path}/p/post_LN/seed-2/model", "pre LN": "elsewhere/seed-2"}
    assert f"{tmp_path}/p/post_LN/seed-2" in given  # the pretraining run that init names


def test_a_report_on_runs_that_start_from_a_run_folders_model_says_how_that_run_was_made(tmp_path, monkeypatch,
                                                                                           tiny_config):
    """settings.yaml is headed by the command that started the run (one comment line, read back as
    the same settings), and a sweep whose init is a model in a run folder names that command."""
    monkeypatch.chdir(ROOT)
    pretrained, old = tmp_path / "pretrain", tmp_path / "old"  # old: from before the command was recorded
    settings = load_settings("tasks/pretrain_news.yaml")
    for folder in (pretrained, old):
        ForPreTraining(tiny_config).save_pretrained(folder / "model")
        save_tokenizer(load_tokenizer(ROOT / "tests" / "data" / "news120_wordpiece1000"), folder / "model")
    # A command ending in a carriage return (a Windows-edited shell script) or a newline stays one comment line.
    settings.save(pretrained / "settings.yaml", made_by="nlu pretrain --config tasks/pretrain_news.yaml\n--force\r")
    settings.save(old / "settings.yaml")
    assert yaml.safe_load((pretrained / "settings.yaml").read_text()) == settings.to_dict()
    assert made_by(pretrained / "settings.yaml") == "nlu pretrain --config tasks/pretrain_news.yaml\\n--force\\r"
    assert run_settings_file(str(pretrained)) == run_settings_file(str(pretrained / "model")) == pretrained / "settings.yaml"
    (tmp_path / "settings.yaml").write_text(MADE_BY + "nlu run\n")
    monkeypatch.chdir(tmp_path)  # a hub id whose parent, the current folder, holds a run's settings: not that run's
    assert run_settings_file("bert-base-cased") is None
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sweep_module, "run", lambda settings, force=False: RunRecord(
        settings.task, Path(settings.training.output_dir), {"test_macro_f1": 0.5}, False, 1.0, 1.0, {}, ""))
    finetune = Sweep(name="f", config="tasks/rotten_tomatoes.yaml", seeds=[1, 2],
                     rows={"from pretraining": {"init": str(pretrained / "model")},
                           "from an older run": {"init": str(old / "model")}, "scratch": {}})
    results = run_sweep(finetune, "classify", tmp_path)
    assert results["starts_from"] == {str(pretrained / "model"): made_by(pretrained / "settings.yaml"),
                                      str(old / "model"): None}
    assert (f"Models the runs start from (init): `{pretrained / 'model'}`, made by `nlu pretrain --config "
            f"tasks/pretrain_news.yaml\\n--force\\r`; `{old / 'model'}`, made before runs recorded their command "
            "(its settings.yaml holds how).") in render_sweep(results)


def test_seed_differences_are_paired_by_seed_with_a_student_t_interval():
    def runs(values: dict[int, float]) -> dict:
        return {"runs": [{"seed": seed, "figures": {"loss": value}} for seed, value in values.items()]}

    results = {"headline_figure": "loss", "rows": {"fp32": runs({1: 2.0, 2: 3.0, 3: 4.0}),
                                                   "bf16": runs({3: 4.5, 1: 2.1, 2: 3.4})}}
    entry = seed_differences(results)["bf16"]
    assert entry["values"] == pytest.approx([0.5, 0.1, 0.4])  # seed 3's pair is matched by seed, not position
    assert entry["mean_difference"] == pytest.approx(1.0 / 3)
    # t(0.975, 2 degrees of freedom) = 4.3027 from a printed table: three seeds need 4.3 standard errors, not 2
    assert entry["half_width"] == pytest.approx(4.3027 * np.std([0.5, 0.1, 0.4], ddof=1) / np.sqrt(3), rel=1e-4)
    assert (entry["low"], entry["high"]) == pytest.approx((1 / 3 - entry["half_width"], 1 / 3 + entry["half_width"]))
    one_seed = {"headline_figure": "loss", "rows": {"a": runs({1: 1.0}), "b": runs({1: 1.5})}}
    assert seed_differences(one_seed)["b"]["half_width"] is seed_differences(one_seed)["b"]["low"] is None
    # two seeds that differ alike (a small test set's coarse accuracy) measure no noise: no interval, no verdict
    alike = {"headline_figure": "loss", "rows": {"a": runs({1: 0.1, 2: 0.7}), "b": runs({1: 0.3, 2: 0.9})}}
    entry = seed_differences(alike)["b"]  # 0.19999999999999998 and 0.20000000000000007
    assert entry["mean_difference"] == pytest.approx(0.2) and entry["low"] is None and noise_verdicts(entry, None) == []


def test_run_figures_name_nested_numbers_by_their_path_and_read_the_last_training_loss(tmp_path):
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(entry) for entry in (
        {"step": 10, "split": "train", "loss": 3.5}, {"step": 10, "split": "eval", "mlm_loss": 3.0},
        {"step": 20, "split": "train", "loss": 2.25})) + "\n")
    summary = {"steps": 20, "final_eval": {"mlm_loss": 3.0, "nsp_accuracy": 0.5}, "corpus": {"train": {"examples": 7}},
               "labels": ["a", "b"], "reused": True, "warning": None}
    assert run_figures(summary, tmp_path, "pretrain") == {
        "steps": 20.0, "final_eval.mlm_loss": 3.0, "final_eval.nsp_accuracy": 0.5, "corpus.train.examples": 7.0,
        "final_train_loss": 2.25}


def _first_rows(source: Path, target: Path, count: int) -> Path:
    with open(source, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[: count + 1]
    with open(target, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return target


@pytest.mark.slow
def test_a_classification_sweep_runs_reuses_and_reports(tmp_path, monkeypatch, capsys):
    """Subsets drawn once and read by every run, one vocabulary for every from-scratch run, the
    baselines scored on the same test subset, and every record accounted for."""
    monkeypatch.chdir(ROOT)
    shipped = ROOT / "data" / "classification" / "rotten_tomatoes"
    train = _first_rows(shipped / "train.csv", tmp_path / "train.csv", 400)
    held_out = _first_rows(shipped / "test.csv", tmp_path / "test.csv", 200)
    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text("task: sweep\ntitle: A tiny study\nconfig: tasks/rotten_tomatoes.yaml\nseeds: [1, 2]\n"
                          "vocabulary: 1000\nbaselines: true\nsubsets: {train: 300, test: 120}\n"
                          "grid: {data.loss: [ce, focal]}\n"
                          f"test_sets: {{held: {{config: tasks/rotten_tomatoes.yaml, overrides: {{data.test: {held_out}}}}}}}\n")
    command = ["sweep", str(sweep_file), "--runs-dir", str(tmp_path), f"data.train={train}", f"data.dev={held_out}",
               f"data.test={held_out}", "data.max_length=32", "training.max_steps=4", "training.eval_every=4",
               "training.batch_size=16", "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2",
               "model.intermediate_size=64"]
    assert cli.main(command) == 0
    out = tmp_path / "sweeps" / "tiny"
    results = json.loads((out / "sweep.json").read_text())
    assert list(results["rows"]) == ["loss=ce", "loss=focal"]
    assert results["overrides"]["training.max_steps"] == 4 and results["overrides"]["data.max_length"] == 32  # as YAML
    assert results["data"]["records"] == {"train": 300, "dev": 200, "test": 120}
    runs = results["rows"]["loss=focal"]["runs"]
    assert [run["seed"] for run in runs] == [1, 2] and not any(run["reused"] for run in runs)
    settings = [yaml.safe_load((Path(run["output_dir"]) / "settings.yaml").read_text())["data"]
                for row in results["rows"].values() for run in row["runs"]]
    assert len({entry["train"] for entry in settings}) == len({entry["tokenizer"] for entry in settings}) == 1
    assert all(run["figures"]["train_examples"] == 300 for row in results["rows"].values() for run in row["runs"])
    values = [run["figures"]["test_macro_f1"] for run in runs]
    assert results["statistics"]["loss=focal"]["test_macro_f1"]["mean"] == pytest.approx(np.mean(values))
    interval = results["bootstrap"]["loss=focal"]
    assert interval["low"] <= interval["mean_difference"] <= interval["high"]
    assert interval["test_examples"] == 120  # every example of the test subset, resampled
    drawn = read_table(settings[0]["test"])
    gold = [example.label for example in drawn]
    majority = Counter(example.label for example in read_table(settings[0]["train"])).most_common(1)[0][0]
    assert results["data"]["baselines"]["majority class"]["test_macro_f1"] == pytest.approx(
        f1_score(gold, [majority] * len(gold), average="macro", labels=sorted(set(gold)), zero_division=0))
    assert (out / "sweep.png").stat().st_size > 0
    report = (out / "sweep.md").read_text()
    assert report == render_sweep(results) and "| baseline: majority class |" in report
    assert report.startswith("# A tiny study\n") and results["headline"].startswith("test_macro_f1: loss=ce ")
    missed = [[key[12:-1] for key, value in run["figures"].items() if key.startswith("test_recall[") and value == 0]
              for run in results["rows"]["loss=ce"]["runs"]]
    named = f" ({', '.join(sorted({name for names in missed for name in names}))})" if any(missed) else ""
    assert f"| {sum(map(bool, missed))} of 2{named} | reference | reference |" in report  # runs with a class never recalled
    majority = results["data"]["baselines"]["majority class"]
    others = sorted(key[12:-1] for key in majority if key.startswith("test_recall[") and majority[key] == 0)
    assert len(others) == 2 and f" | {', '.join(others)} | | |" in report  # the majority class misses the other two
    # Every run's model scored on the other test set too: its figure is the test set's predictions, scored anew.
    scored = sorted(Path(runs[0]["output_dir"]).glob("test_sets/held-*/predictions.csv"))
    assert len(scored) == 1 and results["test_sets"]["held"]["records"] == 200
    with open(scored[0], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["label"] for row in rows] == [example.label for example in read_table(held_out)]
    assert runs[0]["figures"]["test_macro_f1@held"] == pytest.approx(
        f1_score([r["label"] for r in rows], [r["predicted"] for r in rows], average="macro", zero_division=0))
    assert "| test_macro_f1@held |" in report.splitlines()[4] and "**held** `tasks/rotten_tomatoes.yaml`" in report
    scored_at = scored[0].stat().st_mtime_ns
    capsys.readouterr()
    assert cli.main(command) == 0
    assert scored[0].stat().st_mtime_ns == scored_at  # read back, not scored again
    again = json.loads((out / "sweep.json").read_text())
    assert all(run["reused"] for row in again["rows"].values() for run in row["runs"])
    assert again["statistics"] == results["statistics"]
    with open(held_out, "a", encoding="utf-8") as handle:  # the dev and test file edited: the runs are not reused
        handle.write("one more review,fresh\n")
    capsys.readouterr()
    assert cli.main(command) == 2
    error = capsys.readouterr().err
    assert error.startswith("nlu: error: sweep tiny, row 'loss=ce', seed 1: ") and error.count("\n") == 1
    assert error.endswith("(in a sweep: nlu sweep --force runs its rows again, --name NAME into new folders)\n")


def test_every_committed_sweep_report_is_its_json_rendered():
    """The Markdown of a sweep report cannot drift from its figures: it is render_sweep of its JSON."""
    reports = sorted((ROOT / "reports").rglob("sweep.json"))
    assert len(reports) >= 6
    for path in reports:
        assert path.with_name("sweep.md").read_text() == render_sweep(json.loads(path.read_text())), path
