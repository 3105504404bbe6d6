"""Classification fine-tuning (nlu.tasks.classify): an end-to-end run on real data, the wiring of
every imbalance remedy into the loss and the sampler, input errors, and the predict CLI."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from nlu import cli
from nlu.data.classification import LabelMap, check_text_column, warn_doubtful_labels
from nlu.errors import ConfigError, DataError
from nlu.model import ForSequenceClassification
from nlu.settings import load_settings
from nlu.tasks import classify
from nlu.tasks.classify import (
    ADJUSTMENT_FILE,
    ClassifyData,
    ClassifyTask,
    prediction_adjustment,
)
from nlu.tokenizer import save_tokenizer, train_tokenizer
from nlu.training.loop import EpochSampler, save_model
from nlu.training.losses import FocalLoss

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "classification" / "rotten_tomatoes"
LABELS = ["fresh", "plot", "rotten"]  # LabelMap order: sorted names


def first_rows(source: Path, target: Path, count: int) -> Path:
    """The first ``count`` rows of a shipped CSV (read with a CSV parser: some texts span lines)."""
    with open(source, newline="", encoding="utf-8") as handle:
        rows = [row for _, row in zip(range(count), csv.DictReader(handle))]
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return target


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in rows), encoding="utf-8")
    return path


def tiny_overrides(data: dict[str, Path], output_dir: Path, **extra) -> list[str]:
    options = {
        "model.hidden_size": 32, "model.num_layers": 1, "model.num_heads": 2, "model.intermediate_size": 64,
        "model.max_position_embeddings": 64, "data.max_length": 64,
        "data.train": data["train"], "data.dev": data["dev"], "data.test": data["test"],
        "data.tokenizer": data["tokenizer"], "training.output_dir": output_dir, "training.batch_size": 16,
        "training.learning_rate": 3e-3, "training.epochs": 8, "training.log_every": 4, "training.save_every": 1000,
        "training.warmup_ratio": 0.1, "training.cpu": True, **extra,
    }
    return [f"{key}={value}" for key, value in options.items()]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> dict[str, Path]:
    """The first 300 rows of each shipped split and a WordPiece vocabulary trained on the train rows."""
    folder = tmp_path_factory.mktemp("rotten_tomatoes")
    data = {split: first_rows(DATA / f"{split}.csv", folder / f"{split}.csv", 300) for split in ("train", "dev", "test")}
    with open(data["train"], newline="", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    save_tokenizer(train_tokenizer(iter(texts), vocab_size=600), folder / "tokenizer")
    return {**data, "tokenizer": folder / "tokenizer"}


@pytest.fixture(scope="module")
def trained(small_data, tmp_path_factory) -> dict:
    """One tiny fine-tuning run (hidden 32, one layer), shared by the end-to-end and CLI tests."""
    run_dir = tmp_path_factory.mktemp("classify") / "run"
    settings = load_settings(ROOT / "tasks" / "rotten_tomatoes.yaml", tiny_overrides(small_data, run_dir),
                             task="classify")
    summary = classify.run(settings)
    return {"summary": summary, "run_dir": run_dir}


# ---------------------------------------------------------------------------------------------
# (a) End to end on real data
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_learns_and_writes_the_test_report(trained):
    run_dir, summary = trained["run_dir"], trained["summary"]
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    losses = [entry["loss"] for entry in log if entry["split"] == "train"]
    assert len(losses) >= 4
    assert losses[-1] < 0.9 * losses[0], losses  # about 1.10 (ln 3) at the start, 0.6-0.7 after 8 epochs
    assert [entry["step"] for entry in log if entry["split"] == "eval"] == [19 * epoch for epoch in range(1, 9)]

    test = run_dir / "test"
    expected = ["report.md", "predictions.csv", "metrics.json"] + [
        f"labels_confusion_{kind}.{ext}" for kind in ("raw", "true", "pred", "all") for ext in ("csv", "png")]
    for name in expected:
        assert (test / name).is_file() and (test / name).stat().st_size > 0, name
    with open(test / "predictions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 300 and {row["predicted"] for row in rows} <= set(LABELS)
    assert all(abs(sum(float(row[f"p({label})"]) for label in LABELS) - 1) < 1e-3 for row in rows)
    raw = np.loadtxt(test / "labels_confusion_raw.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))
    assert raw.sum() == 300
    assert "Macro-F1" in (test / "report.md").read_text()
    assert "| labels | fresh, plot, rotten |" in (run_dir / "report.md").read_text()

    assert list(summary["labels"]) == LABELS and summary["train_examples"] == 300 and summary["steps"] == 152
    true_positives = np.diag(raw)
    per_class_f1 = 2 * true_positives / (raw.sum(0) + raw.sum(1))  # 2tp / (2tp + fp + fn), by hand
    assert summary["test_macro_f1"] == pytest.approx(np.nan_to_num(per_class_f1).mean())
    assert isinstance(summary["train_truncated"], int)
    assert {f"test_recall[{label}]" for label in LABELS} <= set(summary)
    assert (run_dir / "best" / "tokenizer.json").is_file() and not (run_dir / "best" / ADJUSTMENT_FILE).exists()


# ---------------------------------------------------------------------------------------------
# (b) Each remedy is wired into the task's loss, sampler or prediction
# ---------------------------------------------------------------------------------------------


TRAIN_LABELS = [0] * 2400 + [1] * 150 + [2] * 450  # fresh 80%, plot 5%, rotten 15%


def make_task(labels: list[int] = TRAIN_LABELS, tokenizer=None, **options) -> ClassifyTask:
    return ClassifyTask(tokenizer, ClassifyData(**options), [], LabelMap(tuple(LABELS)), labels, 64)


def test_ce_is_plain_cross_entropy_without_sampling_or_adjustment():
    task = make_task()
    assert type(task.loss) is nn.CrossEntropyLoss and task.loss.weight is None
    assert task.sampling_weights is None and task.train_adjustment is None and task.predict_adjustment is None


def test_weighted_ce_uses_balanced_weights_of_the_training_labels():
    task = make_task(loss="weighted_ce")
    counts = Counter(TRAIN_LABELS)
    n, k = len(TRAIN_LABELS), 3
    expected = torch.tensor([n / (k * counts[c]) for c in range(k)])  # 0.4167, 6.6667, 2.2222
    assert type(task.loss) is nn.CrossEntropyLoss
    torch.testing.assert_close(task.loss.weight, expected)
    assert task.class_weights == pytest.approx(dict(zip(LABELS, [3000 / 7200, 3000 / 450, 3000 / 1350])))  # summary
    assert make_task().class_weights is None
    # Explicit weights win over the balanced ones, and must match the label count.
    torch.testing.assert_close(make_task(loss="weighted_ce", class_weights=[1, 2, 3]).loss.weight,
                               torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ConfigError, match="2 values for 3 labels"):
        make_task(loss="weighted_ce", class_weights=[1, 2])


def test_focal_uses_gamma_and_optional_weights():
    task = make_task(loss="focal", focal_gamma=2.0)
    assert isinstance(task.loss, FocalLoss) and task.loss.gamma == 2.0 and task.loss.weight is None
    weighted = make_task(loss="focal", focal_gamma=1.0, class_weights=[1.0, 4.0, 2.0])
    torch.testing.assert_close(weighted.loss.weight, torch.tensor([1.0, 4.0, 2.0]))


def test_oversampling_draws_classes_near_uniformly_over_an_epoch():
    task = make_task(oversample=True, oversample_power=1.0)
    assert type(task.loss) is nn.CrossEntropyLoss and task.loss.weight is None
    sampler = EpochSampler(len(TRAIN_LABELS), seed=42, weights=task.sampling_weights)
    drawn = list(sampler)
    assert len(drawn) == len(TRAIN_LABELS)  # an epoch keeps its length: the budget does not change
    counts = Counter(TRAIN_LABELS[index] for index in drawn)
    # Binomial proportion with p = 1/3 over 3,000 draws: sigma 0.0086, so 0.04 is over 4 sigma,
    # while the data's own proportions (0.80 / 0.05 / 0.15) are far outside.
    assert [counts[c] / len(drawn) for c in range(3)] == pytest.approx([1 / 3] * 3, abs=0.04)
    # Without oversampling the loop shuffles: every example exactly once.
    assert sorted(EpochSampler(len(TRAIN_LABELS), seed=42, weights=make_task().sampling_weights)) == \
        list(range(len(TRAIN_LABELS)))


class FixedLogits(nn.Module):
    """A stand-in model whose logits are given, so the task's loss can be computed by hand."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, **batch):
        return SimpleNamespace(logits=self.logits.clone())


def hand_cross_entropy(logits: list[list[float]], labels: list[int]) -> float:
    total = 0.0
    for row, label in zip(logits, labels):
        total += math.log(sum(math.exp(v) for v in row)) - row[label]
    return total / len(labels)


def training_loss(task: ClassifyTask, logits: list[list[float]], labels: list[int]) -> float:
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "attention_mask": torch.ones(2, 3, dtype=torch.long),
             "labels": torch.tensor(labels)}
    loss, figures = task.training_step(FixedLogits(torch.tensor(logits)), batch)
    assert figures["tokens"] == 6
    return loss.item()


def test_logit_adjustment_train_adds_tau_log_prior_before_the_loss():
    logits, labels = [[2.0, 0.5, -1.0], [0.1, 0.3, 1.2]], [1, 2]
    tau = 0.5
    priors = [2400 / 3000, 150 / 3000, 450 / 3000]
    adjusted = [[z + tau * math.log(p) for z, p in zip(row, priors)] for row in logits]
    expected = hand_cross_entropy(adjusted, labels)  # 3.0085; plain CE would be 1.9064

    task = make_task(logit_adjustment="train", logit_adjustment_tau=tau)
    assert training_loss(task, logits, labels) == pytest.approx(expected, abs=1e-5)
    assert training_loss(make_task(), logits, labels) == pytest.approx(hand_cross_entropy(logits, labels), abs=1e-5)
    assert abs(expected - hand_cross_entropy(logits, labels)) > 0.5
    assert task.predict_adjustment is None  # applied in training only, never again at prediction
    # predict leaves the training loss alone.
    predict = make_task(logit_adjustment="predict")
    assert training_loss(predict, logits, labels) == pytest.approx(hand_cross_entropy(logits, labels), abs=1e-5)


def test_logit_adjustment_predict_is_saved_beside_the_model_and_read_back(small_data, tmp_path, tiny_config):
    from nlu.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(small_data["tokenizer"])
    model = ForSequenceClassification(
        type(tiny_config)(**{**tiny_config.to_dict(), "vocab_size": len(tokenizer), "labels": LABELS}))
    task = make_task(tokenizer=tokenizer, logit_adjustment="predict", logit_adjustment_tau=1.0)
    save_model(model, task, tmp_path / "best")  # what the training loop does for best/ and model/
    assert (tmp_path / "best" / ADJUSTMENT_FILE).is_file()
    priors = torch.tensor([2400, 150, 450]) / 3000
    torch.testing.assert_close(prediction_adjustment(tmp_path / "best"), torch.log(priors))

    for other in ({}, {"logit_adjustment": "train"}):
        save_model(model, make_task(tokenizer=tokenizer, **other), tmp_path / "plain")
        assert prediction_adjustment(tmp_path / "plain") is None


# ---------------------------------------------------------------------------------------------
# (c) Bad inputs
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def toy_files(tmp_path, small_data) -> dict[str, Path]:
    rows = [("a fine film", "fresh"), ("a dull film", "rotten"), ("a man goes home", "plot")]
    return {"train": write_csv(tmp_path / "train.csv", rows * 2), "dev": write_csv(tmp_path / "dev.csv", rows),
            "test": write_csv(tmp_path / "test.csv", [rows[0], rows[1], ("so so", "meh"), rows[2]]),
            "tokenizer": small_data["tokenizer"]}


def test_unknown_test_label_names_file_and_line(toy_files, tmp_path):
    settings = load_settings(None, tiny_overrides(toy_files, tmp_path / "run"), task="classify")
    with pytest.raises(DataError, match=r"test\.csv:4: label 'meh' in test is not one of the known labels") as error:
        classify.run(settings)
    assert error.value.path == str(toy_files["test"]) and error.value.line == 4


def test_invalid_logit_adjustment_is_a_config_error(toy_files, tmp_path, capsys):
    with pytest.raises(ConfigError, match="data.logit_adjustment must be none, train or predict; got 'both'"):
        ClassifyData(logit_adjustment="both")
    settings = load_settings(None, tiny_overrides(toy_files, tmp_path / "run", **{"data.logit_adjustment": "both"}),
                             task="classify")
    with pytest.raises(ConfigError, match="data.logit_adjustment"):
        classify.run(settings)
    # The CLI prints one line and exits with status 2, no traceback.
    status = cli.main(["finetune", "classify", "--config", str(ROOT / "tasks" / "rotten_tomatoes.yaml"),
                       *tiny_overrides(toy_files, tmp_path / "cli", **{"data.logit_adjustment": "both"})])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("nlu: error:") and "data.logit_adjustment" in err and "Traceback" not in err


def test_unknown_loss_is_a_config_error():
    with pytest.raises(ConfigError, match="'hinge'"):
        make_task(loss="hinge")


def test_class_weights_with_plain_ce_are_refused_not_ignored():
    with pytest.raises(ConfigError, match="use 'weighted_ce'"):
        make_task(loss="ce", class_weights=[1.0, 5.0, 2.0])


# ---------------------------------------------------------------------------------------------
# (d) The predict CLI
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_predict_prints_label_and_probabilities(trained):
    texts = ["a gorgeous, witty and moving film", "a young woman leaves her village to find her father in the city"]
    completed = subprocess.run(
        [sys.executable, "-m", "nlu.cli", "predict", "classify", "--model", str(trained["run_dir"] / "best"),
         "--text", texts[0], "--text", texts[1]],  # each --text adds its texts
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr
    outputs = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    assert [output["line"] for output in outputs] == [1, 2]  # input texts are not echoed back
    for output in outputs:
        assert output["label"] in LABELS and list(output["probabilities"]) == LABELS
        assert sum(output["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)  # each rounded to 4 places
        assert output["label"] == max(output["probabilities"], key=output["probabilities"].get)


def test_an_id_column_as_the_texts_is_refused_and_an_na_label_named(tmp_path):
    """Bundestag speeches as R writes them: an id column chosen as the text would let the
    classifier learn the party from its number; NA (the chair's speeches) trains as a party."""
    rows = [("Wir fordern mehr Geld für Schulen.", "SPD", "17"), ("Die Steuern müssen sinken.", "FDP", "3"),
            ("Das Wort hat der Kollege.", "NA", "0"), ("Wir brauchen Windkraft.", "GRUENE", "11"),
            ("Der Haushalt ist solide.", "CDU/CSU", "5"), ("Das Wort hat die Kollegin.", "NA", "0")] * 3
    path = tmp_path / "de.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([("text", "party", "party.id"), *rows])
    data = dict(train=str(path), dev=None, test=None, test_fraction=0.2, label_column="party")
    with pytest.warns(UserWarning, match=rf"^{path}:\d+: label 'NA' \(\d+ training rows\) reads like a missing value"):
        splits = classify.load_data(classify.ClassifyData(**data))
    assert "NA" in splits.label_map.names  # said, not dropped: the user decides
    pairs = [classify.TextExample("Is it about the battery?", text, label, "pairs.csv", line) for line, (text, label) in
             enumerate([("It lasts a day.", "yes"), ("The screen is dim.", "no"), ("Charges fast.", "yes")], start=2)]
    amounts = [classify.TextExample(amount, what, label, "spend.csv", line) for line, (amount, what, label) in
               enumerate([("12.50", "coffee shop", "food"), ("1,200", "rent", "home"), ("45", "pizza", "food")], start=2)]
    for examples in (pairs, amounts):  # a pair is one input: its second text counts
        check_text_column(examples, "text")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stance label, not a missing value
        warn_doubtful_labels([classify.TextExample("We must act.", None, "NONE", "stance.csv", 2)])
    answers = [classify.TextExample(f"text {line}", None, label, "answers.csv", line)
               for line, label in enumerate(["no", "yes", "No", "no", "YES", "yes"], start=2)]
    with pytest.warns(UserWarning) as said:
        warn_doubtful_labels(answers)
    rest = " differ only in case; each trains as a class of its own: if they are one class, spell it one way"
    assert [str(warning.message) for warning in said] == [
        "answers.csv:4: labels 'No' (1 training row), 'no' (2 training rows)" + rest + " in the file",
        "answers.csv:6: labels 'YES' (1 training row), 'yes' (2 training rows)" + rest + " in the file"]
    with pytest.raises(DataError, match=rf"^{path}: every one of the \d+ training texts is a number \(.*\): is "
                                        r"data.text_column='party.id' the column of the texts\?$"):
        classify.load_data(classify.ClassifyData(**data, text_column="party.id"))
