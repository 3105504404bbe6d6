"""The main job: pretrain, then fine-tune NER and classification from the pretrained encoder
and from random weights of the same shape, and write one report comparing them.

Each stage is an ordinary ``nlu pretrain`` / ``nlu finetune`` run in its own folder, so a stage
that finished is reused on the next invocation, one that was interrupted resumes from its last
checkpoint, and ``--force`` starts everything over.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from accelerate import PartialState

from nlu.errors import ConfigError
from nlu.evaluation.report import ahead_by, settings_block
from nlu.files import write_text_atomic
from nlu.runs import RunRecord, run
from nlu.settings import RunSettings, load_settings

FINETUNE_TASKS = ("ner", "classify")


@dataclass
class Pipeline:
    name: str
    stages: dict[str, dict[str, Any]]
    """pretrain / ner / classify → {config: task YAML, overrides: {key: value}}."""
    quick: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra overrides per stage for --quick."""
    source: str = "pipeline"


def load_pipeline(path: str | Path) -> Pipeline:
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: pipeline file not found") from None
    if not isinstance(values, dict) or values.get("task") != "pipeline":
        raise ConfigError(f"{path}: a pipeline file has 'task: pipeline' (task files run with nlu pretrain/finetune)")
    stages = values.get("stages") or {}
    unknown = sorted(set(stages) - {"pretrain", *FINETUNE_TASKS})
    if unknown or "pretrain" not in stages:
        raise ConfigError(f"{path}: stages must include pretrain and may include ner, classify; got {sorted(stages)}")
    return Pipeline(name=values.get("name", path.stem), stages=stages, quick=values.get("quick") or {}, source=str(path))


def stage_settings(pipeline: Pipeline, stage: str, task: str, output_dir: Path, quick: bool,
                   extra: dict[str, Any]) -> RunSettings:
    spec = pipeline.stages[stage]
    overrides = {**(spec.get("overrides") or {}), **(pipeline.quick.get(stage, {}) if quick else {}), **extra,
                 "training.output_dir": str(output_dir)}
    # JSON is YAML, so values keep their types through the command-line override syntax.
    return load_settings(spec["config"], [f"{key}={json.dumps(value)}" for key, value in overrides.items()], task=task)


def run_pipeline(path: str | Path, quick: bool = False, force: bool = False, runs_dir: str | Path = "runs",
                 reports_dir: str | Path | None = None) -> Path:
    """Run every stage through the runs layer and write the report; by default the report goes
    beside the run folders (``runs/<name>/report``), never over the committed sample in reports/."""
    pipeline = load_pipeline(path)
    name = pipeline.name + ("-quick" if quick else "")
    run_root = Path(runs_dir) / name
    report_dir = Path(reports_dir) / name if reports_dir is not None else run_root / "report"
    started = time.perf_counter()
    records: dict[str, RunRecord] = {}
    settings_used: dict[str, RunSettings] = {}
    pretrained = str(run_root / "pretrain" / "model")
    stages = [("pretrain", "pretrain", {})]
    stages += [(f"{task}-{start}", task, {"init": pretrained, "from_scratch": start == "scratch"})
               for task in FINETUNE_TASKS if task in pipeline.stages for start in ("pretrained", "scratch")]
    for stage, task, extra in stages:
        settings = stage_settings(pipeline, task, task, run_root / stage, quick, {**extra, "training.progress_label": stage})
        records[stage] = run(settings, force=force)
        settings_used[stage] = settings
        record = records[stage]
        print_main(f"[{stage}] {'reused the finished run in' if record.reused else 'finished'} {record.output_dir} "
                   f"({record.wall_seconds:.0f} s)")
    total = time.perf_counter() - started
    results = {stage: {"summary": record.summary, "seconds": 0.0 if record.reused else record.wall_seconds,
                       "cpu_seconds": record.cpu_seconds, "reused": record.reused} for stage, record in records.items()}
    report = report_dir / "report.md"
    if PartialState().is_main_process:
        write_report(report_dir, run_root, pipeline, results, settings_used, total, quick)
        print(headline_table(results))
        print(f"report: {report}")
    return report


def print_main(text: str) -> None:
    if PartialState().is_main_process:
        print(text)


def headline_table(results: dict[str, Any]) -> str:
    """The main job's figures in the terminal: each fine-tuning task from pretrained vs random weights."""
    rows = [("NER test entity F1", "ner", "test_f1"), ("classification test macro-F1", "classify", "test_macro_f1")]
    lines = ["", "| | from pretrained | from random init |", "|---|---|---|"]
    lines += [f"| {label} | {results[f'{task}-pretrained']['summary'][key]:.4f} | "
              f"{results[f'{task}-scratch']['summary'][key]:.4f} |"
              for label, task, key in rows if f"{task}-pretrained" in results]
    return "\n".join(lines)


def copy_figures(source: Path, target: Path, names: list[str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)


def write_report(report_dir: Path, run_root: Path, pipeline: Pipeline, results: dict[str, Any],
                 settings_used: dict[str, RunSettings], total_seconds: float, quick: bool) -> Path:
    """reports/<name>/report.md, self-contained: the figures it shows are copied beside it."""
    report_dir.mkdir(parents=True, exist_ok=True)
    pretrain = results["pretrain"]["summary"]
    copy_figures(run_root / "pretrain", report_dir, ["pretraining_loss.png"])
    final = pretrain["final_eval"]
    lines = [
        f"# nlu main job: {pipeline.name}{' (--quick)' if quick else ''}", "",
        f"Made by `nlu run {pipeline.source}{' --quick' if quick else ''}` in {total_seconds:.0f} s "
        f"(stages reused from earlier runs count 0 s). Run folders: `{run_root}`.", "",
        "## 1. Pretraining (MLM + NSP)", "",
        f"{pretrain['parameters']:,} parameters; {pretrain['steps']:,} steps at {pretrain['tokens_per_second']:,.0f} "
        f"tokens/s on {pretrain['processes']} process(es).", "",
        "| held-out | value |", "|---|---|",
        f"| MLM loss | {final.get('mlm_loss', float('nan')):.3f} |",
        f"| unigram baseline MLM loss | {pretrain['unigram_mlm_loss']:.3f} |",
        f"| MLM accuracy | {final.get('mlm_accuracy', float('nan')):.3f} |",
        f"| NSP accuracy | {final.get('nsp_accuracy', float('nan')):.3f} |", "",
        "![pretraining loss](pretraining_loss.png)", "",
    ]
    if "ner-pretrained" in results:
        lines += finetune_section(report_dir, run_root, results, "ner", "2. NER (WNUT-16 style IOB2, entity level)",
                                  [("test entity F1 (micro, strict)", "test_f1"),
                                   ("test entity F1 (macro)", "test_macro_f1"), ("dev entity F1", "dev_f1")],
                                  ["entities_confusion_true.png", "tags_confusion_true.png", "tags_confusion_raw.png"])
        lines += ner_per_type(run_root)
    if "classify-pretrained" in results:
        recall_keys = [key for key in results["classify-pretrained"]["summary"] if key.startswith("test_recall[")]
        lines += finetune_section(report_dir, run_root, results, "classify", "3. Imbalanced classification",
                                  [("test macro-F1", "test_macro_f1"), ("test balanced accuracy", "test_balanced_accuracy"),
                                   ("test accuracy", "test_accuracy"),
                                   *[(key.replace("test_recall", "test recall"), key) for key in recall_keys]],
                                  ["labels_confusion_raw.png", "labels_confusion_true.png", "labels_confusion_pred.png"])
    lines += ["## Timings", "", "| stage | seconds | note |", "|---|---|---|"]
    lines += [f"| {stage} | {entry['seconds']:.0f} | {'reused' if entry['reused'] else ''} |"
              for stage, entry in results.items()]
    lines += ["", "## Exact configuration", ""]
    for stage, settings in settings_used.items():
        lines += [f"### {stage}", "", settings_block(settings)]
    write_text_atomic(report_dir / "results.json", json.dumps(results, indent=2, default=str))
    report = report_dir / "report.md"
    write_text_atomic(report, "\n".join(lines))
    return report


def finetune_section(report_dir: Path, run_root: Path, results: dict[str, Any], task: str, title: str,
                     rows: list[tuple[str, str]], figures: list[str]) -> list[str]:
    pretrained, scratch = results[f"{task}-pretrained"]["summary"], results[f"{task}-scratch"]["summary"]
    for start in ("pretrained", "scratch"):
        copy_figures(run_root / f"{task}-{start}" / "test", report_dir / f"{task}-{start}", figures)
        copy_figures(run_root / f"{task}-{start}", report_dir / f"{task}-{start}", ["train_loss.png", "dev_metric.png"])
        for csv_file in (run_root / f"{task}-{start}" / "test").glob("*.csv"):
            shutil.copyfile(csv_file, report_dir / f"{task}-{start}" / csv_file.name)
    headline = rows[0][1]
    verdict = ahead_by("the pretrained encoder", pretrained[headline], "random initialisation", scratch[headline], None)
    lines = [f"## {title}", "",
             f"Same architecture, tokenizer, hyper-parameters and seed; only the starting weights differ. "
             f"On {rows[0][0]}: {verdict}; `nlu sweep` with `--seeds` measures the noise.", "",
             "| metric | from pretrained | from random init |", "|---|---|---|"]
    lines += [f"| {label} | {pretrained.get(key, float('nan')):.4f} | {scratch.get(key, float('nan')):.4f} |"
              for label, key in rows]
    lines += [f"| training seconds | {pretrained['train_seconds']:.0f} | {scratch['train_seconds']:.0f} |", ""]
    for start in ("pretrained", "scratch"):
        links = " · ".join(f"[{name}]({task}-{start}/{name})" for name in figures)
        lines.append(f"- {start}: {links} (CSV files beside them)")
    lines += ["", f"![{figures[0]}]({task}-pretrained/{figures[0]})", ""]
    return lines


def ner_per_type(run_root: Path) -> list[str]:
    """Entity F1 per type, side by side, from each run's test metrics."""
    metrics = {start: json.loads((run_root / f"ner-{start}" / "test" / "metrics.json").read_text())
               for start in ("pretrained", "scratch")}
    types = sorted(metrics["pretrained"]["entity_strict"]["per_class"])
    lines = ["| entity type | support | F1 pretrained | F1 random init |", "|---|---|---|---|"]
    for entity_type in types:
        rows = [metrics[start]["entity_strict"]["per_class"][entity_type] for start in ("pretrained", "scratch")]
        lines.append(f"| {entity_type} | {rows[0]['support']} | {rows[0]['f1']:.4f} | {rows[1]['f1']:.4f} |")
    return lines + [""]
