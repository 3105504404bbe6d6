"""Time to quality: held-out MLM loss against training seconds, nlu vs a plain transformers loop.

    python scripts/bench_pretrain_curve.py                     # 600 s each, small config, CPU
    python scripts/bench_pretrain_curve.py --seconds 60 --threads 1

Both runs pretrain the same model (bench.py's small config: hidden 256, 4 layers, 4 heads,
vocabulary 30,522, batch 32 × up to 128 tokens) from the same initial weights, on the same NSP
pairs of the shipped corpus in the same order, with the same AdamW (lr, betas, eps, weight
decay, no decay on biases and norms), the same warm-up, gradient clipping and seed:

* nlu: ``ForPreTraining`` fed by nlu's ``PretrainingCollator`` (BERT's exact 15% of each
  sequence, 80/10/10), fused AdamW, as ``nlu pretrain`` runs it;
* reference: ``BertForPreTraining`` (sdpa attention, dense vocabulary projection) fed by
  ``DataCollatorForLanguageModeling`` (15%, 80/10/10) — the loop a user writes from the
  transformers documentation — with ``torch.optim.AdamW``'s default implementation.

Each run trains for ``--seconds`` of training time (the clock stops while the held-out set is
scored), and is scored at ``--points`` evenly spaced moments on the same held-out pairs with
the same masks, drawn once. The two runs alternate slice by slice (nlu to the first moment,
then the reference, then nlu to the second, ...), so a busy machine slows both alike. The
figure of merit is when nlu first reaches the reference's final held-out loss, as a fraction of
the reference's time (issue #9's target: ≤ 1/3). ``--precision`` (default ``auto``: the rule
``nlu pretrain`` uses, bf16 on CPUs with native bf16) applies to both sides' training steps alike
(``torch.autocast`` around the forward, as Accelerate and ``TrainingArguments(bf16=True)`` do);
held-out losses are scored in fp32 on both. Writes OUT/pretrain_curve{,_bf16}.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers

from nlu.benchmark import CONFIGS, VOCAB, bert_config, training_step
from nlu.data.corpus import read_documents
from nlu.data.pretraining import PretrainingCollator, collator_examples, tokenize_documents
from nlu.evaluation.plots import plot_curves
from nlu.interop import from_transformers
from nlu.hardware import PRECISIONS, Precision, autocast, choose_precision
from nlu.model import ForPreTraining
from nlu.reporting import command_line, machine, machine_line, table, write_report
from nlu.tokenizer import train_tokenizer
from nlu.training.loop import parameter_groups

ROOT = Path(__file__).resolve().parents[1]
MLM_PROBABILITY = 0.15


def example_batches(examples: list[dict], batch_size: int, seed: int) -> Iterator[list[dict]]:
    """Endless batches, reshuffled every epoch by a generator of their own: both runs see the same ones."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(examples), generator=generator).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield [examples[i] for i in order[start:start + batch_size]]


def warmup_then_constant(warmup_steps: int) -> Callable[[int], float]:
    """The budget is in seconds, so no run knows its step count in advance: no decay."""
    return lambda step: min(1.0, (step + 1) / warmup_steps)


def reference_mlm_loss(model: transformers.BertForPreTraining, batch: dict[str, torch.Tensor]) -> tuple[float, int]:
    """Summed MLM loss of the transformers model on an nlu-masked batch, scored at masked positions only."""
    sequence = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          token_type_ids=batch["token_type_ids"])[0]
    where = batch["mlm_labels"] != -100
    logits = model.cls.predictions(sequence[where])
    return F.cross_entropy(logits, batch["mlm_labels"][where], reduction="sum").item(), int(where.sum())


def nlu_mlm_loss(model: ForPreTraining, batch: dict[str, torch.Tensor]) -> tuple[float, int]:
    output = model(**batch)
    count = output.mlm_targets.numel()
    return output.mlm_loss.item() * count, count


@torch.no_grad()
def heldout_loss(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]],
                 loss_of: Callable[[torch.nn.Module, dict], tuple[float, int]]) -> float:
    model.eval()
    total = count = 0
    for batch in batches:
        loss, masked = loss_of(model, batch)
        total, count = total + loss, count + masked
    model.train()
    return total / count


class TimedRun:
    """One side of the race: trains in slices of training time and is scored between slices."""

    def __init__(self, label: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 batches: Iterator[dict], loss_of_batch: Callable[[dict], torch.Tensor],
                 score: Callable[[], float], warmup_steps: int, precision: Precision):
        self.label, self.batches, self.score = label, batches, score
        self.batch: list[dict] = [{}]  # the step's batch, drawn before it (its tokens are counted)
        self.step = training_step(model, optimizer, lambda _model, batch: loss_of_batch(batch), self.batch,
                                  lambda: autocast(torch.device("cpu"), precision), max_grad_norm=1.0,
                                  scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_constant(warmup_steps)))
        self.elapsed, self.steps, self.tokens = 0.0, 0, 0
        self.curve: list[dict] = []
        self.record()

    def train_until(self, seconds: float) -> None:
        while self.elapsed < seconds:
            started = time.perf_counter()
            self.batch[0] = next(self.batches)
            self.step(0)
            self.elapsed += time.perf_counter() - started
            self.steps += 1
            self.tokens += int(self.batch[0]["attention_mask"].sum())

    def record(self) -> None:
        self.curve.append({"seconds": self.elapsed, "steps": self.steps, "heldout_mlm_loss": self.score()})
        print(f"{self.label}: held-out MLM loss {self.curve[-1]['heldout_mlm_loss']:.4f} at {self.elapsed:.0f} s, "
              f"step {self.steps}", file=sys.stderr, flush=True)

    def result(self) -> dict:
        return {"curve": self.curve, "steps": self.steps, "train_seconds": self.elapsed,
                "tokens_per_second": self.tokens / max(self.elapsed, 1e-9)}


def race(runs: list[TimedRun], seconds: float, points: int) -> None:
    """Alternate the runs slice by slice, so that whatever else the machine does slows both alike."""
    for point in range(1, points + 1):
        for run in runs:
            run.train_until(seconds * point / points)
            run.record()


def time_to_reach(curve: list[dict], target: float) -> float | None:
    """First moment the curve is at or below TARGET, linearly interpolated between scored points."""
    for before, after in zip(curve, curve[1:]):
        if after["heldout_mlm_loss"] <= target:
            drop = before["heldout_mlm_loss"] - after["heldout_mlm_loss"]
            fraction = 1.0 if drop <= 0 else (before["heldout_mlm_loss"] - target) / drop
            return before["seconds"] + min(1.0, max(0.0, fraction)) * (after["seconds"] - before["seconds"])
    return None


def run(args: argparse.Namespace, precision: Precision) -> dict:
    torch.manual_seed(args.seed)
    options = CONFIGS[args.config]
    corpus = ROOT / "data" / "corpus"
    tokenizer = train_tokenizer([corpus / "news.txt"], vocab_size=VOCAB)
    examples, heldout = (collator_examples(tokenize_documents(read_documents([corpus / name]), tokenizer), tokenizer,
                                           args.max_length, args.seed) for name in ("news.txt", "news_heldout.txt"))
    for example in heldout:  # numbered after the training pairs, as the committed reports were (masks follow the index)
        example["index"] += len(examples)
    heldout_masker = PretrainingCollator(tokenizer, mlm_probability=MLM_PROBABILITY, seed=args.seed + 1)
    heldout = heldout[:args.heldout_pairs]
    heldout_batches = [heldout_masker(heldout[i:i + 32]) for i in range(0, len(heldout), 32)]

    reference = transformers.BertForPreTraining(bert_config(options))
    ours = from_transformers(reference)
    optimizer_options = dict(lr=args.learning_rate, betas=(0.9, 0.999), eps=1e-6)
    warmup = args.warmup_steps

    nlu_collator = PretrainingCollator(tokenizer, mlm_probability=MLM_PROBABILITY, seed=args.seed)
    collator = transformers.DataCollatorForLanguageModeling(tokenizer, mlm_probability=MLM_PROBABILITY)
    fields = ("input_ids", "token_type_ids")

    def reference_batch(chunk: list[dict]) -> dict:
        batch = collator([{key: example[key] for key in fields} for example in chunk])
        batch["next_sentence_label"] = torch.tensor([example["nsp_label"] for example in chunk])
        return batch

    torch.manual_seed(args.seed)
    nlu_run = TimedRun(
        "nlu", ours, torch.optim.AdamW(parameter_groups(ours, 0.01), fused=True, **optimizer_options),
        map(nlu_collator, example_batches(examples, args.batch_size, args.seed)), lambda batch: ours(**batch).loss,
        lambda: heldout_loss(ours, heldout_batches, nlu_mlm_loss), warmup, precision)
    reference_run = TimedRun(
        "transformers", reference, torch.optim.AdamW(parameter_groups(reference, 0.01), **optimizer_options),
        map(reference_batch, example_batches(examples, args.batch_size, args.seed)),
        lambda batch: reference(**batch).loss,
        lambda: heldout_loss(reference, heldout_batches, reference_mlm_loss), warmup, precision)
    race([nlu_run, reference_run], args.seconds, args.points)
    nlu_result, reference_result = nlu_run.result(), reference_run.result()

    target = reference_result["curve"][-1]["heldout_mlm_loss"]
    reached = time_to_reach(nlu_result["curve"], target)
    return {
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine("transformers"),
        "setup": {"config": args.config, **options, "vocab_size": VOCAB, "batch_size": args.batch_size,
                  "max_length": args.max_length, "learning_rate": args.learning_rate, "warmup_steps": warmup,
                  "train_pairs": len(examples), "heldout_pairs": len(heldout),
                  "heldout_masked_tokens": sum(int((b["mlm_labels"] != -100).sum()) for b in heldout_batches),
                  "seconds": args.seconds, "seed": args.seed, "precision": str(precision)},
        "nlu": nlu_result, "transformers": reference_result,
        "reference_final_loss": target, "nlu_seconds_to_reference_final": reached,
        "fraction_of_reference_time": None if reached is None else reached / reference_result["train_seconds"],
    }


def plot(results: dict, path: Path) -> None:
    curves = {name: [(p["seconds"], p["heldout_mlm_loss"]) for p in results[name]["curve"]] for name in ("nlu", "transformers")}
    target, reached = results["reference_final_loss"], results["nlu_seconds_to_reference_final"]
    seconds = [x for curve in curves.values() for x, _ in curve]
    lines = {"transformers' final loss": [(min(seconds), target), (max(seconds), target)]}
    if reached is not None:
        lines["nlu reaches it"] = [(reached, min(y for c in curves.values() for _, y in c)), (reached, curves["nlu"][0][1])]
    plot_curves(curves | lines, path, xlabel="training seconds (scoring excluded)", ylabel="held-out MLM loss",
                title="Pretraining, small config: held-out MLM loss against time")


def render(results: dict) -> str:
    """reports/pretrain_curve.md from its JSON alone."""
    setup, ours, reference = results["setup"], results["nlu"], results["transformers"]
    fraction = results["fraction_of_reference_time"]
    verdict = ("never, within its budget" if fraction is None
               else f"after {results['nlu_seconds_to_reference_final']:.0f} s, **{fraction:.2f}** of the reference's "
                    f"{reference['train_seconds']:.0f} s (target ≤ 0.33: {'met' if fraction <= 1 / 3 else 'not met'})")
    return "\n".join([
        "# Time to quality: pretraining, nlu vs a plain transformers loop (issue #9)", "",
        f"Made by `{results['command']}`, {results['generated']}, on {machine_line(results['machine'])}.", "",
        f"Config {setup['config']}: hidden {setup['hidden_size']}, {setup['num_layers']} layers, {setup['num_heads']} "
        f"heads, vocabulary {setup['vocab_size']:,}, batch {setup['batch_size']} × ≤ {setup['max_length']} tokens, "
        f"lr {setup['learning_rate']} after {setup['warmup_steps']} warm-up steps, {setup['train_pairs']:,} NSP pairs "
        f"of data/corpus/news.txt; held-out: {setup['heldout_pairs']} pairs of news_heldout.txt, "
        f"{setup['heldout_masked_tokens']:,} masked tokens, masks drawn once. Same initial weights, batches, "
        f"optimizer settings and seed ({setup['seed']}) for both; {setup['seconds']:.0f} s of training each, the two "
        "runs alternating slice by slice between scorings so that other load on the machine slows both alike. "
        f"Training precision, both sides: {setup.get('precision', 'fp32 (before --precision existed)')}; held-out "
        "losses scored in fp32.", "",
        *table(["run", "steps", "tokens/s", "final held-out MLM loss"],
               [[name, run["steps"], f"{run['tokens_per_second']:,.0f}", f"{run['curve'][-1]['heldout_mlm_loss']:.4f}"]
                for name, run in (("nlu", ours), ("transformers", reference))]), "",
        f"nlu reached the reference's final held-out loss ({results['reference_final_loss']:.4f}) {verdict}.", "",
        f"![held-out MLM loss against seconds]({results.get('plot', 'pretrain_curve.png')})", "",
        *table(["seconds", "nlu step", "nlu loss", "transformers step", "transformers loss"],
               [[f"{a['seconds']:.0f} / {b['seconds']:.0f}", a["steps"], f"{a['heldout_mlm_loss']:.4f}", b["steps"],
                 f"{b['heldout_mlm_loss']:.4f}"] for a, b in zip(ours["curve"], reference["curve"])], "rrrrr"), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--seconds", type=float, default=600.0, help="training seconds per run")
    parser.add_argument("--points", type=int, default=20, help="how many times each run is scored")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, default=30)
    parser.add_argument("--heldout-pairs", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="both training loops alike")
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    parser.add_argument("--report-only", action="store_true", help="OUT/pretrain_curve.md and .png again from its JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = choose_precision(args.precision, torch.device("cpu"))
    stem = args.out / ("pretrain_curve" if precision.name == "no" else f"pretrain_curve_{precision.name}")
    results = (json.loads(stem.with_suffix(".json").read_text()) if args.report_only
               else {"command": command_line(argv and [__file__, *argv], root=ROOT), **run(args, precision)})
    results["plot"] = stem.with_suffix(".png").name
    plot(results, stem.with_suffix(".png"))
    write_report(stem, results, render)
    print(json.dumps({key: results[key] for key in ("reference_final_loss", "nlu_seconds_to_reference_final",
                                                    "fraction_of_reference_time")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
