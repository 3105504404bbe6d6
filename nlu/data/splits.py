"""Dev and test sets split off one file with a fixed seed, for data sets shipped without them.

One rule for NER sentences and classification examples: each group (a class; NER has one
group) is shuffled with ``random.Random(seed)`` and cut by the fractions. The cut is made per
group so that every split gets a member of every group that has enough of them — training keeps
at least one, then dev, then test — rather than letting rounding silently leave a rare class
out of dev. Every item lands in exactly one split, each split in file order, and the same
seed gives the same split on every machine.
"""

from __future__ import annotations

import dataclasses
import json
import random
import warnings
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from nlu.errors import ConfigError, DataError
from nlu.files import write_text_atomic

TRAIN = "train"
SPLITS_FILE = "data_splits.json"
"""Which records each split made from data.train holds, written into the run folder."""
R = TypeVar("R")


def check_fractions(fractions: Mapping[str, float]) -> None:
    for name, fraction in fractions.items():
        if not 0 < fraction < 1:
            raise ConfigError(f"data.{name}_fraction must be between 0 and 1 (exclusive), got {fraction}")
    if sum(fractions.values()) >= 1:
        listing = " + ".join(f"data.{name}_fraction" for name in fractions)
        raise ConfigError(f"{listing} = {sum(fractions.values()):g} leaves nothing to train on; keep the sum below 1")


def _counts(size: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Members of a group of ``size`` per split: the rounded fraction, at least one for each
    split the group is large enough to reach (training first), never the whole group."""
    counts = {name: int(fraction * size + 0.5) for name, fraction in fractions.items()}
    for place, name in enumerate(counts, start=2):
        if counts[name] == 0 and size >= place:
            counts[name] = 1
    while sum(counts.values()) > size - 1:
        largest = max(counts, key=counts.__getitem__)
        counts[largest] -= 1
    return counts


def split_indices(groups: Sequence[Hashable], fractions: Mapping[str, float], seed: int) -> dict[str, list[int]]:
    """Indices into ``groups`` per split: ``"train"`` and one per fraction, disjoint, covering all."""
    check_fractions(fractions)
    members: dict[Hashable, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    rng = random.Random(seed)
    result: dict[str, list[int]] = {TRAIN: [], **{name: [] for name in fractions}}
    for indices in members.values():
        rng.shuffle(indices)
        start = 0
        for name, count in _counts(len(indices), fractions).items():
            result[name] += indices[start:start + count]
            start += count
        result[TRAIN] += indices[start:]
    return {name: sorted(indices) for name, indices in result.items()}


@dataclass
class MadeSplit:
    """A split drawn from another split's file: where from, how, and which records it holds."""

    source: str
    of: int
    """Records in the file it was drawn from."""
    fraction: float
    seed: int
    lines: list[int]
    """The start line of every record in this split, in file order."""
    missing: dict[str, int] = field(default_factory=dict)
    """Groups (classes) of the file with no record in this split, and how many the file has."""

    def describe(self, name: str, unit: str) -> str:
        text = (f"{len(self.lines):,} of the {self.of:,} {unit} of {self.source}, drawn with data.split_seed="
                f"{self.seed} ({name}_fraction {self.fraction:g}; lines in {SPLITS_FILE})")
        if self.missing:
            text += "; no example of " + ", ".join(f"{group} ({count} in the file)" for group, count in
                                                    self.missing.items())
        return text


def split_records(
    records: Sequence[R], groups: Sequence[Hashable], fractions: Mapping[str, float], seed: int, source: str, unit: str
) -> tuple[dict[str, list[R]], dict[str, MadeSplit]]:
    """``records`` (anything with a ``line``) split by :func:`split_indices`: the records per split
    and a :class:`MadeSplit` per fraction. A split left empty is an error; a group too small to
    reach a split is kept out of it with a warning that names it."""
    indices = split_indices(groups, fractions, seed)
    sizes = Counter(groups)
    parts = {name: [records[i] for i in chosen] for name, chosen in indices.items()}
    made: dict[str, MadeSplit] = {}
    for name, fraction in fractions.items():
        if not parts[name]:
            raise DataError(f"{len(records):,} {unit} are too few to split off data.{name}_fraction={fraction:g} and "
                            f"keep some for training", source)
        present = {groups[i] for i in indices[name]}
        missing = {str(group): count for group, count in sizes.items() if group not in present}
        made[name] = MadeSplit(source, len(records), fraction, seed, [record.line for record in parts[name]], missing)
        if missing:
            warnings.warn(f"{source}: {made[name].describe(name, unit)} (too few to share)", stacklevel=2)
    return parts, made


def save_made_splits(directory: Path, made: Mapping[str, MadeSplit], train_lines: list[int]) -> Path:
    """Write which records each split holds (file and start lines), so the split can be checked
    and reused; training holds the rest of the file the splits were drawn from."""
    record: dict[str, Any] = {name: dataclasses.asdict(split) for name, split in made.items()}
    record[TRAIN] = {"source": next(iter(made.values())).source, "lines": train_lines}
    path = Path(directory) / SPLITS_FILE
    write_text_atomic(path, json.dumps(record, indent=1))
    return path


def split_figures(parts: Mapping[str, Sequence[Any]], made: Mapping[str, MadeSplit], unit: str) -> dict[str, str]:
    """One line per split for a run summary: drawn from which file and how, or read from which
    files. ``parts`` maps split names to records that have a ``source``."""
    figures = {}
    for name, records in parts.items():
        if name in made:
            figures[f"{name} split"] = made[name].describe(name, unit)
        elif records:
            figures[f"{name} split"] = f"{len(records):,} {unit} of {', '.join(sorted({r.source for r in records}))}"
    return figures


@dataclass
class Splits:
    """A task's records per split and how any split was made from data.train: what a run's summary
    reports about its data (:meth:`summary`) and the split record it saves (:meth:`save`)."""

    train: list
    dev: list
    test: list
    made: dict[str, MadeSplit]
    unit: ClassVar[str] = "records"

    def summary(self) -> dict[str, Any]:
        """Flat figures for the run summary: where each split came from."""
        return split_figures({"train": self.train, "dev": self.dev, "test": self.test}, self.made, self.unit)

    def save(self, directory: Path) -> Path | None:
        """The split record (:data:`SPLITS_FILE`) when splits were made."""
        return save_made_splits(directory, self.made, [record.line for record in self.train]) if self.made else None
