"""Which encoder variant to pick (issue #10): position encoding × LayerNorm placement, pooling,
long inputs, and LayerNorm placement at a high learning rate.

    OMP_NUM_THREADS=1 python scripts/ablate.py              # the full ablation (~60 min on 1 core)
    OMP_NUM_THREADS=1 python scripts/ablate.py --quick      # 2 variants, 1 seed, tiny budgets (~2 min)
    python scripts/ablate.py --stability                    # only the high-learning-rate section, into OUT.json
    python scripts/ablate.py --report-only                  # OUT.md and the plot again from OUT.json

1. Every variant (learned / sinusoidal / rotary positions × post / pre LayerNorm) is pretrained
   with tasks/pretrain_news.yaml on a reduced budget, once per seed: one shared WordPiece
   vocabulary, pairs of at most 64 sub-tokens and model.max_position_embeddings=64, so a
   learned-position model has no position beyond the pretraining length.
2. Each pretrained model is fine-tuned for NER (tasks/wnut16_ner.yaml) and classification
   (tasks/rotten_tomatoes.yaml) at max_length 64 with the same seed; the learned + post-LN models
   also with model.pooling=mean and max.
3. Long inputs: each NER model tags test sequences made of consecutive test tweets joined until
   they hold more than 128 (256) sub-tokens, in windows of 64 and (sinusoidal, rotary) whole.
4. Stability: a 6-layer encoder fits two fixed MLM batches at a constant high learning rate with
   no warm-up, post-LN against pre-LN (Xiong et al. 2020), five seeds per learning rate.

Every stage is an ordinary run folder under RUNS (nlu.runs.run): a finished one is reused, an
interrupted one resumes. Writes OUT.md, OUT.json and OUT_mlm.png (default OUT = reports/ablation).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from nlu.config import EncoderConfig
from nlu.data.corpus import read_documents
from nlu.data.ner import NerSentence, read_ner_file
from nlu.data.pretraining import PretrainingCollator, build_nsp_examples, tokenize_documents
from nlu.data.subsets import write_slices
from nlu.evaluation.metrics import entity_scores
from nlu.evaluation.plots import plot_curves
from nlu.model import ForPreTraining, ForTokenClassification
from nlu.reporting import cell, command_line, machine, machine_line, mean_std, table, write_report
from nlu.runs import resolve, run
from nlu.settings import load_settings
from nlu.tasks.ner import predict_tags
from nlu.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer
from nlu.training.loop import parameter_groups

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"pretrain": ROOT / "tasks" / "pretrain_news.yaml", "ner": ROOT / "tasks" / "wnut16_ner.yaml",
         "classify": ROOT / "tasks" / "rotten_tomatoes.yaml"}
WNUT_TEST = ROOT / "data" / "ner" / "wnut16" / "test.conll"
VARIANTS = [f"{position}-{norm}" for position in ("learned", "sinusoidal", "rotary") for norm in ("post", "pre")]
DEFAULT_VARIANT = "learned-post"  # BERT's
POOLINGS = ("cls", "mean", "max")
PRETRAIN_LENGTH, WINDOW_STRIDE, LONG_TARGETS = 64, 32, (128, 256)
METRICS = {"mlm_loss": ("held-out MLM loss", "min"), "ner_f1": ("NER test entity F1", "max"),
           "classify_macro_f1": ("classification test macro-F1", "max")}
# The stability section: a kept vocabulary (tests/data), since the tokenizers trainer breaks ties
# differently per process and the window in which only pre-LN trains is narrow.
STABILITY = {"vocabulary": ROOT / "tests" / "data" / "news120_wordpiece1000", "documents": 120, "steps": 40,
             "learning_rates": (7e-3, 1e-2, 1.5e-2), "seeds": (0, 1, 2, 3, 4), "layers": 6, "hidden": 64}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", help="default 1 2 3 (--quick: 1)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, help="default: all six (--quick: learned-post rotary-pre)")
    parser.add_argument("--pretrain-steps", type=int, help="default 200, one pass over the corpus (--quick: 6)")
    parser.add_argument("--pretrain-eval-every", type=int, help="default 50 (--quick: 3)")
    parser.add_argument("--ner-epochs", type=float, default=5.0)
    parser.add_argument("--ner-batch-size", type=int, default=16)
    parser.add_argument("--classify-epochs", type=float, default=1.0)
    parser.add_argument("--classify-lr", type=float, default=1e-3,
                        help="default 1e-3 (the task file's 5e-4 leaves 1-epoch runs on the predict-'fresh' plateau)")
    parser.add_argument("--classify-steps", type=int, help="optimizer steps per classification run instead of epochs")
    parser.add_argument("--vocab-size", type=int, default=4000)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--runs", type=Path, help="run folders (default runs/ablation, --quick: runs/ablation_quick)")
    parser.add_argument("--out", type=Path, help="output stem: OUT.md, OUT.json, OUT_mlm.png (default reports/ablation)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 variants, 1 seed, tiny budgets")
    parser.add_argument("--progress", action="store_true", help="show the training loop's progress bars")
    parser.add_argument("--stability", action="store_true", help="measure only the stability section, into OUT.json")
    parser.add_argument("--report-only", action="store_true", help="rewrite OUT.md and the plot from OUT.json")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"seeds": [1] if quick else [1, 2, 3], "variants": ["learned-post", "rotary-pre"] if quick else VARIANTS,
                "pretrain_steps": 6 if quick else 200, "pretrain_eval_every": 3 if quick else 50,
                "classify_steps": 6 if quick else 0}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if DEFAULT_VARIANT not in args.variants:
        parser.error(f"--variants must include {DEFAULT_VARIANT} (the reference row and the pooling runs)")
    args.runs = args.runs or ROOT / "runs" / ("ablation_quick" if quick else "ablation")
    args.out = args.out or (args.runs / "ablation" if quick else ROOT / "reports" / "ablation")
    return args


# --------------------------------------------------------------------------------------- runs


def plan(args: argparse.Namespace, variant: str, seed: int, tokenizer: Path) -> dict[str, tuple[str, list[str]]]:
    """Every run of one variant and seed, by folder name: (task, overrides of its task file)."""
    position, norm = variant.split("-")
    init = f"init={args.runs / f'{variant}-seed{seed}' / 'pretrain' / 'model'}"
    classify = [init, f"training.max_steps={args.classify_steps}", f"training.epochs={args.classify_epochs}",
                f"training.learning_rate={args.classify_lr}"]
    stages = {
        "pretrain": ("pretrain", [f"model.position_encoding={position}", f"model.norm_placement={norm}",
                                  f"model.max_position_embeddings={PRETRAIN_LENGTH}", f"data.tokenizer={tokenizer}",
                                  f"training.max_steps={args.pretrain_steps}",
                                  f"training.eval_every={args.pretrain_eval_every}"]),
        "ner": ("ner", [init, "training.max_steps=6" if args.quick else f"training.epochs={args.ner_epochs}",
                        f"training.batch_size={args.ner_batch_size}"]),
        "classify": ("classify", classify),
        # pooling on top of the pretrained checkpoint (the reference variant only)
        **{f"classify-{pooling}": ("classify", [*classify, f"model.pooling={pooling}"]) for pooling in POOLINGS[1:]},
    }
    return {name: (task, [*overrides, f"data.max_length={PRETRAIN_LENGTH}", f"training.seed={seed}",
                          f"training.output_dir={args.runs / f'{variant}-seed{seed}' / name}",
                          f"training.progress={json.dumps(args.progress)}", *args.data[task]])
            for name, (task, overrides) in stages.items()}


def stage(args: argparse.Namespace, variant: str, seed: int, name: str, tokenizer: Path) -> dict:
    """One run of the plan through nlu.runs.run (reused when finished), as a record for the JSON;
    seconds are the training loop's own clock."""
    task, overrides = plan(args, variant, seed, tokenizer)[name]
    settings = load_settings(TASKS[task], overrides, task=task)
    args.used.setdefault(task, resolve(settings).to_dict())  # the report's budget sentences
    record = run(settings)
    print(f"{variant}-seed{seed}/{name}: {'reused' if record.reused else f'{record.wall_seconds:.0f} s'}", flush=True)
    summary = record.summary
    common = {"variant": variant, "seed": seed, "run_dir": str(record.output_dir), "reused": record.reused,
              "train_seconds": summary["train_seconds"], "steps": summary["steps"]}
    if task == "pretrain":
        final = summary["final_eval"]
        return common | {key: final[key] for key in ("mlm_loss", "mlm_accuracy", "nsp_accuracy")} | {
            "unigram_mlm_loss": summary["unigram_mlm_loss"], "parameters": summary["parameters"],
            "heldout_pairs": summary["corpus"]["heldout"]["examples"],
            "curve": [{"step": row["step"], "mlm_loss": row["mlm_loss"]} for row in summary["evaluations"]]}
    if task == "ner":
        return common | {"ner_f1": summary["test_f1"], "ner_macro_f1": summary["test_macro_f1"],
                         "dev_f1": summary["dev_f1"], "best_step": summary["best_step"]}
    pooling = name.partition("-")[2] or "cls"
    saved = json.loads((record.output_dir / "best" / "config.json").read_text())["pooling"]
    if saved != pooling:
        raise RuntimeError(f"{record.output_dir}: asked for {pooling} pooling, the fine-tuned model has {saved}")
    return common | {"pooling": pooling, "classify_macro_f1": summary["test_macro_f1"],
                     "balanced_accuracy": summary["test_balanced_accuracy"], "accuracy": summary["test_accuracy"],
                     "dev_macro_f1": summary["dev_macro_f1"],
                     "recall": {label: summary[f"test_recall[{label}]"] for label in summary["labels"]}}


def shared_tokenizer(args: argparse.Namespace) -> Path:
    """One WordPiece vocabulary for every variant, trained once on the pretraining corpus."""
    target = args.runs / f"tokenizer-{args.vocab_size}"
    if not (target / "tokenizer.json").is_file():
        files = load_settings(TASKS["pretrain"], [], task="pretrain").data["train_files"]
        partial = args.runs / f".tokenizer-{args.vocab_size}.partial"
        save_tokenizer(train_tokenizer(files, vocab_size=args.vocab_size), partial)
        os.replace(partial, target)
    return target


def quick_data(args: argparse.Namespace) -> dict[str, list[str]]:
    """--quick: small slices of the shipped files (written once under RUNS/data)."""
    if not args.quick:
        return {"pretrain": [], "ner": [], "classify": []}
    folder = args.runs / "data"
    corpus = {}
    for split, source, documents in (("train", "news.txt", 120), ("heldout", "news_heldout.txt", 12)):
        corpus[split] = folder / f"news_{split}.txt"
        chosen = read_documents([ROOT / "data" / "corpus" / source])[:documents]
        corpus[split].write_text("\n\n".join("\n".join(d.sentences) for d in chosen) + "\n", encoding="utf-8")
    ner = write_slices(task_files("ner"), {"train": 300, "dev": 60, "test": 239}, folder / "ner", seed=0)
    classify = write_slices(task_files("classify"), {"train": 300, "dev": 150, "test": 150}, folder / "classify", seed=0)
    return {"pretrain": [f"data.train_files=[{corpus['train']}]", f"data.heldout_files=[{corpus['heldout']}]"],
            "ner": [f"data.{split}={path}" for split, path in ner.items()],
            "classify": [f"data.{split}={path}" for split, path in classify.items()]}


def task_files(task: str) -> dict[str, str]:
    data = load_settings(TASKS[task], [], task=task).data
    return {split: str(ROOT / data[split]) for split in ("train", "dev", "test")}


# -------------------------------------------------------------------------------- long inputs


def long_sequences(sentences: list[NerSentence], counts: list[int], target: int) -> list[NerSentence]:
    """Consecutive sentences joined until one holds more than ``target`` sub-tokens (``counts``
    per sentence); a last, shorter remainder joins the one before. Every tweet starts outside an
    entity, so the joined tags are valid IOB2 with the same entities."""
    groups: list[list[int]] = [[]]
    for index, count in enumerate(counts):
        groups[-1].append(index)
        if sum(counts[i] for i in groups[-1]) > target:
            groups.append([])
    if len(groups) > 1 and sum(counts[i] for i in groups[-1]) <= target:
        remainder = groups.pop()  # (``groups[-2] += groups.pop()`` would write over the wrong group)
        groups[-1] += remainder
    return [NerSentence([w for i in group for w in sentences[i].words], [t for i in group for t in sentences[i].tags],
                        sentences[group[0]].source, sentences[group[0]].line) for group in groups if group]


def subtoken_counts(tokenizer, sentences: list[NerSentence]) -> list[int]:
    return [len(ids) for ids in tokenizer([s.words for s in sentences], is_split_into_words=True,
                                          add_special_tokens=False)["input_ids"]]


def length_test(args: argparse.Namespace, variant: str, seed: int) -> dict:
    """Entity F1 of one fine-tuned NER model on the long test sequences, windowed and whole."""
    path = args.runs / f"{variant}-seed{seed}" / "ner" / "length_test.json"
    if path.exists():
        return json.loads(path.read_text())
    model_dir = args.runs / f"{variant}-seed{seed}" / "ner" / "best"
    model, tokenizer = ForTokenClassification.from_pretrained(model_dir), load_tokenizer(model_dir)
    tweets = read_ner_file(WNUT_TEST)
    result = {"variant": variant, "seed": seed}
    for target in LONG_TARGETS:
        sequences = long_sequences(tweets, subtoken_counts(tokenizer, tweets), target)
        modes = {"windows": PRETRAIN_LENGTH} | ({} if variant.startswith("learned") else {"whole": 4096})
        for mode, max_length in modes.items():
            predicted, extra = predict_tags(model, tokenizer, sequences, max_length, WINDOW_STRIDE, 32)
            scores = entity_scores([s.tags for s in sequences], predicted, mode="strict")["averages"]["micro"]
            result[f"{mode}_{target}"] = {key: scores[key] for key in ("f1", "precision", "recall")} | {
                "extra_windows": extra}
    path.write_text(json.dumps(result, indent=2))
    return result


def long_input_shapes(tokenizer_dir: Path) -> dict:
    tokenizer, tweets = load_tokenizer(tokenizer_dir), read_ner_file(WNUT_TEST)
    counts = subtoken_counts(tokenizer, tweets)
    shapes: dict = {"test_tweets": len(tweets), "test_tweets_longer_than_62": sum(c > PRETRAIN_LENGTH - 2 for c in counts)}
    for target in LONG_TARGETS:
        lengths = sorted(sum(subtoken_counts(tokenizer, [s])) for s in long_sequences(tweets, counts, target))
        shapes[str(target)] = {"sequences": len(lengths), "min": lengths[0], "max": lengths[-1],
                               "median": lengths[len(lengths) // 2]}
    return shapes


# ---------------------------------------------------------------------------------- stability


def stability() -> dict:
    """Post-LN vs pre-LN fitting the same two MLM batches at constant learning rates, no warm-up:
    the mean loss of the last 5 of 40 AdamW steps, per seed (the training loop's optimizer settings)."""
    tokenizer = load_tokenizer(STABILITY["vocabulary"])
    documents = read_documents([ROOT / "data" / "corpus" / "news.txt"])[:STABILITY["documents"]]
    examples = build_nsp_examples(tokenize_documents(documents, tokenizer), 64, seed=0)
    for index, example in enumerate(examples):
        example["index"] = index
    collator = PretrainingCollator(tokenizer, mlm_probability=0.15, seed=0)
    batches = [{k: v for k, v in collator(examples[start:start + 32]).items() if k != "nsp_labels"} for start in (0, 32)]
    targets = torch.cat([batch["mlm_labels"][batch["mlm_labels"] != -100] for batch in batches])
    frequencies = torch.bincount(targets).float() / len(targets)
    plateau = float(-(frequencies[frequencies > 0] * frequencies[frequencies > 0].log()).sum())
    finals: dict = {}
    for rate in STABILITY["learning_rates"]:
        for norm in ("post", "pre"):
            finals[f"{rate:g}/{norm}"] = [fit(norm, seed, rate, len(tokenizer), batches) for seed in STABILITY["seeds"]]
    return {"final_losses": finals, "context_free_loss": plateau, "command": command_line(root=ROOT),
            **{key: str(value.relative_to(ROOT)) if isinstance(value, Path) else value for key, value in STABILITY.items()}}


def fit(norm: str, seed: int, learning_rate: float, vocab_size: int, batches: list[dict]) -> float:
    torch.manual_seed(seed)
    model = ForPreTraining(EncoderConfig(vocab_size=vocab_size, hidden_size=STABILITY["hidden"],
                                         num_layers=STABILITY["layers"], num_heads=2, intermediate_size=256,
                                         max_position_embeddings=64, hidden_dropout=0.0, attention_dropout=0.0,
                                         norm_placement=norm))
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=learning_rate, betas=(0.9, 0.999), eps=1e-6)
    losses = []
    for step in range(STABILITY["steps"]):
        loss = model(**batches[step % len(batches)]).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    return sum(losses[-5:]) / 5


# ----------------------------------------------------------------------- aggregation, report


def aggregate(result: dict) -> dict:
    """Mean ± std over seeds of every figure the report shows, from the per-run records."""
    variants = result["settings"]["variants"]

    def over(kind: str, key: str, **where) -> dict:
        return mean_std(r[key] for r in result[kind] if all(r.get(k, "cls") == v for k, v in where.items()))

    table_ = {v: {"mlm_loss": over("pretrain", "mlm_loss", variant=v), "ner_f1": over("ner", "ner_f1", variant=v),
                  "classify_macro_f1": over("classify", "classify_macro_f1", variant=v, pooling="cls")}
              for v in variants}
    pooling = {p: over("classify", "classify_macro_f1", variant=DEFAULT_VARIANT, pooling=p) for p in POOLINGS}
    lengths = {v: {key: mean_std(r[key]["f1"] for r in result["length_test"] if r["variant"] == v and key in r)
                   for key in (f"{m}_{t}" for t in LONG_TARGETS for m in ("windows", "whole"))} for v in variants}
    curves = {}
    for variant in variants:
        runs = [{p["step"]: p["mlm_loss"] for p in r["curve"]} for r in result["pretrain"] if r["variant"] == variant]
        curves[variant] = {step: statistics.mean(run[step] for run in runs) for step in sorted(set.intersection(
            *[set(run) for run in runs]))}
    return {"variants": table_, "pooling": pooling, "length_test": lengths, "curves": curves}


def ranking(entries: dict[str, dict], direction: str) -> tuple[str, list[str]]:
    """The best entry and those tied with it: a gap no larger than the larger of the two stds
    (with a single seed there is no spread, so nothing is tied)."""
    entries = {key: entry for key, entry in entries.items() if entry["mean"] is not None}
    order = sorted(entries, key=lambda k: entries[k]["mean"], reverse=direction == "max")
    spread = lambda a, b: max(entries[a]["std"] or 0.0, entries[b]["std"] or 0.0)  # noqa: E731
    return order[0], [o for o in order[1:] if abs(entries[order[0]]["mean"] - entries[o]["mean"]) <= spread(order[0], o)]


def name(variant: str) -> str:
    position, norm = variant.split("-")
    return f"{position} + {norm}-LN"


def stalled(run: dict) -> bool:
    """A classification run that predicts none of some class (a test recall of 0)."""
    return min(run["recall"].values()) == 0.0


def verdict(aggregated: dict, metric: str) -> str:
    label, direction = METRICS[metric]
    entries = {v: row[metric] for v, row in aggregated["variants"].items()}
    best, tied = ranking(entries, direction)
    text = f"**{label}**: best mean is {name(best)} ({cell(entries[best])})"
    if best != DEFAULT_VARIANT:
        text += (f", {entries[best]['mean'] - entries[DEFAULT_VARIANT]['mean']:+.4f} from BERT's learned + post-LN "
                 f"({cell(entries[DEFAULT_VARIANT])})")
    if entries[DEFAULT_VARIANT]["std"] is None:
        return text + " (one seed: no spread to judge the gaps by)."
    return text + (f"; tied with it (gap within one std): {', '.join(name(v) for v in tied)}." if tied
                   else "; every other variant is further than one std away.")


def stability_lines(section: dict) -> list[str]:
    plateau, finals = section["context_free_loss"], section["final_losses"]
    fits = lambda losses: sum(loss < 0.9 * plateau for loss in losses)  # noqa: E731
    rows = []
    for rate in section["learning_rates"]:
        post, pre = finals[f"{rate:g}/post"], finals[f"{rate:g}/pre"]
        rows.append([f"{rate:g}", f"{min(post):.2f}–{max(post):.2f}", f"{min(pre):.2f}–{max(pre):.2f}",
                     f"{fits(post)} / {fits(pre)} of {len(post)}"])
    return ["## LayerNorm placement at a high learning rate", "",
            f"A {section['layers']}-layer, {section['hidden']}-wide encoder fits the same two MLM batches (32 NSP pairs "
            f"each from the first {section['documents']} news articles, vocabulary `{section['vocabulary']}`) for "
            f"{section['steps']} AdamW steps at a constant learning rate, no warm-up, seeds "
            f"{', '.join(map(str, section['seeds']))}. Cells: the mean MLM loss of the last 5 steps, lowest–highest "
            f"over seeds. A context-free model (the batches' own target frequencies) scores {plateau:.2f}; a run "
            f"'fits' below 90% of that. Made by `{section['command']}`.", "",
            *table(["learning rate", "post-LN", "pre-LN", "runs that fit, post / pre"], rows), "",
            "Where post-LN stops fitting and pre-LN still does, the window is real but narrow: it is a property of "
            "this size and these batches, which is why it is measured here rather than asserted by a test.", ""]


def render(result: dict) -> str:
    """reports/ablation.md from reports/ablation.json alone."""
    aggregated, settings = aggregate(result), result["settings"]
    seeds, machine_info = settings["seeds"], result["machine"]
    several = len(seeds) > 1
    stage_seconds = sum(run["train_seconds"] for kind in ("pretrain", "ner", "classify") for run in result[kind])
    first = result["pretrain"][0]
    lines = ["# Encoder variants: which to pick (issue #10)", "", f"Made by `{result['command']}`, finished "
             f"{result['finished']}; the stages took {stage_seconds / 60:.0f} min of training-loop time in all, on "
             f"{machine_line(machine_info)}.",
             "", "## Setup", "",
             f"- Variants: {len(settings['variants'])} of position encoding (learned / sinusoidal / rotary) × LayerNorm "
             f"placement (post / pre); seeds {', '.join(map(str, seeds))}"
             + (" (cells: mean ± sample std over seeds)." if several else " (a single seed: no spread)."),
             f"- Pretraining, identical for every variant: {settings['pretrain_budget']}.",
             f"- NER fine-tuning: {settings['ner_budget']}.",
             f"- Classification fine-tuning: {settings['classify_budget']}.",
             "- Each fine-tune starts from its own seed's pretrained model and uses that seed; test sets are scored "
             "once, with the checkpoint chosen on dev.", "",
             "## Position encoding × LayerNorm placement", "",
             *table(["variant", "held-out MLM loss ↓", "NER test entity F1 ↑", "classification test macro-F1 ↑"],
                    [[name(v) + (" (BERT)" if v == DEFAULT_VARIANT else ""), *(cell(row[m]) for m in METRICS)]
                     for v, row in aggregated["variants"].items()]), "",
             f"Held-out MLM loss: on the {first['heldout_pairs']:,} NSP pairs of the held-out corpus (masks drawn once); "
             f"the unigram baseline (a model that ignores context) scores {first['unigram_mlm_loss']:.4f} on them.", "",
             f"![held-out MLM loss per variant]({Path(result['plot']).name})", "", "### What the numbers say", "",
             *[f"- {verdict(aggregated, metric)}" for metric in METRICS],
             f"- Ties: a gap no larger than the larger of the two stds; with {len(seeds)} seeds a rough bar, not a "
             "significance test." if several else "- A single seed: every gap above could be seed noise."]
    has_recall = all("recall" in r for r in result["classify"])  # reports/ablation.json predates it
    stuck = lambda **where: sum(stalled(r) for r in result["classify"]  # noqa: E731
                                if all(r[k] == v for k, v in where.items()))
    if has_recall and any(stuck(variant=v, pooling="cls") for v in settings["variants"]):
        lines.append("- Classification runs that predict none of some class (a test recall of 0; macro-F1 near 0.5): "
                     + ", ".join(f"{name(v)} {stuck(variant=v, pooling='cls')} of {len(seeds)}" for v in settings["variants"])
                     + ". At this budget the classification figure is mostly whether a run leaves that plateau.")
    pooling = aggregated["pooling"]
    best, tied = ranking(pooling, "max")
    lines += ["", "## Pooling (classification, learned + post-LN)", "",
              *table(["pooling", "test macro-F1", *(["runs predicting none of some class"] if has_recall else [])],
                     [[p + (" (BERT: [CLS] through the NSP-trained dense + tanh)" if p == "cls" else ""), cell(entry),
                       *([f"{stuck(variant=DEFAULT_VARIANT, pooling=p)} of {len(entry['values'])}"] if has_recall else [])]
                      for p, entry in pooling.items()]), "",
              f"Best mean: **{best}** ({cell(pooling[best])})" + (f"; tied within one std: {', '.join(tied)}." if tied
                                                                   else "; the others are more than one std behind.")]
    shapes = result["long_inputs"]
    lines += ["", "## Inputs longer than the pretraining length (NER)", "",
              f"Pretraining pairs and NER inputs are at most {PRETRAIN_LENGTH} sub-tokens, and learned-position models "
              f"have exactly {PRETRAIN_LENGTH} positions. Test tweets are short ({shapes['test_tweets_longer_than_62']} "
              f"of {shapes['test_tweets']} exceed {PRETRAIN_LENGTH - 2} sub-tokens), so long inputs join consecutive "
              "test tweets (same words, same gold entities):", "",
              *[f"- > {t} sub-tokens: {shapes[str(t)]['sequences']} sequences of {shapes[str(t)]['min']}–"
                f"{shapes[str(t)]['max']} sub-tokens (median {shapes[str(t)]['median']})." for t in LONG_TARGETS], "",
              f"'windows': windows of {PRETRAIN_LENGTH} (stride {WINDOW_STRIDE}), each word from the window where it "
              f"has most context; 'whole': one pass, positions beyond {PRETRAIN_LENGTH} never seen in training. Test "
              "entity F1 (strict):", "",
              *table(["variant", "short tweets", *(f"> {t}, {m}" for t in LONG_TARGETS for m in ("windows", "whole"))],
                     [[name(v), cell(aggregated["variants"][v]["ner_f1"]),
                       *(cell(row[f"{m}_{t}"]) for t in LONG_TARGETS for m in ("windows", "whole"))]
                      for v, row in aggregated["length_test"].items()]), ""]
    for target in LONG_TARGETS:
        options = {f"{v}|{m}": row[f"{m}_{target}"] for v, row in aggregated["length_test"].items()
                   for m in ("windows", "whole") if row[f"{m}_{target}"]["mean"] is not None}
        for v in aggregated["length_test"]:
            if f"{v}|whole" in options:
                whole, windows = options[f"{v}|whole"], options[f"{v}|windows"]
                gap, spread = whole["mean"] - windows["mean"], max(whole["std"] or 0.0, windows["std"] or 0.0)
                judged = "a tie (within one std)" if abs(gap) <= spread else ("whole wins" if gap > 0 else "windows win")
                lines.append(f"- > {target}: {name(v)} whole vs windows {gap:+.4f} F1: {judged}.")
        best, tied = ranking(options, "max")
        label = lambda key: f"{name(key.split('|')[0])}, {key.split('|')[1]}"  # noqa: E731
        lines.append(f"- > {target}: best overall is {label(best)} ({cell(options[best])})"
                     + (f"; tied within one std: {'; '.join(map(label, tied))}." if tied else "."))
    lines += ["", "## Recommendation", "", *recommendation(aggregated), ""]
    if "stability" in result:
        lines += stability_lines(result["stability"])
    lines += ["## Per run", "",
              *table(["variant", "seed", "held-out MLM loss", "NER test F1", "NER dev F1", "classify test macro-F1 (cls)",
                      "pretrain s", "NER s", "classify s"], per_run_rows(result)), "",
              "Seconds: the training loop's own clock, on a CPU shared with other jobs. Run folders (git-ignored): "
              f"`{settings['runs']}`; all numbers: [{Path(result['json']).name}]({Path(result['json']).name}).", ""]
    return "\n".join(lines)


def per_run_rows(result: dict) -> list[list]:
    rows = []
    for run_ in result["pretrain"]:
        same = lambda r: r["variant"] == run_["variant"] and r["seed"] == run_["seed"]  # noqa: E731
        ner = next(r for r in result["ner"] if same(r))
        cls = next(r for r in result["classify"] if same(r) and r["pooling"] == "cls")
        rows.append([name(run_["variant"]), run_["seed"], f"{run_['mlm_loss']:.4f}", f"{ner['ner_f1']:.4f}",
                     f"{ner['dev_f1']:.4f}", f"{cls['classify_macro_f1']:.4f}", f"{run_['train_seconds']:.0f}",
                     f"{ner['train_seconds']:.0f}", f"{cls['train_seconds']:.0f}"])
    return rows


def recommendation(aggregated: dict) -> list[str]:
    """Plain sentences from the measured table: what the evidence supports, ties said as ties."""
    winners = {m: ranking({v: row[m] for v, row in aggregated["variants"].items()}, d) for m, (_, d) in METRICS.items()}
    downstream = ("ner_f1", "classify_macro_f1")
    lines = [f"- {METRICS[m][0]}: {name(winners[m][0])} beats BERT's learned + post-LN by more than one std "
             f"({cell(aggregated['variants'][winners[m][0]][m])} vs {cell(aggregated['variants'][DEFAULT_VARIANT][m])})."
             for m in downstream if DEFAULT_VARIANT not in [winners[m][0], *winners[m][1]]]
    if not lines:
        lines.append("- For fine-tuning quality at this scale the variant does not matter measurably: BERT's learned + "
                     "post-LN is within one std of the best on NER and classification, so keep the default (the only "
                     "one that exports to transformers' BERT).")
    best, tied = winners["mlm_loss"]
    return lines + [f"- Pretraining loss: {name(best)} reaches the lowest held-out MLM loss at this budget"
                    + (f" (tied within one std: {', '.join(map(name, tied))})." if tied else ".")]


def plot(result: dict, path: Path) -> None:
    curves = {name(v): sorted(curve.items()) for v, curve in aggregate(result)["curves"].items()}
    steps = [step for curve in curves.values() for step, _ in curve]
    unigram = result["pretrain"][0]["unigram_mlm_loss"]
    plot_curves(curves | {"unigram baseline": [(min(steps), unigram), (max(steps), unigram)]}, path,
                xlabel="pretraining step", ylabel="held-out MLM loss (mean over seeds)",
                title="Pretraining on the shipped news corpus: held-out MLM loss")


def budgets(args: argparse.Namespace, tokenizer: Path) -> dict[str, str]:
    """The budget sentences of the report, from the resolved settings of the first runs."""
    p, n, c = args.used["pretrain"], args.used["ner"], args.used["classify"]
    steps = lambda t: (f"{t['max_steps']} steps" if t["max_steps"] else f"{t['epochs']:g} epoch(s)")  # noqa: E731
    return {
        "pretrain_budget": f"{steps(p['training'])} at batch {p['training']['batch_size']}, lr "
                           f"{p['training']['learning_rate']:g} with {p['training']['warmup_ratio']:.0%} warm-up and linear "
                           f"decay, {p['data']['mlm_probability']:.0%} masking, hidden {p['model']['hidden_size']}, "
                           f"{p['model']['num_layers']} layers, {p['model']['num_heads']} heads, a shared "
                           f"{args.vocab_size:,}-word WordPiece vocabulary ({tokenizer.name}), "
                           f"max_position_embeddings {p['model']['max_position_embeddings']}; held-out MLM loss every "
                           f"{p['training']['eval_every']} steps",
        "ner_budget": f"{steps(n['training'])} (early stopping patience {n['training']['early_stopping_patience']}), batch "
                      f"{n['training']['batch_size']}, lr {n['training']['learning_rate']:g}, max_length "
                      f"{n['data']['max_length']} (stride {n['data']['stride']})",
        "classify_budget": f"{steps(c['training'])} at batch {c['training']['batch_size']}, lr "
                           f"{c['training']['learning_rate']:g}, max_length {c['data']['max_length']}, loss "
                           f"{c['data']['loss']}" + (", on small slices of the data (--quick)" if args.quick else ""),
    }


def finish(args: argparse.Namespace, result: dict) -> None:
    plot(result, args.out.parent / f"{args.out.name}_mlm.png")
    print(f"report: {write_report(args.out, result, render)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.report_only or args.stability:
        result = json.loads(args.out.with_suffix(".json").read_text(encoding="utf-8"))
        if args.stability:
            result["stability"] = stability()
        finish(args, result)
        return 0
    started = time.perf_counter()
    args.runs.mkdir(parents=True, exist_ok=True)
    tokenizer = shared_tokenizer(args)
    args.data, args.used = quick_data(args), {}
    result: dict = {"pretrain": [], "ner": [], "classify": [], "length_test": []}
    for seed in args.seeds:
        for variant in args.variants:
            for kind in ("pretrain", "ner", "classify"):
                result[kind].append(stage(args, variant, seed, kind, tokenizer))
            result["length_test"].append(length_test(args, variant, seed))
        result["classify"] += [stage(args, DEFAULT_VARIANT, seed, f"classify-{p}", tokenizer) for p in POOLINGS[1:]]
        print(f"seed {seed} done [{(time.perf_counter() - started) / 60:.1f} min]", flush=True)
    result |= {"command": command_line(argv and [__file__, *argv], root=ROOT),
               "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "runtime_seconds": time.perf_counter() - started, "machine": machine(),
               "settings": {"seeds": args.seeds, "variants": args.variants, "runs": str(args.runs), "quick": args.quick,
                            **budgets(args, tokenizer)},
               "long_inputs": long_input_shapes(tokenizer), "stability": stability(),
               "plot": f"{args.out.name}_mlm.png", "json": args.out.with_suffix(".json").name}
    finish(args, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
