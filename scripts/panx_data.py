#!/usr/bin/env python3
"""The PAN-X-shaped folders tasks/sweeps/crosslingual.yaml reads: seeded samples (seed 0) of the
GermEval 2014, WikiNER ru and Turkish NER files in ../shared/data/ner-multilingual, written verbatim
(each is read through its own task file: tasks/panx_{de,ru,tr}.yaml), and de+ru.

    python scripts/panx_data.py                          # runs/panx_data/{de,ru,tr,de+ru}: 2,000 / 200 / 1,000
    python scripts/panx_data.py --sizes 100 30 50 --out /tmp/panx   # a dry run's slices

German: train and dev from dev.txt, test from test.txt (GermEval's train file is not in ../shared).
Russian: each split from its own file. Turkish: train and dev from dev.txt, test from test.txt.
de+ru: a seeded half of each language's train and dev read through its task file (tag maps, IOB1
repaired), written as IOB2 (the same training budget as German alone); German test.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from nlu.crosslingual import read_blocks, sample_blocks, write_blocks
from nlu.data.subsets import write_conll
from nlu.errors import NluError
from nlu.options import fill
from nlu.settings import load_settings
from nlu.tasks.ner import NerData, load_data

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = {"de": {"dev.txt": ("train", "dev"), "test.txt": ("test",)},
           "ru": {"train.txt": ("train",), "dev.txt": ("dev",), "test.txt": ("test",)},
           "tr": {"dev.txt": ("train", "dev"), "test.txt": ("test",)}}
"""Language → its file in ../shared → the splits drawn from it, in this order."""


def draw_samples(shared: Path, out: Path, sizes: dict[str, int]) -> None:
    """Each language's splits, drawn from its files in ../shared (SAMPLES) and written verbatim."""
    for lang, files in SAMPLES.items():
        for name, splits in files.items():
            drawn = sample_blocks(read_blocks(shared / lang / name), {split: sizes[split] for split in splits}, seed=0)
            for split, blocks in drawn.items():
                write_blocks(out / lang / f"{split}.conll", blocks)


def write_german_and_russian(out: Path) -> None:
    """de+ru: half of each language's train and dev as its task file reads them, German test."""
    with warnings.catch_warnings():  # a small sample may lack a rare type the tag map names
        warnings.filterwarnings("ignore", message="data.tag_map: no entity of type")
        read = {lang: load_data(fill(NerData, load_settings(ROOT / "tasks" / f"panx_{lang}.yaml",
                                                            [f"data.local_dir={out / lang}"]).data, lang))
                for lang in ("de", "ru")}
    for split in ("train", "dev"):
        halves = [sample_blocks(getattr(read[lang], split), {"half": len(getattr(read[lang], split)) // 2}, seed=0)["half"]
                  for lang in ("de", "ru")]
        write_conll(out / "de+ru" / f"{split}.conll", sum(halves, []))
    write_conll(out / "de+ru" / "test.conll", read["de"].test)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data" / "ner-multilingual")
    parser.add_argument("--out", type=Path, default=Path("runs") / "panx_data",
                        help="default runs/panx_data from where you run it: the repository root, as the sweep")
    parser.add_argument("--sizes", type=int, nargs=3, default=[2000, 200, 1000], metavar=("TRAIN", "DEV", "TEST"),
                        help="sentences per split and language")
    args = parser.parse_args(argv)
    if not args.shared.is_dir():
        raise SystemExit(f"{args.shared} not found: GermEval / WikiNER / Turkish NER files are read from there")
    try:
        draw_samples(args.shared, args.out, dict(zip(("train", "dev", "test"), args.sizes)))
        write_german_and_russian(args.out)
    except NluError as error:  # a missing file, or fewer sentences than asked for
        raise SystemExit(f"panx_data: {error}") from None
    print(f"[panx_data] wrote {', '.join(sorted(p.name for p in args.out.iterdir()))} under {args.out}")


if __name__ == "__main__":
    main()
