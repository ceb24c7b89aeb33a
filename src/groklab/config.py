"""Typed configuration: the only place defaults live.

A config is built in three layers, each a typed OmegaConf merge onto the dataclasses below:
the defaults here, then a YAML preset (packaged name or path) holding only what differs, then
dotted ``key=value`` overrides. Unknown keys and wrong types are errors; value ranges are checked
by :func:`validate`. Every failure is a :class:`ConfigError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = [
    "Config",
    "ConfigError",
    "AnalysisConfig",
    "GrokfastConfig",
    "LLCConfig",
    "ModelConfig",
    "OptimConfig",
    "TaskConfig",
    "TrainConfig",
    "load_config",
    "preset_names",
    "to_dict",
    "to_yaml",
    "validate",
]


class ConfigError(ValueError):
    """Bad configuration input; the message is one line meant for the user."""


@dataclass
class TaskConfig:
    op: str = "add"  # a key of groklab.data.OPERATIONS
    p: int = 113  # modulus; inputs a, b in 0..p-1
    train_frac: float = 0.3  # fraction of the valid pairs used for training
    split_seed: int = 0  # seeds the train/test split only


@dataclass
class ModelConfig:
    arch: str = "transformer"  # transformer | mlp
    # transformer
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    act: str = "relu"  # relu | gelu (transformer MLP; the mlp arch's hidden layers too)
    layernorm: bool = False
    # attention rate alpha (Zhong et al. 2023): pattern = alpha * softmax + (1 - alpha); 1 = plain
    attn_rate: float = 1.0
    # initial weights multiplied by this (Omnigrok's init scale; the fixed norm holds it)
    init_scale: float = 1.0
    # mlp: embed a and b (shared table), concatenate, hidden layers, unembed
    d_embed: int = 32
    hidden: list[int] = field(default_factory=lambda: [256])


@dataclass
class GrokfastConfig:
    """Grokfast gradient filters (Lee et al. 2024): ``ema`` h = alpha h + (1 - alpha) g, g += lamb h;
    ``ma`` g += lamb * mean of the last ``window`` gradients once the window is full."""

    kind: str = "none"  # none | ema | ma
    alpha: float = 0.98  # ema momentum
    lamb: float | None = None  # amplification; null = the published default (ema 2.0, ma 5.0)
    window: int = 100  # ma window


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | adam | sgd (adam and sgd: weight_decay is coupled L2)
    lr: float = 1.0e-3
    weight_decay: float = 1.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])  # adamw | adam
    momentum: float = 0.9  # sgd only
    warmup_steps: int = 10  # linear warmup from lr/warmup_steps to lr
    grokfast: GrokfastConfig = field(default_factory=GrokfastConfig)
    orthogonal: bool = False  # the orthogonal gradient (Prieto et al. 2025) around the base optimizer
    fixed_norm: bool = False  # rescale all parameters to their initial total L2 norm after every step


@dataclass
class TrainConfig:
    steps: int = 40000
    batch_size: int | None = None  # None = full batch (one step per epoch)
    eval_every: int = 100
    checkpoint_every: int = 1000
    # weights-only snapshots for progress resolution: every N steps, plus evaluations where the
    # metrics moved (train.checkpoint.SnapshotSchedule); 0 or None = none
    snapshot_every: int | None = 200
    loss_dtype: str = "float64"  # float64 | float32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    stop_after_grok: int | None = None  # stop N steps after test acc has held >= 0.99
    loss: str = "cross_entropy"  # cross_entropy | stablemax (Prieto et al. 2025)


@dataclass
class LLCConfig:
    """Sampler settings of the local learning coefficient (SGLD, devinterp); the same at every
    snapshot it is measured on."""

    # Calibrated on the canonical run (`groklab llc-calibrate`, step 1000, 2 chains x 100 draws):
    # devinterp's grokking-example values (eps 3e-3, n_beta 2) diverge on this 227k-parameter
    # transformer (eps 1e-3: MALA acceptance 0.12-0.44; eps 1e-3 with n_beta 200: NaN); eps 3e-5
    # keeps acceptance >= 0.94 for n_beta up to 200, and n_beta 200 (near n / log n = 464 for its
    # 3,830 training pairs) gave the smallest spread over chains. See README "Newer lenses".
    epsilon: float = 3.0e-5  # SGLD step size
    n_beta: float = 200.0  # inverse temperature times n
    gamma: float = 5.0  # localization strength
    chains: int = 4
    draws: int = 200
    burnin: int = 0
    snapshots: int = 8  # how many saved steps (spread over the run) get an estimate; 0 = none


@dataclass
class AnalysisConfig:
    llc: LLCConfig = field(default_factory=LLCConfig)


@dataclass
class Config:
    name: str = "nanda"
    seed: int = 0  # model init and everything random in training
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)


ARCHS = ("transformer", "mlp")
ACTS = ("relu", "gelu")
OPTIMIZERS = ("adamw", "adam", "sgd")
LOSS_DTYPES = ("float64", "float32")
LOSSES = ("cross_entropy", "stablemax")
GROKFAST_KINDS = ("none", "ema", "ma")


def preset_names() -> list[str]:
    """Names of the packaged presets (``groklab/configs/*.yaml``)."""
    root = resources.files("groklab") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def read_preset(name_or_path: str) -> dict[str, Any]:
    """The raw mapping of a packaged preset name or a YAML path."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise ConfigError(f"config file not found: {name_or_path}")
        return _read_yaml(path.read_text(), str(path))
    if name_or_path not in preset_names():
        raise ConfigError(
            f"unknown preset {name_or_path!r} (packaged: {', '.join(preset_names())}; or give a YAML path)"
        )
    text = (resources.files("groklab") / "configs" / f"{name_or_path}.yaml").read_text()
    return _read_yaml(text, f"preset {name_or_path}")


def parse_override(item: str) -> tuple[str, Any]:
    """``"optim.lr=3e-3"`` -> ``("optim.lr", 0.003)``; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def error_line(e: Exception, with_key: bool = True) -> str:
    """The first line of an error's message (``with_key``: prefixed by the offending key of an
    OmegaConf error), as one printable line: control characters (a newline inside a key, say) are
    escaped."""
    msg = str(e).strip().splitlines()
    first = msg[0] if msg else type(e).__name__
    full_key = getattr(e, "full_key", None)
    if with_key and full_key and str(full_key) not in first:
        first = f"{full_key}: {first}"
    return printable(first)


def printable(text: str) -> str:
    """``text`` with every non-printable character written as its escape (``\\n``, ``\\x04``)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _nested(key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def build_config(layers: list[dict[str, Any]], overrides: list[tuple[str, Any]] = ()) -> Config:  # type: ignore[assignment]
    """Merge mappings and dotted overrides onto the defaults, type-checked, then validated."""
    base = OmegaConf.structured(Config)
    try:
        for layer in layers:
            base = OmegaConf.merge(base, layer)
        for key, value in overrides:
            base = OmegaConf.merge(base, _nested(key, value))
        cfg = OmegaConf.to_object(base)
    except (OmegaConfBaseException, TypeError) as e:  # TypeError: OmegaConf merging a list into a mapping
        raise ConfigError(error_line(e)) from None
    assert isinstance(cfg, Config)
    validate(cfg)
    return cfg


def load_config(config: str | None = "nanda", overrides: list[str] | None = None) -> Config:
    """Defaults <- preset (name or path) <- ``key=value`` overrides, validated."""
    layers = [read_preset(config)] if config else []
    parsed = [parse_override(o) for o in overrides or []]
    return build_config(layers, parsed)


def config_from_dict(data: dict[str, Any]) -> Config:
    """A config from a full mapping (e.g. a run's ``config.yaml``)."""
    return build_config([data])


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def validate(cfg: Config) -> None:
    """Check value ranges the type system cannot; raise :class:`ConfigError` on the first problem."""
    from groklab.data import OPERATIONS, is_prime, valid_pairs_count
    from groklab.limits import task_too_large

    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ConfigError(msg)

    t, m, o, tr = cfg.task, cfg.model, cfg.optim, cfg.train
    need(t.op in OPERATIONS, f"task.op: unknown operation {t.op!r} (known: {', '.join(OPERATIONS)})")
    need(t.p >= 2, f"task.p: must be >= 2, got {t.p}")
    too_large = task_too_large(cfg)  # before anything below builds the p^2 table of pairs
    need(too_large is None, str(too_large))
    op = OPERATIONS[t.op]
    need(not op.needs_prime or is_prime(t.p), f"task.p: operation {t.op!r} needs a prime p, got {t.p}")
    need(0 < t.train_frac < 1, f"task.train_frac: must be in (0, 1), got {t.train_frac}")
    n_pairs = valid_pairs_count(t.op, t.p)
    n_train = int(round(t.train_frac * n_pairs))
    need(
        1 <= n_train < n_pairs,
        f"task.train_frac: {t.train_frac} of {n_pairs} pairs leaves {n_train} training pairs "
        "(need at least 1 and at least 1 test pair)",
    )
    need(m.arch in ARCHS, f"model.arch: unknown architecture {m.arch!r} (known: {', '.join(ARCHS)})")
    need(m.act in ACTS, f"model.act: unknown activation {m.act!r} (known: {', '.join(ACTS)})")
    for key in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_embed"):
        need(getattr(m, key) > 0, f"model.{key}: must be positive, got {getattr(m, key)}")
    need(
        len(m.hidden) > 0 and all(h > 0 for h in m.hidden),
        f"model.hidden: sizes must be positive, got {m.hidden}",
    )
    need(o.name in OPTIMIZERS, f"optim.name: unknown optimizer {o.name!r} (known: {', '.join(OPTIMIZERS)})")
    need(o.lr > 0, f"optim.lr: must be positive, got {o.lr}")
    need(o.weight_decay >= 0, f"optim.weight_decay: must be >= 0, got {o.weight_decay}")
    need(
        len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
        f"optim.betas: need two values in [0, 1), got {o.betas}",
    )
    need(0 <= m.attn_rate <= 1, f"model.attn_rate: must be in [0, 1], got {m.attn_rate}")
    need(m.init_scale > 0, f"model.init_scale: must be positive, got {m.init_scale}")
    need(0 <= o.momentum < 1, f"optim.momentum: must be in [0, 1), got {o.momentum}")
    g = o.grokfast
    need(
        g.kind in GROKFAST_KINDS,
        f"optim.grokfast.kind: must be one of {', '.join(GROKFAST_KINDS)}, got {g.kind!r}",
    )
    need(0 <= g.alpha < 1, f"optim.grokfast.alpha: must be in [0, 1), got {g.alpha}")
    need(g.lamb is None or g.lamb >= 0, f"optim.grokfast.lamb: must be >= 0 or null, got {g.lamb}")
    need(g.window > 0, f"optim.grokfast.window: must be positive, got {g.window}")
    need(tr.loss in LOSSES, f"train.loss: must be one of {', '.join(LOSSES)}, got {tr.loss!r}")
    llc = cfg.analysis.llc
    for key in ("epsilon", "n_beta", "gamma"):
        need(getattr(llc, key) > 0, f"analysis.llc.{key}: must be positive, got {getattr(llc, key)}")
    for key in ("chains", "draws"):
        need(getattr(llc, key) > 0, f"analysis.llc.{key}: must be positive, got {getattr(llc, key)}")
    need(llc.burnin >= 0, f"analysis.llc.burnin: must be >= 0, got {llc.burnin}")
    need(llc.snapshots >= 0, f"analysis.llc.snapshots: must be >= 0 (0: none), got {llc.snapshots}")
    need(o.warmup_steps >= 0, f"optim.warmup_steps: must be >= 0, got {o.warmup_steps}")
    need(tr.steps > 0, f"train.steps: must be positive, got {tr.steps}")
    need(tr.eval_every > 0, f"train.eval_every: must be positive, got {tr.eval_every}")
    need(tr.checkpoint_every > 0, f"train.checkpoint_every: must be positive, got {tr.checkpoint_every}")
    need(
        tr.snapshot_every is None or tr.snapshot_every >= 0,
        f"train.snapshot_every: must be >= 0 or null (0 and null: no snapshots), got {tr.snapshot_every}",
    )
    need(
        tr.batch_size is None or tr.batch_size > 0,
        f"train.batch_size: must be positive or null, got {tr.batch_size}",
    )
    need(
        tr.loss_dtype in LOSS_DTYPES,
        f"train.loss_dtype: must be one of {', '.join(LOSS_DTYPES)}, got {tr.loss_dtype!r}",
    )
    need(
        tr.device == "auto" or tr.device == "cpu" or tr.device.startswith("cuda") or tr.device == "mps",
        f"train.device: expected auto, cpu, cuda or cuda:N, got {tr.device!r}",
    )
    need(
        tr.stop_after_grok is None or tr.stop_after_grok >= 0,
        f"train.stop_after_grok: must be >= 0 or null, got {tr.stop_after_grok}",
    )
