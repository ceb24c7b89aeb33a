"""JSON in and out of the records: :func:`to_json` writes plain values, :func:`from_json` reads
them back into the same dataclass (int dict keys, such as frequencies, are strings in JSON)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar, Union

__all__ = ["RecordError", "finite_json", "from_json", "to_json", "untrusted_warning"]

T = TypeVar("T")


class RecordError(ValueError):
    """A JSON value that does not have the shape of its record; the message is one line."""


# ---------------------------------------------------------------- (de)serialisation


def to_json(obj: Any) -> Any:
    """Plain JSON values of a record (dataclasses, lists, dicts with int keys, numbers, None)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    return obj


def finite_json(obj: Any, where: str) -> tuple[Any, dict[str, str]]:
    """:func:`to_json` of ``obj`` with every NaN or infinite number replaced by None, and where each
    was (``where`` then the path: ``progress[3].restricted_loss``) with the reason (``NaN``,
    ``+inf``, ``-inf``). A number that cannot be trusted is recorded as null, never as a number."""
    flags: dict[str, str] = {}

    def clean(value: Any, at: str) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            flags[at] = "NaN" if math.isnan(value) else ("+inf" if value > 0 else "-inf")
            return None
        if isinstance(value, dict):
            return {k: clean(v, f"{at}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v, f"{at}[{i}]") for i, v in enumerate(value)]
        return value

    return clean(to_json(obj), where), flags


def untrusted_warning(untrusted: dict[str, str], shown: int = 3) -> str:
    """The one-line warning that flags non-finite measures (recorded as null) in a summary."""
    first = ", ".join(f"{k} ({v})" for k, v in list(untrusted.items())[:shown])
    more = f" and {len(untrusted) - shown} more" if len(untrusted) > shown else ""
    return f"untrusted numbers: {len(untrusted)} measure(s) were NaN or infinite, recorded as null: {first}{more}"


def from_json(tp: type[T], data: Any, where: str = "record") -> T:
    """Read ``data`` (as :func:`to_json` wrote it) back into type ``tp``; RecordError on a mismatch."""
    return typing.cast(T, _read(tp, data, where))


def _read(tp: Any, data: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return data
    if origin in (Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        return _read(arms[0], data, where) if len(arms) == 1 else data
    if data is None and tp is float:
        return math.nan  # a measure recorded as null because it was not finite (see finite_json)
    if data is None:
        raise RecordError(f"{where}: missing value (expected {getattr(tp, '__name__', tp)})")
    if origin is list:
        _expect(isinstance(data, list), where, "a list", data)
        return [_read(args[0], v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin is dict:
        _expect(isinstance(data, dict), where, "a mapping", data)
        key_type, value_type = args
        try:
            return {key_type(k): _read(value_type, v, f"{where}.{k}") for k, v in data.items()}
        except ValueError as e:
            raise RecordError(f"{where}: bad key ({e})") from None
    if dataclasses.is_dataclass(tp):
        return _read_dataclass(tp, data, where)
    if tp is float:
        _expect(isinstance(data, int | float) and not isinstance(data, bool), where, "a number", data)
        return float(data)
    if tp in (int, str, bool):
        _expect(isinstance(data, tp) and (tp is bool or not isinstance(data, bool)), where, tp.__name__, data)
        return data
    return data


def _read_dataclass(cls: Any, data: Any, where: str) -> Any:
    _expect(isinstance(data, dict), where, f"a {cls.__name__} mapping", data)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _read(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RecordError(f"{where}: no {f.name!r} (written by another groklab version? analyse again)")
    return cls(**kwargs)


def _expect(ok: bool, where: str, what: str, data: Any) -> None:
    if not ok:
        raise RecordError(f"{where}: expected {what}, got {type(data).__name__}")
