"""Pretraining: WordPiece tokenizer, NSP pairs, dynamic 80/10/10 masking, MLM + NSP loss."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from torch.utils.data import DataLoader

from nlu.config import EncoderConfig
from nlu.evaluation.report import write_pretraining_report
from nlu.data.corpus import Document, corpus_statistics, read_documents
from nlu.errors import ConfigError, DataError
from nlu.files import write_text_atomic
from nlu.data.pretraining import PretrainingCollator, collator_examples, tokenize_documents
from nlu.model import ForPreTraining
from nlu.settings import RunSettings, fill
from nlu.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer, training_texts
from nlu.training.checkpoints import replace_directory
from nlu.training.loop import TrainingResult, distributed_state, train


@dataclass
class PretrainData:
    train_files: list[str] = field(default_factory=lambda: ["data/corpus/news.txt"])
    """Corpus files to pretrain on (and to train the tokenizer on, without data.tokenizer): one sentence
    per line, a blank line between documents, as BERT's; nlu does not split sentences."""
    heldout_files: list[str] = field(default_factory=lambda: ["data/corpus/news_heldout.txt"])
    """Corpus files whose masked-token loss is reported at each evaluation."""
    tokenizer: str | None = None
    """An existing tokenizer directory; without one a WordPiece vocabulary is trained on train_files."""
    vocab_size: int = 8000
    """WordPiece vocabulary size when a tokenizer is trained."""
    lowercase: bool | str = "auto"
    """Fold case: auto (when most letters of the corpus have case), true or false (nlu.tokenizer.choose_normalization)."""
    strip_accents: bool | str = "auto"
    """Drop combining marks: auto (only incidental Latin accents, never kana voicing marks, Indic
    vowel signs, Arabic harakat or frequent umlauts), true (BERT uncased) or false."""
    max_length: int = 128
    """Sub-tokens per sentence pair, [CLS] and [SEP]s included."""
    mlm_probability: float = 0.15
    """Share of tokens chosen for MLM (BERT: 0.15); of them 80% become [MASK], 10% a random token, 10% stay."""
    short_seq_probability: float = 0.1
    """Share of pairs built shorter than max_length (BERT's short_seq_prob), so short inputs are seen too."""
    duplicates: int = 1
    """How many NSP pairings of the corpus to build (BERT's dupe_factor); masks are redrawn every epoch anyway."""
    eval_batch_size: int = 64
    """Pairs per batch when scoring the held-out files."""

    def __post_init__(self) -> None:
        if self.duplicates < 1:
            raise ConfigError(f"data.duplicates must be 1 or more (pairings of the corpus), got {self.duplicates}")
        # Both are required: the held-out loss is what pretraining reports and selects on.
        for name in ("train_files", "heldout_files"):
            if not getattr(self, name):
                raise ConfigError(f"data.{name} is empty: pretraining needs corpus files for training (data.train_files) "
                                  f"and held-out files for its evaluation (data.heldout_files), e.g. "
                                  f"data.{name}=[my_{name.split('_')[0]}.txt]")


class PretrainingTask:
    def __init__(self, tokenizer, data: PretrainData, heldout_examples: list[dict], seed: int):
        self.tokenizer = tokenizer
        self.collator = PretrainingCollator(tokenizer, mlm_probability=data.mlm_probability, seed=seed)
        # Held-out masks are drawn once, from another seed, so every evaluation scores the same task.
        heldout_collator = PretrainingCollator(tokenizer, mlm_probability=data.mlm_probability, seed=seed + 1)
        self.heldout_batches = list(DataLoader(heldout_examples, batch_size=data.eval_batch_size,
                                               collate_fn=heldout_collator))

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        return self.collator(examples)

    def set_epoch(self, epoch: int) -> None:
        self.collator.set_epoch(epoch)

    def training_step(self, model, batch):
        output = model(**batch)
        with torch.no_grad():  # tensors left on the device: the loop reads them once per log line
            figures = {
                "mlm_loss": output.mlm_loss.detach(),
                "nsp_loss": output.nsp_loss.detach(),
                "mlm_accuracy": (output.mlm_logits.argmax(-1) == output.mlm_targets).float().mean(),
                "nsp_accuracy": (output.nsp_logits.argmax(-1) == batch["nsp_labels"]).float().mean(),
                "tokens": batch["attention_mask"].sum(),
            }
        return output.loss, figures

    @torch.no_grad()
    def evaluate(self, model: ForPreTraining) -> dict[str, float]:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        mlm_loss = mlm_correct = masked = nsp_correct = pairs = 0.0
        nsp_loss = 0.0
        for batch in self.heldout_batches:
            batch = {key: value.to(device) for key, value in batch.items()}
            output = model(**batch)
            count = output.mlm_targets.numel()
            mlm_loss += output.mlm_loss.item() * count
            mlm_correct += (output.mlm_logits.argmax(-1) == output.mlm_targets).sum().item()
            masked += count
            nsp_loss += output.nsp_loss.item() * len(batch["nsp_labels"])
            nsp_correct += (output.nsp_logits.argmax(-1) == batch["nsp_labels"]).sum().item()
            pairs += len(batch["nsp_labels"])
        model.train(was_training)
        return {
            "loss": mlm_loss / masked + nsp_loss / pairs,
            "mlm_loss": mlm_loss / masked,
            "mlm_accuracy": mlm_correct / masked,
            "nsp_loss": nsp_loss / pairs,
            "nsp_accuracy": nsp_correct / pairs,
        }

    def save_artifacts(self, directory: Path) -> None:
        save_tokenizer(self.tokenizer, directory)


def run_tokenizer(output_dir: Path, texts: Callable[[], Iterable[str]], vocab_size: int, state: PartialState,
                  lowercase: bool | str = "auto", strip_accents: bool | str = "auto"):
    """The WordPiece tokenizer a run trains for itself on ``texts()``, trained by the main process and
    swapped into OUTPUT_DIR/tokenizer whole with a record of what it was trained on
    (``trained_on.json``: the options and a SHA-256 of the texts). A resume finds the record equal
    and loads that tokenizer (training again would give the same one, only later); other texts or
    options (a start that failed, then other settings) train a new one. A tokenizer without a
    record, from before nlu kept one, is loaded as it is."""
    cached = output_dir / "tokenizer"
    with state.main_process_first():
        if state.is_main_process:
            corpus, digest = list(texts()), hashlib.sha256()
            for text in corpus:
                digest.update(text.encode("utf-8", "replace") + b"\0")
            record = {"vocab_size": vocab_size, "lowercase": lowercase, "strip_accents": strip_accents,
                      "texts_sha256": digest.hexdigest()}
            kept = cached / "trained_on.json"
            if (cached / "tokenizer.json").is_file() and not kept.is_file():
                print(f"tokenizer: {cached}, kept from an earlier start (which recorded no texts)")
            elif (cached / "tokenizer.json").is_file() and json.loads(kept.read_text()) == record:
                print(f"tokenizer: {cached}, trained on the same texts by an earlier start")
            else:
                partial = output_dir / ".tokenizer.partial"
                shutil.rmtree(partial, ignore_errors=True)
                trained = train_tokenizer(iter(corpus), vocab_size=vocab_size, lowercase=lowercase,
                                          strip_accents=strip_accents)
                save_tokenizer(trained, partial)
                write_text_atomic(partial / "trained_on.json", json.dumps(record, indent=2) + "\n")
                replace_directory(partial, cached)
                short = f" (of {vocab_size:,} asked: the texts hold no more pieces twice)" if len(trained) < vocab_size else ""
                print(f"tokenizer: a WordPiece vocabulary of {len(trained):,}{short} trained on the training texts "
                      f"({cached})")
        return load_tokenizer(cached)


def read_corpus(files: list[str]) -> list[Document]:
    """The documents of FILES, refused before a vocabulary is trained when next-sentence prediction
    could not pair them."""
    documents = read_documents(files)
    if len(documents) < 2:
        raise DataError(f"{len(documents)} document(s) with text in {', '.join(files)}: next-sentence prediction needs "
                        "2 or more, separated by a blank line (one sentence per line, a blank line between documents)")
    return documents


def build_examples(documents: list[Document], tokenizer, data: PretrainData, seed: int) -> tuple[list[dict], dict]:
    tokenized = tokenize_documents(documents, tokenizer)
    examples = collator_examples(tokenized, tokenizer, data.max_length, seed, data.duplicates, data.short_seq_probability)
    statistics = corpus_statistics(documents)
    statistics["tokens"] = sum(len(sentence) for document in tokenized for sentence in document)
    statistics["examples"] = len(examples)
    warn_unsplit(documents, statistics, sum(len(example["input_ids"]) - 3 for example in examples) / data.duplicates,
                 data.max_length)
    return examples, statistics


def warn_unsplit(documents: list[Document], statistics: dict[str, int], used: float, max_length: int) -> None:
    """nlu does not split sentences: a corpus written a paragraph (or a whole text) per line loses
    what does not fit a pair, and gives next-sentence prediction nothing to pair. Both said once."""
    files = ", ".join(dict.fromkeys(document.source for document in documents))
    layout = "nlu does not split sentences: write one sentence per line, a blank line between documents"
    if used < statistics["tokens"] / 2:
        warnings.warn(f"{files}: the sentence pairs hold {used / statistics['tokens']:.0%} of the {statistics['tokens']:,} "
                      f"WordPiece tokens; a line averages {statistics['tokens'] / statistics['sentences']:.0f} against "
                      f"data.max_length={max_length} per pair, and what does not fit is cut; {layout}", stacklevel=2)
    single = sum(len(document.sentences) == 1 for document in documents)
    if single > len(documents) / 2:
        warnings.warn(f"{files}: {single:,} of the {len(documents):,} documents are one line, so their next-sentence "
                      f"pairs can only be 'random'; {layout}", stacklevel=2)


def unigram_cross_entropy(train_examples: list[dict], heldout_examples: list[dict], vocab_size: int,
                          special_ids: set[int]) -> float:
    """MLM loss of a model that ignores context and predicts corpus frequencies (add-one
    smoothed): the bar a pretrained model must clear to show it learned anything from context."""
    counts = Counter(token for example in train_examples for token in example["input_ids"] if token not in special_ids)
    total = sum(counts.values()) + vocab_size
    heldout = [token for example in heldout_examples for token in example["input_ids"] if token not in special_ids]
    return -sum(math.log((counts[token] + 1) / total) for token in heldout) / len(heldout)


def run(settings: RunSettings) -> dict[str, Any]:
    data = fill(PretrainData, settings.data, f"{settings.source}: data")
    output_dir = Path(settings.training.output_dir)
    state = distributed_state(settings.training)
    train_documents, heldout_documents = read_corpus(data.train_files), read_corpus(data.heldout_files)
    tokenizer = load_tokenizer(data.tokenizer) if data.tokenizer else run_tokenizer(
        output_dir, lambda: training_texts(data.train_files), data.vocab_size, state, data.lowercase, data.strip_accents)
    seed = settings.training.seed
    train_examples, train_statistics = build_examples(train_documents, tokenizer, data, seed)
    heldout_examples, heldout_statistics = build_examples(heldout_documents, tokenizer,
                                                          PretrainData(**{**data.__dict__, "duplicates": 1}), seed + 7)
    config = EncoderConfig.from_dict(
        {**settings.model, "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id},
        source=f"{settings.source}: model",
    )
    if config.position_encoding == "learned" and data.max_length > config.max_position_embeddings:
        raise ConfigError(f"data.max_length ({data.max_length}) exceeds model.max_position_embeddings "
                          f"({config.max_position_embeddings}), the number of learned positions")
    torch.manual_seed(seed)
    model = ForPreTraining(config)
    task = PretrainingTask(tokenizer, data, heldout_examples, seed)
    result = train(task, model, train_examples, settings.training)
    summary = {
        "corpus": {"train": train_statistics, "heldout": heldout_statistics},
        "unigram_mlm_loss": unigram_cross_entropy(train_examples, heldout_examples, len(tokenizer),
                                                  set(tokenizer.all_special_ids)),
        "parameters": sum(p.numel() for p in model.parameters()),
        **summarize(result),
    }
    if state.is_main_process:
        write_pretraining_report(output_dir, settings, summary)
    return summary


def summarize(result: TrainingResult) -> dict[str, Any]:
    state = result.state
    return {
        "steps": state.step,
        "processes": result.num_processes,
        "train_seconds": state.train_seconds,
        "tokens_seen": state.tokens_seen,
        "tokens_per_second": state.tokens_seen / max(state.train_seconds, 1e-9),
        "final_eval": state.history[-1] if state.history else {},
        "evaluations": state.history,
        "model_dir": str(result.final_model),
    }

