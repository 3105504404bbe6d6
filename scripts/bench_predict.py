"""Prediction throughput: nlu.load(...).predict against the path `nlu predict` took before it
(predict_tags on NerSentence records), on the WNUT-16 test split, in one process.

    python scripts/bench_predict.py                      # a random model of the main job's size
    python scripts/bench_predict.py --model runs/ner_pretrained --repeats 5

Both paths get the same sentences (the words nlu's rule finds in each line of the split) and the
same model, batch size and windows; predict also splits the text, computes probabilities and
builds entities with offsets. Each path runs --repeats times, alternating; the table gives the
median and the best (on a shared CPU the best is the least disturbed reading). Writes
reports/predict.md and reports/predict.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import nlu
from nlu.config import EncoderConfig
from nlu.data.ner import NerSentence, label_list, read_ner_file
from nlu.machine import describe_machine
from nlu.model import ForTokenClassification
from nlu.predict import words_of_text
from nlu.tasks.finetune import save_input_settings
from nlu.tasks.ner import predict_tags
from nlu.tokenizer import load_tokenizer, save_tokenizer

ROOT = Path(__file__).resolve().parents[1]
WNUT_TEST = ROOT / "data" / "ner" / "wnut16" / "test.conll"
TOKENIZER = ROOT / "tests" / "data" / "news120_wordpiece1000"
MAIN_JOB_MODEL = {"hidden_size": 128, "num_layers": 2, "num_heads": 2, "intermediate_size": 512,
                  "max_position_embeddings": 128}


def random_model(directory: Path, labels: list[str]) -> Path:
    """The main job's encoder size (tasks/pretrain_news.yaml), random weights, saved as fine-tuning saves."""
    tokenizer = load_tokenizer(TOKENIZER)
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=len(tokenizer), labels=labels, **MAIN_JOB_MODEL)
    ForTokenClassification(config).save_pretrained(directory)
    save_tokenizer(tokenizer, directory)
    save_input_settings(directory, max_length=128, stride=32)
    return directory


def timed(work) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (all threads): the second is less disturbed by
    other work on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a fine-tuned NER model or run folder (default: a random model)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=str(ROOT / "reports" / "predict"))
    args = parser.parse_args()

    gold = read_ner_file(WNUT_TEST)
    texts = [" ".join(sentence.words) for sentence in gold]
    with tempfile.TemporaryDirectory() as scratch:
        model_path = args.model or random_model(Path(scratch) / "model", label_list(gold))
        tagger = nlu.load(model_path, "cpu", batch_size=args.batch_size)
        sentences = [NerSentence(words_of_text(text)[0], [], "wnut16/test", n) for n, text in enumerate(texts, 1)]
        words = sum(len(sentence.words) for sentence in sentences)

        def old_path() -> None:
            predict_tags(tagger.model, tagger.tokenizer, sentences, tagger.max_length, tagger.stride, args.batch_size)

        auto = nlu.load(model_path, "cpu", precision="auto", batch_size=args.batch_size)
        paths = {"predict_tags (before)": old_path, "nlu.load(...).predict": lambda: tagger.predict(texts),
                 f"predict, precision=auto: {auto.precision.name}": lambda: auto.predict(texts)}
        for work in paths.values():
            work()  # warm-up: allocator, thread pool, tokenizer caches
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
        for _ in range(args.repeats):
            for name, work in paths.items():
                runs[name].append(timed(work))

    rows = {}
    for name, readings in runs.items():
        walls, cpus = [wall for wall, _ in readings], [cpu for _, cpu in readings]
        rows[name] = {"median_s": statistics.median(walls), "best_s": min(walls), "best_cpu_s": min(cpus),
                      "sentences_per_s": len(texts) / min(walls), "words_per_s": words / min(walls)}
    before, after = rows["predict_tags (before)"], rows["nlu.load(...).predict"]
    result = {
        "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
        "model": str(args.model or f"random, {MAIN_JOB_MODEL}"),
        "sentences": len(texts), "words": words, "max_length": tagger.max_length, "stride": tagger.stride,
        "batch_size": args.batch_size, "repeats": args.repeats, "device": str(tagger.device),
        "precision": str(tagger.precision), "machine": describe_machine(), "paths": rows,
        "ratio_best": before["best_s"] / after["best_s"], "ratio_median": before["median_s"] / after["median_s"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    machine = result["machine"]
    lines = [
        "# Prediction throughput", "",
        f"`{result['command']}`", "",
        f"WNUT-16 test split: {len(texts)} sentences, {words:,} words (nlu's word rule), model {result['model']}, "
        f"max_length {tagger.max_length}, stride {tagger.stride}, batch {args.batch_size}, {result['device']}, "
        f"{result['precision']} unless the row says otherwise; median and best of {args.repeats} alternating runs in one "
        "process.", "",
        "| path | median s | best s | best CPU s | sentences/s (best) | words/s (best) |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {name} | {row['median_s']:.3f} | {row['best_s']:.3f} | {row['best_cpu_s']:.3f} | "
          f"{row['sentences_per_s']:.0f} | {row['words_per_s']:.0f} |" for name, row in rows.items()),
        "", f"predict / predict_tags throughput: {result['ratio_best']:.2f}× by the best runs, "
        f"{result['ratio_median']:.2f}× by the medians (on a shared CPU the best run is the least disturbed one). "
        "predict does more "
        "(splits the text, softmax, entities with offsets and scores) on the same batched, length-sorted windows.", "",
        f"Host: {machine['cpu']}, {machine['cores']} cores, torch threads {machine['torch_threads']}, flags "
        f"{', '.join(machine['cpu_flags'])}, torch CPU capability {machine['torch_cpu_capability']}, "
        f"load average at the end {machine['load_average']} (other work shared the CPU).", "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
