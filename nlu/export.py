"""``nlu export``: a model as a transformers BERT folder that serves what nlu serves.

Three things make an exported folder give, through ``transformers.pipeline``, the labels and
entities ``nlu.load(...).predict`` gives:

- a classifier trained with ``logit_adjustment=predict`` has the prior correction subtracted at
  prediction; it is folded into the exported classifier bias (softmax(Wx + b - a) is
  softmax(Wx + (b - a))), so no extra step is needed downstream;
- the tokenizer's ``model_max_length`` is the length the model was fine-tuned on (never more than
  its learned positions), so the pipelines truncate or window long texts instead of crashing;
- a model card (README.md, in the layout the Hugging Face hub reads) says what the model is, how
  it was trained and scored, and how to call it: ``aggregation_strategy="first"`` (nlu labels a
  word at its first sub-token) and ``stride`` for NER, ``truncation=True`` for classification.
  A SentencePiece NER model (XLM-R's vocabulary, multilingual-e5's) cannot be served by the
  pipeline, which cannot find its words (:func:`word_aware`): its card gives word-level code that
  transformers runs to the same tags.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from nlu import __version__
from nlu.errors import CheckpointError
from nlu.files import write_text_atomic
from nlu.interop import EXPORT_ARCHITECTURES, to_transformers
from nlu.model import ForSequenceClassification, ForTokenClassification, NluModel, load_model
from nlu.sources import model_directory
from nlu.predict import input_lengths
from nlu.runs import SETTINGS_FILE, TASKS
from nlu.settings import made_by
from nlu.tasks.classify import prediction_adjustment
from nlu.tasks.finetune import input_settings, is_nlu_checkpoint, save_input_settings
from nlu.tokenizer import load_tokenizer

CARD_FILE = "README.md"


def fold_adjustment(model: ForSequenceClassification, adjustment: torch.Tensor) -> None:
    """Subtract the prediction-time logit adjustment from the classifier bias, in place."""
    with torch.no_grad():
        model.classifier.linear.bias -= adjustment.to(model.classifier.linear.bias)


def run_record(model_dir: Path) -> dict[str, Any]:
    """The settings and summary of the run a model folder belongs to (``runs/x/best`` → ``runs/x``), if any."""
    run_dir = model_dir.parent
    if not (run_dir / SETTINGS_FILE).is_file():
        return {}
    settings = yaml.safe_load((run_dir / SETTINGS_FILE).read_text()) or {}
    entry = TASKS.get(settings.get("task"))
    summary_path = run_dir / entry.summary_file if entry else None
    summary = json.loads(summary_path.read_text()) if summary_path and summary_path.is_file() else {}
    return {"settings": settings, "summary": summary, "run_dir": run_dir, "made_by": made_by(run_dir / SETTINGS_FILE)}


def export(source: str | Path, out: str | Path) -> Path:
    """Write the nlu model at ``source`` (a run folder or a model folder) to ``out``; returns ``out``."""
    model_dir, out = model_directory(source), Path(out)
    if out.resolve() == model_dir.resolve() or out.resolve() in model_dir.resolve().parents:
        raise CheckpointError(f"{out}: the export would write over the model it exports ({model_dir}); "
                              f"give another --out")
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out}: a file, not a folder to export into; give another --out")
    if not is_nlu_checkpoint(model_dir):
        raise CheckpointError(f"{model_dir}: not an nlu model folder (its config.json has no 'architecture'); "
                              f"a transformers folder needs no export")
    model = load_model(model_dir)
    tokenizer = load_tokenizer(model_dir) if (model_dir / "tokenizer.json").exists() else None
    adjustment = prediction_adjustment(model_dir) if isinstance(model, ForSequenceClassification) else None
    if adjustment is not None:
        fold_adjustment(model, adjustment)
    lengths = None
    if tokenizer is not None:
        lengths = input_lengths(model_dir, model, tokenizer, None, None)
        tokenizer.model_max_length = lengths[0]
    to_transformers(model, out, tokenizer)
    for weights in out.glob("*.safetensors"):  # safetensors writes 0600; transformers' config.json has the umask's mode
        weights.chmod((out / "config.json").stat().st_mode & 0o777)
    if lengths is not None:
        # how files were read (NER scheme, tag map, columns) travels too: `nlu evaluate` on the export reads as before
        save_input_settings(out, **{**input_settings(model_dir), "max_length": lengths[0], "stride": lengths[1]})
    write_text_atomic(out / CARD_FILE, model_card(model, out, lengths, adjustment is not None, run_record(model_dir),
                                                  tokenizer))
    return out


# ---------------------------------------------------------------------------------------------
# The model card
# ---------------------------------------------------------------------------------------------


def word_aware(tokenizer: Any) -> bool:
    """Whether transformers' token-classification pipeline can tell a word's continuation pieces:
    its own test, a continuation prefix (WordPiece's ``##``). SentencePiece vocabularies (XLM-R's,
    multilingual-e5's) have none, so the pipeline guesses words from spaces: "London," is one word
    there, and a lone "▁" piece becomes a word of its own."""
    return tokenizer is None or bool(getattr(tokenizer.backend_tokenizer.model, "continuing_subword_prefix", None))


def usage(model: NluModel, out: Path, lengths: tuple[int, int] | None, tokenizer: Any) -> list[str]:
    """How to call the export; the example text is English (a text of the user's data could be private,
    and the card is made to be published): replace it with one in the model's language."""
    if isinstance(model, ForTokenClassification) and not word_aware(tokenizer):
        return [
            "```python", "import torch", "from tokenizers import normalizers, pre_tokenizers",
            "from transformers import AutoModelForTokenClassification, AutoTokenizer", "",
            f'model = AutoModelForTokenClassification.from_pretrained("{out}").eval()',
            f'tokenizer = AutoTokenizer.from_pretrained("{out}")',
            "normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)", "", "",
            "def tag(text):",
            '    """(word, tag) for each word, read at its first sub-token as nlu trained it; None past the cut."""',
            "    normalized = normalizer.normalize_str(text)  # control characters out, CJK ideographs apart",
            "    words = [word for word, _ in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(normalized)]",
            '    encoded = tokenizer(words, is_split_into_words=True, truncation=True, return_tensors="pt")',
            "    with torch.no_grad():",
            "        predicted = model(**encoded).logits[0].argmax(-1).tolist()",
            "    first = {}",
            "    for position, word in enumerate(encoded.word_ids()):",
            "        if word is not None:",
            "            first.setdefault(word, position)",
            "    return [(word, model.config.id2label[predicted[first[index]]] if index in first else None)",
            "            for index, word in enumerate(words)]",
            "", "",
            'print(tag("Obama visited London, then Berlin."))', "```", "",
            "This tokenizer is SentencePiece, whose pieces do not say where a word continues, so transformers' "
            '`pipeline("token-classification")` guesses words from spaces ("London," becomes one word) and '
            "tags other pieces than the ones nlu trained. The code above splits words as nlu does (BERT's "
            "pre-tokenizer: whitespace, each punctuation character and CJK ideograph on its own) and reads each word's tag at "
            "its first sub-token, which gives nlu's tags. It reads the first "
            f"{lengths[0] if lengths else 'max_length'} sub-tokens (later words get the tag None); "
            "`nlu.load(folder).predict` windows longer texts.",
        ]
    if isinstance(model, ForTokenClassification):
        stride = lengths[1] if lengths else 32
        return [
            "```python", "from transformers import pipeline", "",
            f'tagger = pipeline("token-classification", model="{out}", aggregation_strategy="first", stride={stride})',
            'print(tagger("Obama visited London, then Berlin."))', "```", "",
            'Use `aggregation_strategy="first"`: nlu trains the label of a word on its first sub-token only, so '
            "`\"first\"` returns whole words with the tag they were trained for, while `\"simple\"` returns `##` "
            "fragments wherever continuation pieces disagree. Up to "
            f"{lengths[0] if lengths else 'max_length'} sub-tokens the pipeline gives nlu's entities; `stride` makes it "
            "read longer texts in overlapping windows (without it they are cut there), but it merges the windows' "
            "entities by its own rule, while nlu reads each word from the window where it has the most context: "
            "on long texts the two can differ anywhere, so serve those with `nlu.load(folder).predict`.",
        ]
    if isinstance(model, ForSequenceClassification):
        return [
            "```python", "from transformers import pipeline", "",
            f'classifier = pipeline("text-classification", model="{out}", truncation=True, top_k=None)',
            'print(classifier("A text like the ones the model was trained on."))', "```", "",
            f"`truncation=True` reads the first {lengths[0] if lengths else 'max_length'} sub-tokens of a longer "
            "text (the text-classification pipeline does not truncate by default, and a text longer than the "
            "model's positions would fail).",
        ]
    return ["```python", "from transformers import AutoModel, AutoTokenizer", "",
            f'model, tokenizer = AutoModel.from_pretrained("{out}"), AutoTokenizer.from_pretrained("{out}")', "```"]


def training_lines(record: dict[str, Any]) -> list[str]:
    if not record:
        return ["No run folder was found beside the model, so its training settings and scores are not known here."]
    settings, summary = record["settings"], record["summary"]
    data, training = settings.get("data") or {}, settings.get("training") or {}
    if data.get("panx_lang"):  # PAN-X replaces the files (whose defaults settings.yaml still lists)
        source = f"PAN-X.{data['panx_lang']}" + (f" from `{data['local_dir']}`" if data.get("local_dir") else "")
    else:
        source = ", ".join(f"{split} `{data[split]}`" for split in ("train", "dev", "test") if data.get(split)) \
            or "see settings.yaml"
    read = [f"{key} {data[key]}" for key in ("scheme", "tag_map", "loss", "oversample", "logit_adjustment")
            if data.get(key) not in (None, False, "iob2", "ce", "none", {})]
    lines = [f"- Task: `{settings.get('task')}`, run folder `{record['run_dir']}`"
             + (f", made by `{record['made_by']}`." if record.get("made_by") else "."),
             f"- Data: {source}" + (f"; {', '.join(read)}" if read else "") + "."]
    start = settings.get("init") or "random weights (no pretraining)"
    lines.append(f"- Started from: `{start}`{' (architecture only: from_scratch)' if settings.get('from_scratch') else ''}.")
    trained = [f"{key} {training[key]}" for key in ("max_steps", "epochs", "learning_rate", "batch_size", "seed")
               if key in training and not (key == "max_steps" and not training[key])  # 0: epochs decide
               and not (key == "epochs" and training.get("max_steps"))]  # else max_steps does
    recipe = summary.get("recipe")  # what `auto` made of the settings (epochs raised, say): said after them
    lines.append(f"- Training{' as set' if recipe else ''}: {', '.join(trained)}; nlu {__version__}."
                 + (f" Chosen by `auto`: {recipe}." if recipe else ""))
    splits = [summary[key] for key in ("train split", "dev split", "test split") if isinstance(summary.get(key), str)]
    if splits:
        lines.append(f"- Splits: {'; '.join(splits)}.")
    if "steps" in summary:
        lines.append(f"- Steps taken: {summary['steps']}; selected step: {summary.get('best_step')}.")
    return lines


def metric_lines(summary: dict[str, Any]) -> list[str]:
    scores = {key: value for key, value in summary.items()
              if key.startswith(("test_", "dev_")) and isinstance(value, (int, float))}
    if not scores:
        return ["No scores were recorded with the run."]
    return ["| metric | value |", "|---|---|",
            *(f"| {key} | {int(value) if isinstance(value, int) or 'support' in key else format(value, '.4f')} |"
              for key, value in scores.items())]


def model_card(model: NluModel, out: Path, lengths: tuple[int, int] | None, folded: bool,
               record: dict[str, Any], tokenizer: Any = None) -> str:
    config = model.config
    kind, tag = {ForTokenClassification: ("token classification (named-entity recognition, IOB2 tags)",
                                          "token-classification"),
                 ForSequenceClassification: ("text classification", "text-classification")
                 }.get(type(model), ("a BERT encoder (no task head)", "feature-extraction"))
    labels = ", ".join(f"`{label}`" for label in config.labels) or "none"
    lines = [
        "---", "library_name: transformers", f"pipeline_tag: {tag}", "tags:", "- bert", "- nlu", "---", "",
        f"# {out.name}", "",
        f"A BERT-style model of {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters for {kind}, "
        f"trained with nlu {__version__} and exported as a transformers `{EXPORT_ARCHITECTURES[type(model)]}`.",
        "", f"{config.num_layers} layers, hidden size {config.hidden_size}, {config.num_heads} heads, "
        f"vocabulary {config.vocab_size:,}, at most {config.max_position_embeddings} positions.", "",
        "## Labels", "", labels, "",
        "## Use", "", *usage(model, out, lengths, tokenizer), "",
        "The example text is English: give the model text in the language(s) of its training data.", "",
        "## Training", "", *training_lines(record), "",
        "## Scores", "", *metric_lines(record.get("summary", {})), "",
        "## Limits", "",
        f"- Inputs are read {lengths[0] if lengths else config.max_position_embeddings} sub-tokens at a time "
        f"(the length it was fine-tuned on).",
        "- It knows only what its training data shows (see Training); expect lower scores on other text, domains "
        "or languages.",
    ]
    if record.get("summary", {}).get("warning"):
        lines.append(f"- The run warned: {record['summary']['warning']}.")
    if folded:
        lines.append("- Trained with `logit_adjustment=predict`: the class-prior correction nlu subtracts at "
                     "prediction is folded into the classifier bias, so the scores here are the adjusted ones.")
    lines += ["", "Files: `config.json`, `model.safetensors`, the tokenizer, `input_settings.json` (max_length and "
              "stride for nlu), this card. The folder can be uploaded to the Hugging Face hub as it is.", ""]
    return "\n".join(lines)
