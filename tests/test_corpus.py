from pathlib import Path

import pytest
from datasets import Dataset

from nlu.data.corpus import Document, corpus_statistics, documents_from_dataset, read_documents
from nlu.errors import DataError
from nlu.tokenizer import train_tokenizer

NEWS = Path(__file__).resolve().parents[1] / "data" / "corpus" / "news.txt"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_blank_lines_separate_documents(tmp_path):
    path = write(tmp_path / "a.txt", "\n\n  First one.  \nFirst two.\n\n \t\n\nSecond one.\n\n")
    assert read_documents([path]) == [
        Document(["First one.", "First two."], str(path), 3),
        Document(["Second one."], str(path), 8),
    ]


def test_files_are_read_in_order(tmp_path):
    first = write(tmp_path / "b.txt", "B one.\n")
    second = write(tmp_path / "a.txt", "A one.\n\nA two.")
    documents = read_documents([first, str(second)])
    assert [document.sentences for document in documents] == [["B one."], ["A one."], ["A two."]]
    assert [document.source for document in documents] == [str(first), str(second), str(second)]


def test_windows_line_endings_and_byte_order_mark(tmp_path):
    path = tmp_path / "w.txt"
    path.write_bytes("\ufeffOne.\r\nTwo.\r\n\r\nThree.\r\n".encode())
    assert [document.sentences for document in read_documents([path])] == [["One.", "Two."], ["Three."]]


def test_unicode_line_separators_stay_inside_a_sentence(tmp_path):
    path = write(tmp_path / "u.txt", "One\u2028still one.\nTwo.\n")
    assert read_documents([path])[0].sentences == ["One\u2028still one.", "Two."]


@pytest.mark.parametrize("text", ["", "\n \n\t\n"])
def test_file_without_sentences_is_an_error(tmp_path, text):
    path = write(tmp_path / "empty.txt", text)
    with pytest.raises(DataError, match="empty.txt: the file holds no sentences"):
        read_documents([path])


def test_missing_file_and_no_files(tmp_path):
    with pytest.raises(DataError, match="missing.txt: corpus file not found"):
        read_documents([tmp_path / "missing.txt"])
    with pytest.raises(DataError, match="no corpus files"):
        read_documents([])


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Fine.\n\nCaf\u00e9 au lait.\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt:3: not valid UTF-8"):
        read_documents([path])


def test_dataset_with_one_document_per_row():
    dataset = Dataset.from_dict({"text": ["One.\nTwo.\n\n", "", "  Three.  "], "id": [1, 2, 3]})
    documents = documents_from_dataset(dataset)
    assert [(document.sentences, document.line) for document in documents] == [(["One.", "Two."], 0), (["Three."], 2)]


def test_dataset_with_one_sentence_per_row_grouped_by_document():
    dataset = Dataset.from_dict({
        "sentence": ["a1", "b1", "a2", "", "c1", "b2"],
        "doc": ["a", "b", "a", "c", "c", "b"],
    })
    documents = documents_from_dataset(dataset, text_column="sentence", document_column="doc")
    assert [document.sentences for document in documents] == [["a1", "a2"], ["b1", "b2"], ["c1"]]
    assert [document.line for document in documents] == [0, 1, 3]


def test_dataset_errors():
    dataset = Dataset.from_dict({"text": ["One.", None]})
    with pytest.raises(DataError, match="no column 'body'"):
        documents_from_dataset(dataset, text_column="body")
    with pytest.raises(DataError, match="no column 'doc'"):
        documents_from_dataset(dataset, document_column="doc")
    with pytest.raises(DataError, match="row 1: column 'text' holds NoneType"):
        documents_from_dataset(dataset)
    with pytest.raises(DataError, match="no sentences"):
        documents_from_dataset(Dataset.from_dict({"text": ["", " \n "]}))


def test_statistics_count_words_and_tokens(tmp_path):
    path = write(tmp_path / "c.txt", "The rain fell on the town.\nThe town flooded.\n\nThe rain stopped at night.\n")
    documents = read_documents([path])
    assert corpus_statistics(documents) == {"documents": 2, "sentences": 3, "words": 14}
    tokenizer = train_tokenizer([path], vocab_size=100, min_frequency=1)
    sentences = [sentence for document in documents for sentence in document.sentences]
    expected = sum(len(tokenizer.tokenize(sentence)) for sentence in sentences)
    assert corpus_statistics(documents, tokenizer)["tokens"] == expected


@pytest.mark.skipif(not NEWS.is_file(), reason="the shipped corpus is not there")
def test_shipped_corpus_reads_cleanly():
    documents = read_documents([NEWS])
    statistics = corpus_statistics(documents)
    assert statistics["documents"] >= 100
    # Next-sentence prediction needs documents with a next sentence.
    assert sum(len(document.sentences) >= 2 for document in documents) >= 0.9 * len(documents)
    assert all(sentence and sentence == sentence.strip() for document in documents for sentence in document.sentences)
