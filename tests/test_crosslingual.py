"""PAN-X-style task files on slices of the multilingual files, the evaluation on several test sets,
and training.freeze_embeddings (issue #17).

The GermEval / WikiNER / Turkish files live in ../shared/data/ner-multilingual (not shipped); the
tests that read them skip with that reason when it is absent. The rest use files written here.
"""

import json
import os
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch

from nlu.config import EncoderConfig
from nlu.crosslingual import evaluate_test_sets, read_blocks, read_test_split, sample_blocks, summary_figures, write_blocks
from nlu.data.ner import read_ner_file
from nlu.errors import ConfigError, DataError
from nlu.model import ForTokenClassification
from nlu.options import fill
from nlu.runs import resolve, run
from nlu.settings import load_settings
from nlu.tasks.finetune import initial_model
from nlu.tasks.ner import NerData, load_data
from nlu.tokenizer import save_tokenizer, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "ner-multilingual"
WNUT = ROOT / "data" / "ner" / "wnut16"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (GermEval / WikiNER / Turkish "
                                                               "NER files are not shipped with nlu)")
PANX = {"O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"}


def local_dir(tmp_path: Path, lang: str, files: dict[str, str], count: int = 60) -> Path:
    """train/dev/test.conll: the first ``count`` sentences of each named shared file, verbatim."""
    for split, name in files.items():
        write_blocks(tmp_path / lang / f"{split}.conll", read_blocks(SHARED / lang / name)[:count])
    return tmp_path / lang


def load_task(lang: str, folder: Path):
    """The splits as a run of tasks/panx_<lang>.yaml reads them (a slice may lack a rare mapped type: warned)."""
    settings = load_settings(ROOT / "tasks" / f"panx_{lang}.yaml", [f"data.local_dir={folder}"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_data(fill(NerData, settings.data, lang))


def assert_iob2(sentences):
    for sentence in sentences:
        for previous, tag in zip(["O", *sentence.tags], sentence.tags):
            assert not tag.startswith("I-") or previous[2:] == tag[2:], (sentence.source, sentence.line)


@needs_shared
@pytest.mark.parametrize("lang, files", [("de", {"train": "dev.txt", "dev": "dev.txt", "test": "test.txt"}),
                                         ("ru", {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}),
                                         ("tr", {"train": "dev.txt", "dev": "dev.txt", "test": "test.txt"})])
def test_task_files_make_the_shared_files_panx_shaped(tmp_path, lang, files):
    folder = local_dir(tmp_path, lang, files)
    splits = load_task(lang, folder)
    for split in ("train", "dev", "test"):
        sentences = getattr(splits, split)
        assert len(sentences) == 60
        assert {tag for s in sentences for tag in s.tags} <= PANX
        assert_iob2(sentences)
    raw = [line.split()[-1] for block in read_blocks(folder / "train.conll") for line in block]
    kept = [tag for s in splits.train for tag in s.tags]
    assert len(kept) == len(raw)  # every token kept, only its tag changed
    dropped = {"de": ("OTH", "deriv", "part"), "ru": ("MISC",), "tr": ("MISC",)}[lang]
    for old, new in zip(raw, kept):
        if any(mark in old for mark in dropped):
            assert new == "O", old


@needs_shared
def test_russian_iob1_is_converted_and_refused_without_the_option(tmp_path):
    folder = local_dir(tmp_path, "ru", {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}, count=5)
    raw = read_blocks(folder / "train.conll")
    first = next((i, j) for i, block in enumerate(raw) for j, line in enumerate(block) if line.endswith("I-LOC"))
    splits = load_task("ru", folder)
    assert splits.train[first[0]].tags[first[1]] == "B-LOC"  # an IOB1 entity start became B-
    assert splits.files["train"].converted > 0
    settings = load_settings(ROOT / "tasks" / "panx_ru.yaml", [f"data.local_dir={folder}", "data.scheme=iob2"])
    with pytest.raises(DataError, match="looks like IOB1.*data.scheme=iob1"):
        load_data(fill(NerData, settings.data, "ru"))


def test_wnut_english_is_mapped_to_per_loc_org():
    sentences = read_test_split(ROOT / "tasks" / "wnut16_panx.yaml")
    assert len(sentences) == len(read_ner_file(WNUT / "test.conll")) == 239
    starts = Counter(tag[2:] for s in sentences for tag in s.tags if tag.startswith("B-"))
    assert starts == {"PER": 50, "LOC": 36, "ORG": 21}  # B-person, B-geo-loc, B-company in the file


def test_blocks_round_trip_and_samples_are_disjoint_seeded_and_in_file_order(tmp_path):
    blocks = [[f"w{i} X B-X O", f"v{i} X B-X I-PER"] for i in range(10)]
    path = write_blocks(tmp_path / "f.conll", blocks)
    assert path.read_text().startswith("w0 X B-X O\nv0 X B-X I-PER\n\nw1") and read_blocks(path) == blocks
    samples = sample_blocks(blocks, {"train": 5, "test": 3}, seed=0)
    assert [len(v) for v in samples.values()] == [5, 3]
    indices = {name: [blocks.index(b) for b in chosen] for name, chosen in samples.items()}
    assert all(v == sorted(v) for v in indices.values()) and not set(indices["train"]) & set(indices["test"])
    assert sample_blocks(blocks, {"train": 5, "test": 3}, seed=0) == samples
    assert sample_blocks(blocks, {"train": 5, "test": 3}, seed=1) != samples
    with pytest.raises(DataError, match="10 sentences are fewer than the 11"):
        sample_blocks(blocks, {"train": 6, "test": 5}, seed=0)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny nlu checkpoint and its tokenizer, standing in for a pretrained model (init=)."""
    folder = tmp_path_factory.mktemp("init")
    texts = [" ".join(s.words) for s in read_ner_file(WNUT / "train.conll")]
    tokenizer = train_tokenizer(iter(texts), vocab_size=400)
    config = EncoderConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                           max_position_embeddings=160, pad_token_id=tokenizer.pad_token_id, labels=["O", "B-X", "I-X"])
    ForTokenClassification(config).save_pretrained(folder)
    save_tokenizer(tokenizer, folder)
    return folder


def tiny_run(tmp_path: Path, init: Path, *extra: str):
    files = {"train": WNUT / "train.conll", "dev": WNUT / "dev.conll", "test": WNUT / "test.conll"}
    overrides = [f"init={init}", *(f"data.{k}={v}" for k, v in files.items()), "data.max_length=160",
                 f"training.output_dir={tmp_path / 'run'}", "training.max_steps=4", "training.batch_size=8",
                 "training.eval_every=4", "training.save_every=4", "training.learning_rate=1e-2", "training.cpu=true",
                 "training.progress=false", *extra]
    return run(load_settings(ROOT / "tasks" / "wnut16_panx.yaml", overrides))


@pytest.mark.slow
def test_frozen_embeddings_stay_bit_identical_and_have_no_optimizer_state(tmp_path, pretrained):
    record = tiny_run(tmp_path, pretrained, "training.freeze_embeddings=true", "training.keep_finished_checkpoints=true")
    before = ForTokenClassification.from_pretrained(pretrained)
    after = ForTokenClassification.from_pretrained(record.output_dir / "model")
    assert torch.equal(after.encoder.embeddings.word_embeddings.weight, before.encoder.embeddings.word_embeddings.weight)
    layer = "encoder.stack.layers.0"
    moved = [name for name, value in after.state_dict().items() if name.startswith(layer)
             and not torch.equal(value, before.state_dict()[name])]
    assert moved  # the rest of the encoder did train
    state = torch.load(next((record.output_dir / "checkpoints").glob("step-*")) / "optimizer.bin", weights_only=False)
    trainable = [p for name, p in after.named_parameters() if name != "encoder.embeddings.word_embeddings.weight"]
    assert len(state["state"]) == len(trainable)  # one AdamW state per trainable tensor, none for the embedding
    held = [shape for entry in state["state"].values() for shape in [tuple(entry["exp_avg"].shape)]]
    assert tuple(before.encoder.embeddings.word_embeddings.weight.shape) not in held


@pytest.mark.slow
def test_freezing_needs_a_pretrained_model(tmp_path, pretrained):
    frozen = "training.freeze_embeddings=true"
    settings = load_settings(ROOT / "tasks" / "wnut16_panx.yaml", [f"init={pretrained}", "from_scratch=true", frozen])
    with pytest.raises(ConfigError, match="^command line: training.freeze_embeddings: keeps pretrained word embeddings "
                                          "fixed"):  # refused before the folder or the data is touched
        resolve(settings)
    settings = load_settings(ROOT / "tasks" / "wnut16_panx.yaml", [f"init={pretrained}", frozen])
    model, _ = initial_model(settings, ForTokenClassification, ["O", "B-PER", "I-PER"], None)
    assert not model.encoder.embeddings.word_embeddings.weight.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if "word_embeddings" not in n)


@pytest.mark.slow
def test_one_model_scored_on_several_test_sets_into_one_table(tmp_path, pretrained):
    record = tiny_run(tmp_path, pretrained)
    assert not (record.output_dir / "checkpoints").exists()  # a finished run is reused, never resumed: they went
    assert record.summary["best_step"] == record.summary["steps"]  # so the final model is the best one, on disk once
    assert os.path.samefile(record.output_dir / "model" / "model.safetensors", record.output_dir / "best" / "model.safetensors")
    english = read_test_split(ROOT / "tasks" / "wnut16_panx.yaml")
    sets = {"en": english, "en-first-20": english[:20]}
    results = evaluate_test_sets(record.output_dir, sets, tmp_path / "languages")
    assert list(results) == ["en", "en-first-20"]
    own = json.loads((record.output_dir / "test" / "metrics.json").read_text())["entity_strict"]["averages"]["micro"]
    assert summary_figures(results["en"])["test_f1"] == pytest.approx(own["f1"])  # the run's own test evaluation
    per_type = results["en"]["entity_strict"]["per_class"]
    assert sum(row["support"] for row in per_type.values()) == 107 and results["en-first-20"]["sentences"] == 20
    for name in sets:
        assert (tmp_path / "languages" / name / "entities_confusion_true.png").stat().st_size > 0


@needs_shared
def test_panx_data_writes_seeded_samples_and_a_half_and_half_de_ru(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import panx_data

    panx_data.main(["--sizes", "40", "10", "20", "--out", str(tmp_path)])
    for lang in ("de", "ru", "tr"):
        assert [len(read_blocks(tmp_path / lang / f"{split}.conll")) for split in ("train", "dev", "test")] == [40, 10, 20]
    assert read_blocks(tmp_path / "de" / "train.conll") == sample_blocks(read_blocks(SHARED / "de" / "dev.txt"),
                                                                         {"train": 40, "dev": 10}, 0)["train"]
    de, ru = load_task("de", tmp_path / "de"), load_task("ru", tmp_path / "ru")
    both = read_ner_file(tmp_path / "de+ru" / "train.conll")
    words = lambda sentences: sorted(tuple(s.words) for s in sentences)  # noqa: E731
    halves = [sample_blocks(de.train, {"h": 20}, 0)["h"], sample_blocks(ru.train, {"h": 20}, 0)["h"]]
    assert words(both) == words(halves[0] + halves[1])  # 20 German + 20 Russian, nothing else
    assert {tag for s in both for tag in s.tags} <= PANX
    assert_iob2(both)
    assert words(read_ner_file(tmp_path / "de+ru" / "test.conll")) == words(de.test)
