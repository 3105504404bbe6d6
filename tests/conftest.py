import os

import pytest
import torch

from nlu.config import EncoderConfig

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, torch.get_num_threads() // WORKERS))  # workers share the cores, not oversubscribe them


@pytest.fixture
def tiny_config() -> EncoderConfig:
    return EncoderConfig(vocab_size=101, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                         max_position_embeddings=48, hidden_dropout=0.0, attention_dropout=0.0)


@pytest.fixture
def fails_at():
    """``fails_at(read, path, line, fragment)``: reading PATH raises a DataError whose message starts
    with ``PATH:LINE: `` and says FRAGMENT — the file:line form every reader's error has."""
    from nlu.errors import DataError

    def check(read, path, line: int, fragment: str) -> None:
        with pytest.raises(DataError) as caught:
            read(path)
        assert str(caught.value).startswith(f"{path}:{line}: ") and fragment in str(caught.value), str(caught.value)

    return check


@pytest.fixture
def offline_hub(monkeypatch):
    """The Hugging Face hub out of reach, as on this project's machines: every download fails as
    huggingface_hub fails without a network."""
    from nlu import sources

    def offline(repo_id, **_):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(sources, "snapshot_download", offline)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def wordpiece_tokenizer(tmp_path_factory):
    """A real BertTokenizerFast over a hand-written vocabulary (no hub, no training)."""
    from transformers import BertTokenizerFast

    def build(vocabulary: list[str]) -> BertTokenizerFast:
        directory = tmp_path_factory.mktemp("tokenizer")
        (directory / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
        return BertTokenizerFast.from_pretrained(directory)

    return build


def pytest_collection_modifyitems(items):
    """Files with slow tests first (order within a file kept): with several workers the long
    files start early, instead of one of them running alone at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
