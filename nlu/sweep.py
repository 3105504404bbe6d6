"""``nlu sweep``: one task file, a grid of overrides (or named rows) and seeds, one honest table.

Each (row, seed) is an ordinary run through ``nlu.runs.run`` in its own folder, so a finished run
is reused and an interrupted one resumes. The table gives mean ± std over seeds for every figure
the runs report, per-class recall of the minority classes (classification) or F1 per entity type
(NER), and for every row after the first a paired bootstrap interval of its difference to the
first row: test examples are resampled together for both rows, so the interval reflects the test
set's size as well as the seeds. Beside it, the difference of the seeds' paired means with two
standard errors over seeds: the judgement for figures without test predictions (a held-out loss).

A study on a budget says so in its sweep file rather than in a script: ``subsets`` draws every
split once (written under the sweep's folder, read by every run), ``vocabulary`` trains the one
WordPiece vocabulary every from-scratch row shares, and ``baselines`` scores
nlu.evaluation.baselines on the same test split as rows of the table. The report is rendered from
its JSON by ``render_sweep``, so the figures in Markdown and JSON cannot drift apart.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import itertools
import json
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlu.crosslingual import evaluate_test_sets, read_test_split, summary_figures
from nlu.data.subsets import draw_subsets, write_records
from nlu.errors import ConfigError, NluError, RunFolderRefused
from nlu.evaluation.baselines import baseline_figures
from nlu.evaluation.confusion import entity_spans
from nlu.evaluation.plots import plot_bars
from nlu.files import write_text_atomic
from nlu.options import fill
from nlu.reporting import cell, command_line, machine_line, mean_std, paired_difference, table
from nlu.runs import resolve, run, run_in_own_process, run_settings_file, task_entry
from nlu.settings import RunSettings, load_settings, made_by, read_yaml_file
from nlu.tokenizer import save_tokenizer, train_tokenizer
from nlu.training.checkpoints import replace_directory

BOOTSTRAP_SAMPLES = 1000
HEADLINE = {"ner": "test_f1", "classify": "test_macro_f1", "pretrain": "final_eval.mlm_loss"}
"""The figure a table leads with, per task; the paired bootstrap is computed for the first two."""
SWEEP_KEYS = ("task", "config", "rows", "grid", "seeds", "overrides", "name", "title", "headline", "columns",
              "subsets", "vocabulary", "baselines", "isolate", "test_sets")
SAME_FILES = {"ner": {"panx_lang": None, "local_dir": None, "scheme": "iob2", "repair": False, "tag_map": None,
                      "token_column": 0, "tag_column": -1, "comment_prefix": None, "test_fraction": None},
              "classify": {"text_column": "text", "label_column": "label", "test_fraction": None}}
"""Data options that make a run read drawn subsets as written (IOB2 CoNLL; text,label CSV), whatever
columns, tag map or scheme the task file's own files needed."""
DATA_SOURCES = {f"data.{key}" for options in SAME_FILES.values() for key in options} | {
    f"data.{key}" for key in ("train", "dev", "test", "dev_fraction", "split_seed", "text_pair_column", "tsv_quotes",
                              "train_files")}
"""Options that decide which records a run reads: a row may not change them when the sweep draws its data."""


@dataclass
class Sweep:
    name: str
    config: str
    """The task file every run starts from."""
    rows: dict[str, dict[str, Any]]
    """Row name → overrides; the first row is the reference the others are compared with."""
    seeds: list[int] = field(default_factory=lambda: [42])
    overrides: dict[str, Any] = field(default_factory=dict)
    """Applied to every row (e.g. a shorter budget)."""
    title: str | None = None
    """The report's heading (default: "Sweep: NAME")."""
    headline: str | None = None
    """The figure the table leads with and the per-seed differences compare (default: HEADLINE)."""
    subsets: dict[str, int] = field(default_factory=dict)
    """Split → records kept, drawn once with data.split_seed (nlu.data.subsets.draw_subsets)."""
    vocabulary: int | None = None
    """From scratch: one WordPiece vocabulary of this size, trained on the training split and shared by
    every row and seed (trained once instead of once per run); unused when the runs start from init."""
    baselines: bool = False
    """Score nlu.evaluation.baselines on the same test split, as rows under the runs."""
    columns: list[str] = field(default_factory=list)
    """More figures for the table, after the headline and the per-class ones (e.g. tokens_per_second)."""
    isolate: bool = False
    """Every run in a fresh process (nlu.runs.run_in_own_process), so the table can show each run's
    own peak memory: ``process.peak_rss_mib`` (and ``process.wall_seconds``, ``process.cpu_seconds``)."""
    test_sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Name → {config: a task file, overrides: {...}}: more test splits every run's model is scored
    on (nlu.crosslingual), as figures ``test_f1@NAME`` (``test_macro_f1@NAME``, per class ...)."""


def grid_rows(grid: list[str]) -> dict[str, dict[str, Any]]:
    """``["data.loss=ce,focal", "training.learning_rate=1e-3,3e-4"]`` → the product of the values,
    one row per combination, named by the values that vary."""
    axes = []
    for item in grid:
        key, equals, values = item.partition("=")
        if not equals or not key or not values:
            raise ConfigError(f"--grid {item!r} must look like section.key=value1,value2")
        axes.append([(key, value) for value in values.split(",")])
    rows = {}
    for combination in itertools.product(*axes):
        name = ",".join(f"{key.rpartition('.')[2]}={value}" for key, value in combination)
        rows[name] = dict(combination)
    return rows


def load_sweep(path: str | Path) -> Sweep:
    """A sweep file: ``task: sweep``, ``config`` (a task file), ``rows`` (name → overrides) or
    ``grid`` (key → list of values), optional ``seeds``, ``overrides``, ``name``, ``title``, ``headline``,
    ``columns`` (figures), ``subsets`` (split → count), ``vocabulary`` (a size), ``baselines`` and
    ``isolate`` (true / false), ``test_sets`` (name → task file, or {config, overrides}). A row
    with ``framework: transformers`` is transformers' Trainer. Text
    values may hold ``{row}``, ``{seed}`` and ``{sweeps}`` (:func:`run_overrides`)."""
    path = Path(path)
    values = read_yaml_file(path, "sweep file")
    if values.get("task") != "sweep" or "config" not in values:
        raise ConfigError(f"{path}: a sweep file has 'task: sweep' and 'config: <task file>'")
    unknown = sorted(set(values) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; a sweep file has {', '.join(SWEEP_KEYS)}")
    named = values.get("rows") or {}
    if not isinstance(named, dict):
        raise ConfigError(f"{path}: rows maps each row's name to its overrides ({{name: {{key: value}}}})")
    rows = {str(name): row for name, row in named.items()} or grid_rows(  # a key such as 0.1 is a name too
        [f"{key}={','.join(map(str, options))}" for key, options in (values.get("grid") or {}).items()])
    if not rows:
        raise ConfigError(f"{path}: give rows (name: {{key: value}}) or grid (key: [values])")
    subsets = values.get("subsets") or {}
    if not isinstance(subsets, dict) or set(subsets) - {"train", "dev", "test"} or not all(
            counting(size) for size in subsets.values()):
        raise ConfigError(f"{path}: subsets maps train, dev or test to a number of records, e.g. {{train: 300}}")
    vocabulary = values.get("vocabulary")
    if vocabulary is not None and not counting(vocabulary):
        raise ConfigError(f"{path}: vocabulary is a vocabulary size (a whole number), got {vocabulary!r}")
    if not all(isinstance(values.get(key, ""), str) for key in ("name", "title")):
        raise ConfigError(f"{path}: name and title are text")
    if not isinstance(values.get("headline", ""), str):
        raise ConfigError(f"{path}: headline names one figure of the runs' summaries, e.g. test_macro_f1")
    for key in ("baselines", "isolate"):
        if not isinstance(values.get(key, False), bool):
            raise ConfigError(f"{path}: {key} is true or false, got {values[key]!r}")
    given_sets, test_sets = values.get("test_sets") or {}, {}
    shape = f"{path}: test_sets maps a name to a task file, or to {{config: FILE, overrides: {{...}}}}"
    if not isinstance(given_sets, dict):
        raise ConfigError(shape)
    for name, spec in given_sets.items():
        spec = {"config": spec} if isinstance(spec, str) else spec
        if not (isinstance(spec, dict) and isinstance(spec.get("config"), str) and set(spec) <= {"config", "overrides"}
                and isinstance(spec.get("overrides") or {}, dict)):
            raise ConfigError(shape)
        test_sets[str(name)] = {"config": spec["config"], "overrides": spec.get("overrides") or {}}
    columns = values.get("columns") or []
    if not isinstance(columns, list) or not all(isinstance(column, str) for column in columns):
        raise ConfigError(f"{path}: columns is a list of figures the runs report, e.g. [tokens_per_second]")
    return Sweep(name=values.get("name", path.stem), config=values["config"], rows=rows,
                 seeds=[int(seed) for seed in values.get("seeds", [42])], overrides=values.get("overrides") or {},
                 title=values.get("title"), headline=values.get("headline"), subsets=subsets, vocabulary=vocabulary,
                 baselines=values.get("baselines", False), columns=columns, isolate=values.get("isolate", False),
                 test_sets=test_sets)


def counting(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


PLACEHOLDERS = ("{row}", "{seed}", "{sweeps}")


def run_overrides(sweep: Sweep, row: str, seed: int, runs_dir: Path, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sweep-wide overrides, then ``data`` (the sweep's drawn files), then the row's, with
    ``{row}`` (the row's folder name), ``{seed}`` and ``{sweeps}`` (the folder of every sweep's runs)
    filled in text values: how a row names a run of another sweep. With
    ``init: "{sweeps}/variants/{row}/seed-{seed}/model"`` each row and seed fine-tunes the
    pretrained run of the same row and seed of the sweep ``variants``."""
    places = dict(zip(PLACEHOLDERS, (slug(row), str(seed), str(runs_dir))))

    def filled(value: Any) -> Any:
        if isinstance(value, str):
            for place, text in places.items():
                value = value.replace(place, text)
        return value

    return {key: filled(value) for key, value in {**sweep.overrides, **(data or {}), **sweep.rows[row]}.items()}


def as_overrides(values: dict[str, Any]) -> list[str]:
    """``section.key=value`` words for load_settings; a non-string value in YAML/JSON form."""
    return [f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in values.items()]


@dataclass
class SweepData:
    """What a sweep's own data steps made, before any run."""

    overrides: dict[str, Any]
    """Data options every run gets: the drawn files, and the options that read them as written."""
    notes: dict[str, Any]
    """What the report says of them: records per split, sentences left out, baseline figures."""
    folder: Path
    """Named by a digest of the records, so changed data gets new files (and a finished run with
    the old ones is refused as "other settings" rather than reused)."""
    texts: list[str] = field(default_factory=list)
    """The training split's texts, for a shared vocabulary."""
    corpus_files: list[str] = field(default_factory=list)
    """A pretraining sweep's corpus, read by the corpus reader for a shared vocabulary instead."""
    normalization: dict[str, Any] = field(default_factory=dict)
    """A pretraining sweep's data.lowercase and data.strip_accents, as its own tokenizer would use them."""


def prepare_data(sweep: Sweep, task: str, runs_dir: Path) -> SweepData | None:
    """Read the task file's data once (the task's own reader), draw the subsets and score the
    baselines; None when the sweep has none of subsets, vocabulary and baselines. A pretraining
    sweep's data is its corpus files: only a shared vocabulary applies to it."""
    if not (sweep.subsets or sweep.vocabulary or sweep.baselines):
        return None
    entry = task_entry(task)
    if entry.load_data is None and (sweep.subsets or sweep.baselines):
        raise ConfigError(f"{sweep.config}: subsets and baselines are for fine-tuning sweeps, not {task}")
    changing = {f"{row}: {key}" for row, overrides in sweep.rows.items() for key in overrides if key in DATA_SOURCES}
    changing |= {key for key, value in sweep.overrides.items()
                 if key in DATA_SOURCES and any(place in str(value) for place in PLACEHOLDERS)}
    if changing:
        raise ConfigError(f"{sweep.name}: rows change where the data comes from ({', '.join(sorted(changing))}), but "
                          "subsets, vocabulary and baselines are made once for every row; set it in overrides, "
                          "without {row} or {seed}")
    first = next(iter(sweep.rows))
    settings = resolve(load_settings(sweep.config, as_overrides(run_overrides(sweep, first, sweep.seeds[0], runs_dir)),
                                     task=task))
    root = runs_dir / sweep.name
    if entry.load_data is None:
        files = [str(name) for name in settings.data["train_files"]]
        normalization = {key: settings.data[key] for key in ("lowercase", "strip_accents")}
        corpus = b"".join(Path(name).read_bytes() for name in files) + repr(normalization).encode()
        return SweepData({}, {}, root / "data" / hashlib.sha256(corpus).hexdigest()[:12], corpus_files=files,
                         normalization=normalization)
    splits = entry.load_data(fill(entry.data_options, settings.data, settings.where("data")))
    records = {"train": splits.train, "dev": splits.dev, "test": splits.test}
    notes: dict[str, Any] = {}
    if sweep.subsets:
        records, notes["left_out_for_unseen_types"] = draw_subsets(records, sweep.subsets, settings.data["split_seed"])
    notes["records"] = {split: len(part) for split, part in records.items()}
    folder = root / "data" / hashlib.sha256(repr(records).encode()).hexdigest()[:12]
    overrides: dict[str, Any] = {}
    if sweep.subsets:
        with folder_lock(folder):
            overrides = {f"data.{split}": str(write_once(folder, split, part)) if part else None
                         for split, part in records.items()}
        pairs = task == "classify" and any(example.text_pair is not None for example in records["train"])
        overrides |= {f"data.{key}": value for key, value in SAME_FILES[task].items()} | (
            {"data.text_pair_column": "text_pair" if pairs else None} if task == "classify" else {})
    if sweep.baselines:
        if not records["test"]:
            raise ConfigError(f"{sweep.config}: baselines are scored on the test split, and it has none "
                              "(set data.test, or data.test_fraction)")
        labels = sorted({example.label for example in records["train"]}) if task == "classify" else []
        notes["baselines"] = baseline_figures(task, records["train"], records["test"], labels)
    texts = [text for record in records["train"] for text in record.texts() if text]
    return SweepData(overrides, notes, folder, texts=texts)


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Two sweeps on the same data (one per seed, say) write its files one at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def write_once(folder: Path, split: str, records: list) -> Path:
    """The split's records as the file a run reads; an existing file is the same records (the
    folder is named by their digest), so it is kept, never rewritten under a reader."""
    partial = write_records(folder / f"{split}-{os.getpid()}.partial", records)
    target = partial.with_name(f"{split}{partial.suffix}")
    if target.exists():
        partial.unlink()
    else:
        os.replace(partial, target)
    return target


def shared_vocabulary(data: SweepData, size: int) -> Path:
    """A WordPiece vocabulary of ``size`` trained once on the training texts (or corpus), then reused."""
    target = data.folder / f"tokenizer-{size}"
    with folder_lock(data.folder):
        if not (target / "tokenizer.json").is_file():
            partial = data.folder / f".tokenizer-{size}.partial"
            save_tokenizer(train_tokenizer(data.corpus_files or iter(data.texts), vocab_size=size, **data.normalization),
                           partial)
            replace_directory(partial, target)
    return target


def shares_vocabulary(settings: RunSettings, given: dict[str, Any], size: int) -> bool:
    """Whether a run from scratch takes the sweep's one vocabulary: when it names no tokenizer, or asks
    for a trained one of the same size (trained once for all rows, instead of once per run). A
    folder, another size, or a pretraining row's own ``data.vocab_size`` is the run's own choice."""
    own = [("data.tokenizer", settings.data.get("tokenizer")), ("data.vocab_size", given.get("data.vocab_size"))]
    chosen = [(key, value) for key, value in own if value not in (None, size)]
    if chosen:
        warnings.warn(f"{settings.source}: {chosen[0][0]}={chosen[0][1]} is used, not the sweep's vocabulary: {size}",
                      stacklevel=3)
    return not chosen


def run_sweep(sweep: Sweep, task: str, runs_dir: Path, force: bool = False) -> dict[str, Any]:
    """Run (or reuse) every row × seed and gather the figures the report is rendered from."""
    runs_dir = Path(runs_dir)
    root = runs_dir / sweep.name
    check_columns(sweep)
    for seed in sweep.seeds:  # every run's settings validated before the first run or data step writes anything
        for row in sweep.rows:
            try:
                resolve(load_settings(sweep.config, as_overrides({**run_overrides(sweep, row, seed, runs_dir),
                                                                  "training.seed": seed}), task=task))
            except NluError as error:
                raise type(error)(f"sweep {sweep.name}, row {row!r}, seed {seed}: {error}") from None
    test_sets = read_test_sets(sweep, task)
    data = prepare_data(sweep, task, runs_dir)
    results: dict[str, Any] = {"name": sweep.name, "title": sweep.title or f"Sweep: {sweep.name}", "task": task,
                               "config": sweep.config, "seeds": sweep.seeds,
                               "overrides": sweep.overrides, "command": command_line(), "rows": {},
                               "headline_figure": sweep.headline or HEADLINE.get(task), "columns": sweep.columns,
                               "isolate": sweep.isolate, "subsets": sweep.subsets,
                               "test_sets": {name: {**spec, "records": len(test_sets[name][1])}
                                             for name, spec in sweep.test_sets.items()},
                               "data": data.notes if data else {}}
    runs: dict[str, list[dict[str, Any]]] = {row: [] for row in sweep.rows}
    for seed in sweep.seeds:  # seed by seed: the rows of a seed run under the same load, and a stopped sweep has whole seeds
        for row in sweep.rows:
            given = {**run_overrides(sweep, row, seed, runs_dir, data.overrides if data else None),
                     "training.seed": seed, "training.output_dir": str(root / slug(row) / f"seed-{seed}")}
            settings = load_settings(sweep.config, as_overrides(given), task=task)
            if data and sweep.vocabulary and settings.init is None and shares_vocabulary(settings, given, sweep.vocabulary):
                results["data"]["vocabulary"] = str(shared_vocabulary(data, sweep.vocabulary))
                settings = load_settings(sweep.config, as_overrides({**given, "data.tokenizer": results["data"]["vocabulary"]}),
                                         task=task)
            init_settings = run_settings_file(settings.init) if settings.init else None
            if init_settings:  # None where that run is older than made-by lines
                results.setdefault("starts_from", {})[settings.init] = made_by(init_settings)
            try:
                record = (run_in_own_process if sweep.isolate else run)(settings, force=force)
            except RunFolderRefused as error:  # a sweep names its own run folders: its options say what to do
                raise RunFolderRefused(f"sweep {sweep.name}, row {row!r}, seed {seed}: {error} (in a sweep: nlu sweep "
                                       "--force runs its rows again, --name NAME into new folders)") from None
            figures = run_figures(record.summary, record.output_dir, task) | {
                f"process.{key}": value for key, value in (record.process or {}).items()} | figures_on_test_sets(
                record.output_dir, test_sets)
            runs[row].append({"seed": seed, "output_dir": str(record.output_dir), "reused": record.reused,
                              "wall_seconds": record.wall_seconds, "figures": figures,
                              "notes": {key: record.summary[key] for key in ("warning", "recipe") if record.summary.get(key)}})
            results["machine"] = record.machine
            headline = figures.get(results["headline_figure"])
            print(f"[sweep {sweep.name}] {row}, seed {seed}: {'reused' if record.reused else 'ran'}"
                  + (f", {results['headline_figure']} {headline:.4f}" if headline is not None else ""), flush=True)
    results["rows"] = {row: {"overrides": overrides, "runs": runs[row]} for row, overrides in sweep.rows.items()}
    results["statistics"] = statistics(results)
    reported = sorted({key for row in results["statistics"].values() for key in row})
    missing = [figure for figure in (results["headline_figure"], *sweep.columns) if figure not in reported]
    if missing:
        unmeasured = any(figure.startswith("process.") for figure in missing)
        raise ConfigError(f"{sweep.name}: no run reports {', '.join(map(repr, missing))} (headline or columns)"
                          + ("; runs made without isolate: true have no process figures (--force runs them again)"
                             if unmeasured else "") + f"; they report {', '.join(reported)}")
    results["seed_differences"] = seed_differences(results)
    results["bootstrap"] = bootstrap_against_first(results, task)
    results["headline"] = headline_sentence(results)
    return results


def check_columns(sweep: Sweep) -> None:
    """What can be known of the columns before any run: ``process.*`` needs ``isolate``, and
    ``FIGURE@NAME`` a test set of that name (the rest is checked against what the runs report)."""
    for column in sweep.columns:
        if column.startswith("process.") and not sweep.isolate:
            raise ConfigError(f"{sweep.name}: column {column!r} is measured only with isolate: true "
                              "(each run in its own process)")
        if "@" in column and column.rpartition("@")[2] not in sweep.test_sets:
            raise ConfigError(f"{sweep.name}: column {column!r} names no test set; test_sets are "
                              f"{', '.join(sweep.test_sets) or 'none'}")


def read_test_sets(sweep: Sweep, task: str) -> dict[str, tuple[str, list]]:
    """Every test set's records, read once before any run (a bad file stops the sweep before it
    starts), each with a digest of its records that names its reports in a run folder."""
    found = {}
    for name, spec in sweep.test_sets.items():
        try:
            records = read_test_split(spec["config"], as_overrides(spec["overrides"]), task=task)
        except NluError as error:
            raise type(error)(f"sweep {sweep.name}, test set {name!r}: {error}") from None
        found[name] = (f"{slug(name)}-{hashlib.sha256(repr(records).encode()).hexdigest()[:12]}", records)
    return found


def figures_on_test_sets(output_dir: Path, test_sets: dict[str, tuple[str, list]]) -> dict[str, float]:
    """The run's model scored on every test set, as ``FIGURE@NAME``; a set scored before (same
    records) is read back from the run folder."""
    figures: dict[str, float] = {}
    missing = {name: records for name, (folder, records) in test_sets.items()
               if not (output_dir / "test_sets" / folder / "metrics.json").exists()}
    if missing:
        evaluate_test_sets(output_dir, missing, output_dir / "test_sets" / ".scoring")
    for name, (folder, _) in test_sets.items():
        target = output_dir / "test_sets" / folder
        if name in missing:
            replace_directory(output_dir / "test_sets" / ".scoring" / name, target)
        figures |= {f"{key}@{name}": value for key, value in
                    summary_figures(json.loads((target / "metrics.json").read_text())).items()}
    return figures


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name)


def run_figures(summary: dict[str, Any], output_dir: Path, task: str) -> dict[str, float]:
    """The run's numbers: its summary's, nested ones named by their path (``final_eval.mlm_loss``),
    per-type F1 for NER (from its test metrics) and the loss of its last logged training step."""
    def numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
        found = {}
        for key, value in values.items():
            if isinstance(value, dict):
                found |= numbers(value, f"{prefix}{key}.")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                found[prefix + key] = float(value)
        return found

    figures = numbers(summary)
    metrics = Path(output_dir) / "test" / "metrics.json"
    if task == "ner" and metrics.exists():
        per_class = json.loads(metrics.read_text())["entity_strict"]["per_class"]
        figures.update({f"test_f1[{name}]": row["f1"] for name, row in per_class.items()})
    log = Path(output_dir) / "log.jsonl"
    if log.exists():
        train = [entry for entry in map(json.loads, log.read_text().splitlines()) if entry.get("split") == "train"]
        if train:
            figures["final_train_loss"] = train[-1]["loss"]
    return figures


def statistics(results: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Row → figure → mean and sample std over the seeds that report it (nlu.reporting.mean_std)."""
    return {row: {key: mean_std(run_["figures"].get(key) for run_ in entry["runs"])
                  for key in sorted({key for run_ in entry["runs"] for key in run_["figures"]})}
            for row, entry in results["rows"].items()}


def seed_differences(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Row → its headline figure minus the first row's, seed by seed (nlu.reporting.paired_difference):
    "within noise" when its 95% Student-t interval holds 0."""
    figure, rows = results["headline_figure"], list(results["rows"])
    reference = {run_["seed"]: run_["figures"].get(figure) for run_ in results["rows"][rows[0]]["runs"]}
    differences = {}
    for row in rows[1:]:
        pairs = [(run_["figures"][figure], reference[run_["seed"]]) for run_ in results["rows"][row]["runs"]
                 if run_["figures"].get(figure) is not None and reference.get(run_["seed"]) is not None]
        if pairs:
            differences[row] = {"figure": figure, **paired_difference(*zip(*pairs))}
    return differences


def test_outcomes(output_dir: Path, task: str) -> tuple[np.ndarray, list[str]] | None:
    """Per test example, what its share of the headline metric depends on.

    Classification: (gold, predicted) label pairs → macro-F1 of any resample. NER: per sentence
    (true positives, predicted entities, gold entities) → micro entity F1 of any resample."""
    test = Path(output_dir) / "test"
    if task == "classify" and (test / "predictions.csv").exists():
        with open(test / "predictions.csv", newline="", encoding="utf-8") as handle:
            rows = [(row["label"], row["predicted"]) for row in csv.DictReader(handle)]
        labels = sorted({label for pair in rows for label in pair})
        index = {label: i for i, label in enumerate(labels)}
        return np.array([[index[gold], index[guess]] for gold, guess in rows]), labels
    if task == "ner" and (test / "predictions.conll").exists():
        counts = []
        for block in (test / "predictions.conll").read_text(encoding="utf-8").split("\n\n"):
            lines = [line.split("\t") for line in block.splitlines() if line]
            if not lines:
                continue
            gold = set(entity_spans([line[-2] for line in lines]))
            guess = set(entity_spans([line[-1] for line in lines]))
            counts.append([len(gold & guess), len(guess), len(gold)])
        return np.array(counts), []
    return None


def resampled_metric(outcomes: np.ndarray, samples: np.ndarray, task: str, classes: int) -> np.ndarray:
    """The headline metric of each resample (rows of ``samples`` index the test examples)."""
    if task == "ner":
        totals = outcomes[samples].sum(axis=1)  # (resamples, 3)
        return np.where(totals[:, 1] + totals[:, 2] > 0, 2 * totals[:, 0] / np.maximum(totals[:, 1] + totals[:, 2], 1), 0.0)
    gold, guess = outcomes[samples, 0], outcomes[samples, 1]
    scores = []
    for label in range(classes):
        tp = ((gold == label) & (guess == label)).sum(axis=1)
        support, predicted = (gold == label).sum(axis=1), (guess == label).sum(axis=1)
        present = (support + predicted) > 0
        scores.append((np.where(present, 2 * tp / np.maximum(support + predicted, 1), 0.0), present))
    f1 = np.stack([score for score, _ in scores])
    present = np.stack([flag for _, flag in scores])
    return (f1 * present).sum(axis=0) / np.maximum(present.sum(axis=0), 1)


def bootstrap_against_first(results: dict[str, Any], task: str, samples: int = BOOTSTRAP_SAMPLES,
                            seed: int = 0) -> dict[str, Any]:
    """95% interval of (row − first row) on the headline metric, averaged over the seeds both rows
    ran, with the same resampled test examples for both rows and every seed."""
    rows = list(results["rows"])
    if task not in ("ner", "classify") or results["headline_figure"] != HEADLINE[task] or len(rows) < 2:
        return {}
    outcomes = {row: {run_["seed"]: test_outcomes(Path(run_["output_dir"]), task)
                      for run_ in results["rows"][row]["runs"]} for row in rows}
    reference = outcomes[rows[0]]
    first = next((value for value in reference.values() if value is not None), None)
    if first is None:
        return {}
    labels = sorted({label for row in outcomes.values() for value in row.values() if value for label in value[1]})
    size = len(first[0])
    draws = np.random.default_rng(seed).integers(0, size, size=(samples, size))
    intervals = {}
    for row in rows[1:]:
        seeds = [s for s in outcomes[row] if outcomes[row][s] is not None and reference.get(s) is not None]
        if not seeds or any(len(outcomes[row][s][0]) != size for s in seeds):
            continue
        differences = np.mean([resampled_metric(relabel(outcomes[row][s], labels), draws, task, len(labels))
                               - resampled_metric(relabel(reference[s], labels), draws, task, len(labels))
                               for s in seeds], axis=0)
        low, high = np.percentile(differences, [2.5, 97.5])
        intervals[row] = {"metric": HEADLINE[task], "mean_difference": float(differences.mean()),
                          "low": float(low), "high": float(high), "seeds": seeds, "test_examples": size}
    return intervals


def relabel(outcome: tuple[np.ndarray, list[str]], labels: list[str]) -> np.ndarray:
    """Classification label indices into the sweep-wide label order (a run may not predict every class)."""
    values, own = outcome
    if not own:
        return values
    mapping = np.array([labels.index(label) for label in own])
    return mapping[values]


def minority_keys(results: dict[str, Any]) -> list[str]:
    """Per-class figures worth a column: recall of classes rarer than average (classification) or
    F1 per entity type (NER), on the sweep's own test split (those on other test sets, ``...@NAME``,
    stay in the JSON and in each set's report, so the table keeps one column per set)."""
    first = {key: value for key, value in next(iter(results["statistics"].values())).items() if "@" not in key}
    if results["task"] == "ner":
        return sorted(key for key in first if key.startswith("test_f1["))
    recalls = sorted(key for key in first if key.startswith("test_recall["))
    supports = {key: (first.get(key.replace("test_recall[", "test_support[")) or {}).get("mean") for key in recalls}
    known = [value for value in supports.values() if value is not None]
    if not known:
        return recalls
    return [key for key in recalls if supports[key] is None or supports[key] < np.mean(known)]


def missed_classes(figures: dict[str, float]) -> list[str]:
    """The classes a classifier never predicted right (test recall 0): the plateau an imbalanced run
    stalls on (every text of the class given to another), which a macro average alone can hide."""
    return [key[len("test_recall["):-1] for key, value in figures.items() if key.startswith("test_recall[") and value == 0.0]


def within(low: float, high: float, noise: str = "noise") -> str:
    return f"within {noise}" if low <= 0 <= high else f"outside {noise}"


def noise_verdicts(by_seed: dict[str, Any] | None, interval: dict[str, Any] | None) -> list[str]:
    """A row's difference to the first row judged by every measure it has: the seeds' spread (two
    seeds or more) and the paired bootstrap over test examples (runs with test predictions)."""
    verdicts = []
    if by_seed and by_seed["low"] is not None:
        verdicts.append(within(by_seed["low"], by_seed["high"], "seed noise"))
    if interval:
        verdicts.append(within(interval["low"], interval["high"], "test-set noise"))
    return verdicts


def headline_sentence(results: dict[str, Any]) -> str:
    """The report's result in one line (the results index quotes it): every row's headline figure,
    and for each later row whether its difference to the first is outside the noise."""
    figure, stats = results["headline_figure"], results["statistics"]
    parts = []
    for row, entry in stats.items():
        text = f"{row} {cell(entry.get(figure))}"
        verdicts = noise_verdicts(results["seed_differences"].get(row), results["bootstrap"].get(row))
        text += f" ({', '.join(verdicts)})" if verdicts else ""
        parts.append(text)
    baselines = {name: figures[figure] for name, figures in (results.get("data", {}).get("baselines") or {}).items()
                 if figures.get(figure) is not None}
    if baselines:
        best = max(baselines, key=baselines.get)
        parts.append(f"best baseline, {best}: {baselines[best]:.4f}")
    return f"{figure}: " + "; ".join(parts)


def render_sweep(results: dict[str, Any]) -> str:
    """The sweep report in Markdown, from the JSON alone."""
    stats, data = results["statistics"], results.get("data") or {}
    headline = results["headline_figure"]
    columns = list(dict.fromkeys([headline, *minority_keys(results), "train_seconds",
                                  *test_set_columns(results),
                                  *results.get("columns", [])]))  # a figure named twice is one column
    rows = list(stats)
    recall_zero_header = " | runs with a test recall of 0 (classes)" if results["task"] == "classify" else ""
    seeds = ", ".join(map(str, results["seeds"]))
    lines = [f"# {results.get('title') or 'Sweep: ' + results['name']}", "",
             f"Made by `{results['command']}` from `{results['config']}`; seeds {seeds}; mean ± std over seeds. "
             f"Δ columns: the row minus the first row on {headline}, by seed (mean ± the half-width of its 95% "
             "Student-t interval over seeds: training noise, which needs two seeds or more) and by a 95% paired "
             "bootstrap over test examples (the "
             "test set's sampling noise only); \"within noise\" when the interval holds 0.", "",
             "| row | " + " | ".join(columns) + recall_zero_header + " | Δ by seed | Δ, paired bootstrap |",
             "|---|" + "---|" * (len(columns) + 2 + bool(recall_zero_header))]
    for row in rows:
        by_seed, interval = results["seed_differences"].get(row), results["bootstrap"].get(row)
        seed_cell = "reference" if row == rows[0] else "n/a" if not by_seed else (
            f"{by_seed['mean_difference']:+.4f}" + (" (the same on every seed: no spread to judge by)"
                                                    if len(by_seed["values"]) > 1 else "") if by_seed["low"] is None else
            f"{by_seed['mean_difference']:+.4f} ± {by_seed['half_width']:.4f} "
            f"({within(by_seed['low'], by_seed['high'])})")
        boot_cell = "reference" if row == rows[0] else "n/a" if not interval else (
            f"{interval['mean_difference']:+.4f} [{interval['low']:+.4f}, {interval['high']:+.4f}] "
            f"({within(interval['low'], interval['high'])})")
        runs = results["rows"][row]["runs"]
        missed = [missed_classes(run_["figures"]) for run_ in runs]
        names = sorted(set().union(*missed))
        stalled = (f" | {sum(map(bool, missed))} of {len(runs)}" + (f" ({', '.join(names)})" if names else "")
                   if recall_zero_header else "")
        lines.append(f"| {row} | " + " | ".join(counted_cell(stats[row].get(key), len(runs)) for key in columns)
                     + f"{stalled} | {seed_cell} | {boot_cell} |")
    for name, figures in (data.get("baselines") or {}).items():
        lines.append(f"| baseline: {name} | " + " | ".join(
            "—" if figures.get(key) is None else f"{figures[key]:.4f}" if key != "train_seconds" else f"{figures[key]:.1f}"
            for key in columns) + (f" | {', '.join(missed_classes(figures)) or 'no'}" if recall_zero_header else "")
            + " | | |")
    lines += ["", "Rows (overrides on top of the task file"
              + (f" and {json.dumps(results['overrides'])}" if results["overrides"] else "") + "):", ""]
    lines += [f"- **{row}**: `{json.dumps(results['rows'][row]['overrides'])}`" for row in rows]
    if "records" in data:
        left_out = {split: count for split, count in (data.get("left_out_for_unseen_types") or {}).items() if count}
        lines += ["", "Data: " + ", ".join(f"{split} {count:,}" for split, count in data["records"].items())
                  + (f" records, subsets drawn with data.split_seed ({json.dumps(results['subsets'])})"
                     if results.get("subsets") else " records")
                  + ("; left out of the subsets for an entity type the train draw lacks: "
                     + ", ".join(f"{split} {count}" for split, count in left_out.items()) if left_out else "")
                  + (f"; one WordPiece vocabulary (`{data['vocabulary']}`) trained on the train split for every "
                     "from-scratch run" if data.get("vocabulary") else "") + "."]
    elif data.get("vocabulary"):
        lines += ["", f"One WordPiece vocabulary (`{data['vocabulary']}`), trained once on the corpus, for every run."]
    if results.get("starts_from"):
        made: dict[str | None, list[str]] = {}
        for model, command in results["starts_from"].items():
            made.setdefault(command, []).append(model)
        lines += ["", "Models the runs start from (init): " + "; ".join(
            f"`{models[0]}`" + (f" and {len(models) - 1} more" if len(models) > 1 else "")
            + (f", made by `{command}`" if command else ", made before runs recorded their command (its settings.yaml "
               "holds how)") for command, models in made.items()) + "."]
    if results.get("test_sets"):
        lines += ["", "Test sets every run's model is also scored on (in fp32, reports in `<run>/test_sets/`): " + "; ".join(
            f"**{name}** `{spec['config']}`" + (f" with `{json.dumps(spec['overrides'])}`" if spec["overrides"] else "")
            + f", {spec['records']:,} records" for name, spec in results["test_sets"].items()) + "."]
    for note, heading in (("recipe", "Learning rates `auto` chose (nlu.recipes):"), ("warning", "Warnings the runs gave:")):
        said: dict[str, list[str]] = {}
        for row in rows:
            for run_ in results["rows"][row]["runs"]:
                if run_.get("notes", {}).get(note):
                    said.setdefault(run_["notes"][note], []).append(f"{row} seed {run_['seed']}")
        if said:
            lines += ["", heading, "", *[f"- {', '.join(where)}: {text}" for text, where in said.items()]]
    lines += ["", f"Host when the report was made (a reused run keeps its own seconds): {machine_line(results['machine'])}."
              if results.get("machine") else "Host: not recorded.",
              "", f"![{headline}](sweep.png)", ""]
    return "\n".join(lines)


def test_set_columns(results: dict[str, Any]) -> list[str]:
    """The headline figure on every extra test set, a column each."""
    return [f"{results['headline_figure']}@{name}" for name in results.get("test_sets", {})]


def compact_table(results: dict[str, Any]) -> list[str]:
    """The table a README quotes (scripts/reports_index.py): per row its seeds, the headline figure on
    the sweep's own test split and on every test set, and training seconds; mean ± std over seeds."""
    headline, stats = results["headline_figure"], results["statistics"]
    digits = {headline: 4, **dict.fromkeys(test_set_columns(results), 4), "train_seconds": 0}
    lines = []
    for row, entry in results["rows"].items():
        seeds = ", ".join(str(run_["seed"]) for run_ in entry["runs"])
        lines.append([row, seeds, *(counted_cell(stats[row].get(key), len(entry["runs"]), places)
                                    for key, places in digits.items())])
    return table(["row", "seeds", *digits], lines)


def counted_cell(entry: dict[str, Any] | None, runs: int, digits: int = 4) -> str:
    """mean ± std, with "(n of N)" where fewer than the row's runs report the figure."""
    reported = len(entry["values"]) if entry else 0
    return cell(entry, digits) + (f" ({reported} of {runs} runs)" if 0 < reported < runs else "")


def write_sweep(results: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "sweep.json", json.dumps(results, indent=2))
    headline, stats = results["headline_figure"], results["statistics"]
    plot_bars({row: (stats[row][headline]["mean"], stats[row][headline]["std"] or 0.0) for row in stats
               if stats[row].get(headline, {}).get("mean") is not None}, out_dir / "sweep.png",
              ylabel=headline, title=f"{results['name']}: {headline} (mean ± std over seeds)")
    report = out_dir / "sweep.md"
    write_text_atomic(report, render_sweep(results))
    return report
