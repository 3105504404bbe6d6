"""config → positions, padding, dropout → embeddings → attention → layers → heads → models: read the files in that order."""

from nlu.model.models import (
    MODEL_CLASSES,
    ClassifierOutput,
    Encoder,
    EncoderModel,
    EncoderOutput,
    ForPreTraining,
    ForSequenceClassification,
    ForTokenClassification,
    NluModel,
    PreTrainingOutput,
    load_model,
)

__all__ = [
    "MODEL_CLASSES", "ClassifierOutput", "Encoder", "EncoderModel", "EncoderOutput", "ForPreTraining",
    "ForSequenceClassification", "ForTokenClassification", "NluModel", "PreTrainingOutput", "load_model",
]
