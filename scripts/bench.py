"""Speed of nlu against transformers' BERT on the same work, in one process.

    python scripts/bench.py                                 # small config (hidden 256, 4 layers), CPU, fp32
    python scripts/bench.py --precision bf16                # the same under bf16 autocast, both sides
    python scripts/bench.py --configs small base --steps 5 --compile --profile
    python scripts/bench.py --device cuda --precision bf16 --configs base --sections pretraining

1. Pretraining step (forward + backward + AdamW), batch 32 × 128 (tiny: 4 × 32), 15% masked, identical weights
   and inputs: nlu vs BertForPreTraining (dense vocabulary projection) vs BertForPreTraining with
   the masked-positions-only projection done by hand on its submodules.
2. NER: a fine-tuning step and inference on real WNUT-16 sentences, nlu vs
   BertForTokenClassification fed by DataCollatorForTokenClassification (pad to longest).
3. Model FLOP utilisation: useful FLOPs (6·params·tokens for training, 2·params·tokens for
   inference, vocabulary projection counted at masked positions only, plus attention), divided by
   the peak of the precision used: on the CPU a large matmul's FLOP/s in that precision measured in
   the same run (fp32 and bf16 are both measured and reported); on a GPU its dense peak from
   :data:`GPU_DENSE_PEAKS` (the measured matmul rate is reported beside it).
4. ``--precision bf16`` runs every forward of both sides under ``torch.autocast(bf16)``, weights
   and optimizer in fp32 (as Accelerate's mixed precision does).
5. Peak memory of each run: on the CPU each run is repeated alone in a child process, and the
   growth of its peak resident memory over the memory held before the first step is reported; on
   CUDA, ``torch.cuda.max_memory_allocated`` growth in this process.
6. ``--compile`` adds nlu under ``torch.compile``; ``--profile`` adds a ``torch.profiler`` summary of
   an nlu pretraining step, grouped into matmuls, attention, dropout, normalisation, optimizer, ….
Runs of one section alternate step by step (the host is shared: drifting load then hits every run
alike); medians over the steps after warm-up. Writes reports/bench[_bf16][_cuda].md and .json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers

from nlu.benchmark import (CONFIGS, VOCAB, Clock, Step, alternate, bert_config, gpu_dense_peak, matmul_peak,
                           operator_shares, operator_times, peak_memory_growth, training_step)
from nlu.data.ner import encode_ner, label_list, read_ner_file
from nlu.hardware import choose_device
from nlu.interop import from_transformers
from nlu.reporting import command_line, machine, machine_line, table, write_report
from nlu.tasks.finetune import pad_batch, predict_logits
from nlu.tokenizer import train_tokenizer

PRETRAINING_BATCH = {"tiny": (4, 32)}
"""(sequences, length) of the pretraining step where it is not 32 × 128."""
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

AUTOCAST_NOTE = " autocast on both sides (weights, optimizer, softmax accumulation, LayerNorm and losses in fp32)"


def encoder_parameters(model) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def attention_flops(options: dict, tokens: int, length: int, passes: int) -> float:
    """QKᵀ and AV: 2·2·length·hidden per token per layer forward; backward doubles it twice."""
    return passes * 2 * 2 * options["num_layers"] * length * options["hidden_size"] * tokens


class Setting:
    """Where and in what precision every run of a section computes."""

    def __init__(self, device: torch.device, precision: str):
        self.device, self.precision = device, precision

    def autocast(self, precision: str | None = None):
        if (precision or self.precision) == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[precision or self.precision])

    def trainer(self, model, loss: Callable, batches: Sequence = (None,), precision: str | None = None) -> Step:
        """A training step over BATCHES in turn: forward under autocast (in PRECISION, default the
        setting's), fp32 AdamW."""
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        return training_step(model, optimizer, loss, batches, lambda: self.autocast(precision))


def pretraining_runs(config: str, compile_nlu: bool, setting: Setting) -> tuple[dict[str, Callable], dict]:
    """One training-step function per run, over identical weights and inputs."""
    torch.manual_seed(0)
    options, (batch, length), device = CONFIGS[config], PRETRAINING_BATCH.get(config, (32, 128)), setting.device
    input_ids = torch.randint(5, VOCAB, (batch, length))
    mlm_labels = torch.full_like(input_ids, -100)
    chosen = torch.rand(batch, length) < 0.15
    mlm_labels[chosen] = input_ids[chosen]
    nsp_labels = torch.randint(0, 2, (batch,))
    input_ids, mlm_labels, nsp_labels = input_ids.to(device), mlm_labels.to(device), nsp_labels.to(device)
    hf = transformers.BertForPreTraining(bert_config(options)).to(device)
    ours = from_transformers(hf).to(device)
    masked = int(chosen.sum())

    def hf_dense(model, _batch):
        return model(input_ids=input_ids, labels=mlm_labels, next_sentence_label=nsp_labels).loss

    def hf_sparse(model, _batch):
        sequence, pooled = model.bert(input_ids=input_ids)[:2]
        where = mlm_labels != -100
        logits = model.cls.predictions(sequence[where])
        return F.cross_entropy(logits.float(), mlm_labels[where]) + F.cross_entropy(
            model.cls.seq_relationship(pooled).float(), nsp_labels)

    def nlu(model, _batch):
        return model(input_ids, mlm_labels=mlm_labels, nsp_labels=nsp_labels).loss

    runs = {"transformers dense": lambda: setting.trainer(hf, hf_dense),
            "transformers sparse (by hand)": lambda: setting.trainer(hf, hf_sparse),
            "nlu": lambda: setting.trainer(ours, nlu)}
    if compile_nlu:
        runs["nlu + torch.compile"] = lambda: setting.trainer(torch.compile(from_transformers(hf).to(device)), nlu)
    if setting.precision != "fp32":  # the gain over fp32, measured in the same alternation
        runs[FP32_NLU] = lambda: setting.trainer(from_transformers(hf).to(device), nlu, precision="fp32")
    tokens = batch * length
    useful = 6 * encoder_parameters(ours) * tokens + 6 * VOCAB * options["hidden_size"] * masked \
        + attention_flops(options, tokens, length, passes=3)
    # nlu runs its last layer's output projection and feed-forward only at the rows its heads read
    # (masked positions and [CLS]); the FLOPs it skips elsewhere are not part of what it executes.
    hidden, intermediate = options["hidden_size"], options["intermediate_size"]
    skipped = 6 * (hidden * hidden + 2 * hidden * intermediate) * (tokens - masked - batch)
    return runs, {"batch": batch, "length": length, "tokens": tokens, "masked": masked, "useful_flops": useful,
                  "nlu_executed_flops": useful - skipped}


def ner_runs(config: str, compile_nlu: bool, setting: Setting) -> tuple[dict[str, Callable], dict]:
    """Fine-tuning steps (``train/…``) and inference passes (``inference/…``) per run."""
    torch.manual_seed(0)
    options, device = CONFIGS[config], setting.device
    root = Path(__file__).resolve().parents[1]
    sentences = read_ner_file(root / "data" / "ner" / "wnut16" / "train.conll")
    labels = label_list(sentences)
    texts = iter([" ".join(s.words) for s in sentences])
    tokenizer = train_tokenizer(texts, vocab_size=8000)
    windows = encode_ner(sentences, tokenizer, {label: i for i, label in enumerate(labels)}, 128, 32)
    features = [w.features() for w in windows]
    hf = transformers.BertForTokenClassification(bert_config(options, labels)).to(device)
    ours = from_transformers(hf).to(device)
    collator = transformers.DataCollatorForTokenClassification(tokenizer)
    batches = [features[i:i + 32] for i in range(0, 32 * 20, 32)]
    real_tokens = sum(len(f["input_ids"]) for batch in batches for f in batch) / len(batches)

    def on_device(batch) -> dict:
        return {key: value.to(device) for key, value in batch.items()}

    def labelled_loss(model, batch):
        return model(**batch).loss

    hf_batches = [on_device(collator(batch)) for batch in batches]
    nlu_batches = [on_device(pad_batch(batch, tokenizer.pad_token_id)) for batch in batches]
    runs = {f"train/{HF_NER}": lambda: setting.trainer(hf, labelled_loss, hf_batches),
            "train/nlu": lambda: setting.trainer(ours, labelled_loss, nlu_batches)}
    if compile_nlu:
        runs["train/nlu + torch.compile"] = lambda: setting.trainer(
            torch.compile(from_transformers(hf).to(device), dynamic=True), labelled_loss, nlu_batches)
    inference_features = features[:1024]
    inference_tokens = sum(len(f["input_ids"]) for f in inference_features)

    @torch.no_grad()
    def hf_inference(_round: int):
        hf.eval()
        with setting.autocast():
            for i in range(0, len(inference_features), 64):
                hf(**on_device(collator([{k: f[k] for k in ("input_ids", "token_type_ids")}
                                         for f in inference_features[i:i + 64]])))

    def nlu_inference(_round: int):
        with setting.autocast():
            predict_logits(ours, inference_features, tokenizer.pad_token_id, 64)

    runs[f"inference/{HF_NER}"] = lambda: hf_inference
    runs["inference/nlu"] = lambda: nlu_inference
    padded_tokens = sum(32 * max(len(f["input_ids"]) for f in batch) for batch in batches) / len(batches)
    parameters = encoder_parameters(ours)
    return runs, {"train_tokens_per_batch": real_tokens, "train_padded_tokens_per_batch": padded_tokens,
                  "train_useful_flops": 6 * parameters * real_tokens, "inference_tokens": inference_tokens,
                  "inference_useful_flops": 2 * parameters * inference_tokens}


HF_NER = "transformers (DataCollatorForTokenClassification)"
FP32_NLU = "nlu in fp32 (no autocast)"
SECTIONS = {"pretraining": pretraining_runs, "ner": ner_runs}


def time_runs(runs: dict[str, Callable], steps: int, warmup: int, clock: Clock) -> dict[str, float]:
    """Median seconds per step of each run, alternated (nlu.benchmark). Inference passes are long
    (1,024 sentences), so they take fewer readings."""
    made = {name: make() for name, make in runs.items()}
    seconds = alternate(made, steps, clock, warmup, {name: 3 for name in made if name.startswith("inference/")})
    return {name: statistics.median(values) for name, values in seconds.items()}


def memory_of_run(config: str, section: str, run: str, compile_nlu: bool, steps: int, setting: Setting) -> int:
    """Peak memory growth of one run (on the CPU called in a child process: the run alone)."""
    runs, _ = SECTIONS[section](config, compile_nlu, setting)
    return peak_memory_growth(runs[run](), steps, setting.device)


def measure_memory(config: str, section: str, runs: list[str], compile_nlu: bool, setting: Setting) -> dict[str, int]:
    if setting.device.type == "cuda":
        return {run: memory_of_run(config, section, run, compile_nlu, 3, setting) for run in runs}
    memory = {}
    for run in runs:
        command = [sys.executable, __file__, "--memory-of", config, section, run, "--steps", "3",
                   "--precision", setting.precision, "--device", "cpu"]
        command += ["--compile"] if compile_nlu else []
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        memory[run] = int(result.stdout.strip().splitlines()[-1])
    return memory


PROFILE_GROUPS = {
    "matmul (linear layers, vocabulary projection)": ("addmm", "mm", "bmm", "matmul", "linear"),
    "attention kernel": ("scaled_dot_product", "flash_attention", "_efficient_attention", "softmax"),
    "dropout": ("dropout", "bernoulli", "uniform", "random_"),
    "layer norm": ("layer_norm",),
    "activation (GELU)": ("gelu",),
    "optimizer (fused AdamW)": ("adam",),
    "embedding lookup / gradient": ("embedding",),
    "loss": ("cross_entropy", "nll_loss", "log_softmax"),
    "casts (to / copy_)": ("_to_copy", "copy_"),
    "index / gather / scatter (sparse MLM, padding)": ("index", "gather", "scatter", "nonzero", "masked"),
    "elementwise add / mul / compare / copies": ("add", "mul", "fill", "zero", "clone", "cat", "div", "ge"),
}


def profile_pretraining(config: str, setting: Setting) -> list[tuple[str, float]]:
    """Share of self CPU time per group of ops over three nlu pretraining steps."""
    runs, _ = pretraining_runs(config, False, setting)
    step = runs["nlu"]()
    step(0)
    shares = operator_shares(operator_times(lambda: [step(round_) for round_ in range(3)]), PROFILE_GROUPS)
    return sorted(((group, share) for group, share in shares.items() if share), key=lambda kv: -kv[1])


def peaks(clock: Clock, device: torch.device) -> dict[str, float]:
    return {precision: matmul_peak(dtype, clock, device) for precision, dtype in DTYPES.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["small"], choices=sorted(CONFIGS))
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--precision", default="fp32", choices=list(DTYPES))
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: the GPU if there is one)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: this thread's CPU seconds, robust to other processes' load (needs --threads 1)")
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default="reports")
    parser.add_argument("--compile", action="store_true", help="also time nlu under torch.compile")
    parser.add_argument("--profile", action="store_true", help="profile an nlu pretraining step")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-run peak-memory measurement")
    parser.add_argument("--render", metavar="JSON", help="re-make the Markdown of an earlier run from its JSON")
    parser.add_argument("--memory-of", nargs=3, metavar=("CONFIG", "SECTION", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.render:  # the Markdown and the index sentence again from the JSON: nothing re-measured
        stem = Path(args.render).with_suffix("")
        results = json.loads(stem.with_suffix(".json").read_text())
        print(write_report(stem, results | {"headline": headline(results)}, render).read_text())
        return 0
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu counts one thread's CPU time: give --threads 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    setting = Setting(choose_device(args.device), args.precision)
    if args.memory_of:
        print(memory_of_run(*args.memory_of, compile_nlu=args.compile, steps=args.steps, setting=setting))
        return 0
    clock = Clock(setting.device, cpu_time=args.clock == "cpu")
    readings = [peaks(clock, setting.device)]
    command = command_line(None if argv is None else [__file__, *argv])  # argv: called by scripts/gpu_check.py
    results = {"command": command, "machine": machine("transformers"), "device": str(setting.device),
               "precision": args.precision, "clock": args.clock, "configs": {}}
    if setting.device.type == "cuda":
        name = torch.cuda.get_device_name(setting.device)
        results["gpu"] = {"name": name, "dense_bf16_peak_flops": gpu_dense_peak(name)}
    for name in args.configs:
        entry = results["configs"][name] = {"options": CONFIGS[name]}
        for section in args.sections:
            print(f"[{name}] {section} ...", flush=True)
            runs, facts = SECTIONS[section](name, args.compile, setting)
            entry[section] = {**facts, "seconds": time_runs(runs, args.steps, args.warmup, clock)}
            if not args.no_memory:
                entry[section]["peak_memory_bytes"] = measure_memory(name, section, list(runs), args.compile, setting)
        if args.profile:
            entry["profile"] = profile_pretraining(name, setting)
        readings.append(peaks(clock, setting.device))
    results["matmul_peak_readings"] = readings
    results["matmul_peak_flops"] = {precision: max(r[precision] for r in readings) for precision in DTYPES}
    results["machine"]["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    stem = report_stem(Path(args.out), args.precision, setting.device.type)
    print(write_report(stem, results | {"headline": headline(results)}, render).read_text())
    return 0


def report_stem(out: Path, precision: str, device_type: str) -> Path:
    """OUT/bench[_bf16][_cuda]: one report per precision and kind of device."""
    return out / ("bench" + ("" if precision == "fp32" else f"_{precision}")
                  + ("" if device_type == "cpu" else f"_{device_type}"))


def headline(results: dict) -> str | None:
    """One sentence for the results index: the pretraining step's speed-ups, first config, with the
    host's matmul peaks that bound the bf16 gain."""
    name, sections = next(iter(results["configs"].items()))
    seconds = sections.get("pretraining", {}).get("seconds")
    if not seconds or "nlu" not in seconds:
        return None
    parts = [f"{name} pretraining step: nlu {seconds['transformers dense'] / seconds['nlu']:.2f}× transformers dense"]
    if "transformers sparse (by hand)" in seconds:
        parts.append(f"{seconds['transformers sparse (by hand)'] / seconds['nlu']:.2f}× its hand-made sparse variant")
    if "nlu in fp32 (no autocast)" in seconds:
        peaks = results["matmul_peak_flops"]
        parts.append(f"{results['precision']} {seconds['nlu in fp32 (no autocast)'] / seconds['nlu']:.2f}× nlu in fp32 "
                     f"(the host's matmul peaks: {peaks[results['precision']] / 1e9:.0f} vs {peaks['fp32'] / 1e9:.0f} "
                     f"GFLOP/s, {peaks[results['precision']] / peaks['fp32']:.2f}×)")
    return ", ".join(parts)


def utilisation_peak(results: dict) -> tuple[float, str]:
    """The FLOP/s that utilisation is measured against, and its description."""
    precision, measured = results["precision"], results["matmul_peak_flops"][results["precision"]]
    dense = results.get("gpu", {}).get("dense_bf16_peak_flops")
    if dense and precision == "bf16":
        return dense, f"the {results['gpu']['name']}'s bf16 dense peak, {dense / 1e12:.0f} TFLOP/s"
    return measured, f"the measured {precision} matmul peak, {measured / 1e9:,.0f} GFLOP/s"


def run_table(section: dict, prefix: str, tokens: float, flops: float, peak: float, reference: str,
              fp32_peak: float | None = None) -> list[str]:
    """tokens/s, speed-up, utilisation and peak memory for the runs whose names start with ``prefix``
    (the fp32 comparison run against FP32_PEAK)."""
    seconds = {name[len(prefix):]: value for name, value in section["seconds"].items() if name.startswith(prefix)}
    memory = {name[len(prefix):]: value for name, value in section.get("peak_memory_bytes", {}).items()
              if name.startswith(prefix)}
    return table(["run", "tokens/s", "speed-up vs reference", "model FLOP utilisation", "peak memory growth"],
                 [[name, f"{tokens / value:,.0f}", f"{seconds[reference] / value:.2f}×",
                   f"{flops / value / (fp32_peak if name == FP32_NLU and fp32_peak else peak):.1%}",
                   f"{memory[name] / 2**20:,.0f} MiB" if name in memory else "–"] for name, value in seconds.items()])


def render(results: dict) -> str:
    peak, peak_text = utilisation_peak(results)
    readings = results["matmul_peak_readings"]
    measured = ", ".join(f"{precision} {max(r[precision] for r in readings) / 1e9:,.0f} GFLOP/s (readings "
                         f"{', '.join(f'{r[precision] / 1e9:,.0f}' for r in readings)})" for precision in DTYPES)
    precision = results["precision"]
    lines = [f"# Speed: nlu vs transformers' BERT ({precision}, {results['device']})", "",
             f"Made by `{results['command']}`."
             + (" Times are this thread's CPU seconds at one torch thread (`--clock cpu`): the work of each step, "
                "not the time other processes held the shared cores." if results.get("clock") == "cpu" else ""), "",
             f"Machine: {machine_line(results['machine'])}; load average after the runs "
             f"{', '.join(map(str, results['machine'].get('load_average_after', [])))}.", "",
             f"Precision: {'fp32' if precision == 'fp32' else precision + AUTOCAST_NOTE}. "
             f"Measured matmul peaks (2048² `torch.mm` on the CPU, 8192² on a GPU; the best of readings before and "
             f"after each config): {measured}. Utilisation = useful model FLOPs / time / {peak_text} "
             f"(the fp32 comparison run: against the fp32 peak). "
             "Peak memory growth: each run's peak over the memory held before its first step (on the CPU, repeated "
             "alone in a child process; 3 steps).", ""]
    for name, entry in results["configs"].items():
        lines += [f"## {name}: {entry['options']}", ""]
        if "pretraining" in entry:
            pre = entry["pretraining"]
            sparse = pre["seconds"]["transformers sparse (by hand)"] / pre["seconds"]["nlu"]
            lines += [f"### Pretraining step (batch {pre.get('batch', 32)} × {pre.get('length', 128)}, {pre['masked']} "
                      f"masked, AdamW, {precision}); "
                      "reference: transformers dense", "",
                      *run_table(pre, "", pre["tokens"], pre["useful_flops"], peak, "transformers dense",
                             results["matmul_peak_flops"]["fp32"]), "",
                      f"nlu vs transformers with the hand-made sparse projection: {sparse:.2f}×."
                      + (f" nlu in {precision} vs nlu in fp32 (same alternation): "
                         f"{pre['seconds'][FP32_NLU] / pre['seconds']['nlu']:.2f}×." if FP32_NLU in pre["seconds"] else ""),
                      "",
                      "Utilisation counts the model's FLOPs (6·parameters·tokens + attention, vocabulary projection "
                      "at the masked positions). nlu executes fewer: its last layer computes the output projection "
                      f"and feed-forward only for the {pre['masked']} masked positions and the "
                      f"{pre.get('batch', 32)} [CLS] rows, so of "
                      f"the model's {pre['useful_flops'] / 1e9:.0f} GFLOP per step it runs "
                      f"{pre['nlu_executed_flops'] / 1e9:.0f}: the executed FLOP rate is "
                      f"{pre['nlu_executed_flops'] / pre['seconds']['nlu'] / peak:.1%} of the peak.", ""]
        if "ner" in entry:
            ner = entry["ner"]
            padding = 1 - ner["train_tokens_per_batch"] / ner["train_padded_tokens_per_batch"]
            lines += [f"### NER fine-tuning step (real WNUT-16 batches of 32; padding to the longest is {padding:.0%} "
                      "of each batch, which nlu skips on the CPU)", "",
                      "Utilisation counts the model's FLOPs at every real token; nlu's last layer runs only at the "
                      "labelled ones (first sub-tokens of words), so it executes fewer.", "",
                      *run_table(ner, "train/", ner["train_tokens_per_batch"], ner["train_useful_flops"], peak, HF_NER), "",
                      f"### NER inference ({ner['inference_tokens']:,} real tokens, batches of 64)", "",
                      *run_table(ner, "inference/", ner["inference_tokens"], ner["inference_useful_flops"], peak, HF_NER),
                      ""]
        if "profile" in entry:
            lines += ["### Where an nlu pretraining step spends its time (torch.profiler, self CPU time)", "",
                      "| group of ops | share |", "|---|---|",
                      *[f"| {group} | {share:.1%} |" for group, share in entry["profile"]], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
