"""Does pretraining help? Fine-tune from the pretrained encoder and from random weights of the
same shape, over several seeds, and report mean ± std on the test set.

    python scripts/compare_init.py --task ner --init runs/default/pretrain/model --seeds 1 2 3
    python scripts/compare_init.py --task classify --init runs/default/pretrain/model --seeds 1 2 3

The single-seed comparison in the main job's report cannot separate a few points of F1 from
seed noise (the WNUT-16 test split has 174 entities); this script can. Writes
reports/init_<task>.md and .json (or --name) with the exact command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path

from nlu.files import write_text_atomic
from nlu.settings import load_settings

CONFIGS = {"ner": "tasks/wnut16_ner.yaml", "classify": "tasks/rotten_tomatoes.yaml"}
HEADLINES = {"ner": ["test_f1", "test_macro_f1", "dev_f1"],
             "classify": ["test_macro_f1", "test_balanced_accuracy", "test_accuracy",
                          "test_recall[fresh]", "test_recall[plot]", "test_recall[rotten]"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(CONFIGS), required=True)
    parser.add_argument("--init", required=True, help="the pretrained nlu (or transformers BERT) checkpoint")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--runs-dir", default="runs/compare_init")
    parser.add_argument("--out", default="reports")
    parser.add_argument("--name", help="report file stem (default: init_<task>)")
    parser.add_argument("overrides", nargs="*", help="extra section.key=value settings for every run")
    args = parser.parse_args()
    from nlu.tasks import classify, ner

    module = {"ner": ner, "classify": classify}[args.task]
    started = time.perf_counter()
    results: dict[str, list[dict]] = {"pretrained": [], "scratch": []}
    for seed in args.seeds:
        for start in results:
            output_dir = Path(args.runs_dir) / f"{args.task}-{start}-seed{seed}"
            shutil.rmtree(output_dir, ignore_errors=True)
            settings = load_settings(CONFIGS[args.task], [
                f"init={args.init}", f"from_scratch={json.dumps(start == 'scratch')}", f"training.seed={seed}",
                f"training.output_dir={output_dir}", *args.overrides], task=args.task)
            summary = module.run(settings)
            results[start].append({"seed": seed, **{key: summary[key] for key in HEADLINES[args.task]}})
            print(f"{args.task} {start} seed {seed}: {summary[HEADLINES[args.task][0]]:.4f}", flush=True)
    seconds = time.perf_counter() - started
    command = "python " + " ".join(shlex.quote(part) for part in sys.argv)
    write_report(Path(args.out), args.name or f"init_{args.task}", args.task, results, command, seconds)
    return 0


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def write_report(out: Path, name: str, task: str, results: dict[str, list[dict]], command: str, seconds: float) -> None:
    keys = HEADLINES[task]
    headline = keys[0]
    gaps = [p[headline] - s[headline] for p, s in zip(results["pretrained"], results["scratch"])]
    wins = sum(gap > 0 for gap in gaps)
    lines = [
        f"# Pretrained vs random initialisation: {task}", "",
        f"Made by `{command}` in {seconds:.0f} s. Same architecture, tokenizer, data, hyper-parameters and seed "
        "within each pair; only the starting weights differ. Mean ± sample std over seeds.", "",
        "| metric | from pretrained | from random init |", "|---|---|---|",
        *[f"| {key} | {mean_std([r[key] for r in results['pretrained']])} | "
          f"{mean_std([r[key] for r in results['scratch']])} |" for key in keys], "",
        f"Paired by seed, pretrained minus random on {headline}: {', '.join(f'{gap:+.4f}' for gap in gaps)} "
        f"(pretrained ahead in {wins} of {len(gaps)} seeds; mean {statistics.mean(gaps):+.4f}).", "",
        "| seed | " + " | ".join(f"{key} pretrained | {key} random" for key in keys[:2]) + " |",
        "|---|" + "---|" * (2 * len(keys[:2])),
        *[f"| {p['seed']} | " + " | ".join(f"{p[key]:.4f} | {s[key]:.4f}" for key in keys[:2]) + " |"
          for p, s in zip(results["pretrained"], results["scratch"])], "",
    ]
    write_text_atomic(out / f"{name}.md", "\n".join(lines))
    write_text_atomic(out / f"{name}.json", json.dumps({"command": command, "seconds": seconds, **results}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
