"""Does pretraining help? The sweep tasks/sweeps/init_<task>.yaml from a given checkpoint: the same
architecture, tokenizer, data, budget and seed, from the pretrained weights and from random ones.

    python scripts/compare_init.py --task ner --init runs/default/pretrain/model --seeds 1 2 3

is ``nlu sweep tasks/sweeps/init_ner.yaml init=runs/default/pretrain/model --seeds 1 2 3 --out
reports/init_ner`` (runs reused when finished, mean ± std over seeds, a paired bootstrap of
scratch against pretrained); this keeps the command line of the reports it made before nlu sweep.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlu.reporting import command_line
from nlu.sweep import load_sweep, run_sweep, write_sweep

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["ner", "classify"], required=True)
    parser.add_argument("--init", required=True, help="the pretrained nlu (or transformers BERT) checkpoint")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "compare_init")
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    parser.add_argument("--name", help="report folder name under --out (default: init_<task>)")
    parser.add_argument("overrides", nargs="*", help="extra section.key=value settings for every run")
    args = parser.parse_args(argv)
    sweep = load_sweep(ROOT / "tasks" / "sweeps" / f"init_{args.task}.yaml")
    sweep.name, sweep.seeds = args.name or sweep.name, args.seeds
    sweep.overrides |= {"init": args.init} | dict(item.split("=", 1) for item in args.overrides)
    results = run_sweep(sweep, args.task, args.runs_dir) | {"command": command_line(argv and [__file__, *argv], root=ROOT)}
    print(f"report: {write_sweep(results, args.out / sweep.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
