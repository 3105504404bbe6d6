"""Named-entity recognition: IOB2 data, sub-word alignment, windows, entity-level evaluation."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from nlu.data.ner import (
    NerFile,
    NerFormat,
    NerSentence,
    check_columns,
    check_has_entities,
    check_label_sets,
    encode_ner,
    label_list,
    load_panx,
    mapping_figures,
    merge_window_predictions,
    read_ner,
)
from nlu.data.splits import Splits, check_fractions, split_records
from nlu.data.words import split_words
from nlu.errors import ConfigError, DataError
from nlu.evaluation.confusion import entity_confusion, entity_counts, save_confusion_reports
from nlu.evaluation.metrics import entity_scores, prediction_collapse, scores_markdown, token_scores
from nlu.evaluation.report import collapse_warning, confusion_links, composition_markdown, split_composition
from nlu.evaluation.report import split_label, write_run_report
from nlu.files import write_text_atomic
from nlu.model import ForTokenClassification
from nlu.settings import RunSettings, fill
from nlu.tasks.finetune import FineTuningTask, choose_selection, finish_on_main_process, initial_model, model_input_length
from nlu.tasks.finetune import early_stop, predict_logits, resolve_recipe, save_input_settings, supervised_step
from nlu.tokenizer import save_tokenizer
from nlu.training.loop import distributed_state, train


@dataclass
class NerData:
    train: str | None = "data/ner/wnut16/train.conll"
    """Training file: CoNLL columns (.conll, .txt, ...) or JSONL (.jsonl); unused with panx_lang."""
    dev: str | None = "data/ner/wnut16/dev.conll"
    """None: a seeded ``dev_fraction`` of the training file's sentences is held out as the dev set."""
    test: str | None = "data/ner/wnut16/test.conll"
    """None: a seeded ``test_fraction`` of the training file's sentences is held out as the test set."""
    dev_fraction: float = 0.1
    """Share of the training sentences held out as dev when dev is None."""
    test_fraction: float | None = None
    """Share of the training sentences held out as test when test is None."""
    split_seed: int = 0
    """Seed of the splits made from data.train. Not the training seed, so that runs with several
    training seeds are scored on the same dev and test sentences."""
    panx_lang: str | None = None
    """Load PAN-X.<lang> (XTREME) instead of files: from the hub, or from ``local_dir`` offline."""
    local_dir: str | None = None
    """PAN-X without the hub: a folder with train/dev/test .conll or .jsonl files, XTREME's raw files
    train, dev, test (``de:token<TAB>tag``: prefixes removed, counted), or a datasets save_to_disk folder."""
    scheme: str = "iob2"
    """iob2, or iob1: the files are IOB1 (an entity starts with I-) and are converted to IOB2."""
    repair: bool = False
    """Rewrite I-X tags that start an entity to B-X (with a warning) instead of rejecting the file."""
    tag_map: dict[str, str] | None = None
    """Entity types renamed, or dropped when mapped to O: {PERSON: PER, OTH: O}; counted in the report."""
    token_column: int = 0
    """CoNLL column of the token (0: the first)."""
    tag_column: int = -1
    """CoNLL columns of the token and the tag on each line (negative: from the end), so lines may
    have different numbers of middle columns."""
    comment_prefix: str | None = None
    """CoNLL lines starting with this ('#': CoNLL-U, GermEval 2014) are comments, skipped and counted."""
    allow_no_entities: bool = False
    """Train even if every training tag is O (refused by default: such a tagger only predicts O)."""
    tokenizer: str | int | None = None
    """A tokenizer folder (default: the one saved with init; ./2024 for a folder named by digits), or for
    a model from scratch a vocabulary size: WordPiece of that size trained on the training texts."""
    max_length: int = 128
    """Sub-tokens per window, [CLS] and [SEP] included; longer sentences are read in overlapping windows."""
    stride: int = 32
    """Sub-tokens shared by consecutive windows of a long sentence."""
    label_all_subtokens: bool = False
    """Train every sub-token (continuations of a B-X word get I-X), not only each word's first."""
    eval_batch_size: int = 64
    """Windows per batch when predicting dev and test."""
    mode: str = "strict"
    """seqeval entity matching: strict IOB2 (default) or conlleval-like 'default'."""

    def __post_init__(self) -> None:
        self.format()  # a bad scheme or tag map is a ConfigError before any file is read
        if self.panx_lang:  # PAN-X replaces the files: one named by the user would be silently unused
            named = [f"data.{f.name}={getattr(self, f.name)}" for f in fields(self)
                     if f.name in ("train", "dev", "test") and getattr(self, f.name) not in (None, f.default)]
            if named:
                raise ConfigError(f"data.panx_lang={self.panx_lang} reads PAN-X (from "
                                  f"{'data.local_dir' if self.local_dir else 'the hub'}), so {', '.join(named)} would "
                                  f"be unused; set data.panx_lang=null to train on your files")

    def format(self) -> NerFormat:
        return NerFormat(self.scheme, self.repair, self.tag_map, self.token_column, self.tag_column,
                         comment_prefix=self.comment_prefix)


def read_split(data: NerData, split: str) -> NerFile:
    if data.panx_lang:
        return load_panx(data.panx_lang, split, data.local_dir, data.format())
    return read_ner(getattr(data, split), data.format())


def predict_word_logits(model: ForTokenClassification, tokenizer, sentences: Sequence[NerSentence], max_length: int,
                        stride: int, batch_size: int) -> tuple[list[np.ndarray], int]:
    """Logits (words, labels) at the first sub-token of every word of every sentence, and how many
    windows beyond one per sentence were needed. Nothing is cut: long sentences are covered by
    overlapping windows, each word read from the window where it has the most context.

    With learned positions windows are at most ``max_position_embeddings`` long; sinusoidal and
    rotary models read ``max_length`` sub-tokens at once, however long they were trained on."""
    labels = model.config.labels
    max_length = model_input_length(model.config, max_length)
    unlabeled = [replace(s, tags=["O"] * len(s.words)) for s in sentences]
    windows = encode_ner(unlabeled, tokenizer, {label: i for i, label in enumerate(labels)}, max_length, stride)
    features = [w.features(labelled=False) for w in windows]
    logits = predict_logits(model, features, tokenizer.pad_token_id, batch_size)
    # Merge row numbers of the stacked logits rather than labels, so the merge picks whole rows.
    starts = np.cumsum([0] + [len(row) for row in logits])
    rows = merge_window_predictions(windows, [range(start, start + len(row)) for start, row in zip(starts, logits)],
                                    [len(s.words) for s in sentences])
    stacked = np.concatenate(logits) if logits else np.zeros((0, len(labels)), dtype=np.float32)
    windowed = len(windows) - len({w.sentence_index for w in windows})
    return [stacked[row] for row in rows], windowed


def predict_tags(model: ForTokenClassification, tokenizer, sentences: Sequence[NerSentence], max_length: int,
                 stride: int, batch_size: int) -> tuple[list[list[str]], int]:
    """Word-level tags for every word of every sentence, and the extra windows (see predict_word_logits)."""
    labels = model.config.labels
    logits, windowed = predict_word_logits(model, tokenizer, sentences, max_length, stride, batch_size)
    return [[labels[i] for i in row.argmax(-1)] for row in logits], windowed


NER_METRICS = ("f1", "precision", "recall", "macro_f1")


class NerTask(FineTuningTask):
    def __init__(self, tokenizer, data: NerData, dev: list[NerSentence], max_length: int):
        super().__init__(tokenizer, dev, max_length)
        self.data = data

    def training_step(self, model, batch):
        return supervised_step(model, batch)

    def evaluate(self, model: ForTokenClassification) -> dict[str, float]:
        predicted, _ = predict_tags(model, self.tokenizer, self.dev, self.max_length, self.data.stride,
                                    self.data.eval_batch_size)
        collapse = prediction_collapse([tag for row in predicted for tag in row], outside="O")
        scores = entity_scores([s.tags for s in self.dev], predicted, mode=self.data.mode)
        micro = scores["averages"]["micro"]
        values = (micro["f1"], micro["precision"], micro["recall"], scores["averages"]["macro"]["f1"])
        return dict(zip(NER_METRICS, values)) | ({"warning": collapse} if collapse else {})

    def save_artifacts(self, directory: Path) -> None:
        save_tokenizer(self.tokenizer, directory)
        save_input_settings(directory, **reading_settings(self.data, self.max_length))


def reading_settings(data: NerData, max_length: int) -> dict[str, Any]:
    """How a fine-tuned tagger reads text and files, saved beside it for evaluate and predict."""
    return {"max_length": max_length, "stride": data.stride, "scheme": data.scheme, "tag_map": data.tag_map,
            "token_column": data.token_column, "tag_column": data.tag_column, "language_prefix": data.panx_lang,
            "comment_prefix": data.comment_prefix}


def check_tags_known(sentences: Sequence[NerSentence], labels: list[str]) -> None:
    """Gold tags the model was never trained on, named where the first of them is written."""
    known = set(labels)
    for sentence in sentences:
        unknown = sorted(set(sentence.tags) - known)
        if unknown:
            first = next(word for word, tag in enumerate(sentence.tags) if tag not in known)
            raise DataError(f"tag(s) {unknown} are not among the model's labels {labels}; if the file uses other "
                            f"type names or IOB1, give --scheme or train with data.tag_map", sentence.source,
                            sentence.line_of(first))


def evaluate_ner(model: ForTokenClassification, tokenizer, sentences: list[NerSentence], out_dir: Path,
                 data: NerData, title: str = "NER evaluation", split: str = "evaluation",
                 changes: dict[str, int] | None = None) -> dict[str, Any]:
    """Score ``sentences`` and write every table and figure of the NER report into ``out_dir``.
    ``split`` names the sentences ("test") in titles, with their files; ``changes`` says what
    reading the file changed (NerFile.changes), for a file read outside a run."""
    check_tags_known(sentences, list(model.config.labels))
    max_length = model_input_length(model.config, data.max_length)
    predicted, windowed = predict_tags(model, tokenizer, sentences, max_length, data.stride, data.eval_batch_size)
    reading = (f"sentences longer than max_length={max_length} sub-tokens were predicted in overlapping windows, "
               f"{windowed} extra window(s) in all (no word is dropped)"
               + "".join(f"; {name}: {count:,}" for name, count in (changes or {}).items()))
    return write_ner_evaluation(sentences, predicted, list(model.config.labels), out_dir, data.mode, title, split,
                                reading, {"windowed_sentences": windowed, "max_length": max_length,
                                          "reading_changes": changes or {}})


def write_ner_evaluation(sentences: list[NerSentence], predicted: list[list[str]], labels: list[str], out_dir: Path,
                         mode: str, title: str, split: str, reading: str, facts: dict[str, Any]) -> dict[str, Any]:
    """The NER report of word-level ``predicted`` tags against the sentences' own, whichever model
    made them (nlu's, or transformers' Trainer in nlu.reference): metrics.json, predictions.conll,
    confusion matrices and report.md. ``reading`` says how inputs longer than the model's were read,
    ``facts`` holds the figures of that reading (kept in metrics.json)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gold = [s.tags for s in sentences]
    strict = entity_scores(gold, predicted, mode="strict")
    default = entity_scores(gold, predicted, mode="default")
    tokens = token_scores(gold, predicted)
    flat_gold = [tag for row in gold for tag in row]
    flat_predicted = [tag for row in predicted for tag in row]
    name = split_label(split, [s.source for s in sentences])
    save_confusion_reports(flat_gold, flat_predicted, labels, out_dir, "tags", name)
    confusion = entity_confusion(gold, predicted, mode=mode)
    save_confusion_reports(confusion.true_types, confusion.pred_types, confusion.labels, out_dir, "entities", name)
    types = sorted({label[2:] for label in labels if label != "O"})
    composition = split_composition(name, len(sentences), entity_counts(gold), types, unit="sentences")
    results = {"entity_strict": strict, "entity_default": default, "token": tokens,
               "entity_outcomes": confusion.counts, "sentences": len(sentences),
               "words": len(flat_gold), **facts, "composition": composition,
               "warning": prediction_collapse(flat_predicted, outside="O")}
    write_text_atomic(out_dir / "metrics.json", json.dumps(results, indent=2))
    write_text_atomic(out_dir / "predictions.conll", "".join(
        "".join(f"{w}\t{g}\t{p}\n" for w, g, p in zip(s.words, s.tags, row)) + "\n"
        for s, row in zip(sentences, predicted)))
    lines = [
        f"# {title}",
        "",
        f"{len(sentences):,} sentences, {len(flat_gold):,} words; {reading}.",
        "",
        "Gold entities per type:", "",
        composition_markdown([composition]),
        *([f"**Warning: {results['warning']}.**", ""] if results["warning"] else []),
        f"Entity-level micro F1: **{strict['averages']['micro']['f1']:.4f}** (strict IOB2), "
        f"{default['averages']['micro']['f1']:.4f} (conlleval-like default mode).",
        "",
        "## Entities per type (seqeval, strict IOB2)",
        "",
        scores_markdown(strict, label_header="entity type"),
        "## Entity outcomes",
        "",
        "Each true and predicted span is paired at most once: exact = same span and type; "
        "type_confusion = same span, other type; boundary = overlapping, same type; missed = no "
        "overlapping prediction; spurious = no overlapping true entity.",
        "",
        "| outcome | count |",
        "|---|---|",
        *[f"| {name} | {count} |" for name, count in confusion.counts.items()],
        "",
        "The entity confusion matrices pair spans as above: a boundary match counts on the diagonal, so their "
        "diagonal is not the exact-match recall or precision of the table by type. `(none)` is no span on that side.",
        "",
        "![entity types, row-normalised](entities_confusion_true.png)",
        "",
        "## Tags (token level)",
        "",
        scores_markdown(tokens, label_header="tag"),
        confusion_links("tags", "Confusion over tags"),
        "",
        "![tags, row-normalised](tags_confusion_true.png)",
        "",
    ]
    write_text_atomic(out_dir / "report.md", "\n".join(lines))
    return results


@dataclass
class NerSplits(Splits):
    """Sentences per split, the files they came from and how splits were made, for the report."""

    files: dict[str, NerFile]
    """The file read for each split; a split made from data.train has none of its own."""
    tag_map: dict[str, str]
    mapped: dict[str, int]
    """Entities per tag_map type over all files read."""
    unit: ClassVar[str] = "sentences"

    def summary(self) -> dict[str, Any]:
        """Flat figures for the run summary: where each split came from and what reading changed."""
        figures = super().summary()
        for split, file in self.files.items():
            figures.update(file.changes(split))
        return figures | mapping_figures(self.mapped, self.tag_map, " + ".join(self.files))


def load_data(data: NerData) -> NerSplits:
    """Train, dev and test sentences. A split without a file is drawn from data.train with
    data.split_seed (dev: dev_fraction; test: test_fraction), every sentence in exactly one split."""
    if data.panx_lang:
        if data.test_fraction is not None:
            raise ConfigError("data.test_fraction splits data.train; PAN-X (data.panx_lang) has its own test split")
        files = {split: read_split(data, split) for split in ("train", "dev", "test")}
        fractions: dict[str, float] = {}
    else:
        if data.train is None:
            raise ConfigError("data.train must name a training file (or set data.panx_lang)")
        if data.test is not None and data.test_fraction is not None:
            raise ConfigError("data.test names a test file and data.test_fraction asks to split one off data.train; "
                              "give one of them (data.test=null to split)")
        if data.test is None and data.test_fraction is None:
            raise ConfigError("data.test must name a test file, or set data.test_fraction to split one off "
                              "data.train (or set data.panx_lang)")
        fractions = {name: fraction for name, fraction in (("dev", data.dev_fraction), ("test", data.test_fraction))
                     if getattr(data, name) is None}
        check_fractions(fractions)  # before reading: a bad fraction is a settings error
        files = {split: read_split(data, split) for split in ("train", "dev", "test") if split not in fractions}
    parts, made = split_records(files["train"].sentences, [None] * len(files["train"].sentences), fractions,
                                data.split_seed, files["train"].source, "sentences")
    train, dev, test = (parts[split] if split in parts else files[split].sentences for split in ("train", "dev", "test"))
    tag_map = dict(data.tag_map or {})
    mapped = {entity: sum(file.mapped[entity] for file in files.values()) for entity in tag_map}
    unused = [entity for entity, count in mapped.items() if not count]
    if unused:
        warnings.warn(f"data.tag_map: no entity of type {', '.join(unused)} in the files read, so mapping it did "
                      f"nothing (types there: {', '.join(sorted(entity_types(train + dev + test)))})", stacklevel=2)
    check_columns(train, data.format())
    warn_rare_types(train)
    if not data.allow_no_entities:
        check_has_entities(train)
    check_label_sets(train, dev, "dev")
    check_label_sets(train, test, "test")
    return NerSplits(train, dev, test, made, files, tag_map, mapped)


def entity_types(sentences: Sequence[NerSentence]) -> set[str]:
    return {tag[2:] for sentence in sentences for tag in sentence.tags if tag != "O"}


def warn_rare_types(train: Sequence[NerSentence], most: int = 2, common: int = 20) -> None:
    """A type with at most ``most`` entities beside one with ``common`` or more is likely a typo
    (``B-PRE`` for ``B-PER``): trained on, it is a label of its own, so it is named where it first occurs."""
    first: dict[str, str] = {}
    counts: Counter = Counter()
    for sentence in train:
        for word, tag in enumerate(sentence.tags):
            if tag.startswith("B-"):
                counts[tag[2:]] += 1
                first.setdefault(tag[2:], f"{sentence.source}:{sentence.line_of(word)}")
    if not counts or counts.most_common(1)[0][1] < common:
        return
    leader, led = counts.most_common(1)[0]
    for kind, count in counts.items():
        if count <= most:
            warnings.warn(f"{first[kind]}: entity type {kind!r} occurs {count} time(s) in "
                          f"the training data, against {led:,} of {leader}: a typo? data.tag_map={{{kind}: ...}} "
                          f"renames it, and it is trained as a label of its own otherwise", stacklevel=3)


def split_words_note(train: Sequence[NerSentence], label_all_subtokens: bool, share: float = 0.01) -> str | None:
    """When the training files keep words whole that raw-text prediction splits ("Сан-Себастьяне",
    "İsrail'de": :func:`nlu.data.words.split_words` splits at punctuation, as BERT does), the pieces after
    the first are read at positions training never labelled: said once, with the remedies."""
    entity_words = [word for sentence in train for word, tag in zip(sentence.words, sentence.tags) if tag != "O"]
    splits = {word: len(split_words(word)) > 1 for word in set(entity_words)}  # each distinct word once
    split = [word for word in entity_words if splits[word]]
    if len(split) < share * len(entity_words) or not split:
        return None
    examples = ", ".join(list(dict.fromkeys(split))[:3])
    return (f"{len(split):,} of the {len(entity_words):,} entity words of the training data hold punctuation "
            f"({examples}, ...) that predict() on raw text splits into words of their own, read where training put "
            f"no label: pass words split as your files are (is_split_into_words=True; nlu predict ner --words)"
            + ("" if label_all_subtokens else ", or train with data.label_all_subtokens=true"))


def run(settings: RunSettings) -> dict[str, Any]:
    data = fill(NerData, settings.data, f"{settings.source}: data")
    splits = load_data(data)
    train_sentences, dev, test = splits.train, splits.dev, splits.test
    word_split = split_words_note(train_sentences, data.label_all_subtokens)
    if word_split:
        warnings.warn(word_split, stacklevel=2)
    labels = label_list(train_sentences)
    model, tokenizer = initial_model(settings, ForTokenClassification, labels, data.tokenizer, train_sentences)
    max_length = model_input_length(model.config, data.max_length)
    windows = encode_ner(train_sentences, tokenizer, {label: i for i, label in enumerate(labels)}, max_length,
                         data.stride, data.label_all_subtokens)
    features = [w.features() for w in windows]
    choose_selection(settings.training, "f1", NER_METRICS)
    recipe = resolve_recipe(settings, model, len(features))
    task = NerTask(tokenizer, data, dev, max_length)
    result = train(task, model, features, settings.training)
    output_dir = Path(settings.training.output_dir)

    def finish() -> dict[str, Any]:
        # The test set is scored on the device the run trained on (a GPU when there is one), in fp32.
        best = ForTokenClassification.from_pretrained(result.best_model or result.final_model).to(
            distributed_state(settings.training).device)
        test_results = evaluate_ner(best, tokenizer, test, output_dir / "test", data, "NER test-set evaluation", "test")
        dev_composition = split_composition(split_label("dev", [s.source for s in dev]), len(dev),
                                            entity_counts([s.tags for s in dev]),
                                            sorted({label[2:] for label in labels if label != "O"}), unit="sentences")
        summary = {
            "train_sentences": len(train_sentences), "train_windows": len(windows), "labels": labels,
            "best_step": result.state.best_step, "dev_f1": result.state.best_metric,
            "test_f1": test_results["entity_strict"]["averages"]["micro"]["f1"],
            "test_macro_f1": test_results["entity_strict"]["averages"]["macro"]["f1"],
            "train_seconds": result.state.train_seconds, "steps": result.state.step,
            "tokens_per_second": result.state.tokens_seen / max(result.state.train_seconds, 1e-9),
            "warning": collapse_warning([entry.get("warning") for entry in result.state.history], test_results["warning"]),
            "recipe": recipe,
            "raw-text words": word_split,
            **early_stop(result, settings.training),
            "composition": [dev_composition, test_results["composition"]],
            **splits.summary(),
        }
        splits.save(output_dir)
        write_run_report(output_dir, settings, summary, "NER fine-tuning", "f1")
        return summary

    return finish_on_main_process(output_dir, finish)

