"""nlu against transformers (issue #11): an exported NER model tags like nlu through transformers'
own pipeline, and the two sides of scripts/vs_transformers.py do the same work on a tiny BERT (offline)."""

import csv
import json
import statistics
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from nlu.cli import main as nlu_main
from nlu.config import EncoderConfig
from nlu.data.classification import read_table
from nlu.data.ner import label_list, read_ner_file
from nlu.data.subsets import write_slices
from nlu.model import ForTokenClassification
from nlu.predict import words_of_text
from nlu.reporting import machine
from nlu.settings import load_settings
from nlu.tokenizer import save_tokenizer, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import vs_transformers  # noqa: E402
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
    # Tweets whose words are the ones `nlu predict` splits their text into (it splits "t.i" and "'s").
    sentences = [s.words for s in read_ner_file(WNUT / "test.conll")
                 if len(tokenizer(s.words, is_split_into_words=True)["input_ids"]) <= 120
                 and all(tokenizer.tokenize(word) for word in s.words) and words_of_text(" ".join(s.words))[0] == s.words]
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


def study_spec(task: str, framework: str, checkpoint: Path, runs: Path, variant: str = "base") -> dict:
    """What scripts/vs_transformers.py hands one run's subprocess, for the --quick budget."""
    budget = vs_transformers.QUICK[task]
    data = load_settings(vs_transformers.TASK_FILES[task], [], task=task).data
    files = write_slices({split: ROOT / data[split] for split in ("train", "dev", "test")},
                         {split: budget[f"{split}_limit"] for split in ("train", "dev", "test")}, runs / "data" / task,
                         vs_transformers.SUBSET_SEED)
    return {"framework": framework, "variant": variant, "task": task, "seed": 1, "checkpoint": str(checkpoint),
            "files": files, "budget": budget, "train_size": budget["train_limit"], "threads": 1,
            "extra": vs_transformers.IMPROVED[task] if variant == "improved" else [],
            "output_dir": str(runs / f"{task}-{framework}-{variant}"), "steps": 1,
            "train_file": files["train"]}


@pytest.fixture(scope="module")
def tiny_bert(wnut_tokenizer, tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertModel

    checkpoint = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(wnut_tokenizer)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    return checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("task", ["ner", "classify"])
def test_both_sides_train_the_same_tokens_and_are_scored_alike(task, tiny_bert, tmp_path, one_thread):
    """The quick budget on a tiny BERT: the same batches of the same real tokens on both sides,
    every gold test entity / example scored, and a report rendered from the records alone."""
    runs = {}
    for framework in ("nlu", "transformers"):
        spec = study_spec(task, framework, tiny_bert, tmp_path)
        Path(spec["output_dir"]).mkdir(parents=True)
        work = vs_transformers.run_nlu if framework == "nlu" else vs_transformers.run_transformers
        runs[framework] = work(spec) | {"seed": 1, "tokens_per_second": 1.0, "peak_rss_mib": 1.0, "threads": 1,
                                        "load_before": 0.0, "load_after": 0.0}
    ours, theirs = runs["nlu"], runs["transformers"]
    assert ours["steps"] == theirs["steps"] == 3  # 48 training examples, batch 16, one epoch
    assert ours["train_tokens"] == theirs["train_tokens"] > 0
    test_file = study_spec(task, "nlu", tiny_bert, tmp_path)["files"]["test"]
    if task == "ner":
        gold = sum(tag.startswith("B-") for s in read_ner_file(test_file) for tag in s.tags)
        for run in (ours, theirs):
            assert sum(run["test"]["per_type_support"].values()) == gold > 0
    else:
        gold = {e.label for e in read_table(test_file)}
        assert set(ours["test"]["recall"]) == set(theirs["test"]["recall"]) == gold == {"fresh", "plot", "rotten"}
    result = {"command": "c", "seconds": 1.0, "quick": True, "checkpoint": str(tiny_bert),
              "checkpoint_facts": vs_transformers.checkpoint_facts(str(tiny_bert)), "seeds": [1],
              "machine": machine("transformers"), "budget": {task: {**vs_transformers.QUICK[task],
                                                                    "sizes": {"train": 48, "dev": 24, "test": 24}}},
              "improved_options": vs_transformers.IMPROVED, "paired_steps": None,
              "runs": {f"{task}/nlu/base": [ours], f"{task}/transformers/base": [theirs]}}
    text = vs_transformers.render(result)
    assert f"{ours['train_tokens']:,}" in text and "## Targets" in text and "--quick" in text
    parameters = sum(p.numel() for p in AutoModel.from_pretrained(tiny_bert).parameters())
    assert f"{parameters:,} parameters" in text


@pytest.mark.slow
def test_paired_steps_time_both_models_on_the_same_batches(tiny_bert, tmp_path, one_thread):
    spec = study_spec("ner", "paired", tiny_bert, tmp_path)
    paired = vs_transformers.paired_steps(spec)
    assert {side: len(times) for side, times in paired["seconds"].items()} == {"nlu": 1, "transformers": 1,
                                                                               "nlu_grouped": 1}
    assert 0 < paired["matmul_share"]["nlu"] < 1 and 0 < paired["matmul_share"]["transformers"] < 1
    assert paired["padded_fraction"]["grouped"] <= paired["padded_fraction"]["random"]


def test_the_committed_report_renders_from_its_json():
    result = json.loads((ROOT / "reports" / "vs_transformers.json").read_text())
    text = vs_transformers.render(result)
    f1 = [run["test"]["f1"] for run in result["runs"]["ner/nlu/base"]]
    assert f"| test entity F1 (micro, strict IOB2) | {statistics.mean(f1):.4f} ± {statistics.stdev(f1):.4f} |" in text
    assert f"{result['checkpoint_facts']['parameters']:,} parameters" in text  # 22,713,216 for MiniLM-L6
    assert result["command"] in text


def test_rerun_paired_needs_saved_results(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["vs_transformers.py", "--rerun-paired"])
    with pytest.raises(SystemExit) as stopped:
        vs_transformers.main()
    assert stopped.value.code == 2 and "--rerun-paired re-measures into saved results" in capsys.readouterr().err
