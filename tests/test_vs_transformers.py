"""nlu against transformers (issue #11): an exported NER model tags like nlu through transformers'
own pipeline, and scripts/vs_transformers.py runs end to end on a tiny BERT (offline)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nlu.cli import main as nlu_main
from nlu.config import EncoderConfig
from nlu.data.ner import label_list, read_ner_file
from nlu.model import ForTokenClassification
from nlu.tokenizer import save_tokenizer, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
WNUT = ROOT / "data" / "ner" / "wnut16"
RT = ROOT / "data" / "classification" / "rotten_tomatoes"


@pytest.fixture(scope="module")
def wnut_tokenizer(tmp_path_factory):
    """A small WordPiece vocabulary trained on tweets and review snippets (seconds, offline)."""
    texts = [" ".join(s.words) for s in read_ner_file(WNUT / "train.conll")[:400]]
    with open(RT / "train.csv", newline="", encoding="utf-8") as handle:
        texts += [row["text"] for row, _ in zip(csv.DictReader(handle), range(300))]
    directory = tmp_path_factory.mktemp("tokenizer")
    save_tokenizer(train_tokenizer(iter(texts), vocab_size=1000), directory)
    return directory


def random_tagger(tokenizer_dir: Path, directory: Path) -> Path:
    """Random weights: predictions spread over all 21 tags, stray I- tags included."""
    from nlu.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    labels = label_list(read_ner_file(WNUT / "train.conll"))
    config = EncoderConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                           max_position_embeddings=128, labels=labels)
    model = ForTokenClassification(config)
    with torch.no_grad():
        model.classifier.linear.weight.normal_(0, 1.0)  # large logits: many distinct tags, not all O
    model.save_pretrained(directory)
    save_tokenizer(tokenizer, directory)
    return directory


def trained_tagger(tokenizer_dir: Path, directory: Path) -> Path:
    """The same model fine-tuned for a few steps through nlu's training loop and NER task (the
    test-set report of ``nlu finetune`` draws plots for half a minute, so it is left out)."""
    from nlu.data.ner import encode_ner
    from nlu.tasks.ner import NerData, NerTask
    from nlu.tokenizer import load_tokenizer
    from nlu.training.config import TrainingConfig
    from nlu.training.loop import train

    tokenizer = load_tokenizer(tokenizer_dir)
    sentences = read_ner_file(WNUT / "train.conll")[:640]
    labels = label_list(read_ner_file(WNUT / "train.conll"))
    model = ForTokenClassification.from_pretrained(random_tagger(tokenizer_dir, directory / "start"))
    windows = encode_ner(sentences, tokenizer, {label: i for i, label in enumerate(labels)}, 128, 32)
    features = [{"input_ids": w.input_ids, "token_type_ids": w.token_type_ids, "labels": w.labels} for w in windows]
    task = NerTask(tokenizer, NerData(), read_ner_file(WNUT / "dev.conll")[:20], 128)
    config = TrainingConfig(output_dir=str(directory / "run"), max_steps=20, learning_rate=3e-3, batch_size=32,
                            cpu=True, save_every=1000, select_metric="f1", select_mode="max")
    result = train(task, model, features, config)
    return result.final_model


def pipeline_words(sentence_words: list[str], groups: list[dict]) -> list[str]:
    """IOB2 tags per whitespace word from the pipeline's entity groups (char spans): a word inside a
    group is B- if the group starts at the word, else I-."""
    tags, position = [], 0
    for word in sentence_words:
        start = position
        position += len(word) + 1
        group = next((g for g in groups if g["start"] <= start < g["end"]), None)
        tags.append("O" if group is None else ("B-" if group["start"] == start else "I-") + group["entity_group"])
    return tags


def as_pipeline_groups(tags: list[str]) -> list[str]:
    """nlu's tags read with the pipeline's grouping rule: a stray I-X (after O or another type)
    opens an entity, so it becomes B-X; a valid IOB2 sequence is unchanged."""
    result, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        result.append(tag)
        previous = tag
    return result


def one_pipeline_word_per_word(tokenizer, words: list[str]) -> bool:
    """The pipeline joins sub-tokens into words only across '##' continuations, so 'U.S.' or
    '@user' are several pipeline words but one nlu word; such sentences are compared token-wise only."""
    for word in words:
        pieces = tokenizer.tokenize(word)
        if not pieces or pieces[0].startswith("##") or not all(p.startswith("##") for p in pieces[1:]):
            return False
    return True


@pytest.fixture
def one_thread():
    """Tiny models: threads only add synchronisation, which costs a lot on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("kind", ["random", "trained"])
def test_exported_tagger_predicts_like_nlu_through_the_transformers_pipeline(kind, wnut_tokenizer, tmp_path, capsys,
                                                                            one_thread):
    from transformers import AutoTokenizer, pipeline

    model_dir = (random_tagger if kind == "random" else trained_tagger)(wnut_tokenizer, tmp_path / "nlu")
    exported = tmp_path / "exported"
    assert nlu_main(["export", "--model", str(model_dir), "--out", str(exported)]) == 0
    tokenizer = AutoTokenizer.from_pretrained(exported)
    sentences = [s.words for s in read_ner_file(WNUT / "test.conll")
                 if len(tokenizer(s.words, is_split_into_words=True)["input_ids"]) <= 120
                 and all(tokenizer.tokenize(word) for word in s.words)]
    text_file = tmp_path / "sentences.txt"
    text_file.write_text("".join(" ".join(words) + "\n" for words in sentences), encoding="utf-8")
    capsys.readouterr()
    assert nlu_main(["predict", "ner", "--model", str(model_dir), "--file", str(text_file)]) == 0
    ours = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["words"] for record in ours] == sentences

    # Token level, on sentences of every kind: the label the pipeline gives each word's first sub-token.
    tokens = pipeline("token-classification", model=str(exported), tokenizer=tokenizer, aggregation_strategy="none",
                      device="cpu")
    for words, record in list(zip(sentences, ours))[:60]:
        encoding = tokenizer(words, is_split_into_words=True)
        by_index = {entity["index"]: entity["entity"] for entity in tokens(" ".join(words))}
        firsts = {}
        for index, word in enumerate(encoding.word_ids()):
            if word is not None:
                firsts.setdefault(word, index)
        assert [by_index.get(firsts[w], "O") for w in range(len(words))] == record["tags"], words

    # Word level with aggregation_strategy="first" (a word takes its first sub-token's label).
    grouped = pipeline("token-classification", model=str(exported), tokenizer=tokenizer, aggregation_strategy="first",
                       device="cpu")
    clean = [(words, record) for words, record in zip(sentences, ours) if one_pipeline_word_per_word(tokenizer, words)]
    assert len(clean) >= 20
    for words, record in clean:
        assert pipeline_words(words, grouped(" ".join(words))) == as_pipeline_groups(record["tags"]), words
    predicted = [tag for _, record in clean for tag in record["tags"]]
    if kind == "random":  # the comparison covered many entity tags, not only O
        assert len(set(predicted)) >= 10 and sum(tag != "O" for tag in predicted) > 100


@pytest.mark.slow
def test_vs_transformers_quick_on_a_tiny_bert(wnut_tokenizer, tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertModel

    checkpoint = tmp_path / "tiny-bert"
    tokenizer = AutoTokenizer.from_pretrained(wnut_tokenizer)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    out = tmp_path / "report"
    command = [sys.executable, str(ROOT / "scripts" / "vs_transformers.py"), "--quick", "--checkpoint", str(checkpoint),
               "--threads", "1", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)]
    completed = subprocess.run(command,
                               capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads((out / "vs_transformers.json").read_text())
    assert report["quick"] is True and report["seeds"] == [1]
    assert set(report["runs"]) == {"ner/nlu/base", "ner/transformers/base", "classify/nlu/base",
                                   "classify/transformers/base", "classify/nlu/improved"}
    assert report["machine"]["torch_threads"] >= 1
    for key, runs in report["runs"].items():
        task = key.split("/")[0]
        (run,) = runs
        assert run["train_seconds"] > 0 and run["train_cpu_seconds"] > 0 and run["steps"] == 3
        assert run["train_tokens"] > 0 and run["tokens_per_second"] > 0
        assert 100 < run["peak_rss_mib"] < 16_000 and run["threads"] == report["machine"]["torch_threads"]
        if task == "ner":
            assert 0 <= run["test"]["f1"] <= 1 and 0 <= run["test"]["macro_f1"] <= 1
            assert set(run["test"]["per_type_f1"]) <= {"company", "facility", "geo-loc", "movie", "musicartist",
                                                       "other", "person", "product", "sportsteam", "tvshow"}
        else:
            assert 0 <= run["test"]["macro_f1"] <= 1
            assert set(run["test"]["recall"]) == {"fresh", "plot", "rotten"}
    # The same work on both sides: the same real tokens went through training.
    for task in ("ner", "classify"):
        (ours,), (theirs,) = report["runs"][f"{task}/nlu/base"], report["runs"][f"{task}/transformers/base"]
        assert ours["train_tokens"] == theirs["train_tokens"]
    assert set(report["targets"]) == {"ner/base", "classify/base", "classify/improved"}
    markdown = (out / "vs_transformers.md").read_text()
    assert "## Targets" in markdown and "Per entity type" in markdown and "--quick" in markdown
    shares = report["paired_steps"]["matmul_share"]
    assert 0 < shares["nlu"] < 1 and 0 < shares["transformers"] < 1 and "Matrix products" in markdown

    # The step benchmark alone, again, into the saved results: the runs stay as they were.
    rerun = subprocess.run([sys.executable, str(ROOT / "scripts" / "vs_transformers.py"), "--render",
                            str(out / "vs_transformers.json"), "--rerun-paired", "--runs-dir", str(tmp_path / "runs")],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    again = json.loads((out / "vs_transformers.json").read_text())
    assert again["runs"] == report["runs"] and again["paired_steps"]["steps"] == report["paired_steps"]["steps"]
    assert again["paired_steps"]["seconds"] != report["paired_steps"]["seconds"]  # measured anew


def test_rerun_paired_needs_saved_results():
    completed = subprocess.run([sys.executable, str(ROOT / "scripts" / "vs_transformers.py"), "--rerun-paired"],
                               capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert completed.returncode == 2 and "--rerun-paired re-measures into saved results" in completed.stderr
