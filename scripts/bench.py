"""Speed of nlu against transformers' BERT on the same work, in one process.

    python scripts/bench.py                      # small config (hidden 256, 4 layers), CPU
    python scripts/bench.py --configs small base --steps 5

1. Pretraining step (forward + backward + AdamW), batch 32 × 128, 15% masked, fp32, identical
   weights and inputs: nlu vs BertForPreTraining (dense vocabulary projection) vs
   BertForPreTraining with the masked-positions-only projection done by hand on its submodules.
2. NER: a fine-tuning step and inference on real WNUT-16 sentences, nlu vs
   BertForTokenClassification fed by DataCollatorForTokenClassification (pad to longest).
3. Model FLOP utilisation: useful FLOPs (6·params·tokens for training, 2·params·tokens for
   inference, vocabulary projection counted at masked positions only, plus attention), divided by
   a large fp32 matmul's FLOP/s measured in the same run.
Medians over several steps after warm-up. Writes reports/bench.md and reports/bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
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


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = median_seconds(lambda: torch.mm(a, b), repeats, 2)
    return 2 * size**3 / seconds


def bert_config(options: dict, labels: list[str] | None = None) -> transformers.BertConfig:
    extra = {"id2label": dict(enumerate(labels)), "label2id": {l: i for i, l in enumerate(labels)}} if labels else {}
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


def bench_pretraining(options: dict, steps: int, warmup: int) -> dict:
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

    seconds = {name: median_seconds(trainer(model, loss_of), steps, warmup)
               for name, model, loss_of in (("transformers dense", hf, hf_dense),
                                            ("transformers sparse (by hand)", hf, hf_sparse),
                                            ("nlu", ours, nlu))}
    tokens = batch * length
    useful = 6 * encoder_parameters(ours) * tokens + 6 * VOCAB * options["hidden_size"] * masked \
        + attention_flops(options, tokens, length, passes=3)
    return {"tokens": tokens, "masked": masked, "useful_flops": useful, "seconds": seconds}


def bench_ner(options: dict, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    root = Path(__file__).resolve().parents[1]
    sentences = read_ner_file(root / "data" / "ner" / "wnut16" / "train.conll")
    labels = label_list(sentences)
    texts = iter([" ".join(s.words) for s in sentences])
    tokenizer = train_tokenizer(texts, vocab_size=8000)
    windows = encode_ner(sentences, tokenizer, {l: i for i, l in enumerate(labels)}, 128, 32)
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

    train_seconds = {
        "transformers (DataCollatorForTokenClassification)": median_seconds(trainer(hf, collator), steps, warmup),
        "nlu": median_seconds(trainer(ours, lambda b: pad_batch(b, tokenizer.pad_token_id)), steps, warmup),
    }
    inference_features = features[:1024]
    inference_tokens = sum(len(f["input_ids"]) for f in inference_features)

    @torch.no_grad()
    def hf_inference():
        hf.eval()
        for i in range(0, len(inference_features), 64):
            batch = collator([{k: f[k] for k in ("input_ids", "token_type_ids")} for f in inference_features[i:i + 64]])
            hf(**batch)

    inference_seconds = {
        "transformers (DataCollatorForTokenClassification)": median_seconds(hf_inference, 3, 1),
        "nlu": median_seconds(lambda: predict_logits(ours, inference_features, tokenizer.pad_token_id, 64), 3, 1),
    }
    parameters = encoder_parameters(ours)
    return {"train_tokens_per_batch": real_tokens, "train_seconds": train_seconds,
            "train_useful_flops": 6 * parameters * real_tokens, "inference_tokens": inference_tokens,
            "inference_seconds": inference_seconds, "inference_useful_flops": 2 * parameters * inference_tokens}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["small"], choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default="reports")
    args = parser.parse_args()
    peak = matmul_peak()
    results = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
               "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                           "transformers": transformers.__version__, "processor": platform.processor() or platform.machine(),
                           "device": "cpu"},
               "matmul_peak_flops": peak, "configs": {}}
    for name in args.configs:
        options = CONFIGS[name]
        print(f"[{name}] pretraining step ...", flush=True)
        pretraining = bench_pretraining(options, args.steps, args.warmup)
        print(f"[{name}] NER step and inference ...", flush=True)
        ner = bench_ner(options, args.steps, args.warmup)
        results["configs"][name] = {"options": options, "pretraining": pretraining, "ner": ner}
    write_outputs(Path(args.out), results)
    return 0


def rows(seconds: dict[str, float], tokens: float, flops: float, peak: float, reference: str) -> list[str]:
    return [f"| {name} | {tokens / s:,.0f} | {seconds[reference] / s:.2f}× | {flops / s / peak:.1%} |"
            for name, s in seconds.items()]


def write_outputs(out: Path, results: dict) -> None:
    peak = results["matmul_peak_flops"]
    lines = ["# Speed: nlu vs transformers' BERT", "", f"Made by `{results['command']}`.", "",
             f"Machine: {results['machine']}. Measured fp32 matmul peak (2048² `torch.mm`): "
             f"{peak / 1e9:.0f} GFLOP/s. Utilisation = useful model FLOPs / time / that peak.", ""]
    for name, entry in results["configs"].items():
        pre, ner = entry["pretraining"], entry["ner"]
        header = ["| run | tokens/s | speed-up vs reference | model FLOP utilisation |", "|---|---|---|---|"]
        lines += [f"## {name}: {entry['options']}", "",
                  f"### Pretraining step (batch 32 × 128, {pre['masked']} masked, AdamW, fp32); reference: transformers dense", "",
                  *header, *rows(pre["seconds"], pre["tokens"], pre["useful_flops"], peak, "transformers dense"), "",
                  f"nlu vs transformers with the hand-made sparse projection: "
                  f"{pre['seconds']['transformers sparse (by hand)'] / pre['seconds']['nlu']:.2f}×.", "",
                  "### NER fine-tuning step (real WNUT-16 batches of 32, pad to longest)", "",
                  *header, *rows(ner["train_seconds"], ner["train_tokens_per_batch"], ner["train_useful_flops"], peak,
                                 "transformers (DataCollatorForTokenClassification)"), "",
                  f"### NER inference ({ner['inference_tokens']:,} real tokens, batches of 64)", "",
                  *header, *rows(ner["inference_seconds"], ner["inference_tokens"], ner["inference_useful_flops"], peak,
                                 "transformers (DataCollatorForTokenClassification)"), ""]
    write_text_atomic(out / "bench.md", "\n".join(lines))
    write_text_atomic(out / "bench.json", json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
