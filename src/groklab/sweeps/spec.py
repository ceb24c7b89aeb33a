"""Sweep specs (DESIGN section 7): load, validate, expand into points with stable run ids.

A spec is a YAML mapping::

    name: weight_decay
    base: nanda                      # packaged preset name or a config path (required)
    set: {train.steps: 20000}        # fixed overrides for every point
    grid: {optim.weight_decay: [0.3, 1.0], seed: [0, 1]}   # cartesian product
    zip: {optim.lr: [1.0e-3, 2.0e-3], optim.weight_decay: [1.0, 0.5]}  # varied together

Points are the grid's product (keys in the order given, the last key varying fastest), each
combined with every zipped row in turn. Two kinds of problems are told apart:

* **the spec is bad** (raised as :class:`SweepError` before anything runs): unknown spec keys, a
  missing base, an unknown config key, a value of the wrong type for its key, an empty grid or zip,
  a value that is not a list, zip lists of unequal length, a key given twice, two points that
  resolve to the same config;
* **one point is invalid** (recorded on the :class:`Point` as ``error``; the sweep runs the others):
  a value of the right type outside its allowed range, as found by :func:`groklab.config.validate`
  (e.g. ``task.train_frac: 1.5`` or a non-prime ``p`` for division).

A point's run id is ``<short key>=<value>`` for every grid and zip key, joined by ``_``, then
``__`` and the first 8 hex digits of the SHA-256 of its resolved config (all keys, as JSON with
sorted keys). The short key is the last dotted component unless two varied keys share it, in which
case the full dotted key is used. The same point therefore always maps to the same directory.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from groklab.config import Config, ConfigError, error_line, read_preset, to_dict, validate
from groklab.limits import too_many_points

__all__ = ["Point", "SweepError", "SweepSpec", "expand", "load_spec", "parse_spec", "spec_names"]

SPEC_KEYS = ("name", "base", "set", "grid", "zip")
REPLICATE_KEYS = ("seed", "task.split_seed")  # varied for spread, not as an axis, when other keys vary


class SweepError(ConfigError):
    """A bad sweep spec or sweep option; the message is one line meant for the user."""


@dataclass(frozen=True)
class SweepSpec:
    name: str
    base: str  # as written in the spec
    base_layer: dict[str, Any]  # the preset's mapping
    set: dict[str, Any]
    grid: dict[str, list[Any]]
    zip: dict[str, list[Any]]
    raw: dict[str, Any] = field(default_factory=dict)  # the spec as given

    @property
    def varied_keys(self) -> list[str]:
        return [*self.grid, *self.zip]


@dataclass(frozen=True)
class Point:
    run_id: str
    values: dict[str, Any]  # varied key -> value
    config: dict[str, Any]  # the resolved config (every key), as stored in the run's config.yaml
    error: str | None = None  # why this point is invalid (a range check failed), else None

    @property
    def valid(self) -> bool:
        return self.error is None


# -- loading ----------------------------------------------------------------------------------------
def spec_names() -> list[str]:
    """Names of the packaged sweep specs (``groklab/configs/sweeps/*.yaml``)."""
    root = resources.files("groklab") / "configs" / "sweeps"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_spec(name_or_path: str) -> SweepSpec:
    """Read a spec from a YAML path or a packaged name, and validate it."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise SweepError(f"sweep spec not found: {name_or_path}")
        text, where, default_name, here = path.read_text(), str(path), path.stem, path.parent
    elif name_or_path in spec_names():
        text = (resources.files("groklab") / "configs" / "sweeps" / f"{name_or_path}.yaml").read_text()
        where, default_name, here = f"sweep {name_or_path}", name_or_path, None
    else:
        raise SweepError(f"unknown sweep {name_or_path!r} (packaged: {', '.join(spec_names())}; or give a YAML path)")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SweepError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    return parse_spec(data, where=where, default_name=default_name, spec_dir=here)


def parse_spec(
    data: Any, where: str = "sweep spec", default_name: str = "sweep", spec_dir: Path | None = None
) -> SweepSpec:
    """Validate a spec mapping. ``spec_dir``: where a relative ``base`` path is looked up first."""
    if not isinstance(data, dict):
        raise SweepError(f"{where}: expected a mapping with base, set, grid, zip")
    unknown = [k for k in data if k not in SPEC_KEYS]
    if unknown:
        raise SweepError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(SPEC_KEYS)})")
    if not isinstance(data.get("base"), str) or not data["base"]:
        raise SweepError(f"{where}: 'base' is required (a packaged preset name or a config path)")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise SweepError(f"{where}: name must be a non-empty string of letters, digits, '.', '_', '-'")
    base = data["base"]
    base_path = spec_dir / base if spec_dir is not None and not Path(base).is_absolute() else None
    try:
        base_layer = read_preset(str(base_path) if base_path is not None and base_path.is_file() else base)
    except ConfigError as e:
        raise SweepError(f"{where}: base: {e}") from None

    set_ = _mapping(data, "set", where)
    grid = _lists(data, "grid", where)
    zip_ = _lists(data, "zip", where)
    lengths = {len(v) for v in zip_.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in zip_.items())
        raise SweepError(f"{where}: zip lists must have equal lengths ({sizes})")
    seen: dict[str, str] = {}
    for section, keys in (("set", set_), ("grid", grid), ("zip", zip_)):
        for key in keys:
            if key in seen:
                raise SweepError(f"{where}: key {key!r} appears in both {seen[key]} and {section}")
            seen[key] = section
    n_points = math.prod(len(v) for v in grid.values()) * (len(next(iter(zip_.values()))) if zip_ else 1)
    too_many = too_many_points(n_points)
    if too_many:
        raise SweepError(f"{where}: {too_many}")
    spec = SweepSpec(name, base, base_layer, set_, grid, zip_, raw=data)
    _check_types(spec, where)
    return spec


def _mapping(data: dict[str, Any], section: str, where: str) -> dict[str, Any]:
    value = data.get(section)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SweepError(f"{where}: {section} must be a mapping of dotted config keys")
    for key in value:
        if not isinstance(key, str) or not key:
            raise SweepError(f"{where}: {section}: keys must be dotted config keys, got {key!r}")
    return dict(value)


def _lists(data: dict[str, Any], section: str, where: str) -> dict[str, list[Any]]:
    if section in data and not data[section]:
        raise SweepError(f"{where}: {section} is empty (give at least one key with a list of values, or leave it out)")
    out = _mapping(data, section, where)
    for key, values in out.items():
        if not isinstance(values, list):
            raise SweepError(f"{where}: {section}.{key}: expected a list of values, got {values!r}")
        if not values:
            raise SweepError(f"{where}: {section}.{key}: empty list of values")
    return out


# -- typed resolution ---------------------------------------------------------------------------------
def _base_node(spec: SweepSpec) -> DictConfig:
    node = OmegaConf.structured(Config)
    try:
        return OmegaConf.merge(node, spec.base_layer)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise SweepError(f"base {spec.base}: {error_line(e, with_key=False)}") from None


def _assign(node: DictConfig, key: str, value: Any, where: str) -> None:
    try:
        OmegaConf.update(node, key, value, merge=True)
    except OmegaConfBaseException as e:
        raise SweepError(f"{where}: {error_line(e, with_key=False)}") from None


def _check_types(spec: SweepSpec, where: str) -> None:
    """Every key must exist and every value must have its key's type (checked one at a time, so the
    message names the culprit)."""
    base = _base_node(spec)
    for key, value in spec.set.items():
        _assign(base.copy(), key, value, f"{where}: set {key}={value!r}")
    for section, keys in (("grid", spec.grid), ("zip", spec.zip)):
        for key, values in keys.items():
            for value in values:
                _assign(base.copy(), key, value, f"{where}: {section} {key}={value!r}")


def _resolve(spec: SweepSpec, values: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    node = _base_node(spec)
    for key, value in [*spec.set.items(), *values.items()]:
        _assign(node, key, value, f"sweep {spec.name}: point {_describe(values)}")
    try:
        cfg = OmegaConf.to_object(node)
    except OmegaConfBaseException as e:
        raise SweepError(f"sweep {spec.name}: point {_describe(values)}: {error_line(e, with_key=False)}") from None
    assert isinstance(cfg, Config)
    try:
        validate(cfg)
        error = None
    except ConfigError as e:
        error = str(e)
    return to_dict(cfg), error


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items()) or "(base)"


# -- expansion ---------------------------------------------------------------------------------------
def expand(spec: SweepSpec) -> list[Point]:
    """The points of a spec, in a fixed order; each with its resolved config and stable run id."""
    grid_rows = [dict(zip(spec.grid, combo, strict=True)) for combo in itertools.product(*spec.grid.values())]
    n_zip = len(next(iter(spec.zip.values()))) if spec.zip else 0
    zip_rows = [{k: v[i] for k, v in spec.zip.items()} for i in range(n_zip)] or [{}]
    short = _short_names(spec.varied_keys)
    points: list[Point] = []
    by_id: dict[str, Point] = {}
    for g in grid_rows:
        for z in zip_rows:
            values = {**g, **z}
            config, error = _resolve(spec, values)
            rid = run_id(values, config, short)
            if rid in by_id:
                raise SweepError(
                    f"sweep {spec.name}: points {_describe(by_id[rid].values)} and {_describe(values)} "
                    "resolve to the same config"
                )
            by_id[rid] = Point(rid, values, config, error)
            points.append(by_id[rid])
    return points


def config_hash(config: dict[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def run_id(values: dict[str, Any], config: dict[str, Any], short: dict[str, str] | None = None) -> str:
    short = short or _short_names(list(values))
    parts = [f"{short[k]}={_fmt_value(v)}" for k, v in values.items()]
    label = re.sub(r"[^A-Za-z0-9._+=-]", "_", "_".join(parts))[:120]
    return f"{label}__{config_hash(config)}" if label else config_hash(config)


def _short_names(keys: list[str]) -> dict[str, str]:
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return "-".join(_fmt_value(x) for x in v)
    if isinstance(v, dict):
        return "-".join(f"{k}{_fmt_value(x)}" for k, x in v.items())
    return str(v)


def axis_keys(keys: list[str]) -> list[str]:
    """The varied keys that are axes of a phase diagram: all but the replicate keys (seeds), unless
    only replicate keys vary."""
    axes = [k for k in keys if k not in REPLICATE_KEYS]
    return axes or list(keys)
