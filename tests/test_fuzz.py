"""Hostile input, generated (hypothesis): config overrides, sweep specs, command-line arguments and
damaged run files (truncated or altered JSON, metrics lines, checkpoints, snapshots, bundles). Every
case ends in a result or a one-line refusal: exit 0 or 2 (1 only where training itself fails on
damaged weights, a genuine failure), never a traceback, and nothing written outside the run or
sweep directory. The budget is the hypothesis profile (conftest: ``ci`` small, ``long`` for
``make fuzz``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from groklab.cli import app  # noqa: E402
from groklab.config import Config, ConfigError, load_config  # noqa: E402
from groklab.runs import RunError  # noqa: E402
from groklab.sweeps import SweepError, expand, parse_spec  # noqa: E402

SLOW = settings(
    max_examples=8 if settings.default.max_examples <= 25 else settings.default.max_examples
)  # a CLI run each
COUNTS: Counter[str] = Counter()  # cases per property and outcome, printed at the end with -s

KEYS = ["seed", "task.p", "task.op", "task.train_frac", "model.d_model", "model.n_heads", "model.arch",
        "optim.lr", "optim.betas", "optim.grokfast.kind", "optim.grokfast.alpha", "train.steps",
        "train.batch_size", "train.eval_every", "model", "task", "optim.grokfast"]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)  # noqa: E501
dotted = st.one_of(
    st.sampled_from(KEYS),
    st.text(max_size=20),
    st.builds(
        ".".join,
        st.lists(st.sampled_from(["task", "model", "p", "x", "", "optim", "grokfast"]), min_size=1, max_size=4),
    ),
)  # noqa: E501


def outside_snapshot() -> set[str]:
    """Names directly under the temp directory and the working directory (where a stray write would
    land)."""
    return set(os.listdir(tempfile.gettempdir())) | {f"cwd/{n}" for n in os.listdir(".")}


@contextmanager
def private_tempdir(where: Path) -> Iterator[Path]:
    """The commands under test see ``where/tmp`` as the temp directory, so what they leave there is
    theirs alone (other processes on the machine write to the system one)."""
    private = where / "tmp"
    private.mkdir()
    saved, tempfile.tempdir = tempfile.tempdir, str(private)
    try:
        yield private
    finally:
        tempfile.tempdir = saved


@given(st.lists(st.tuples(dotted, values | st.text(max_size=15)), max_size=4))
@example([("m\x9d\n\x04S", 1)])  # found by the long profile: a newline inside an unknown key
@example([("optim.betas", []), ("optim.betas", {})])  # found by the long profile: a mapping merged into a list
def test_config_overrides_load_or_refuse(overrides):
    sets = [f"{k}={v}" for k, v in overrides]
    try:
        cfg = load_config("debug", sets)
        assert isinstance(cfg, Config)
        COUNTS["config: accepted"] += 1
    except ConfigError as e:
        assert str(e) and "\n" not in str(e).strip()
        COUNTS["config: refused"] += 1


grids = st.dictionaries(dotted, st.lists(values, max_size=4) | values, max_size=3)
specs = st.fixed_dictionaries(
    {"base": st.sampled_from(["debug", "nope", "", 3])},
    optional={"name": st.text(max_size=8), "set": st.dictionaries(dotted, values, max_size=2), "grid": grids,
              "zip": grids, "grids": values},
)  # fmt: skip


@given(specs | values)
def test_sweep_specs_expand_or_refuse(spec):
    try:
        points = expand(parse_spec(spec))
        assert 1 <= len(points) and all(p.valid or p.error for p in points)
        COUNTS["sweep: expanded"] += 1
    except SweepError as e:
        assert str(e) and "\n" not in str(e).strip()
        COUNTS["sweep: refused"] += 1


def test_a_sweep_of_a_million_points_is_refused_up_front_with_its_size(tmp_path):
    spec = tmp_path / "huge.yaml"
    spec.write_text("base: debug\ngrid: {seed: " + str(list(range(1000))) + ", task.split_seed: "
                    + str(list(range(1000))) + "}\n")  # fmt: skip
    result = CliRunner().invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "out"), "--dry-run"])
    assert result.exit_code == 2 and "1,000,000 points is more than the 10,000" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_task_too_large_for_memory_is_refused_with_its_size(tmp_path):
    result = CliRunner().invoke(
        app, ["train", "--config", "debug", "--set", "task.p=100003", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and "task.p: p=100003 needs about" in result.stderr and " GB" in result.stderr
    assert not (tmp_path / "r").exists()


# -- the command line and damaged run files ----------------------------------------------------------------
@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A small analysed debug run (weights-only snapshots on) and its release bundle."""
    from groklab.analysis.pipeline import analyze_run
    from groklab.bundle import export_bundle
    from groklab.train import start_training

    cfg = load_config("debug", ["train.steps=60", "train.snapshot_every=20"])
    run, result = start_training(cfg, tmp_path_factory.mktemp("fuzz") / "run")
    assert result.state == "completed"
    run.write_analysis(analyze_run(run, n_draws=2))
    export_bundle(run, run.path.parent / "run.tar.gz")
    return run.path


def damaged_copy(base: Path, where: Path, target: str, how: str, at: float, junk: bytes) -> Path:
    run = where / "run"
    shutil.copytree(base, run)
    shutil.copy(base.parent / "run.tar.gz", where / "run.tar.gz")
    path = where / "run.tar.gz" if target == "bundle" else run / target
    data = path.read_bytes()
    cut = int(at * len(data))
    path.write_bytes({"truncate": data[:cut], "flip": data[:cut] + bytes([(data[cut:cut + 1] or b"\0")[0] ^ 0xFF])
                      + data[cut + 1:], "append": data + junk, "replace": junk}[how])  # fmt: skip
    return run


TARGETS = ["config.yaml", "status.json", "metrics.jsonl", "split.npz", "checkpoints/step_0000060.pt",
           "checkpoints/latest.pt", "snapshots/step_0000040.pt", "analysis/summary.json", "analysis/progress.jsonl",
           "analysis/fourier.json", "bundle"]  # fmt: skip
COMMANDS = ["analyze", "list", "export", "resume", "api", "open-bundle", "report"]


@given(
    target=st.sampled_from(TARGETS), how=st.sampled_from(["truncate", "flip", "append", "replace"]),
    at=st.floats(0, 1, exclude_max=True), junk=st.binary(max_size=40) | st.sampled_from([b"{}", b"\n{\"step\": 1", b"null"]),
    command=st.sampled_from(COMMANDS),
)  # fmt: skip
@example(target="config.yaml", how="flip", at=0.0, junk=b"", command="report")  # found by the long profile
@SLOW
def test_damaged_run_files_give_a_result_or_one_line(base_run, target, how, at, junk, command):
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        run = damaged_copy(base_run, where, target, how, at, junk)
        with private_tempdir(where):
            before = outside_snapshot()
            code, stderr = run_command(command, run, where)
            assert outside_snapshot() - before <= {
                n for n in os.listdir(tempfile.gettempdir()) if n.startswith("groklab-bundle-")
            }
        assert not any(p.name.endswith(".tmp") for p in where.rglob("*"))
    assert "Traceback" not in stderr
    assert code in (0, 2) or (code == 1 and command == "resume"), (command, target, how, stderr)
    COUNTS[f"damaged: exit {code}"] += 1


def run_command(command: str, run: Path, where: Path) -> tuple[int, str]:
    """Run one reader or writer on the damaged copy; (exit code, stderr)."""
    import groklab as gl

    if command in ("api", "open-bundle"):
        try:
            r = gl.load_run(where / "run.tar.gz" if command == "open-bundle" else run)
            _ = r.config, r.metrics, r.steps, r.status()
            if r.steps:
                r.model()
            if r.has_analysis():
                _ = r.analysis
            return 0, ""
        except RunError as e:
            assert "\n" not in str(e).strip()
            return 2, str(e)
    if command == "report":
        (run / "figures").mkdir(exist_ok=True)
        (run / "figures" / "index.json").write_text('{"figures": [], "skipped": [], "failed": []}')
    args = {"analyze": ["analyze", run, "-q"], "list": ["list", "--runs-dir", where],
            "export": ["export", run, where / "out.tar.gz"], "resume": ["train", "--resume", run, "-q"],
            "report": ["report", run, "-q"]}[command]  # fmt: skip
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 2:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.exit_code, result.stderr


OPTIONS = ["--config", "--set", "--out", "--runs-dir", "--resume", "--steps", "--workers", "--executor", "--seeds",
           "--port", "--quiet", "--json", "--dry-run", "-q", "--max-retries", "--warmup"]  # fmt: skip
WORDS = st.one_of(st.sampled_from(OPTIONS), st.sampled_from(["debug", "nanda", "0", "-1", "x=1", "task.p=7", "[/x]",
                  "nope.yaml", "all", "1,2", "ray", "local", "="]), st.text(max_size=10))  # fmt: skip


@given(st.sampled_from(["train", "analyze", "figures", "report", "export", "list", "sweep", "bench", "frobnicate"]),
       st.lists(WORDS, max_size=6))  # fmt: skip
@SLOW
def test_command_line_arguments_give_a_result_or_one_line(command, words):
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            args = [command, *words]
            if command == "train":  # never a long training: a tiny debug run if the words make one valid
                args += ["--config", "debug", "--set", "train.steps=3", "--runs-dir", "runs"]
            if command == "sweep":
                args += ["--dry-run", "--out", "sweep"]
            with private_tempdir(Path(tmp)):
                before = set(os.listdir(tempfile.gettempdir()))
                result = CliRunner().invoke(app, args)
                new = set(os.listdir(tempfile.gettempdir())) - before
            made = set(os.listdir(".")) - {"tmp"}
        finally:
            os.chdir(cwd)
    assert not new, new
    assert made <= {"runs", "sweep"} | {w for w in words if "/" not in w}, made  # only what the arguments name
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert result.exit_code in (0, 2), (args, result.exit_code, result.stderr)
    if result.exit_code == 2:
        usage = "Usage:" in result.stderr or "─ Error ─" in result.stderr  # the argument parser's own box
        assert len(result.stderr.strip().splitlines()) <= 1 or usage, result.stderr
    COUNTS[f"cli: exit {result.exit_code}"] += 1


def test_zz_print_counts():
    """Not a check: the tallies of the generated cases (shown with ``pytest -s``)."""
    print("\nfuzz cases:", dict(sorted(COUNTS.items())))
