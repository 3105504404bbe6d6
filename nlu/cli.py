"""``nlu`` command line: pretrain, finetune, evaluate, predict, export, run.

Every training command takes ``--config tasks/<file>.yaml`` plus ``section.key=value``
overrides. Errors in the user's input are printed as one clear line (exit status 2), never
as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nlu.errors import NluError


def command_pretrain(args: argparse.Namespace) -> None:
    from nlu.settings import load_settings
    from nlu.tasks import pretrain

    settings = load_settings(args.config, args.overrides, task="pretrain")
    prepare_run_folder(settings, args.force)
    summary = pretrain.run(settings)
    print_once(json.dumps({key: summary[key] for key in ("steps", "tokens_per_second", "final_eval", "unigram_mlm_loss")},
                          indent=2))


def command_finetune(args: argparse.Namespace) -> None:
    from nlu.settings import load_settings

    settings = load_settings(args.config, args.overrides, task=args.task)
    prepare_run_folder(settings, args.force)
    summary = task_module(args.task).run(settings)
    print_once(json.dumps({key: value for key, value in summary.items() if not isinstance(value, (list, dict))}, indent=2))
    print_once(f"report: {Path(settings.training.output_dir) / 'report.md'}")


def print_once(text: str) -> None:
    """Under torchrun / accelerate launch every process runs the command; one result is enough."""
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(text)


def task_module(name: str):
    from nlu.tasks import classify, ner

    return {"ner": ner, "classify": classify}[name]


def command_evaluate(args: argparse.Namespace) -> None:
    from nlu.model import load_model
    from nlu.tokenizer import load_tokenizer

    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    apply_input_settings(args)
    out = Path(args.out or Path(args.model) / "evaluation")
    if args.task == "ner":
        from nlu.data.ner import read_ner_file
        from nlu.tasks.ner import NerData, evaluate_ner

        data = NerData(max_length=args.max_length, stride=args.stride, eval_batch_size=args.batch_size)
        results = evaluate_ner(model, tokenizer, read_ner_file(args.data, repair=args.repair), out, data)
        headline = {"entity_f1_strict": results["entity_strict"]["averages"]["micro"]["f1"],
                    "entity_f1_default": results["entity_default"]["averages"]["micro"]["f1"]}
    else:
        from nlu.data.classification import read_table
        from nlu.tasks.classify import evaluate_classification, prediction_adjustment

        examples = read_table(args.data, args.text_column, args.text_pair_column, args.label_column)
        results = evaluate_classification(model, tokenizer, examples, out, args.max_length, args.batch_size,
                                          prediction_adjustment(Path(args.model)))
        headline = {key: results["scores"][key] for key in ("macro_f1", "balanced_accuracy", "accuracy")}
    print(json.dumps(headline, indent=2))
    print(f"report: {out / 'report.md'}")


def command_predict(args: argparse.Namespace) -> None:
    from nlu.model import load_model
    from nlu.tokenizer import load_tokenizer

    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    apply_input_settings(args)
    lines = list(args.text) if args.text else Path(args.file).read_text(encoding="utf-8").splitlines()
    if args.task == "ner":
        from nlu.data.ner import NerSentence
        from nlu.evaluation.confusion import entity_spans
        from nlu.tasks.ner import predict_tags

        source = args.file or "<text>"
        sentences = [NerSentence(line.split(), ["O"] * len(line.split()), source, number)
                     for number, line in enumerate(lines, 1) if line.split()]
        tags, windowed = predict_tags(model, tokenizer, sentences, args.max_length, args.stride, args.batch_size)
        for sentence, row in zip(sentences, tags):
            entities = [{"type": span.type, "text": " ".join(sentence.words[span.start:span.end + 1])}
                        for span in entity_spans(row)]
            print(json.dumps({"words": sentence.words, "tags": row, "entities": entities}, ensure_ascii=False))
        if windowed:
            print(f"note: {windowed} extra window(s) were used for sentences longer than max_length="
                  f"{args.max_length} sub-tokens; every word was predicted", file=sys.stderr)
    else:
        from nlu.data.classification import TextExample
        from nlu.tasks.classify import predict_probabilities, prediction_adjustment

        examples = [TextExample(line, None, None, args.file or "<text>", n) for n, line in enumerate(lines, 1) if line.strip()]
        probabilities, truncated = predict_probabilities(model, tokenizer, examples, args.max_length, args.batch_size,
                                                         prediction_adjustment(Path(args.model)))
        labels = list(model.config.labels)
        for example, row in zip(examples, probabilities):
            print(json.dumps({"text": example.text, "label": labels[int(row.argmax())],
                              "probabilities": {label: round(float(p), 4) for label, p in zip(labels, row)}},
                             ensure_ascii=False))
        if truncated:
            print(f"note: {truncated} text(s) longer than max_length={args.max_length} tokens were classified "
                  f"from their first {args.max_length} tokens", file=sys.stderr)


def command_run(args: argparse.Namespace) -> None:
    from nlu.pipeline import run_pipeline

    run_pipeline(args.pipeline, quick=args.quick, force=args.force, runs_dir=args.runs_dir, reports_dir=args.reports_dir)


def apply_input_settings(args: argparse.Namespace) -> None:
    """Unless given, read text the way the model was fine-tuned (max_length, stride)."""
    from nlu.tasks.finetune import input_settings

    saved = input_settings(Path(args.model))
    args.max_length = args.max_length or saved.get("max_length", 128)
    args.stride = args.stride if args.stride is not None else saved.get("stride", 32)


def command_export(args: argparse.Namespace) -> None:
    from nlu.interop import to_transformers
    from nlu.model import load_model
    from nlu.tokenizer import load_tokenizer

    model = load_model(args.model)
    tokenizer = load_tokenizer(args.model) if (Path(args.model) / "tokenizer.json").exists() else None
    to_transformers(model, args.out, tokenizer)
    print(f"wrote a transformers checkpoint to {args.out}")


def prepare_run_folder(settings, force: bool) -> None:
    """Start clean with --force; otherwise an existing folder means 'resume', which is only
    sound with the settings the folder was started with."""
    from nlu.training.loop import distributed_state

    state = distributed_state(settings.training)
    if state.is_main_process:
        check_run_folder(settings, Path(settings.training.output_dir), force)
    state.wait_for_everyone()


def check_run_folder(settings, output_dir: Path, force: bool) -> None:
    import dataclasses
    import shutil

    import yaml

    from nlu.errors import ConfigError
    from nlu.training.config import TrainingConfig

    if force and output_dir.exists():
        shutil.rmtree(output_dir)
    saved = output_dir / "settings.yaml"
    if saved.exists():
        before, now = yaml.safe_load(saved.read_text()), settings.to_dict()
        # A training option that a newer nlu added is absent from an older run's file: at its
        # default it changes nothing, so the run still resumes.
        defaults = {"training": dataclasses.asdict(TrainingConfig())}
        changed = sorted(f"{section}.{key}" for section in now if isinstance(now[section], dict)
                         for key in set(now[section]) | set(before.get(section) or {})
                         if (before.get(section) or {}).get(key, defaults.get(section, {}).get(key))
                         != now[section].get(key))
        changed += [section for section in now if not isinstance(now[section], dict) and before.get(section) != now[section]]
        if changed:
            raise ConfigError(f"{output_dir} holds a run with other settings ({', '.join(changed)}); "
                              f"pass --force to start over or choose another training.output_dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    settings.save(saved)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nlu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    pretrain = commands.add_parser("pretrain", help="MLM + NSP pretraining (resumes if the run folder has checkpoints)")
    pretrain.add_argument("--config", required=True, help="task YAML, e.g. tasks/pretrain_news.yaml")
    pretrain.add_argument("--force", action="store_true", help="delete the run folder first instead of resuming")
    pretrain.add_argument("overrides", nargs="*", help="section.key=value, e.g. training.max_steps=100")
    pretrain.set_defaults(handler=command_pretrain)

    finetune = commands.add_parser("finetune", help="fine-tune for NER or classification, then evaluate on test")
    finetune.add_argument("task", choices=["ner", "classify"])
    finetune.add_argument("--config", required=True, help="task YAML, e.g. tasks/wnut16_ner.yaml")
    finetune.add_argument("--force", action="store_true", help="delete the run folder first instead of resuming")
    finetune.add_argument("overrides", nargs="*", help="section.key=value, e.g. init=runs/pretrain_news/model")
    finetune.set_defaults(handler=command_finetune)

    for name, handler, helptext in (("evaluate", command_evaluate, "score a fine-tuned model on a labelled file"),
                                    ("predict", command_predict, "tag or classify text")):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("task", choices=["ner", "classify"])
        sub.add_argument("--model", required=True, help="a fine-tuned model directory (e.g. runs/x/best)")
        if name == "evaluate":
            sub.add_argument("--data", required=True, help="CoNLL/JSONL (ner) or CSV/TSV/JSONL (classify)")
            sub.add_argument("--out", help="report folder (default: MODEL/evaluation)")
            sub.add_argument("--repair", action="store_true", help="ner: rewrite I-X that starts an entity to B-X")
            sub.add_argument("--text-column", default="text", help="classify: column holding the text")
            sub.add_argument("--text-pair-column", default=None, help="classify: column of the second text of a pair")
            sub.add_argument("--label-column", default="label", help="classify: column holding the label")
        else:
            source = sub.add_mutually_exclusive_group(required=True)
            source.add_argument("--text", nargs="+", help="one or more texts (ner: words separated by spaces)")
            source.add_argument("--file", help="a text file, one text (ner: one sentence) per line")
        sub.add_argument("--max-length", type=int, default=None,
                         help="sub-tokens per input (default: as the model was fine-tuned, else 128)")
        sub.add_argument("--stride", type=int, default=None,
                         help="ner: sub-tokens shared by consecutive windows (default: as fine-tuned, else 32)")
        sub.add_argument("--batch-size", type=int, default=64)
        sub.set_defaults(handler=handler)

    run = commands.add_parser("run", help="the main job: pretrain, fine-tune NER and classification, one report")
    run.add_argument("pipeline", nargs="?", default="tasks/default.yaml")
    run.add_argument("--quick", action="store_true", help="a tiny budget (under 2 minutes) to check everything works")
    run.add_argument("--force", action="store_true", help="redo finished stages instead of reusing them")
    run.add_argument("--runs-dir", default="runs")
    run.add_argument("--reports-dir", default="reports")
    run.set_defaults(handler=command_run)

    export = commands.add_parser("export", help="write an nlu model as a transformers BERT checkpoint")
    export.add_argument("--model", required=True)
    export.add_argument("--out", required=True)
    export.set_defaults(handler=command_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse cannot take positional overrides interleaved with options (--force after them).
    stray = [item for item in extra if item.startswith("-") or "=" not in item or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if hasattr(args, "overrides"):
        args.overrides = [*args.overrides, *extra]
    try:
        args.handler(args)
    except NluError as error:
        print(f"nlu: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nnlu: interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
