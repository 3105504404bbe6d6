"""Prediction throughput: nlu.load(...).predict against the path `nlu predict` took before it
(predict_tags on NerSentence records), on the WNUT-16 test split, in one process.

    python scripts/bench_predict.py                      # a random model of the main job's size
    python scripts/bench_predict.py --model runs/ner_pretrained --repeats 5

Both paths get the same sentences (the words nlu's rule finds in each line of the split) and the
same model, batch size and windows; predict also splits the text, computes probabilities and
builds entities with offsets. Each path runs --repeats times, alternating; the table gives the
median and the best (on a shared CPU the best is the least disturbed reading). Writes
reports/predict.md and reports/predict.json (--render: the Markdown again from the JSON).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

import nlu
from nlu.benchmark import Clock, alternate
from nlu.config import EncoderConfig
from nlu.data.ner import NerSentence, label_list, read_ner_file
from nlu.model import ForTokenClassification
from nlu.data.words import words_of_text
from nlu.reporting import command_line, machine, machine_line, rerender, table, write_report
from nlu.tasks.finetune import save_input_settings
from nlu.tasks.ner import predict_tags
from nlu.tokenizer import load_tokenizer, save_tokenizer

ROOT = Path(__file__).resolve().parents[1]
WNUT_TEST = ROOT / "data" / "ner" / "wnut16" / "test.conll"
TOKENIZER = ROOT / "tests" / "data" / "news120_wordpiece1000"
BEFORE, AFTER = "predict_tags (before)", "nlu.load(...).predict"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a fine-tuned NER model or run folder (default: a random model)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "predict", help="report path without suffix")
    parser.add_argument("--render", action="store_true", help="OUT.md again from OUT.json")
    args = parser.parse_args(argv)
    if args.render:
        print(rerender(args.out, render).read_text())
        return 0
    gold = read_ner_file(WNUT_TEST)
    texts = [" ".join(sentence.words) for sentence in gold]
    with tempfile.TemporaryDirectory() as scratch:
        model_path = args.model or random_model(Path(scratch) / "model", label_list(gold))
        tagger = nlu.load(model_path, "cpu", batch_size=args.batch_size)
        auto = nlu.load(model_path, "cpu", precision="auto", batch_size=args.batch_size)
        sentences = [NerSentence(words_of_text(text)[0], [], "wnut16/test", n) for n, text in enumerate(texts, 1)]
        paths = {BEFORE: lambda _: predict_tags(tagger.model, tagger.tokenizer, sentences, tagger.max_length,
                                                tagger.stride, args.batch_size),
                 AFTER: lambda _: tagger.predict(texts),
                 f"predict, precision=auto: {auto.precision.name}": lambda _: auto.predict(texts)}
        # one warm-up round (allocator, thread pool, tokenizer caches), then alternating rounds
        seconds = alternate(paths, args.repeats, Clock("cpu"), warmup=1)
    result = {"command": command_line(argv and [__file__, *argv], root=ROOT), "machine": machine(),
              "model": str(args.model or f"random, {MAIN_JOB_MODEL}"), "sentences": len(texts),
              "words": sum(len(sentence.words) for sentence in sentences), "max_length": tagger.max_length,
              "stride": tagger.stride, "batch_size": args.batch_size, "repeats": args.repeats,
              "device": str(tagger.device), "precision": str(tagger.precision), "seconds": seconds}
    best = {name: min(values) for name, values in seconds.items()}
    result["headline"] = f"predict / predict_tags throughput {best[BEFORE] / best[AFTER]:.2f}× (best runs)"
    print(write_report(args.out, result, render).read_text())
    return 0


def render(result: dict) -> str:
    seconds, sentences, words = result["seconds"], result["sentences"], result["words"]
    median, best = ({name: pick(values) for name, values in seconds.items()} for pick in (statistics.median, min))
    return "\n".join([
        "# Prediction throughput", "", f"Made by `{result['command']}` on {machine_line(result['machine'])}.", "",
        f"WNUT-16 test split: {sentences} sentences, {words:,} words (nlu's word rule), model {result['model']}, "
        f"max_length {result['max_length']}, stride {result['stride']}, batch {result['batch_size']}, {result['device']}, "
        f"{result['precision']} unless the row says otherwise; median and best wall seconds of {result['repeats']} "
        "alternating runs in one process.", "",
        *table(["path", "median s", "best s", "sentences/s (best)", "words/s (best)"],
               [[name, f"{median[name]:.3f}", f"{best[name]:.3f}", f"{sentences / best[name]:.0f}",
                 f"{words / best[name]:.0f}"] for name in seconds]), "",
        f"predict / predict_tags throughput: {best[BEFORE] / best[AFTER]:.2f}× by the best runs, "
        f"{median[BEFORE] / median[AFTER]:.2f}× by the medians (on a shared CPU the best run is the least disturbed "
        "one). predict does more (splits the text, softmax, entities with offsets and scores) on the same batched, "
        "length-sorted windows.", ""])


if __name__ == "__main__":
    sys.exit(main())
