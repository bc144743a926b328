"""Reading saved JSON descriptions (a detector's ``detector.json``, an encoder's ``encoder.json``)
as untrusted input: duplicate and unknown keys refused, recorded text printable and bounded, and
one line naming the file and the key of the first problem pydantic finds.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

#: Characters refused in recorded text: C0/C1 controls (newlines, ESC of terminal escape
#: sequences, CSI), DEL, Unicode line/paragraph separators and bidirectional overrides.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _printable(max_len: int) -> Callable[[str], str]:
    def check(v: str) -> str:
        if len(v) > max_len:
            raise ValueError(f"expected at most {max_len} characters, got {len(v)}")
        bad = _UNPRINTABLE.search(v)
        if bad:
            raise ValueError(
                f"holds the control character {bad.group()!r} at position {bad.start()}; expected printable text"
            )
        return v

    return check


#: Text recorded for display (a file name, a URL, a version): printable, one line, ≤ 4096 characters.
Text = Annotated[str, Field(strict=True), AfterValidator(_printable(4096))]
#: A short name (a category value): printable, ≤ 256 characters.
Name = Annotated[str, Field(strict=True), AfterValidator(_printable(256))]
#: A saved number that must be finite (a threshold, a score)
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
#: a saved description's pydantic class
M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """A saved description: unknown keys refused, no type coercion of its own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def safe(text: str, limit: int = 80) -> str:
    """``text`` for a one-line message: every unprintable character escaped, cut at ``limit``."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return "".join(c if c.isprintable() and not _UNPRINTABLE.match(c) else repr(c)[1:-1] for c in text)


def _members(t: Any) -> list[Any]:
    """The types a (possibly Annotated, Optional or union) annotation may hold."""
    origin = get_origin(t)
    if origin is Annotated:
        return _members(get_args(t)[0])
    if origin is Union or origin is types.UnionType:
        return [m for a in get_args(t) for m in _members(a)]
    return [t]


def _step(t: Any, part: str | int) -> Any:
    """The annotation at ``part`` inside a value of annotation ``t`` (None if unknown)."""
    for m in _members(t):
        if isinstance(m, type) and issubclass(m, BaseModel):
            if part in m.model_fields:
                return m.model_fields[part].annotation
            name = m.model_fields.get("name")
            if name is not None and part in get_args(name.annotation):  # a union member's tag
                return m
        elif get_origin(m) is list and isinstance(part, int):
            return get_args(m)[0]
        elif get_origin(m) is dict and isinstance(part, str):
            return get_args(m)[1]
    return None


def _keys_at(root: type[BaseModel], loc: tuple) -> list[str]:
    t: Any = root
    for part in loc:
        t = _step(t, part)
        if t is None:
            return []
    return [k for m in _members(t) if isinstance(m, type) and issubclass(m, BaseModel) for k in m.model_fields]


def _model_kinds() -> tuple[str, ...]:
    from kddad.config.schema import MODEL_KINDS

    return MODEL_KINDS


def _got(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return safe(repr(value))


def invalid(
    err: ValidationError,
    file: Path | str,
    root: type[BaseModel],
    what: str,
    note: Callable[[tuple], str] = lambda loc: "",
) -> str:
    """One line naming ``file`` and the key of the first problem pydantic found (and how many more).

    Keys read as written: ``data.file``, ``multiplier[3]``; a model kind pydantic names in the
    path (``model.vae.latent``) is dropped, as in the config's errors (:mod:`kddad.config.load`).
    ``note``: a hint to show after the key (e.g. the column an index stands for).
    """
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a misspelt key first
    e = errors[0]
    loc = tuple(e["loc"])
    shown = list(loc)
    if len(shown) > 1 and shown[0] == "model" and shown[1] in _model_kinds():
        del shown[1]
    kind = e["type"]
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        shown.append("name")
        tags = ", ".join(_model_kinds())
        msg = (
            f"required key is missing (KeyError); expected one of {tags}"
            if kind == "union_tag_not_found"
            else f"expected one of {tags}, got {_got(e['ctx']['tag'])}"
        )
    elif kind == "extra_forbidden":
        allowed = _keys_at(root, loc[:-1])
        msg = "unknown" + (f"; expected one of {', '.join(allowed)}" if allowed else "")
    elif kind == "missing":
        msg = "required key is missing (KeyError)"
    else:
        msg = e["msg"].removeprefix("Value error, ")
        if "input" in e and not isinstance(e["input"], (dict, list)) and "got " not in msg:
            msg += f", got {_got(e['input'])}"
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{safe(str(p), 40)}" for p in shown).lstrip(".")
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return safe(f"{file}: {what}: key '{key or '(top level)'}'{note(loc)}: {msg}{more}", 2000)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise ValueError(f"key {safe(dup)!r} appears twice")
    return dict(pairs)


def read_description(file: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """A saved JSON object (duplicate keys refused), or ``error`` naming ``file``."""
    try:
        meta = json.loads(file.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
    except FileNotFoundError:
        raise error(f"{file}: not found; expected {what}") from None
    except OSError as err:
        raise error(f"{file}: cannot read {what} ({err.strerror or type(err).__name__})") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, a duplicate key
        raise error(f"{file}: not {what} ({type(err).__name__}: {safe(str(err), 200)})") from None
    if not isinstance(meta, dict):
        raise error(f"{file}: not {what} (expected a JSON object, got {type(meta).__name__})")
    return meta


def format_version(expected: int) -> Callable[[int], int]:
    def check(v: int) -> int:
        if v != expected:
            raise ValueError(f"this kddad reads format {expected}, got format {v!r}")
        return v

    return check


def read_validated(file: Path, root: type[M], what: str, invalid_as: str, error: type[Exception]) -> M:
    """A saved JSON object read as :func:`read_description` does and validated whole as ``root``;
    a refusal is ``error`` of one line naming ``file`` and the key (:func:`invalid`, ``invalid_as``)."""
    meta = read_description(file, what, error)
    try:
        return root.model_validate(meta)
    except ValidationError as err:
        raise error(invalid(err, file, root, invalid_as)) from None
