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
    print(json.dumps({key: summary[key] for key in ("steps", "tokens_per_second", "final_eval", "unigram_mlm_loss")},
                     indent=2))


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
    import shutil

    import yaml

    from nlu.errors import ConfigError

    if force and output_dir.exists():
        shutil.rmtree(output_dir)
    saved = output_dir / "settings.yaml"
    if saved.exists():
        before, now = yaml.safe_load(saved.read_text()), settings.to_dict()
        changed = sorted(f"{section}.{key}" for section in now if isinstance(now[section], dict)
                         for key in set(now[section]) | set(before.get(section) or {})
                         if (before.get(section) or {}).get(key) != now[section].get(key))
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

    export = commands.add_parser("export", help="write an nlu model as a transformers BERT checkpoint")
    export.add_argument("--model", required=True)
    export.add_argument("--out", required=True)
    export.set_defaults(handler=command_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
