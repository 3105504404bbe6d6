#!/usr/bin/env python3
"""The GPU check of issue #21, every step in one process (scripts/gpu_check.sh runs it; about 5
minutes on one H100/H200, at most 8):

    scripts/gpu_check.sh                      # on the GPU machine: reports/gpu.md, and each step's own report
    scripts/gpu_check.sh --dry-run            # the same steps on the CPU at tiny sizes, into runs/gpu_check_dry_run

1. the tests of the code that behaves differently on a GPU (hardware choice, the model's layouts and
   host syncs, attention, dropout); with CUDA present, the CUDA tests in them run too;
2. parity with transformers on the device (scripts/check_hf_parity.py): fp32 with TF32 off, and both
   sides under bf16 autocast;
3. scripts/bench.py at BERT-base in bf16: OUT/bench_bf16_cuda.md, utilisation against the GPU's bf16 dense peak;
4. tasks/sweeps/gpu_panx.yaml: PAN-X-style German NER fine-tuned by nlu and by transformers' Trainer on
   the same device and precision: OUT/gpu_panx/sweep.md.

A step that fails is recorded in the report with its error and the exit status is 1; the other
steps still run. --checkpoint defaults to multilingual-e5-small, else all-MiniLM-L6-v2, from
$NLU_CACHE/models or .gpu/models; --data to runs/panx_data/de (python scripts/panx_data.py). The GPU
machine has no hub, no ../shared and no seqeval: carry runs/panx_data, .gpu/models/<checkpoint> and
.gpu/wheels/seqeval-*.tar.gz (pip download --no-deps seqeval==1.2.2 -d .gpu/wheels) there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
import transformers

import bench  # scripts/ is on sys.path for a script
from nlu.data.ner import read_ner_file
from nlu.parity import check as check_parity
from nlu.reporting import command_line, machine, machine_line, table, write_report
from nlu.sources import cache_root
from nlu.sweep import load_sweep, run_sweep, write_sweep
from nlu.tokenizer import save_tokenizer, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
STEPS = {"dry_run": {"tests": ["tests/test_hardware.py"], "config": "tiny", "steps": 2,
                     "sweep": {"title": "GPU check, dry run: WNUT-16 slices from a tiny random BERT, nlu vs transformers' "
                                        "Trainer on the CPU", "subsets": {"train": 16, "dev": 16, "test": 32},
                               "overrides": {"training.epochs": 1, "training.cpu": True, "data.tag_map": None}}},
         "gpu": {"tests": ["tests/test_hardware.py", "tests/test_model.py", "tests/test_attention.py"],
                 "config": "base", "steps": 10, "sweep": {}}}
CHECKPOINTS = [root / name for name in ("multilingual-e5-small", "all-MiniLM-L6-v2") for root in (
    cache_root() / "models", ROOT / ".gpu" / "models")]


def tests(files: list[str]) -> dict:
    """pytest in its own process (its collection and fixtures stay out of the measurements)."""
    # addopts off: the GPU machine may lack pytest-xdist
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", *files]
    return {"command": " ".join(["python", *command[1:]]), "status": subprocess.run(command, cwd=ROOT).returncode}


def bench_step(device: str, plan: dict, out: Path) -> dict:
    bench.main(["--device", device, "--precision", "bf16", "--configs", plan["config"], "--sections", "pretraining",
                "--steps", str(plan["steps"]), "--warmup", "2", "--no-memory", "--out", str(out)])
    stem = bench.report_stem(out, "bf16", torch.device(device).type)
    return {"report": stem.with_suffix(".md").name, "headline": json.loads(stem.with_suffix(".json").read_text())["headline"]}


def ner_step(plan: dict, checkpoint: Path, data: Path, runs: Path, out: Path) -> dict:
    """tasks/sweeps/gpu_panx.yaml on CHECKPOINT and DATA (the dry run: small subsets, one epoch)."""
    sweep = load_sweep(ROOT / "tasks" / "sweeps" / "gpu_panx.yaml")
    sweep.title, sweep.subsets = plan["sweep"].get("title", sweep.title), plan["sweep"].get("subsets", {})
    sweep.overrides |= {"init": str(checkpoint), "data.local_dir": str(data), **plan["sweep"].get("overrides", {})}
    results = run_sweep(sweep, "ner", runs)
    seconds = {row: stats["train_seconds"]["mean"] for row, stats in results["statistics"].items()}
    return {"report": str(write_sweep(results, out / "gpu_panx").relative_to(out)), "headline": results["headline"],
            "time_ratio": seconds["nlu"] / seconds["transformers Trainer"]}


def tiny_checkpoint(folder: Path, data: Path) -> Path:
    """A small random transformers BERT with a WordPiece vocabulary trained on DATA's train split:
    the dry run's stand-in for a real checkpoint (no download, seconds to build)."""
    tokenizer = train_tokenizer(iter(" ".join(s.words) for s in read_ner_file(data / "train.conll")), vocab_size=2000)
    save_tokenizer(tokenizer, folder)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=128, max_position_embeddings=128)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def attempt(name: str, work: Callable[[], dict], failures: list[str]) -> dict | None:
    """One step; a failure is printed and recorded, and the next step still runs."""
    print(f"== {name}", flush=True)
    try:
        return work()
    except Exception as error:  # noqa: BLE001 — every step is reported, whatever broke it
        traceback.print_exc()
        failures.append(f"{name}: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}")
        return None


def render(results: dict) -> str:
    dry_run = (" (dry run on the CPU at tiny sizes, bf16 emulated where the CPU lacks it: no figure in these reports "
               "is a measurement)") if results["dry_run"] else ""
    lines = ["# GPU check", "", f"Made by `{results['command']}`{dry_run}.", "",
             f"Machine: {machine_line(results['machine'])}.", ""]
    if results.get("failures"):
        lines += ["**Failed:**", "", *[f"- {failure}" for failure in results["failures"]], ""]
    if results.get("tests"):
        lines += [f"## Tests\n\n`{results['tests']['command']}`: exit status {results['tests']['status']}.", ""]
    for precision, check in (results.get("parity") or {}).items():
        lines += [f"## Parity with transformers, {precision}, {check['device']} (scripts/check_hf_parity.py)", "",
                  f"Worst difference {check['worst']:.2e} against a tolerance of {check['tolerance']:g} "
                  f"({'relative to the largest fp32 output' if check['bf16'] else 'absolute'}): "
                  f"{'pass' if check['ok'] else '**fail**'}.", "",
                  *table(["output", *check["differences"]], [[output, *(f"{values[output]:.2e}" for values in
                                                                         check["differences"].values())]
                                                             for output in next(iter(check["differences"].values()))]), ""]
    for key, heading in (("bench", "Pretraining step, bf16 (scripts/bench.py)"),
                         ("ner", "PAN-X-style NER fine-tuning, nlu vs transformers' Trainer")):
        if results.get(key):
            step = results[key]
            lines += [f"## {heading}", "", f"[{step['report']}]({step['report']}): {step['headline']}."
                      + (f" nlu's training time / the Trainer's: {step['time_ratio']:.2f}." if "time_ratio" in step else ""), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU at tiny sizes")
    parser.add_argument("--out", type=Path, help="where the reports go (default reports/; a dry run: runs/gpu_check_dry_run,"
                                                 " so that it never writes over the committed reports)")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--data", type=Path, help="a folder with train/dev/test.conll (default runs/panx_data/de)")
    parser.add_argument("--command", help=argparse.SUPPRESS)  # the gpu_check.sh command line, for the report
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("torch sees no GPU (use --dry-run)")
    args.out = args.out or ROOT / ("runs/gpu_check_dry_run" if args.dry_run else "reports")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        results = steps(args, Path(folder))
    print(write_report(args.out / "gpu", results, render))
    print("\n".join(results["failures"]) or "every step passed", file=sys.stderr)
    return 1 if results["failures"] else 0


def steps(args: argparse.Namespace, work: Path) -> dict:
    """Every step, each through :func:`attempt`, and the failures they and their checks give."""
    plan, device = STEPS["dry_run" if args.dry_run else "gpu"], "cpu" if args.dry_run else "cuda"
    data = args.data or ROOT / ("data/ner/wnut16" if args.dry_run else "runs/panx_data/de")
    failures: list[str] = []
    checkpoint = args.checkpoint or (attempt("a tiny checkpoint", lambda: tiny_checkpoint(work / "tiny-bert", data), failures)
                                     if args.dry_run else next((path for path in CHECKPOINTS
                                                                if (path / "config.json").is_file()), None))
    results = {"command": args.command or command_line(), "dry_run": args.dry_run, "machine": machine("transformers"),
               "tests": attempt("tests", lambda: tests(plan["tests"]), failures),
               "parity": attempt(f"parity on {device}", lambda: {precision: check_parity(device, bf16)
                                 for precision, bf16 in (("fp32", False), ("bf16", True))}, failures),
               "bench": attempt(f"bench: {plan['config']}, bf16, {device}", lambda: bench_step(device, plan, args.out),
                                failures),
               "ner": attempt(f"NER fine-tuning: nlu vs Trainer ({checkpoint}, {data})",
                              lambda: ner_step(plan, checkpoint, data, work / "runs", args.out), failures)
               if checkpoint else None}
    if not checkpoint and not args.dry_run:  # a dry run's tiny checkpoint failed as a step of its own
        failures.append(f"NER fine-tuning: skipped, no checkpoint in {', '.join(map(str, CHECKPOINTS))} (see --checkpoint)")
    if results["tests"] and results["tests"]["status"]:
        failures.append(f"tests: exit status {results['tests']['status']}")
    failures += [f"parity {precision}: outside the tolerance" for precision, check in (results["parity"] or {}).items()
                 if not check["ok"]]
    return results | {"failures": failures}


if __name__ == "__main__":
    sys.exit(main())
