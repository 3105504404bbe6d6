"""A WordPiece vocabulary trained on the pretraining corpus, kept in transformers' format.

Training our own vocabulary (rather than downloading BERT's) keeps the project offline and fits
the vocabulary to the corpus; saving it with ``save_pretrained`` means any checkpoint's tokenizer
loads with plain ``transformers.AutoTokenizer``.
"""

from __future__ import annotations

import json
import logging
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Literal

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from nlu.constants import CLS_ID, SEP_ID, SPECIAL_TOKENS
from nlu.data.corpus import read_documents
from nlu.errors import CheckpointError, ConfigError, DataError



Normalization = Literal["auto"] | bool

DOTTED_CAPITAL_I = "\u0130"
"""İ, the one character Unicode lowercases to two (i + combining dot above). Lowercased so, it
moves every later offset within its word by one, which makes transformers' token-classification
pipeline take the word for the continuation of the one before; a lowercasing tokenizer folds it
to the i that Turkish and Azerbaijani lowercase it to."""

NORMALIZATION_SAMPLE = 20_000
"""Texts read (from the start of the training text) to choose the normalisation and check it."""


@dataclass(frozen=True)
class NormalizationChoice:
    lowercase: bool
    strip_accents: bool
    reason: str


def _is_cased(char: str) -> bool:
    return char.lower() != char.upper()


def _strip_accents(word: str) -> str:
    return "".join(char for char in unicodedata.normalize("NFD", word) if unicodedata.category(char) != "Mn")


def _marked_scripts(word: str) -> set[str]:
    """The scripts of the letters that carry the combining marks stripping would drop ("LATIN" for
    é, "KATAKANA" for ダ, "DEVANAGARI" for the virama's consonant). Marks on non-letters (the
    variation selector of an emoji) belong to no script."""
    scripts, base = set(), ""
    for char in unicodedata.normalize("NFD", word):
        if unicodedata.category(char) != "Mn":
            base = char
        elif base.isalpha():
            scripts.add(unicodedata.name(base, "?").split()[0])
    return scripts


def choose_normalization(texts: Iterable[str], lowercase: Normalization = "auto",
                         strip_accents: Normalization = "auto") -> NormalizationChoice:
    """BERT's uncased normalisation suits English, not every script; this picks it from the text.

    - ``lowercase="auto"``: lowercase when most letters belong to a script with case (Latin,
      Greek, Cyrillic, ...); kana, kanji, Devanagari or Arabic have no case to fold.
    - ``strip_accents="auto"``: strip combining marks only when lowercasing, when they are
      incidental — under 1% of the words change, and only in Latin letters (English text with
      the odd "café"). Where marks are letters of the script (kana voicing marks: ダ is not タ;
      Devanagari vowel signs and virama; Arabic harakat) or frequent and meaningful (German
      umlauts: "schon" is not "schön"), they are kept.

    ``True``/``False`` for either option are used as given (BERT uncased is ``True, True``).
    """
    for name, value in (("lowercase", lowercase), ("strip_accents", strip_accents)):
        if value not in ("auto", True, False):
            raise ConfigError(f"{name} must be auto, true or false; got {value!r}")
    words = [word for text in texts for word in text.split()]
    letters = [char for word in words for char in word if char.isalpha()]
    cased = sum(map(_is_cased, letters)) / max(len(letters), 1)
    reasons = []
    if lowercase == "auto":
        lowercase = cased >= 0.5
        reasons.append(f"{cased:.0%} of the letters belong to scripts with case")
    if strip_accents == "auto":
        changed = [word for word in words if _marked_scripts(word)]
        share = len(changed) / max(len(words), 1)
        latin_only = all(_marked_scripts(word) == {"LATIN"} for word in changed)
        strip_accents = bool(lowercase and share < 0.01 and latin_only)
        reasons.append(f"stripping accents would change {share:.1%} of the words"
                       + ("" if latin_only else ", some outside the Latin script"))
    return NormalizationChoice(bool(lowercase), bool(strip_accents), "; ".join(reasons) or "as given")


def round_trip_failures(tokenizer: PreTrainedTokenizerBase, texts: Iterable[str],
                        limit: int = 2000) -> tuple[list[tuple[str, str]], int]:
    """Words of ``texts`` (up to ``limit`` distinct ones) that do not come back from
    encode-then-decode as they went in, up to the case folding the tokenizer declares; and how
    many words were checked. Words holding [UNK] are not counted: that is the vocabulary's
    coverage, not the normaliser changing letters."""
    words = list(dict.fromkeys(word for text in texts for word in text.split()))[:limit]
    if not words:
        return [], 0
    lowercase = bool(tokenizer.init_kwargs.get("do_lower_case", False))
    encoded = tokenizer(words, add_special_tokens=False)["input_ids"]
    failures = []
    for word, ids in zip(words, encoded):
        if tokenizer.unk_token_id in ids:
            continue
        decoded = "".join(tokenizer.decode(ids).split())
        expected = word.replace(DOTTED_CAPITAL_I, "i").lower() if lowercase else word
        if decoded != "".join(expected.split()):
            failures.append((word, decoded))
    return failures, len(words)


def train_tokenizer(
    files: Sequence[str | PathLike] | Iterable[str],
    vocab_size: int,
    min_frequency: int = 2,
    lowercase: Normalization = "auto",
    strip_accents: Normalization = "auto",
) -> PreTrainedTokenizerFast:
    """Train BERT's WordPiece pipeline. A list or tuple is read as corpus files (with the corpus
    reader, so the vocabulary is learnt from exactly the sentences pretraining will see); any
    other iterable is taken as texts, which is how a ``datasets`` column is passed (wrap a plain
    list of texts in ``iter()``).

    Normalisation is chosen from the first :data:`NORMALIZATION_SAMPLE` texts by
    :func:`choose_normalization` unless given; the saved tokenizer records it
    (``do_lower_case``, ``strip_accents`` in tokenizer_config.json). Afterwards a sample of
    words is encoded and decoded, and a warning names words the normaliser changed beyond
    lowercasing (e.g. ``strip_accents=True`` on Japanese: ダーバン → ターハン).

    It is saved as a generic fast tokenizer, not a ``BertTokenizer``: transformers rebuilds a
    BertTokenizer's normaliser from two flags on loading, which would drop the İ fold.

    The same texts give the same vocabulary in every process: the trainer numbers continuation
    pieces (``##a``) in hash-map order as it meets them, and breaks ties between equally frequent
    merges by those numbers (huggingface/tokenizers#1794); here they are numbered in sorted order
    before training starts (:func:`_initial_pieces`)."""
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ConfigError(f"vocab_size ({vocab_size}) must exceed the {len(SPECIAL_TOKENS)} special tokens")
    texts = list(training_texts(files))  # read twice: the initial pieces first, then training
    choice = choose_normalization(texts[:NORMALIZATION_SAMPLE], lowercase, strip_accents)
    backend = _untrained_pipeline(choice.lowercase, choice.strip_accents)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS + _initial_pieces(choice, texts),
        continuing_subword_prefix="##", show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    if backend.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise DataError("the tokenizer's training text is empty")
    backend = _renumbered(backend, choice)
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)],
    )
    pad, unk, cls, sep, mask = SPECIAL_TOKENS
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, do_lower_case=choice.lowercase, strip_accents=choice.strip_accents,
        pad_token=pad, unk_token=unk, cls_token=cls, sep_token=sep, mask_token=mask,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    _warn_on_changed_words(tokenizer, texts[:NORMALIZATION_SAMPLE], choice)
    return tokenizer


def _initial_pieces(choice: NormalizationChoice, texts: list[str]) -> list[str]:
    """The pieces training starts from, numbered as the trainer numbers those it can sort: first
    the characters (sorted), then ``##c`` for every character that continues a word (sorted, where
    the trainer would number them in hash-map order). Given to the trainer first, they keep the
    trainer's preference among equally frequent merges (lower numbers: word-start pairs) without its
    randomness; they are the pieces it starts from anyway, so the size budget is spent as before.
    Found by the trainer itself, run to no merge at all."""
    probe = _untrained_pipeline(choice.lowercase, choice.strip_accents)
    probe.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=1, special_tokens=SPECIAL_TOKENS,
                                                               continuing_subword_prefix="##", show_progress=False))
    pieces = set(probe.get_vocab()) - set(SPECIAL_TOKENS)
    continuations = {piece for piece in pieces if piece.startswith("##") and len(piece) > 2}
    return sorted(pieces - continuations) + sorted(continuations)


def _warn_on_changed_words(tokenizer: PreTrainedTokenizerBase, sample: list[str], choice: NormalizationChoice) -> None:
    """Warn when the normaliser damages words: marks dropped from letters of a script other than
    Latin (ダ → タ), or Latin accents in 1% of the words or more. Incidental accents stripped by
    choice (English with the odd "café", as BERT uncased does) pass silently."""
    failures, checked = round_trip_failures(tokenizer, sample)
    damaged = [(word, decoded) for word, decoded in failures if _marked_scripts(word) - {"LATIN"}]
    if damaged or len(failures) >= 0.01 * checked > 0:
        examples = ", ".join(f"{word!r} → {decoded!r}" for word, decoded in (damaged + failures)[:3])
        warnings.warn(f"the tokenizer's normalisation (lowercase={choice.lowercase}, strip_accents="
                      f"{choice.strip_accents}: {choice.reason}) changes {len(failures)} of {checked} sampled words "
                      f"beyond lowercasing, e.g. {examples}; train with strip_accents=false (data.strip_accents=false) "
                      f"to keep them", stacklevel=3)


def _untrained_pipeline(lowercase: bool, strip_accents: bool) -> Tokenizer:
    """BERT's normalisation and pre-tokenisation, so the result behaves like a BERT tokenizer;
    case folding and accent stripping are chosen separately (BERT ties them), control
    characters go; lowercasing folds İ to i (:data:`DOTTED_CAPITAL_I`)."""
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    bert = normalizers.BertNormalizer(clean_text=True, lowercase=lowercase, strip_accents=strip_accents)
    backend.normalizer = normalizers.Sequence([normalizers.Replace(DOTTED_CAPITAL_I, "i"), bert]) if lowercase else bert
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    return backend


def _renumbered(trained: Tokenizer, choice: NormalizationChoice) -> Tokenizer:
    """A fresh pipeline around the trained vocabulary, numbered in sorted order (special tokens
    first), so that ids depend only on the set of tokens; and with only the five special tokens
    registered as such (the trainer also registered the continuation pieces it was given, which
    would then be matched in raw text and dropped by decoding)."""
    vocab = trained.get_vocab()
    ordered = SPECIAL_TOKENS + sorted(set(vocab) - set(SPECIAL_TOKENS))
    backend = _untrained_pipeline(choice.lowercase, choice.strip_accents)
    backend.model = models.WordPiece(
        {token: index for index, token in enumerate(ordered)}, unk_token=trained.model.unk_token,
        continuing_subword_prefix=trained.model.continuing_subword_prefix,
        max_input_chars_per_word=trained.model.max_input_chars_per_word,
    )
    backend.add_special_tokens(SPECIAL_TOKENS)
    return backend


def training_texts(files: Sequence[str | PathLike] | Iterable[str]) -> Iterable[str]:
    """The texts a vocabulary is trained on: a list or tuple is read as corpus files (their
    sentences), any other iterable is taken as texts."""
    if isinstance(files, (list, tuple)):
        # read_documents runs now, so a bad file fails before training starts.
        return (sentence for document in read_documents(files) for sentence in document.sentences)
    return files


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: str | PathLike) -> None:
    """``save_pretrained``, readable by transformers 4 and 5 alike: transformers 5 names the class
    of a generic fast tokenizer (a SentencePiece/Unigram one, XLM-R's) ``TokenizersBackend``,
    which 4.x cannot resolve; both resolve the name ``PreTrainedTokenizerFast``."""
    tokenizer.save_pretrained(str(directory))
    config_path = Path(directory) / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


class _NoMistralGuess(logging.Filter):
    """transformers 5 takes a folder whose config.json has no ``transformers_version`` (nlu's own
    checkpoints) and a vocabulary over 100k (XLM-R's) for a possibly broken Mistral tokenizer and
    warns "this will lead to incorrect tokenization"; it changes nothing, and it is wrong here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fix_mistral_regex" not in record.getMessage()


_TRANSFORMERS_TOKENIZER_LOG = logging.getLogger("transformers.tokenization_utils_tokenizers")


VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "*.model")
"""What transformers can build a fast tokenizer from: the tokenizers file itself, or a WordPiece
vocabulary, a BPE vocabulary, a SentencePiece model that it converts."""


def load_tokenizer(directory: str | PathLike) -> PreTrainedTokenizerBase:
    """Only fast tokenizers are accepted: the data pipeline needs batched encoding and
    ``word_ids()`` (to align word-level labels), which slow tokenizers lack.

    A folder with ``tokenizer_config.json`` but no vocabulary is refused: transformers would
    build a tokenizer of the special tokens alone from it, which maps every word to the unknown
    token without a word of warning.
    """
    path = Path(directory)
    if not path.is_dir():
        raise CheckpointError(f"{path}: tokenizer directory not found")
    if not any(any(path.glob(pattern)) for pattern in VOCABULARY_FILES):
        raise CheckpointError(f"{path}: tokenizer.json is missing (nor is there vocab.txt, vocab.json or a "
                              f"SentencePiece .model to build one from); copy the tokenizer saved with the model")
    quiet = _NoMistralGuess()
    _TRANSFORMERS_TOKENIZER_LOG.addFilter(quiet)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as error:  # a broken file surfaces as KeyError, JSONDecodeError, tokenizers' bare Exception...
        raise CheckpointError(f"{path}: cannot load a tokenizer from this directory ({error})") from error
    finally:
        _TRANSFORMERS_TOKENIZER_LOG.removeFilter(quiet)
    if not tokenizer.is_fast:
        raise CheckpointError(f"{path}: holds a slow (Python) tokenizer; save a fast one (tokenizer.json)")
    if len(tokenizer) <= len(tokenizer.all_special_ids):
        raise CheckpointError(f"{path}: the tokenizer holds only its {len(tokenizer)} special tokens; "
                              f"its vocabulary file is empty or unreadable")
    # nlu encodes whole texts and then windows (NER) or cuts (classification) them to the model's
    # length itself: transformers' "longer than the specified maximum ... indexing errors" is moot.
    tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    return tokenizer
