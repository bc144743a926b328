"""Column names as found in the wild, mapped to the KDD names: one mapping for the file reader
and the served model, so a header ``kddad score`` reads is a request's columns the server takes.

Names are folded (case, spaces, dashes, quotes, a trailing dot) and public variants aliased
(``src_byts``, ``attack``, ``level``…); where a KDD width of names mostly matches in its places
(a misspelled ``srv_error_rate``, OpenML's ``l``-prefixed names), the columns are taken by
position with one warning naming every name so taken.
"""

from __future__ import annotations

import logging
import re

from kddad.data import fields
from kddad.errors import DataError

log = logging.getLogger(__name__)

DIFFICULTY = fields.DIFFICULTY
#: Header names seen in public copies of KDD Cup 99 / NSL-KDD, and what they mean.
ALIASES: dict[str, str] = {
    "src_byts": "src_bytes",
    "dst_byts": "dst_bytes",
    "protocol": "protocol_type",
    "is_hot_login": "is_host_login",
    "num_outbound_cmd": "num_outbound_cmds",
    "su_attempt": "su_attempted",
    "attack": fields.LABEL,
    "attack_type": fields.LABEL,
    "attack_cat": fields.LABEL,
    "class": fields.LABEL,
    "labels": fields.LABEL,
    "outcome": fields.LABEL,
    "target": fields.LABEL,
    "level": DIFFICULTY,
    "difficulty_level": DIFFICULTY,
    "success_pred": DIFFICULTY,
}
#: Every column the reader keeps.
KNOWN = frozenset({*fields.FEATURES, fields.LABEL, DIFFICULTY})
#: The columns after the 41 features, by a headerless file's width.
TAILS: dict[int, tuple[str, ...]] = {41: (), 42: (fields.LABEL,), 43: (fields.LABEL, DIFFICULTY)}
#: Names a leading index column is written under (pandas ``to_csv``, R's ``write.csv``, exports).
INDEX_NAMES = frozenset({"", "unnamed:_0", "unnamed_0", "index", "id", "row", "_"})


def canonical(name: str) -> str:
    """A header name as the KDD name it stands for (case, spaces, dashes and aliases folded)."""
    key = re.sub(r"[\s\-]+", "_", str(name).strip().lstrip("\ufeff").strip("'\"").rstrip(".:").lower())
    return ALIASES.get(key, key)


def ignored(i: int) -> str:
    """The name a column of no KDD meaning is carried under (its place ``i``)."""
    return f"_ignored_{i}"


def _by_position(names: list[str], where: str) -> tuple[str, ...] | None:
    """A KDD width of names (after a leading index column) whose KDD names all stand in their KDD
    places: the columns by position, with one warning naming every name taken by position. None
    when the names do not fit that far."""
    columns = [canonical(n) for n in names]
    skip = 1 if columns and columns[0] in INDEX_NAMES and len(columns) - 1 in TAILS else 0
    body = columns[skip:]
    if len(body) not in TAILS:
        return None
    places = (*fields.FEATURES, *TAILS[len(body)])
    if any(c in KNOWN and c != want for c, want in zip(body, places)):
        return None  # a KDD name out of its place: the names are not in KDD order
    if sum(c == want for c, want in zip(body, places)) < len(fields.FEATURES) // 2:
        return None
    taken = [f"{names[skip + i]!r} as {want!r}" for i, (c, want) in enumerate(zip(body, places)) if c != want]
    log.warning("%s: %d name(s) are not KDD names, taken by their position: %s", where, len(taken), ", ".join(taken))
    return (*(ignored(i) for i in range(skip)), *places)


def kdd_columns(names: list[str], where: str, by_position: bool = True) -> tuple[str, ...]:
    """The KDD columns ``names`` stand for, in their order (:func:`ignored` names for the others).

    ``where``: what the names are, as a fault names them (``data.csv: line 1 (header)``,
    ``request: columns``); ``by_position``: names may fall back on KDD order.
    """
    names = [str(n) for n in names]
    columns = tuple(canonical(n) for n in names)
    missing = [c for c in fields.FEATURES if c not in columns]
    if missing and by_position and (positional := _by_position(names, where)) is not None:
        return positional
    if missing:
        raise DataError(f"{where}: the 41 KDD features are needed by name; missing {missing}")
    dup = sorted({c for c in columns if c in KNOWN and columns.count(c) > 1})
    if dup:
        raise DataError(f"{where}: column(s) {dup} appear more than once")
    extra = [n for n, c in zip(names, columns) if c not in KNOWN]
    if extra:
        log.info("%s: ignoring column(s) that are not KDD features: %s", where, extra)
    return tuple(c if c in KNOWN else ignored(i) for i, c in enumerate(columns))
