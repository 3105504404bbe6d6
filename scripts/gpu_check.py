#!/usr/bin/env python3
"""The GPU check of issue #21, every step in one process (scripts/gpu_check.sh runs it; about 5
minutes on one H100/H200, at most 8):

    scripts/gpu_check.sh                      # on the GPU machine: writes reports/gpu.md and gpu.json
    scripts/gpu_check.sh --dry-run --out DIR  # the same steps on the CPU at tiny sizes (the test suite runs this)

1. the tests of the code that behaves differently on a GPU (hardware choice, the model's layouts and
   host syncs, attention, dropout); with CUDA present, the CUDA tests in them run too;
2. parity with transformers on the device: fp32 with TF32 off (max |difference| <= 1e-5) and both
   sides under bf16 autocast (within BF16_TOLERANCE of the largest output);
3. scripts/bench.py at BERT-base in bf16, model-FLOP utilisation against the GPU's bf16 dense peak;
4. PAN-X-style NER (tasks/panx_de.yaml: GermEval 2014 sentences mapped to PER/ORG/LOC) fine-tuned by
   nlu and by transformers' Trainer on the same device and precision (bf16 where the GPU has it).

A step that fails is recorded in the report with its error and the exit status is 1; the other
steps still run. --checkpoint DIR defaults to multilingual-e5-small, else all-MiniLM-L6-v2, from
$NLU_CACHE/models or .gpu/models; --data (GermEval's folder with dev.txt and test.txt, or one CoNLL
file, the NER splits are drawn from) to ../shared/data/ner-multilingual/de, else .gpu/ner/de. The GPU
machine has no hub and no seqeval: copy .gpu/models/all-MiniLM-L6-v2, .gpu/ner/de/{dev,test}.txt and
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
from nlu.crosslingual import read_blocks, sample_blocks, write_blocks
from nlu.config import EncoderConfig
from nlu.interop import hf_state_to_nlu
from nlu.model import EncoderModel, ForPreTraining, ForTokenClassification
from nlu.options import fill
from nlu.parity import max_difference, parity_batch
from nlu.reference import recipe_of
from nlu.reporting import command_line, machine, machine_line, table, write_report
from nlu.runs import run
from nlu.settings import load_settings
from nlu.sources import cache_root
from nlu.tasks.ner import NerData
from nlu.tokenizer import save_tokenizer, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
NER_TASK = ROOT / "tasks" / "panx_de.yaml"
FP32_TOLERANCE = 1e-5
BF16_TOLERANCE = 5e-2
"""Largest difference allowed between nlu and transformers under the same bf16 autocast, relative
to the largest fp32 output: bf16 keeps 8 significant bits (relative rounding 2⁻⁹ per product),
and the two sides round at different places (fused QKV, the CPU's direct attention path)."""


def relative(ours: torch.Tensor, theirs: torch.Tensor, reference: torch.Tensor, real: torch.Tensor | None) -> float:
    return max_difference(ours.float(), theirs.float(), real) / float(reference.abs().max())


@torch.no_grad()
def parity(device: torch.device) -> dict:
    """nlu against transformers with the same weights on DEVICE, on a padded batch: fp32 (TF32 off)
    and both sides under bf16 autocast. On a GPU the padded batch takes nlu's masked layout."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    small = device.type == "cpu"  # the dry run: seconds, not minutes
    options = dict(hidden_size=64 if small else 256, num_layers=2 if small else 4, num_heads=4,
                   intermediate_size=128 if small else 1024)
    bert = transformers.BertConfig(vocab_size=1000, hidden_size=options["hidden_size"],
                                   num_hidden_layers=options["num_layers"], num_attention_heads=4,
                                   intermediate_size=options["intermediate_size"], max_position_embeddings=128,
                                   attn_implementation="sdpa", num_labels=5)
    inputs = {key: value.to(device) for key, value in parity_batch(1000, 2, 8, 96, seed=0).items()}
    real = inputs["attention_mask"]
    checks = {}
    for hf_class, nlu_class, read_theirs, read_ours in (
            (transformers.BertModel, EncoderModel, lambda out: out.last_hidden_state, lambda out: out.hidden_states),
            (transformers.BertForPreTraining, ForPreTraining, lambda out: out.prediction_logits,
             lambda out: out.mlm_logits),
            (transformers.BertForTokenClassification, ForTokenClassification, lambda out: out.logits,
             lambda out: out.logits)):
        torch.manual_seed(0)
        theirs = hf_class(bert).to(device).eval()
        ours = nlu_class(EncoderConfig(vocab_size=1000, max_position_embeddings=128, labels=[str(i) for i in range(5)],
                                       **options))
        ours.load_state_dict(hf_state_to_nlu(theirs.state_dict(), options["num_layers"]), strict=False)
        ours = ours.to(device).eval()
        reference = read_theirs(theirs(**inputs))
        fp32 = max_difference(read_ours(ours(**inputs)), reference, real)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            ours_bf16, theirs_bf16 = read_ours(ours(**inputs)), read_theirs(theirs(**inputs))
        checks[nlu_class.__name__] = {
            "fp32_max_abs_difference": fp32, "fp32_ok": fp32 <= FP32_TOLERANCE,
            "bf16_relative_difference": relative(ours_bf16, theirs_bf16, reference, real),
            "bf16_nlu_vs_fp32": relative(ours_bf16, reference, reference, real),
            "bf16_transformers_vs_fp32": relative(theirs_bf16, reference, reference, real)}
        checks[nlu_class.__name__]["bf16_ok"] = checks[nlu_class.__name__]["bf16_relative_difference"] <= BF16_TOLERANCE
    return {"device": str(device), "fp32_tolerance": FP32_TOLERANCE, "bf16_tolerance": BF16_TOLERANCE,
            "checks": checks, "ok": all(c["fp32_ok"] and c["bf16_ok"] for c in checks.values())}


def panx_folder(source: Path, sizes: list[int], folder: Path) -> Path:
    """train/dev/test.conll drawn, seeded, from SOURCE: a folder with GermEval 2014's dev.txt (train and
    dev sentences) and test.txt (test) as ../shared holds them, or one CoNLL file for all
    three: a PAN-X-shaped local_dir. Dev and test keep the sentences whose tags the training sample has
    (nlu refuses tags it never trained on)."""
    wanted = dict(zip(("train", "dev", "test"), sizes))
    draws = ({source / "dev.txt": {"train": wanted["train"], "dev": wanted["dev"]},
              source / "test.txt": {"test": wanted["test"]}} if source.is_dir() else {source: wanted})
    samples = {split: blocks for path, counts in draws.items()
               for split, blocks in sample_blocks(read_blocks(path), counts, seed=13).items()}
    tags = lambda block: {line.split()[-1] for line in block}  # noqa: E731
    known = set().union(*map(tags, samples["train"]))
    for split, blocks in samples.items():
        write_blocks(folder / f"{split}.conll", [block for block in blocks if tags(block) <= known])
    return folder


def ner(args) -> dict:
    """nlu (``nlu finetune ner --config tasks/panx_de.yaml``) and transformers' Trainer (the same with
    framework=transformers) on the same folder, recipe (the task file's) and precision, word
    embeddings frozen on both as the task file has it."""
    folder = panx_folder(Path(args.data), args.sentences, args.out / "panx")
    common = [f"init={args.checkpoint}", f"data.local_dir={folder}", f"training.epochs={args.epochs}",
              "training.mixed_precision=auto", "training.progress=false",
              f"training.cpu={str(args.device == 'cpu').lower()}", "training.save_every=100000"]
    sides = {framework: run(load_settings(NER_TASK, [*common, f"framework={framework}",
                                                     f"training.output_dir={args.out / framework}"], task="ner"),
                            force=True).summary for framework in ("nlu", "transformers")}
    precision = json.loads((args.out / "nlu" / "trainer_state.json").read_text())["precision"]
    figures = {framework: {"train_seconds": summary["train_seconds"], "steps": summary["steps"],
                           "test_f1": summary["test_f1"]} for framework, summary in sides.items()}
    settings = load_settings(NER_TASK, common, task="ner")
    return {"checkpoint": str(args.checkpoint), "sentences": dict(zip(("train", "dev", "test"), args.sentences)),
            "budget": recipe_of(fill(NerData, settings.data, "data"), settings.training),
            "nlu": figures["nlu"] | {"precision": precision}, "transformers": figures["transformers"],
            "time_ratio": figures["nlu"]["train_seconds"] / figures["transformers"]["train_seconds"]}


def tiny_checkpoint(folder: Path, data: Path) -> Path:
    """A small random transformers BERT with a WordPiece vocabulary trained on DATA: the dry run's
    stand-in for a real checkpoint (no download, seconds to build)."""
    text = (data / "dev.txt" if data.is_dir() else data).read_text(encoding="utf-8")
    sentences = [line.split()[0] for line in text.splitlines() if line.strip()]
    tokenizer = train_tokenizer(iter(sentences), vocab_size=2000)
    save_tokenizer(tokenizer, folder)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=128, max_position_embeddings=128)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def render(results: dict) -> str:
    lines = ["# GPU check", "", f"Made by `{results['command']}`" + (" (dry run on the CPU, tiny sizes: no figure "
             "here is a GPU measurement)" if results["dry_run"] else "") + ".", "",
             f"Machine: {machine_line(results['machine'])}.", ""]
    if results.get("failures"):
        lines += ["**Failed:**", "", *[f"- {failure}" for failure in results["failures"]], ""]
    tested = results.get("tests")
    if tested:
        lines += [f"## Tests\n\n`{tested['command']}`: exit status {tested['status']}.", ""]
    parity_result = results.get("parity")
    if parity_result:
        lines += [f"## Parity with transformers on {parity_result['device']} (padded batch, same weights)", "",
                  f"fp32 (TF32 off) must agree to {parity_result['fp32_tolerance']:g} (max abs difference at real "
                  f"tokens); under bf16 autocast both sides must agree to {parity_result['bf16_tolerance']:g} of the "
                  "largest fp32 output. Each side's bf16 error against fp32 is shown beside it.", ""]
        lines += table(["model", "fp32 max |Δ|", "bf16 nlu vs transformers", "bf16 nlu vs fp32",
                        "bf16 transformers vs fp32", "pass"],
                       [[name, f"{c['fp32_max_abs_difference']:.2e}", f"{c['bf16_relative_difference']:.2e}",
                         f"{c['bf16_nlu_vs_fp32']:.2e}", f"{c['bf16_transformers_vs_fp32']:.2e}",
                         "yes" if c["fp32_ok"] and c["bf16_ok"] else "**no**"]
                        for name, c in parity_result["checks"].items()]) + [""]
    bench = results.get("bench")
    if bench:
        gpu = bench.get("gpu") or {}
        peak = gpu.get("dense_bf16_peak_flops") or bench["matmul_peak_flops"][bench["precision"]]
        against = f"the {gpu['name']} bf16 dense peak" if gpu.get("dense_bf16_peak_flops") else "the measured matmul peak"
        lines += [f"## Pretraining step, {bench['precision']} (scripts/bench.py; utilisation against {against},"
                  f" {peak / 1e12:,.1f} TFLOP/s; measured bf16 matmul "
                  f"{bench['matmul_peak_flops']['bf16'] / 1e12:,.1f} TFLOP/s)", ""]
        rows = []
        for config, entry in bench["configs"].items():
            pre = entry["pretraining"]
            for name, seconds in pre["seconds"].items():
                rows.append([config, name, f"{pre['tokens'] / seconds:,.0f}", f"{pre['useful_flops'] / seconds / peak:.1%}"])
        lines += table(["config", "run", "tokens/s", "model FLOP utilisation"], rows) + [""]
    ner_result = results.get("ner")
    if ner_result:
        sides = (("nlu", ner_result["nlu"]), ("transformers Trainer", ner_result["transformers"]))
        lines += [f"## PAN-X-style NER fine-tuning: {ner_result['checkpoint']}", "",
                  f"Sentences {ner_result['sentences']}, {ner_result['budget']}, word embeddings frozen on both "
                  f"sides; nlu precision: {ner_result['nlu']['precision']['name']} "
                  f"({ner_result['nlu']['precision']['reason']}), the Trainer the same.", ""]
        lines += table(["side", "train seconds", "steps", "test entity F1"],
                       [[name, f"{side['train_seconds']:.1f}", side["steps"], f"{side['test_f1']:.4f}"]
                        for name, side in sides]) + ["", f"nlu's time / the Trainer's: {ner_result['time_ratio']:.2f}.", ""]
    return "\n".join(lines)


STEPS = {"dry_run": {"tests": ["tests/test_hardware.py"], "config": "tiny", "steps": 2, "sentences": [16, 16, 32],
                     "epochs": 1},
         "gpu": {"tests": ["tests/test_hardware.py", "tests/test_model.py", "tests/test_attention.py"],
                 "config": "base", "steps": 10, "sentences": [2000, 200, 1000], "epochs": 3}}
CHECKPOINTS = [root / name for name in ("multilingual-e5-small", "all-MiniLM-L6-v2") for root in (
    cache_root() / "models", ROOT / ".gpu" / "models")]
DATA = [ROOT.parent / "shared" / "data" / "ner-multilingual" / "de", ROOT / ".gpu" / "ner" / "de"]


def tests(files: list[str]) -> dict:
    """pytest in its own process (its collection and fixtures stay out of the measurements)."""
    # addopts off: the GPU machine may lack pytest-xdist
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", *files]
    return {"command": " ".join(["python", *command[1:]]), "status": subprocess.run(command, cwd=ROOT).returncode}


def bench_step(device: str, plan: dict, work: Path) -> dict:
    bench.main(["--device", device, "--precision", "bf16", "--configs", plan["config"], "--sections", "pretraining",
                "--steps", str(plan["steps"]), "--warmup", "2", "--no-memory", "--out", str(work)])
    return json.loads(next(work.glob("bench_*.json")).read_text())


def attempt(name: str, work: Callable[[], dict], failures: list[str]) -> dict | None:
    """One step; a failure is printed and recorded, and the next step still runs."""
    print(f"== {name}", flush=True)
    try:
        return work()
    except Exception as error:  # noqa: BLE001 — every step is reported, whatever broke it
        traceback.print_exc()
        failures.append(f"{name}: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}")
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU at tiny sizes")
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--command", help=argparse.SUPPRESS)  # the gpu_check.sh command line, for the report
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("torch sees no GPU (use --dry-run)")
    plan, device = STEPS["dry_run" if args.dry_run else "gpu"], "cpu" if args.dry_run else "cuda"
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        results = steps(args, plan, device, Path(folder))
    print(write_report(args.out / "gpu", results, render))
    print("\n".join(results["failures"]) or "every step passed", file=sys.stderr)
    return 1 if results["failures"] else 0


def steps(args: argparse.Namespace, plan: dict, device: str, work: Path) -> dict:
    data = args.data or (ROOT / "data" / "ner" / "wnut16" / "train.conll" if args.dry_run else
                         next((path for path in DATA if all((path / name).is_file() for name in ("dev.txt", "test.txt"))),
                              None))
    checkpoint = args.checkpoint or (tiny_checkpoint(work / "tiny-bert", data) if args.dry_run else next(
        (path for path in CHECKPOINTS if (path / "config.json").is_file()), None))
    failures: list[str] = []
    results = {"command": args.command or command_line(), "dry_run": args.dry_run, "machine": machine("transformers"),
               "tests": attempt("tests", lambda: tests(plan["tests"]), failures),
               "parity": attempt(f"parity on {device}", lambda: parity(torch.device(device)), failures),
               "bench": attempt(f"bench: {plan['config']}, bf16, {device}", lambda: bench_step(device, plan, work),
                                failures)}
    if checkpoint and data:
        ner_args = argparse.Namespace(device=device, checkpoint=checkpoint, data=data, sentences=plan["sentences"],
                                      epochs=plan["epochs"], out=work)
        results["ner"] = attempt(f"NER fine-tuning: nlu vs Trainer ({checkpoint}, {data})", lambda: ner(ner_args),
                                 failures)
    else:
        failures.append("NER fine-tuning: skipped, no checkpoint or NER data found (see --checkpoint, --data)")
    if results["tests"] and results["tests"]["status"]:
        failures.append(f"tests: exit status {results['tests']['status']}")
    if results["parity"] and not results["parity"]["ok"]:
        failures.append("parity: outside the tolerance")
    return results | {"failures": failures}

if __name__ == "__main__":
    sys.exit(main())
