"""Which encoder variant to pick (issue #10): position encoding × LayerNorm placement, pooling,
long inputs, and LayerNorm placement at a high learning rate.

    OMP_NUM_THREADS=1 python scripts/ablate.py              # the full ablation (~45 min on 1 core)
    OMP_NUM_THREADS=1 python scripts/ablate.py --quick      # 2 variants, 1 seed, tiny budgets (~3 min)
    python scripts/ablate.py --report-only                  # OUT.md and the plot again from OUT.json

1. Three sweeps (nlu.sweep), each also reported on its own beside OUT: every variant pretrained
   (tasks/sweeps/ablation_pretrain.yaml), then each pretrained row and seed fine-tuned for NER and
   classification (ablation_ner.yaml, ablation_classify.yaml, whose ``init`` names the pretraining
   sweep's runs), with mean and max pooling for BERT's variant. Finished runs are reused, so the
   sweeps can also be run one by one with ``nlu sweep``; this script's runs are theirs.
2. Long inputs: each NER model tags test sequences made of consecutive test tweets joined until
   they hold more than 128 (256) sub-tokens, in windows of 64 and (sinusoidal, rotary) whole.
3. Stability: a 6-layer encoder fits two fixed MLM batches at a constant high learning rate with
   no warm-up, post-LN against pre-LN (Xiong et al. 2020), five seeds per learning rate.

Writes OUT.md, OUT.json and OUT_mlm.png (default OUT = reports/ablation), and the sweeps' reports
in OUT_pretrain/, OUT_ner/, OUT_classify/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from nlu.benchmark import training_step
from nlu.config import EncoderConfig
from nlu.data.corpus import read_documents
from nlu.data.ner import NerSentence, read_ner_file
from nlu.data.pretraining import PretrainingCollator, collator_examples, tokenize_documents
from nlu.evaluation.metrics import entity_scores
from nlu.evaluation.plots import plot_curves
from nlu.model import ForPreTraining, ForTokenClassification
from nlu.reporting import (cell, command_line, machine, machine_line, mean_std, paired_difference, table,
                           write_report)
from nlu.settings import load_settings
from nlu.sweep import load_sweep, missed_classes, noise_verdicts, run_sweep, write_sweep
from nlu.tasks.ner import predict_tags
from nlu.tokenizer import load_tokenizer
from nlu.training.loop import parameter_groups

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = {kind: ROOT / "tasks" / "sweeps" / f"ablation_{kind}.yaml" for kind in ("pretrain", "ner", "classify")}
WNUT_TEST = ROOT / "data" / "ner" / "wnut16" / "test.conll"
REFERENCE = "learned + post-LN"  # BERT's
QUICK_VARIANTS = (REFERENCE, "rotary + pre-LN")
QUICK = {"pretrain": ({"training.max_steps": 6, "training.eval_every": 3}, {}),  # kind → (overrides, subsets)
         "ner": ({"training.max_steps": 6}, {"train": 300, "dev": 60}),
         "classify": ({"training.max_steps": 6}, {"train": 300, "dev": 150, "test": 150})}
POOLINGS = {"cls": REFERENCE, "mean": f"{REFERENCE}, mean pooling", "max": f"{REFERENCE}, max pooling"}
PRETRAIN_LENGTH, WINDOW_STRIDE, LONG_TARGETS = 64, 32, (128, 256)
METRICS = {"pretrain": ("held-out MLM loss", "final_eval.mlm_loss", "min"),
           "ner": ("NER test entity F1", "test_f1", "max"),
           "classify": ("classification test macro-F1", "test_macro_f1", "max")}
# The stability section: a kept vocabulary (tests/data), the one its figures were made with; the
# window in which only pre-LN trains is narrow, and depends on it.
STABILITY = {"vocabulary": ROOT / "tests" / "data" / "news120_wordpiece1000", "documents": 120, "steps": 40,
             "learning_rates": (7e-3, 1e-2, 1.5e-2), "seeds": (0, 1, 2, 3, 4), "layers": 6, "hidden": 64}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--runs", type=Path, help="the sweeps' run folders, from the repository's root (default "
                                                  "runs/sweeps, nlu sweep's own, --quick: runs/ablation_quick)")
    parser.add_argument("--progress", action="store_true", help="show the training loop's progress bars")
    parser.add_argument("--out", type=Path, help="output stem: OUT.md, OUT.json, OUT_mlm.png (default reports/ablation; "
                                                                   "--quick: RUNS/ablation)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 variants, 1 seed, tiny budgets and data")
    parser.add_argument("--report-only", action="store_true", help="rewrite OUT.md and the plot from OUT.json")
    args = parser.parse_args(argv)
    args.runs = args.runs or Path("runs") / ("ablation_quick" if args.quick else "sweeps")  # relative, as nlu sweep's
    args.out = args.out or (args.runs / "ablation" if args.quick else ROOT / "reports" / "ablation")
    return args


def sweeps(quick: bool, progress: bool = False) -> dict:
    """The three sweep files; --quick keeps two variants, one seed, six steps and small subsets."""
    loaded = {kind: load_sweep(path) for kind, path in SWEEPS.items()}
    for sweep in loaded.values():
        sweep.overrides["training.progress"] = progress  # display only: the runs stay nlu sweep's
    if quick:
        for kind, sweep in loaded.items():
            overrides, subsets = QUICK[kind]
            sweep.rows = {row: values for row, values in sweep.rows.items() if row.startswith(QUICK_VARIANTS)}
            sweep.seeds, sweep.overrides, sweep.subsets = [1], {**sweep.overrides, **overrides}, subsets
    return loaded


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


def length_test(run_dir: Path, whole: bool) -> dict:
    """Entity F1 of one fine-tuned NER model on the long test sequences, windowed and (``whole``) in
    one pass; kept beside the run, so a reused run is not scored again."""
    path = run_dir / "length_test.json"
    if path.exists():
        return json.loads(path.read_text())
    model, tokenizer = ForTokenClassification.from_pretrained(run_dir / "best"), load_tokenizer(run_dir / "best")
    tweets = read_ner_file(WNUT_TEST)
    result = {}
    for target in LONG_TARGETS:
        sequences = long_sequences(tweets, subtoken_counts(tokenizer, tweets), target)
        for mode, max_length in {"windows": PRETRAIN_LENGTH, **({"whole": 4096} if whole else {})}.items():
            predicted, extra = predict_tags(model, tokenizer, sequences, max_length, WINDOW_STRIDE, 32)
            scores = entity_scores([s.tags for s in sequences], predicted, mode="strict")["averages"]["micro"]
            result[f"{mode}_{target}"] = {key: scores[key] for key in ("f1", "precision", "recall")} | {
                "extra_windows": extra}
    path.write_text(json.dumps(result, indent=2))
    return result


def long_inputs(sweep_results: dict) -> dict:
    """Mean ± std over seeds of every variant's long-input scores, and the sequences' shapes."""
    positions = {row: entry["overrides"]["model.position_encoding"]
                 for row, entry in sweep_results["pretrain"]["rows"].items()}
    scores = {}
    for row, entry in sweep_results["ner"]["rows"].items():
        tests = [length_test(Path(run_["output_dir"]), whole=positions[row] != "learned") for run_ in entry["runs"]]
        scores[row] = {key: mean_std(test[key]["f1"] if key in test else None for test in tests)
                       for key in (f"{mode}_{t}" for t in LONG_TARGETS for mode in ("windows", "whole"))}
    tokenizer, tweets = load_tokenizer(sweep_results["pretrain"]["data"]["vocabulary"]), read_ner_file(WNUT_TEST)
    counts = subtoken_counts(tokenizer, tweets)
    shapes: dict = {"test_tweets": len(tweets), "test_tweets_longer_than_62": sum(c > PRETRAIN_LENGTH - 2 for c in counts)}
    for target in LONG_TARGETS:
        lengths = sorted(sum(subtoken_counts(tokenizer, [s])) for s in long_sequences(tweets, counts, target))
        shapes[str(target)] = {"sequences": len(lengths), "min": lengths[0], "max": lengths[-1],
                               "median": lengths[len(lengths) // 2]}
    return {"scores": scores, "shapes": shapes}


# ---------------------------------------------------------------------------------- stability


def stability() -> dict:
    """Post-LN vs pre-LN fitting the same two MLM batches at constant learning rates, no warm-up:
    the mean loss of the last 5 of 40 AdamW steps, per seed (the training loop's optimizer settings)."""
    tokenizer = load_tokenizer(STABILITY["vocabulary"])
    documents = read_documents([ROOT / "data" / "corpus" / "news.txt"])[:STABILITY["documents"]]
    examples = collator_examples(tokenize_documents(documents, tokenizer), tokenizer, 64, seed=0)
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
    losses: list[float] = []

    def loss(model_: ForPreTraining, batch: dict) -> torch.Tensor:
        value = model_(**batch).loss
        losses.append(value.item())
        return value
    step = training_step(model, optimizer, loss, batches, max_grad_norm=1.0)
    for round_ in range(STABILITY["steps"]):
        step(round_)
    return sum(losses[-5:]) / 5


# ------------------------------------------------------------------------------------- report


def against_reference(differences: dict[str, dict], direction: str) -> tuple[list[str], list[str]] | None:
    """Rows better and worse than BERT's variant by every measure of noise the sweeps give them
    (seeds' spread, paired bootstrap over test examples); None when no row has one (a single seed
    without test predictions)."""
    better, worse, judged = [], [], False
    for row, difference in differences.items():
        verdicts = noise_verdicts(difference["by_seed"], difference["bootstrap"])
        judged = judged or bool(verdicts)
        if verdicts and all(verdict.startswith("outside") for verdict in verdicts):
            gap = (difference["by_seed"] or difference["bootstrap"])["mean_difference"]
            (better if (gap > 0) == (direction == "max") else worse).append(f"{row} ({gap:+.4f})")
    return (better, worse) if judged else None


def comparison(kind: str, differences: dict[str, dict]) -> str:
    label, _, direction = METRICS[kind]
    judged = against_reference(differences, direction)
    if judged is None:
        return f"{label}: one seed and no test predictions, so no measure of noise to judge a gap by"
    better, worse = judged
    return f"{label} against BERT's {REFERENCE}: " + ("; ".join(
        part for part in (better and "better outside noise: " + ", ".join(better),
                          worse and "worse outside noise: " + ", ".join(worse)) if part) or "every variant within noise")


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
    figures, reports = result["figures"], result["sweep_reports"]
    variants = list(figures["ner"])
    entries = {kind: {row: figures[kind][row][key] for row in variants} for kind, (_, key, _) in METRICS.items()}
    lines = ["# Encoder variants: which to pick (issue #10)", "",
             f"Made by `{result['command']}`, finished {result['finished']} in {result['runtime_seconds'] / 60:.1f} min "
             f"({result['reused_runs']} of {result['runs']} runs reused from an earlier invocation; the runs' own "
             f"training took {result['train_seconds'] / 60:.1f} min), on {machine_line(result['machine'])}.", "",
             "Every figure below is a mean ± sample std over the seeds (one value with one seed) of three sweeps, each "
             "with its own report "
             "(the budget as overrides of the task files, every figure, per-seed and paired-bootstrap differences to "
             "BERT's variant, baselines): "
             + ", ".join(f"[{kind}]({link})" for kind, link in reports.items())
             + ". Each fine-tune starts from its own seed's pretrained model; test sets are scored once, with the "
               "checkpoint chosen on dev.", "",
             "## Position encoding × LayerNorm placement", "",
             *table(["variant", *(f"{label} {'↓' if direction == 'min' else '↑'}" for label, _, direction in METRICS.values())],
                    [[row + (" (BERT)" if row == REFERENCE else ""), *(cell(entries[kind][row]) for kind in METRICS)]
                     for row in variants]), "",
             f"Held-out MLM loss: on the held-out corpus's NSP pairs (masks drawn once); the unigram baseline (a model "
             f"that ignores context) scores {cell(figures['pretrain'][REFERENCE]['unigram_mlm_loss'])} on them.", "",
             f"![held-out MLM loss per variant]({Path(result['plot']).name})", "", "### What the numbers say", "",
             *[f"- {comparison(kind, variant_differences(result, kind))}." for kind in METRICS],
             "- Outside noise: outside the sweep's 95% Student-t interval over paired seeds and, where the "
             "runs have test predictions, its paired bootstrap over test examples; the Δ is the mean paired gap."]
    lines += degenerate_lines(figures, entries, variants)
    stalled = {row: count for row, count in result["stalled"].items() if count[0]}
    if stalled:
        lines.append("- Classification runs that predict none of some class (a test recall of 0; macro-F1 near 0.5 or "
                     "below): " + ", ".join(f"{row} {count} of {runs}" for row, (count, runs) in stalled.items())
                     + ". At this budget the classification figure is mostly whether a run leaves that plateau.")
    pooling = {name: row for name, row in POOLINGS.items() if row in figures["classify"]}
    if len(pooling) > 1:
        differences = result["differences"]["classify"]
        lines += ["", f"## Pooling (classification, {REFERENCE})", "",
                  *table(["pooling", "test macro-F1", "Δ to cls"],
                         [[name + (" (BERT: [CLS] through the NSP-trained dense + tanh)" if name == "cls" else ""),
                           cell(figures["classify"][row]["test_macro_f1"]),
                           "reference" if row == REFERENCE else judged_cell(**differences[row])]
                          for name, row in pooling.items()]), ""]
    lines += long_input_lines(result["long_inputs"], entries["ner"])
    lines += ["", "## Recommendation", "", *recommendation(result), ""]
    if "stability" in result:
        lines += stability_lines(result["stability"])
    lines += [f"All numbers: [{Path(result['json']).name}]({Path(result['json']).name}).", ""]
    return "\n".join(lines)


def degenerate_lines(figures: dict, entries: dict, variants: list[str]) -> list[str]:
    """Runs that learned nothing, said beside the gaps (a gap between two of them says nothing)."""
    lines = []
    untagged = {row: sum(value == 0 for value in entries["ner"][row]["values"]) for row in variants}
    if any(untagged.values()):
        lines.append("- NER runs that tag no entity (test F1 0): " + ", ".join(
            f"{row} {count} of {len(entries['ner'][row]['values'])}" for row, count in untagged.items() if count) + ".")
    unigram = figures["pretrain"][REFERENCE]["unigram_mlm_loss"]["mean"]
    behind = [row for row in variants if entries["pretrain"][row]["mean"] >= unigram]
    if behind:
        lines.append(f"- Pretraining no better than the context-free unigram baseline ({unigram:.4f}): "
                     f"{', '.join(behind)}.")
    return lines


def long_input_lines(section: dict, short: dict) -> list[str]:
    shapes, scores = section["shapes"], section["scores"]
    lines = ["", "## Inputs longer than the pretraining length (NER)", "",
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
                    [[row, cell(short[row]), *(cell(entry[f"{m}_{t}"]) for t in LONG_TARGETS for m in ("windows", "whole"))]
                     for row, entry in scores.items()]), ""]
    for target in LONG_TARGETS:
        for row, entry in scores.items():
            whole, windows = entry[f"whole_{target}"], entry[f"windows_{target}"]
            if whole["values"]:
                lines.append(f"- > {target}, {row}: whole minus windows by seed "
                             f"{judged_cell(paired_difference(whole['values'], windows['values']))}.")
        means = {f"{row}, {m}": entry[f"{m}_{target}"]["mean"] for row, entry in scores.items() for m in ("windows", "whole")
                 if entry[f"{m}_{target}"]["mean"] is not None}
        if len(set(means.values())) > 1:  # no winner among equals (a smoke run's zeros)
            best = max(means, key=means.get)
            lines.append(f"- > {target}: best mean is {best} ({means[best]:.4f}).")
    return lines


def judged_cell(by_seed: dict | None, bootstrap: dict | None = None) -> str:
    """A paired difference (by seed, and by bootstrap where there is one) with its verdicts."""
    if not (by_seed or bootstrap):
        return "n/a"
    spread = f" ± {by_seed['half_width']:.4f}" if by_seed and by_seed["low"] is not None else ""
    verdicts = noise_verdicts(by_seed, bootstrap)
    said = ", ".join(verdicts) or ("no spread over seeds" if by_seed and len(by_seed["values"]) > 1 else "one seed")
    return f"{(by_seed or bootstrap)['mean_difference']:+.4f}{spread} ({said})"


def variant_differences(result: dict, kind: str) -> dict[str, dict]:
    return {row: value for row, value in result["differences"][kind].items() if row in result["figures"]["ner"]}


def recommendation(result: dict) -> list[str]:
    """Plain sentences from the sweeps' judgements: a variant is recommended over BERT's only where
    it is better outside noise."""
    if len(next(iter(result["figures"]["ner"].values()))["test_f1"]["values"]) < 2:
        return ["- One seed per variant (a smoke run): no recommendation follows from it."]
    lines = []
    for kind in ("ner", "classify"):
        label, _, direction = METRICS[kind]
        better, _ = against_reference(variant_differences(result, kind), direction) or ([], [])
        if better:
            lines.append(f"- {label}: {', '.join(better)} beat BERT's {REFERENCE} outside noise.")
    if not lines:
        lines.append(f"- Fine-tuning: no variant beats BERT's {REFERENCE} outside noise on NER or classification, so "
                     "keep the default (the only one that exports to transformers' BERT).")
    return lines + [f"- Pretraining: {comparison('pretrain', variant_differences(result, 'pretrain'))}."]


def mlm_curves(pretrain: dict) -> dict[str, dict[int, float]]:
    """Held-out MLM loss per step, the mean over a variant's seeds, from each run's pretraining.json."""
    curves = {}
    for row, entry in pretrain["rows"].items():
        runs = [{point["step"]: point["mlm_loss"] for point in
                 json.loads((Path(run_["output_dir"]) / "pretraining.json").read_text())["evaluations"]}
                for run_ in entry["runs"]]
        curves[row] = {step: statistics.mean(run_[step] for run_ in runs)
                       for step in sorted(set.intersection(*(set(run_) for run_ in runs)))}
    return curves


def plot(result: dict, path: Path) -> None:
    curves = {row: sorted((int(step), loss) for step, loss in curve.items()) for row, curve in result["curves"].items()}
    steps = [step for curve in curves.values() for step, _ in curve]
    unigram = result["figures"]["pretrain"][REFERENCE]["unigram_mlm_loss"]["mean"]
    plot_curves(curves | {"unigram baseline": [(min(steps), unigram), (max(steps), unigram)]}, path,
                xlabel="pretraining step", ylabel="held-out MLM loss (mean over seeds)",
                title="Pretraining on the shipped news corpus: held-out MLM loss")


def headline(result: dict) -> str:
    """The results index's line: per figure, the variants that differ from BERT's outside noise."""
    return "; ".join(comparison(kind, variant_differences(result, kind)) for kind in METRICS)


def finish(args: argparse.Namespace, result: dict) -> None:
    result["headline"] = headline(result)
    plot(result, args.out.parent / f"{args.out.name}_mlm.png")
    print(f"report: {write_report(args.out, result, render)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.report_only:
        finish(args, json.loads(args.out.with_suffix(".json").read_text(encoding="utf-8")))
        return 0
    started = time.perf_counter()
    results, reports = {}, {}
    for kind, sweep in sweeps(args.quick, args.progress).items():
        results[kind] = run_sweep(sweep, load_settings(sweep.config).task, args.runs)
        results[kind]["part_of"] = f"{args.out.name}.md"  # the results index lists the study, not its parts
        reports[kind] = str(write_sweep(results[kind], args.out.parent / f"{args.out.name}_{kind}").relative_to(args.out.parent))
        print(f"{kind}: {reports[kind]} [{(time.perf_counter() - started) / 60:.1f} min]", flush=True)
    every_run = [run_ for sweep in results.values() for entry in sweep["rows"].values() for run_ in entry["runs"]]
    result = {"command": command_line(argv and [__file__, *argv], root=ROOT),
              "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": machine(), "sweep_reports": reports,
              "train_seconds": sum(run_["figures"]["train_seconds"] for run_ in every_run),
              "runs": len(every_run), "reused_runs": sum(run_["reused"] for run_ in every_run),
              "figures": {kind: {row: {key: value for key, value in figures.items()
                                       if key in (METRICS[kind][1], "unigram_mlm_loss")}
                                 for row, figures in results[kind]["statistics"].items()} for kind in results},
              "differences": {kind: {row: {"by_seed": sweep["seed_differences"].get(row),
                                           "bootstrap": sweep["bootstrap"].get(row)} for row in list(sweep["rows"])[1:]}
                              for kind, sweep in results.items()},
              "stalled": {row: [sum(bool(missed_classes(run_["figures"])) for run_ in entry["runs"]), len(entry["runs"])]
                          for row, entry in results["classify"]["rows"].items()},
              "curves": mlm_curves(results["pretrain"]), "long_inputs": long_inputs(results),
              "stability": stability(), "plot": f"{args.out.name}_mlm.png", "json": args.out.with_suffix(".json").name}
    result["runtime_seconds"] = time.perf_counter() - started
    finish(args, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
