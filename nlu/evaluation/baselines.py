"""Models a fine-tuned encoder has to beat, scored on the same test split by the same metrics as a
run and under a run's figure names (``test_macro_f1``, ``test_recall[label]``: the
``classification_summary`` of nlu.evaluation.metrics; ``test_f1``, ``test_f1[TYPE]``), so a sweep
can put them in its table as rows of their own.

A run whose figure does not clear its task's majority or word-memorising baseline has learned
nothing usable, whatever its absolute number looks like. (scikit-learn is imported here, not on
use as in nlu.evaluation.metrics: only a sweep imports this module, and a baseline's time should
not include the import.)
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from nlu.data.classification import TextExample
from nlu.data.ner import NerSentence
from nlu.evaluation.metrics import classification_scores, classification_summary, entity_scores


def entity_figures(test: Sequence[NerSentence], predicted: Sequence[list[str]]) -> dict[str, float]:
    scores = entity_scores([s.tags for s in test], list(predicted), mode="strict")
    return {"test_f1": scores["averages"]["micro"]["f1"], "test_macro_f1": scores["averages"]["macro"]["f1"],
            **{f"test_f1[{kind}]": row["f1"] for kind, row in scores["per_class"].items()}}


def majority_class(train: Sequence[TextExample], test: Sequence[TextExample]) -> list[str]:
    """Every test example gets the most frequent training label."""
    majority = Counter(e.label for e in train).most_common(1)[0][0]
    return [majority] * len(test)


def tfidf_logistic_regression(train: Sequence[TextExample], test: Sequence[TextExample],
                              class_weight: str | None = None) -> list[str]:
    """Word 1–2-grams (TF-IDF, sublinear) into a logistic regression: the linear model a text
    classifier is usually first compared with; ``class_weight="balanced"`` is its imbalance remedy.
    An n-gram must occur in two training texts to count, or in one below 100 texts, where a
    stricter floor can leave no n-gram at all."""
    def text(example: TextExample) -> str:
        return example.text if example.text_pair is None else f"{example.text} {example.text_pair}"

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2 if len(train) >= 100 else 1, sublinear_tf=True)
    model = LogisticRegression(max_iter=2000, class_weight=class_weight)
    model.fit(vectorizer.fit_transform([text(e) for e in train]), [e.label for e in train])
    return [str(label) for label in model.predict(vectorizer.transform([text(e) for e in test]))]


def most_frequent_tag(train: Sequence[NerSentence], test: Sequence[NerSentence]) -> list[list[str]]:
    """Each test word gets the entity type it most often had in training (O for a word never seen),
    B- where it starts a run of that type and I- inside it: a memorised gazetteer, the usual floor
    for NER, which an all-O tagger (F1 0) is not."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for sentence in train:
        for word, tag in zip(sentence.words, sentence.tags):
            counts[word][tag[2:] if tag != "O" else "O"] += 1
    predicted = []
    for sentence in test:
        types = [counts[word].most_common(1)[0][0] if word in counts else "O" for word in sentence.words]
        predicted.append(["O" if kind == "O" else ("I-" if index and types[index - 1] == kind else "B-") + kind
                          for index, kind in enumerate(types)])
    return predicted


def baseline_figures(task: str, train: Sequence, test: Sequence, labels: list[str]) -> dict[str, dict[str, float]]:
    """Name → figures (plus ``train_seconds``: fitting and predicting, not scoring) of every baseline of TASK."""
    predictors: dict[str, Callable[[], list]] = (
        {"most frequent tag per word": lambda: most_frequent_tag(train, test)} if task == "ner" else
        {"majority class": lambda: majority_class(train, test),
         "TF-IDF 1–2-grams + logistic regression": lambda: tfidf_logistic_regression(train, test),
         "TF-IDF 1–2-grams + logistic regression, balanced class weights":
             lambda: tfidf_logistic_regression(train, test, "balanced")})
    figures = {}
    for name, predict in predictors.items():
        started = time.perf_counter()
        predicted = predict()
        seconds = time.perf_counter() - started
        scored = (entity_figures(test, predicted) if task == "ner" else
                  classification_summary(classification_scores([e.label for e in test], predicted, labels), "test"))
        figures[name] = scored | {"train_seconds": seconds}
    return figures
