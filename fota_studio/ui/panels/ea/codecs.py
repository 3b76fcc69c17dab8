"""Text codecs of the EA editor's tables: a cell's text to a typed value and back.

No Qt here (a unit test imports this module without PySide6, and an import contract keeps it
so): the table widget (`list_table.py`) and the form (`ecu_form.py`) only call these. Step
parameters are typed by `core.ea.STEP_PARAMS`; hex data such as `data=01 02` stays text, so the
validator names a bad value instead of the editor guessing. Any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fota_studio.core.ea import STEP_PARAMS, StepKind, StepParam
from fota_studio.ui.widgets.hex_text import parse_hex


@dataclass(frozen=True)
class Column:
    """One table column: the attribute key, its title and how text maps to a value."""

    key: str
    title: str
    kind: str = "str"  # str | optstr | hex | opthex | bytes | int | optint | float | optfloat
    #                    | params | step_params | bool | ro


def format_params(params: dict[str, Any]) -> str:
    """`key=value, ...` text of generic parameters (IDs and levels in hex)."""
    parts = []
    for k, v in params.items():
        if isinstance(v, bool):
            parts.append(f"{k}={'true' if v else 'false'}")
        elif isinstance(v, int) and k in ("session", "level", "did", "routine_id", "constant"):
            parts.append(f"{k}=0x{v:X}")
        else:
            parts.append(f"{k}={v}")
    return ", ".join(parts)


def parse_scalar(text: str) -> Any:
    """A bool (`true`/`false`), an int (any base prefix), a float, else the stripped text."""
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    try:
        return int(t, 0)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t


def split_pairs(text: str) -> list[tuple[str, str]]:
    """`key=value, ...` as stripped (key, value) pairs, empty parts skipped; ValueError names a
    part without `=`."""
    pairs = []
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f'"{part.strip()}" is not key=value')
        k, v = part.split("=", 1)
        pairs.append((k.strip(), v.strip()))
    return pairs


def parse_params(text: str) -> dict[str, Any]:
    """`key=value, ...` into a dict, each value by `parse_scalar`; ValueError names the part."""
    return {k: parse_scalar(v) for k, v in split_pairs(text)}


def format_step_params(kind: StepKind, params: dict[str, Any]) -> str:
    """key=value text of a step's params: bytes and words in hex, as in the EA file."""
    schema = {p.key: p for p in STEP_PARAMS.get(kind, ())}
    parts = []
    for k, v in params.items():
        p = schema.get(k)
        if isinstance(v, bool):
            parts.append(f"{k}={'true' if v else 'false'}")
        elif p is not None and p.type in ("byte", "word") and isinstance(v, int):
            parts.append(f"{k}=0x{v:0{2 if p.type == 'byte' else 4}X}")
        else:
            parts.append(f"{k}={v}")
    return ", ".join(parts)


def parse_step_value(param: StepParam, text: str) -> Any:
    """A step parameter's value from its text, by the type in STEP_PARAMS."""
    t = text.strip()
    if param.type in ("byte", "word", "int"):
        return int(t, 0)
    if param.type == "number":
        return float(t)
    if param.type == "bool":
        if t.lower() not in ("true", "false"):
            raise ValueError(f"{param.key}: write true or false")
        return t.lower() == "true"
    return t  # choice / text: as written (the validator checks choices)


def parse_step_params(kind: StepKind, text: str) -> dict[str, Any]:
    """`key=value, ...` for one step kind, each value typed by STEP_PARAMS (hex data such as
    `data=01 02` stays text); unknown keys keep a generic value so the validator names them."""
    schema = {p.key: p for p in STEP_PARAMS.get(kind, ())}
    out: dict[str, Any] = {}
    for k, v in split_pairs(text):
        param = schema.get(k)
        try:
            out[k] = parse_scalar(v) if param is None else parse_step_value(param, v)
        except ValueError:
            assert param is not None
            raise ValueError(f'{k}: "{v}" is not {param.type}') from None
    return out


def step_params_help(kind: StepKind) -> str:
    """The parameters of one step kind with type, range and meaning (tooltip)."""
    lines = []
    for p in STEP_PARAMS.get(kind, ()):
        if p.choices:
            rng = " | ".join(p.choices)
        elif p.low is not None and p.high is not None:
            rng = (
                f"0x00..0x{int(p.high):X}"
                if p.type in ("byte", "word")
                else f"{p.low:g}..{p.high:g}"
            )
        else:
            rng = p.type
        lines.append(f"{p.key} ({rng}, default {p.default!r}): {p.meaning}")
    return "\n".join(lines) or "no parameters"


def format_cell(kind: str, value: Any) -> str:
    """The text of one table cell of a column `kind` (see `Column.kind`); empty for None."""
    if value is None:
        return ""
    if kind in ("hex", "opthex"):
        return f"0x{int(value):X}"
    if kind == "bytes":
        return bytes(value).hex(" ").upper()
    if kind == "params":
        return format_params(value)
    return str(value)


def parse_cell(kind: str, text: str) -> Any:
    """The value of one table cell from its text; ValueError says what is wrong with it."""
    t = text.strip()
    if kind in ("str",):
        return text
    if kind == "optstr":
        return t or None
    if kind in ("optint", "optfloat", "opthex") and not t:
        return None
    if kind == "bytes":
        return bytes.fromhex(t.replace(" ", ""))
    if kind in ("hex", "opthex"):
        v = parse_hex(t)
        if v is None:
            raise ValueError(f'"{t}" is not a hex number')
        return v
    if kind in ("int", "optint"):
        return int(t, 0)
    if kind in ("float", "optfloat"):
        return float(t)
    if kind == "params":
        return parse_params(text)
    raise ValueError(f"column kind {kind}")


def unique_name(existing: list[str], base: str) -> str:
    """`base`, or `base 2`, `base 3`, … whichever is not in `existing`."""
    if base not in existing:
        return base
    n = 2
    while f"{base} {n}" in existing:
        n += 1
    return f"{base} {n}"
