"""Speed of nlu against transformers' BERT on the same work, in one process.

    python scripts/bench.py                      # small config (hidden 256, 4 layers), CPU
    python scripts/bench.py --configs small base --steps 5 --compile --profile

1. Pretraining step (forward + backward + AdamW), batch 32 × 128, 15% masked, fp32, identical
   weights and inputs: nlu vs BertForPreTraining (dense vocabulary projection) vs
   BertForPreTraining with the masked-positions-only projection done by hand on its submodules.
2. NER: a fine-tuning step and inference on real WNUT-16 sentences, nlu vs
   BertForTokenClassification fed by DataCollatorForTokenClassification (pad to longest).
3. Model FLOP utilisation: useful FLOPs (6·params·tokens for training, 2·params·tokens for
   inference, vocabulary projection counted at masked positions only, plus attention), divided by
   a large fp32 matmul's FLOP/s measured in the same run.
4. Peak memory of each run: each run is repeated alone in a child process, and the growth of its
   peak resident memory over the memory held before the first step is reported (CPU; on CUDA,
   ``torch.cuda.max_memory_allocated``).
5. ``--compile`` adds nlu under ``torch.compile``; ``--profile`` adds a ``torch.profiler`` summary of
   an nlu pretraining step, grouped into matmuls, attention, dropout, normalisation, optimizer, ….
Medians over several steps after warm-up. Writes reports/bench.md and reports/bench.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers

from nlu.config import EncoderConfig
from nlu.data.ner import encode_ner, label_list, read_ner_file
from nlu.files import write_text_atomic
from nlu.interop import hf_state_to_nlu
from nlu.model import ForPreTraining, ForTokenClassification
from nlu.tasks.finetune import pad_batch, predict_logits
from nlu.tokenizer import train_tokenizer

CONFIGS = {
    "small": dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
    "base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
}
VOCAB = 30522


def median_seconds(step, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    """fp32 matmul FLOP/s: the fastest of REPEATS products. The fastest, not the median: on this
    shared host the rate drifts by ±10% over minutes, and a low reading would push utilisation
    past 100%; main() also takes the best of readings before and after every config."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    fastest = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        fastest = min(fastest, time.perf_counter() - started)
    return 2 * size**3 / fastest


def bert_config(options: dict, labels: list[str] | None = None) -> transformers.BertConfig:
    extra = {"id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}} if labels else {}
    return transformers.BertConfig(vocab_size=VOCAB, hidden_size=options["hidden_size"],
                                   num_hidden_layers=options["num_layers"], num_attention_heads=options["num_heads"],
                                   intermediate_size=options["intermediate_size"], hidden_dropout_prob=0.1,
                                   attention_probs_dropout_prob=0.1, attn_implementation="sdpa", **extra)


def twin(hf_model, nlu_class, options: dict, labels: list[str] | None = None):
    """The nlu model holding exactly the transformers model's weights."""
    model = nlu_class(EncoderConfig(vocab_size=VOCAB, labels=labels or [], max_position_embeddings=512, **options))
    model.load_state_dict(hf_state_to_nlu(hf_model.state_dict(), options["num_layers"]), strict=False)
    return model


def encoder_parameters(model) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def attention_flops(options: dict, tokens: int, length: int, passes: int) -> float:
    """QKᵀ and AV: 2·2·length·hidden per token per layer forward; backward doubles it twice."""
    return passes * 2 * 2 * options["num_layers"] * length * options["hidden_size"] * tokens


def pretraining_runs(options: dict, compile_nlu: bool) -> tuple[dict[str, Callable[[], None]], dict]:
    """One training-step function per run, over identical weights and inputs."""
    torch.manual_seed(0)
    batch, length = 32, 128
    input_ids = torch.randint(5, VOCAB, (batch, length))
    mlm_labels = torch.full_like(input_ids, -100)
    chosen = torch.rand(batch, length) < 0.15
    mlm_labels[chosen] = input_ids[chosen]
    nsp_labels = torch.randint(0, 2, (batch,))
    hf = transformers.BertForPreTraining(bert_config(options))
    ours = twin(hf, ForPreTraining, options)
    masked = int(chosen.sum())

    def trainer(model, loss_of):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        model.train()

        def step():
            loss = loss_of(model)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    def hf_dense(model):
        return model(input_ids=input_ids, labels=mlm_labels, next_sentence_label=nsp_labels).loss

    def hf_sparse(model):
        sequence, pooled = model.bert(input_ids=input_ids)[:2]
        where = mlm_labels != -100
        logits = model.cls.predictions(sequence[where])
        return F.cross_entropy(logits, mlm_labels[where]) + F.cross_entropy(model.cls.seq_relationship(pooled), nsp_labels)

    def nlu(model):
        return model(input_ids, mlm_labels=mlm_labels, nsp_labels=nsp_labels).loss

    runs = {"transformers dense": lambda: trainer(hf, hf_dense),
            "transformers sparse (by hand)": lambda: trainer(hf, hf_sparse),
            "nlu": lambda: trainer(ours, nlu)}
    if compile_nlu:
        runs["nlu + torch.compile"] = lambda: trainer(torch.compile(twin(hf, ForPreTraining, options)), nlu)
    tokens = batch * length
    useful = 6 * encoder_parameters(ours) * tokens + 6 * VOCAB * options["hidden_size"] * masked \
        + attention_flops(options, tokens, length, passes=3)
    # nlu runs its last layer's output projection and feed-forward only at the rows its heads read
    # (masked positions and [CLS]); the FLOPs it skips elsewhere are not part of what it executes.
    hidden, intermediate = options["hidden_size"], options["intermediate_size"]
    skipped = 6 * (hidden * hidden + 2 * hidden * intermediate) * (tokens - masked - batch)
    return runs, {"tokens": tokens, "masked": masked, "useful_flops": useful, "nlu_executed_flops": useful - skipped}


def ner_runs(options: dict, compile_nlu: bool) -> tuple[dict[str, Callable[[], None]], dict]:
    """Fine-tuning steps (``train/…``) and inference passes (``inference/…``) per run."""
    torch.manual_seed(0)
    root = Path(__file__).resolve().parents[1]
    sentences = read_ner_file(root / "data" / "ner" / "wnut16" / "train.conll")
    labels = label_list(sentences)
    texts = iter([" ".join(s.words) for s in sentences])
    tokenizer = train_tokenizer(texts, vocab_size=8000)
    windows = encode_ner(sentences, tokenizer, {label: i for i, label in enumerate(labels)}, 128, 32)
    features = [{"input_ids": w.input_ids, "token_type_ids": w.token_type_ids, "labels": w.labels} for w in windows]
    hf = transformers.BertForTokenClassification(bert_config(options, labels))
    ours = twin(hf, ForTokenClassification, options, labels)
    collator = transformers.DataCollatorForTokenClassification(tokenizer)
    batches = [features[i:i + 32] for i in range(0, 32 * 20, 32)]
    real_tokens = sum(len(f["input_ids"]) for batch in batches for f in batch) / len(batches)

    def trainer(model, make_batch):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        model.train()
        prepared = [make_batch(batch) for batch in batches]
        position = {"i": 0}

        def step():
            batch = prepared[position["i"] % len(prepared)]
            position["i"] += 1
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    def nlu_batch(batch):
        return pad_batch(batch, tokenizer.pad_token_id)

    runs = {f"train/{HF_NER}": lambda: trainer(hf, collator), "train/nlu": lambda: trainer(ours, nlu_batch)}
    if compile_nlu:
        runs["train/nlu + torch.compile"] = lambda: trainer(
            torch.compile(twin(hf, ForTokenClassification, options, labels), dynamic=True), nlu_batch)
    inference_features = features[:1024]
    inference_tokens = sum(len(f["input_ids"]) for f in inference_features)

    @torch.no_grad()
    def hf_inference():
        hf.eval()
        for i in range(0, len(inference_features), 64):
            batch = collator([{k: f[k] for k in ("input_ids", "token_type_ids")} for f in inference_features[i:i + 64]])
            hf(**batch)

    runs[f"inference/{HF_NER}"] = lambda: hf_inference
    runs["inference/nlu"] = lambda: lambda: predict_logits(ours, inference_features, tokenizer.pad_token_id, 64)
    padded_tokens = sum(32 * max(len(f["input_ids"]) for f in batch) for batch in batches) / len(batches)
    parameters = encoder_parameters(ours)
    return runs, {"train_tokens_per_batch": real_tokens, "train_padded_tokens_per_batch": padded_tokens,
                  "train_useful_flops": 6 * parameters * real_tokens, "inference_tokens": inference_tokens,
                  "inference_useful_flops": 2 * parameters * inference_tokens}


HF_NER = "transformers (DataCollatorForTokenClassification)"
SECTIONS = {"pretraining": pretraining_runs, "ner": ner_runs}


def time_runs(runs: dict[str, Callable], steps: int, warmup: int) -> dict[str, float]:
    """Inference passes are long (1,024 sentences), so they take fewer repeats."""
    return {name: median_seconds(make(), 3 if name.startswith("inference/") else steps,
                                 1 if name.startswith("inference/") else warmup)
            for name, make in runs.items()}


def memory_status(field: str) -> int:
    """VmRSS / VmHWM (peak) of this process in bytes, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_of_run(config: str, section: str, run: str, compile_nlu: bool, steps: int) -> int:
    """Peak memory growth of one run, measured alone (called in a child process): the peak
    resident size is reset after models and inputs are built (Linux clear_refs), so building
    them does not mask the training step's own peak."""
    runs, _ = SECTIONS[section](CONFIGS[config], compile_nlu)
    step = runs[run]()
    Path("/proc/self/clear_refs").write_text("5")
    before = memory_status("VmRSS")
    for _ in range(steps):
        step()
    return memory_status("VmHWM") - before


def measure_memory(config: str, section: str, runs: list[str], compile_nlu: bool) -> dict[str, int]:
    memory = {}
    for run in runs:
        command = [sys.executable, __file__, "--memory-of", config, section, run, "--steps", "3"]
        command += ["--compile"] if compile_nlu else []
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        memory[run] = int(result.stdout.strip().splitlines()[-1])
    return memory


PROFILE_GROUPS = (
    ("matmul (linear layers, vocabulary projection)", ("addmm", "mm", "bmm", "matmul", "linear")),
    ("attention kernel", ("scaled_dot_product", "flash_attention", "_efficient_attention", "softmax")),
    ("dropout", ("dropout", "bernoulli", "uniform")),
    ("layer norm", ("layer_norm",)),
    ("activation (GELU)", ("gelu",)),
    ("optimizer (fused AdamW)", ("adam",)),
    ("embedding lookup / gradient", ("embedding",)),
    ("loss", ("cross_entropy", "nll_loss", "log_softmax")),
    ("index / gather / scatter (sparse MLM, padding)", ("index", "gather", "scatter", "nonzero", "masked")),
    ("elementwise add / mul / copies", ("add", "mul", "copy", "fill", "zero", "clone", "cat", "div")),
)


def profile_pretraining(options: dict) -> list[tuple[str, float]]:
    """Share of self CPU time per group of ops over three nlu pretraining steps."""
    runs, _ = pretraining_runs(options, compile_nlu=False)
    step = runs["nlu"]()
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for _ in range(3):
            step()
    totals: dict[str, float] = {}
    for event in profiler.key_averages():
        name = event.key.lower()
        group = next((label for label, keys in PROFILE_GROUPS if any(k in name for k in keys)), "other")
        totals[group] = totals.get(group, 0.0) + event.self_cpu_time_total
    everything = sum(totals.values())
    return sorted(((group, value / everything) for group, value in totals.items()), key=lambda kv: -kv[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["small"], choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default="reports")
    parser.add_argument("--compile", action="store_true", help="also time nlu under torch.compile")
    parser.add_argument("--profile", action="store_true", help="profile an nlu pretraining step")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-run peak-memory children")
    parser.add_argument("--memory-of", nargs=3, metavar=("CONFIG", "SECTION", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_of:
        print(memory_of_run(*args.memory_of, compile_nlu=args.compile, steps=args.steps))
        return 0
    readings = [matmul_peak()]
    results = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
               "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                           "transformers": transformers.__version__, "processor": platform.processor() or platform.machine(),
                           "device": "cpu"},
               "configs": {}}
    for name in args.configs:
        entry = results["configs"][name] = {"options": CONFIGS[name]}
        for section, build in SECTIONS.items():
            print(f"[{name}] {section} ...", flush=True)
            runs, facts = build(CONFIGS[name], args.compile)
            entry[section] = {**facts, "seconds": time_runs(runs, args.steps, args.warmup)}
            if not args.no_memory:
                entry[section]["peak_memory_bytes"] = measure_memory(name, section, list(runs), args.compile)
        if args.profile:
            entry["profile"] = profile_pretraining(CONFIGS[name])
        readings.append(matmul_peak())
    results["matmul_peak_readings"] = readings
    results["matmul_peak_flops"] = max(readings)
    write_outputs(Path(args.out), results)
    return 0


def table(section: dict, prefix: str, tokens: float, flops: float, peak: float, reference: str) -> list[str]:
    """tokens/s, speed-up, utilisation and peak memory for the runs whose names start with ``prefix``."""
    seconds = {name[len(prefix):]: value for name, value in section["seconds"].items() if name.startswith(prefix)}
    memory = {name[len(prefix):]: value for name, value in section.get("peak_memory_bytes", {}).items()
              if name.startswith(prefix)}
    lines = ["| run | tokens/s | speed-up vs reference | model FLOP utilisation | peak memory growth |",
             "|---|---|---|---|---|"]
    for name, value in seconds.items():
        used = f"{memory[name] / 2**20:,.0f} MiB" if name in memory else "–"
        lines.append(f"| {name} | {tokens / value:,.0f} | {seconds[reference] / value:.2f}× | "
                     f"{flops / value / peak:.1%} | {used} |")
    return lines


def write_outputs(out: Path, results: dict) -> None:
    peak = results["matmul_peak_flops"]
    lines = ["# Speed: nlu vs transformers' BERT", "", f"Made by `{results['command']}`.", "",
             f"Machine: {results['machine']}. Measured fp32 matmul peak (2048² `torch.mm`, the best of readings "
             f"before and after each config: "
             f"{', '.join(f'{r / 1e9:.0f}' for r in results.get('matmul_peak_readings', [peak]))}): "
             f"{peak / 1e9:.0f} GFLOP/s. Utilisation = useful model FLOPs / time / that peak. Peak memory growth: "
             "each run repeated alone in a child process; its peak resident memory after 3 steps minus the "
             "memory held before the first step (models and inputs built).", ""]
    for name, entry in results["configs"].items():
        pre, ner = entry["pretraining"], entry["ner"]
        sparse = pre["seconds"]["transformers sparse (by hand)"] / pre["seconds"]["nlu"]
        padding = 1 - ner["train_tokens_per_batch"] / ner["train_padded_tokens_per_batch"]
        lines += [f"## {name}: {entry['options']}", "",
                  f"### Pretraining step (batch 32 × 128, {pre['masked']} masked, AdamW, fp32); "
                  "reference: transformers dense", "",
                  *table(pre, "", pre["tokens"], pre["useful_flops"], peak, "transformers dense"), "",
                  f"nlu vs transformers with the hand-made sparse projection: {sparse:.2f}×.", "",
                  "Utilisation counts the model's FLOPs (6·parameters·tokens + attention, vocabulary projection at "
                  "the masked positions). nlu executes fewer: its last layer computes the output projection and "
                  f"feed-forward only for the {pre['masked']} masked positions and the 32 [CLS] rows, so of the "
                  f"model's {pre['useful_flops'] / 1e9:.0f} GFLOP per step it runs {pre['nlu_executed_flops'] / 1e9:.0f}"
                  f": the executed FLOP rate is {pre['nlu_executed_flops'] / pre['seconds']['nlu'] / peak:.1%} of the "
                  "measured matmul peak.", "",
                  f"### NER fine-tuning step (real WNUT-16 batches of 32; padding to the longest is {padding:.0%} "
                  "of each batch, which nlu skips)", "",
                  "Utilisation counts the model's FLOPs at every real token; nlu's last layer runs only at the "
                  "labelled ones (first sub-tokens of words), so it executes fewer.", "",
                  *table(ner, "train/", ner["train_tokens_per_batch"], ner["train_useful_flops"], peak, HF_NER), "",
                  f"### NER inference ({ner['inference_tokens']:,} real tokens, batches of 64)", "",
                  *table(ner, "inference/", ner["inference_tokens"], ner["inference_useful_flops"], peak, HF_NER), ""]
        if "profile" in entry:
            lines += ["### Where an nlu pretraining step spends its time (torch.profiler, self CPU time)", "",
                      "| group of ops | share |", "|---|---|",
                      *[f"| {group} | {share:.1%} |" for group, share in entry["profile"]], ""]
    write_text_atomic(out / "bench.md", "\n".join(lines))
    write_text_atomic(out / "bench.json", json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
