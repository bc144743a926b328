"""What share of a file's values the detector has never seen, and when that is too much to go on.

A file read with a different spelling (upper-case services, a label set without ``normal``,
codes for names) still parses: every categorical value is then unseen and encodes as zeros, every
label an unknown attack, and a run would report figures that mean nothing. Each reader's caller
counts here what it reads and stops past :data:`LIMIT` (or on a labelled file with no ``normal``
row), with one line naming the file and the likely cause, unless told to go on.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from kddad.data import fields
from kddad.errors import DataError

log = logging.getLogger(__name__)

#: Share of rows with an unseen categorical value, or with a label of no known attack, past which
#: a run stops: a file of real traffic has a few such rows, not most.
LIMIT = 0.5
#: How few rows a first look needs before it may stop a run early.
EARLY_ROWS = 1000


def _examples(values: Iterable[str], n: int = 3) -> str:
    return ", ".join(repr(v) for v in list(values)[:n])


def likely_cause(unseen: Iterable[str], known: Iterable[str], seen_by: str = "training saw") -> str:
    """Why values are unseen: another letter case, surrounding whitespace, numeric codes, or another set."""
    unseen, known = [str(v) for v in unseen], {str(k) for k in known}
    folded = {k.lower(): k for k in known}
    if any(v.strip() in known for v in unseen if v != v.strip()):
        return "surrounding whitespace in the fields"
    cased = [(v, folded[v.lower()]) for v in unseen if v.lower() in folded]
    if cased:
        v, k = cased[0]
        return f"another letter case ({v!r} where {seen_by} {k!r})"
    if unseen and all(v.replace(".", "", 1).lstrip("-").isdigit() for v in unseen):
        return f"numeric codes ({_examples(unseen)}) where names are expected"
    return f"values from another data set or encoding ({_examples(unseen)}; expected e.g. {_examples(sorted(known))})"


@dataclass
class Audit:
    """Counts of unseen categorical values and unknown labels over the chunks of one file."""

    where: str
    rows: int = 0
    unseen_rows: int = 0
    unseen: dict[str, Counter] = field(default_factory=dict)
    labelled_rows: int = 0
    normal_rows: int = 0
    unknown_labels: Counter = field(default_factory=Counter)
    known: Mapping[str, list[str]] = field(default_factory=dict)

    def add(self, df: pd.DataFrame, categories: Mapping[str, list[str]] | None = None, labels: bool = True) -> None:
        """Count one chunk: its labels (when it has them and ``labels``) and its values of
        ``categories``'s columns."""
        self.rows += len(df)
        if categories:
            self.known = categories
            any_unseen = pd.Series(False, index=df.index)
            for col, known in categories.items():
                mask = ~df[col].astype(str).isin(known)
                if mask.any():
                    any_unseen |= mask
                    counts = df.loc[mask, col].astype(str).value_counts().to_dict()
                    self.unseen.setdefault(col, Counter()).update(counts)
            self.unseen_rows += int(any_unseen.sum())
        if labels and fields.CATEGORY in df:
            self.labelled_rows += len(df)
            self.normal_rows += int((df[fields.CATEGORY] == "normal").sum())
            unknown = df.loc[df[fields.CATEGORY] == "unknown", fields.LABEL]
            self.unknown_labels.update(unknown.astype(str).value_counts().to_dict())

    def merge(self, other: Audit) -> None:
        """Add the counts of ``other``: chunks of the same file counted elsewhere (a worker process)."""
        self.rows += other.rows
        self.unseen_rows += other.unseen_rows
        for col, counts in other.unseen.items():
            self.unseen.setdefault(col, Counter()).update(counts)
        self.labelled_rows += other.labelled_rows
        self.normal_rows += other.normal_rows
        self.unknown_labels.update(other.unknown_labels)
        self.known = other.known or self.known

    @property
    def unseen_share(self) -> float:
        return self.unseen_rows / self.rows if self.rows else 0.0

    @property
    def unknown_label_share(self) -> float:
        return sum(self.unknown_labels.values()) / self.labelled_rows if self.labelled_rows else 0.0

    def problem(self) -> str | None:
        """What makes the figures meaningless, with its likely cause; None when nothing does."""
        if self.rows and self.unseen_share > LIMIT:
            col = max(self.unseen, key=lambda c: sum(self.unseen[c].values()))
            return (
                f"{self.unseen_share:.0%} of rows hold categorical values the detector never saw in training "
                f"(most in {col!r}: {_examples(v for v, _ in self.unseen[col].most_common())}); likely cause: "
                f"{likely_cause(self.unseen[col], self.known.get(col, []))}"
            )
        labels = [v for v, _ in self.unknown_labels.most_common()]
        known_labels = ["normal", *fields.ATTACK_CATEGORIES]
        kdd = "KDD writes"
        if self.labelled_rows and self.normal_rows == 0:
            normal = [v for v in labels if v.lower() == "normal"]
            cause = likely_cause(normal or labels, ["normal"] if normal else known_labels, kdd)
            return (
                f"no row is labelled 'normal' (labels seen include {_examples(labels) or 'only attacks'}); "
                f"likely cause: {cause if labels else 'a file of attacks only'}"
            )
        if self.labelled_rows and self.unknown_label_share > LIMIT:
            return (
                f"{self.unknown_label_share:.0%} of labels name no known attack ({_examples(labels)}); likely cause: "
                f"{likely_cause(labels, known_labels, kdd)}"
            )
        return None

    def check(self, allow: bool, hint: str) -> None:
        """Stop with one line naming the file (``hint``: how to go on anyway), or warn when ``allow``."""
        problem = self.problem()
        if problem is None:
            return
        if not allow:
            raise DataError(f"{self.where}: {problem}; fix the file, or {hint}")
        log.warning("%s: %s (going on: %s)", self.where, problem, hint)

    def summary(self) -> str:
        """One clause for a run's log: the shares of unseen values and unknown labels."""
        parts = []
        if self.known:
            parts.append(f"{self.unseen_rows} rows ({self.unseen_share:.2%}) with unseen categorical values")
        if self.labelled_rows:
            parts.append(
                f"{sum(self.unknown_labels.values())} ({self.unknown_label_share:.2%}) labels of no known attack"
                + (f": {dict(self.unknown_labels.most_common(5))}" if self.unknown_labels else "")
            )
        return ", ".join(parts) or "nothing to check"
