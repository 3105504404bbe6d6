"""nlu: BERT-style encoders from scratch, and predictions from them.

``import nlu`` stays cheap (no torch): :func:`load` imports the model code when it is called.

    import nlu
    tagger = nlu.load("runs/default/ner-pretrained")   # a run folder, a model folder or a transformers BERT folder
    for entity in tagger.predict("Obama visited London, then Berlin.").entities:
        print(entity.type, entity.text, entity.start, entity.end, round(entity.score, 3))
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nlu")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"


def load(path, device=None, **options):
    """A :class:`~nlu.predict.Tagger` or :class:`~nlu.predict.TextClassifier` for the model at
    ``path``; see :func:`nlu.predict.load` for ``device`` and the other options."""
    from nlu import predict

    return predict.load(path, device, **options)


__all__ = ["__version__", "load"]
