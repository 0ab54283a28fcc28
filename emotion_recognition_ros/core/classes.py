"""The one class vocabulary of the project, and how each dataset's names map onto it.

Every model lists its classes (in output order) in its metadata; these are the names those lists use.
Self-contained on purpose: it imports nothing from the package, so any module may import it.
"""
from __future__ import annotations

from typing import Iterable, Sequence

# Our names, in the order of the 8-class in-the-wild model's outputs (FER+'s emotion order).
EMOTIONS: tuple[str, ...] = ("neutral", "happy", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
# The six basic expressions of the CK+ study (no neutral, no contempt), in the shipped six-class order.
CKPLUS6: tuple[str, ...] = ("anger", "disgust", "fear", "happy", "sadness", "surprise")
CKPLUS7: tuple[str, ...] = CKPLUS6 + ("contempt",)

# FER+ label.csv vote columns, in file order: the 8 emotions, then two non-emotion columns.
FERPLUS_VOTE_COLUMNS: tuple[str, ...] = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                                         "fear", "contempt", "unknown", "NF")
FERPLUS_NON_EMOTIONS: tuple[str, ...] = ("unknown", "NF")  # NF = not a face

# Dataset name -> our name. Only names that differ are listed; every EMOTIONS name maps to itself.
DATASET_ALIASES: dict[str, dict[str, str]] = {
    "ferplus": {"happiness": "happy"},
    "ckplus": {},  # CK+48's folder names (anger, contempt, disgust, fear, happy, sadness, surprise) are ours
    "fer2013": {},  # anger, disgust, fear, happy, sadness, surprise, neutral: ours already
    "fer": {"angry": "anger", "sad": "sadness"},  # the PyPI `fer` package's labels (the benchmark's peer)
}


class VocabularyError(ValueError):
    """A class name that is not in the vocabulary (the message names it and the dataset)."""


def to_vocabulary(name: str, dataset: str | None = None) -> str:
    """Our name for a dataset's class name (`dataset`: ferplus, ckplus, fer2013 or None for ours)."""
    aliases = DATASET_ALIASES.get(dataset or "", {})
    if dataset is not None and dataset not in DATASET_ALIASES:
        raise VocabularyError(f"unknown dataset '{dataset}' (known: {sorted(DATASET_ALIASES)})")
    ours = aliases.get(name, name)
    if ours not in EMOTIONS:
        where = f" of dataset '{dataset}'" if dataset else ""
        raise VocabularyError(f"class '{name}'{where} is not in the vocabulary {list(EMOTIONS)}")
    return ours


def map_names(names: Iterable[str], dataset: str | None = None) -> list[str]:
    return [to_vocabulary(n, dataset) for n in names]


def index_map(source: Sequence[str], target: Sequence[str]) -> list[int]:
    """For each name in `source`, its index in `target` (both in our vocabulary); error if one is absent."""
    missing = [n for n in source if n not in target]
    if missing:
        raise VocabularyError(f"class(es) {missing} are not among {list(target)}")
    return [list(target).index(n) for n in source]
