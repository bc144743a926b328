"""docs/configuration.md, generated from the schema: every group, key, type, default and meaning.

Regenerate with ``python -m kddad.config --reference docs/configuration.md`` (a test fails when
the committed page differs from what the schema gives).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from kddad.config.schema import MODEL_CONFIGS, SCORING_ONLY, Config

_BOUNDS = ((at.Gt, ">"), (at.Ge, "≥"), (at.Lt, "<"), (at.Le, "≤"))


def _type(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in args)
    if origin is typing.Annotated:
        return _type(args[0]) + _bounds(args[1:])
    if origin is list:
        return f"list of {_type(args[0])}"
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "group"
    return getattr(tp, "__name__", str(tp))


def _bounds(metadata: Any) -> str:
    parts = [
        f"{sign} {getattr(m, cls.__name__.lower())}" for m in metadata for cls, sign in _BOUNDS if isinstance(m, cls)
    ]
    return f" ({', '.join(parts)})" if parts else ""


def _default(field: FieldInfo, value: Any) -> str:
    if field.is_required() and (value is None or value is PydanticUndefined):
        return "required"
    return "`null`" if value is None else f"`{value}`"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str, defaults: BaseModel | None = None) -> list[str]:
    """One row per key; nested groups after, with the defaults their parent gives them."""
    rows, nested = [], []
    for name, field in model.model_fields.items():
        tp = field.annotation
        value = getattr(defaults, name) if defaults is not None else field.default
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            nested.append((f"{prefix}{name}.", tp, value))
            rows.append(f"| `{prefix}{name}` | group | see below | {_cell(field.description)} |")
            continue
        meaning = field.description or ""
        if field.json_schema_extra == SCORING_ONLY:
            meaning += " Scoring only: the threshold and evaluate stages apply it to the trained model."
        rows.append(
            f"| `{prefix}{name}` | {_type(tp)}{_bounds(field.metadata)} | {_default(field, value)} | {_cell(meaning)} |"
        )
    for sub_prefix, sub, value in nested:
        rows += _rows(sub, sub_prefix, value)
    return rows


def _presets(config_dir: Path, group: str) -> str:
    folder = config_dir / group
    names = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    return ", ".join(f"`{group}={n}`" for n in names)


def _table(model: type[BaseModel], prefix: str) -> list[str]:
    return ["| key | type | default | meaning |", "|---|---|---|---|", *_rows(model, prefix), ""]


def markdown(config_dir: str | Path = "conf") -> str:
    """The reference page for the schema; presets listed from ``config_dir``'s group folders."""
    config_dir = Path(config_dir)
    out = [
        "# Configuration reference",
        "",
        "Generated from `src/kddad/config/schema.py` by `python -m kddad.config --reference "
        "docs/configuration.md`; do not edit by hand. Each group is a folder of presets in `conf/`, "
        "picked with `group=preset` (Hydra, `dvc exp run -S`); each key is set with `group.key=value`. "
        "`params.yaml` is the default composition (`make params`).",
        "",
    ]
    for name, field in Config.model_fields.items():
        out += [f"## `{name}`", "", field.description or "", ""]
        presets = _presets(config_dir, name)
        if presets:
            out += [f"Presets: {presets}.", ""]
        if name == "model":
            for cls in MODEL_CONFIGS:
                kinds = typing.get_args(cls.model_fields["name"].annotation)
                out += [
                    f"### `model.name`: {', '.join(f'`{k}`' for k in kinds)}",
                    "",
                    (cls.__doc__ or "").strip(),
                    "",
                    *_table(cls, "model."),
                ]
            continue
        tp = field.annotation
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            doc = (tp.__doc__ or "").strip()
            out += ([doc, ""] if doc and doc != field.description else []) + _table(tp, f"{name}.")
        else:
            out += [f"Type {_type(tp)}{_bounds(field.metadata)}, default {_default(field, field.default)}.", ""]
    return "\n".join(out).rstrip() + "\n"
