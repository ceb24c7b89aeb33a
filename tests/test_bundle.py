"""Release bundles: a run exported and opened elsewhere is the same run, exactly; a bundle that is
tampered with, incomplete or unsafe is refused with one line naming the problem, and nothing
extracted is left behind."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import groklab as gl
from groklab.bundle import FORMAT, VERSION, export_bundle, open_bundle
from groklab.runs import Run, RunError

STEPS = [100, 500]  # chosen steps; the grokked debug run of conftest saves weights at both


@pytest.fixture(scope="module")
def source(analysed_run: Path) -> Run:
    return Run.open(analysed_run)


@pytest.fixture(scope="module")
def bundle(source: Run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_bundle(source, tmp_path_factory.mktemp("bundle") / "grokked.tar.gz", STEPS)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory open_bundle extracts into by default, here under tmp_path."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


def assert_same_run(ours: Run, theirs: Run, steps: list[int]) -> None:
    """Config, status, split, metrics, analysis and every step's weights and logits are exactly equal."""
    assert ours.steps == steps
    assert ours.config == theirs.config and ours.status() == theirs.status()
    for a, b in zip(ours.split, theirs.split, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert ours.metric_records() == theirs.metric_records()
    assert ours.analysis == theirs.analysis
    tokens = theirs.dataset.tokens  # every pair
    for step in steps:
        mine, orig = ours.load_state(step), theirs.load_state(step)
        assert mine.keys() == orig.keys()
        assert all(mine[k].dtype == orig[k].dtype and torch.equal(mine[k], orig[k]) for k in orig)
        with torch.no_grad():
            assert torch.equal(ours.model(step)(tokens), theirs.model(step)(tokens))


# -- round trip --------------------------------------------------------------------------------------
def test_round_trip_is_exact(source: Run, bundle: Path, tmp_path: Path) -> None:
    run = open_bundle(bundle, tmp_path / "opened")
    assert run.path == tmp_path / "opened"
    assert_same_run(run, source, [*STEPS, source.steps[-1]])
    assert run.model().state_dict().keys() == source.model().state_dict().keys()  # default: final step


def test_load_run_opens_a_bundle_file(source: Run, bundle: Path, private_tmp: Path) -> None:
    run = gl.load_run(bundle)
    assert run.path.parent == private_tmp
    assert_same_run(run, source, [*STEPS, source.steps[-1]])


def test_all_steps_and_a_bundle_of_a_bundle(source: Run, tmp_path: Path) -> None:
    first = open_bundle(export_bundle(source, tmp_path / "all.tar.gz", source.steps), tmp_path / "a")
    assert_same_run(first, source, source.steps)
    second = open_bundle(export_bundle(first, tmp_path / "again.tar.gz", STEPS), tmp_path / "b")
    assert_same_run(second, source, [*STEPS, source.steps[-1]])  # safetensors snapshots export too


def test_manifest_lists_every_member_with_its_checksum(source: Run, bundle: Path) -> None:
    with tarfile.open(bundle, "r:gz") as tar:
        infos = tar.getmembers()
        data = {i.name: tar.extractfile(i).read() for i in infos}  # type: ignore[union-attr]
    assert infos[0].name == "bundle.json" and all(i.isreg() for i in infos)
    manifest = json.loads(data.pop("bundle.json"))
    final = source.steps[-1]
    assert (manifest["format"], manifest["version"], manifest["groklab_version"]) == (FORMAT, VERSION, gl.__version__)
    assert manifest["run"] == source.path.name and manifest["steps"] == [*STEPS, final]
    listed = {m["path"]: m for m in manifest["members"]}
    assert listed.keys() == data.keys()
    assert all(
        listed[p]["sha256"] == hashlib.sha256(b).hexdigest() and listed[p]["size"] == len(b) for p, b in data.items()
    )
    expected = {"config.yaml", "status.json", "split.npz", "metrics.jsonl"}
    expected |= {
        f"analysis/{n}" for n in ("summary.json", "fourier.json", "neurons.json", "ablation.json", "progress.jsonl")
    }
    expected |= {f"snapshots/step_{s:07d}.safetensors" for s in (*STEPS, final)}
    optional = {"analysis/lenses.json", "analysis/llc.json"}  # carried when the run has them (it has both)
    assert all((source.path / name).is_file() for name in optional)
    expected |= optional
    assert set(data) == expected
    for name in expected - {n for n in expected if n.startswith("snapshots/")}:
        assert data[name] == (source.path / name).read_bytes()


def test_export_is_byte_reproducible(source: Run, bundle: Path, tmp_path: Path) -> None:
    again = export_bundle(source, tmp_path / "again.tar.gz", [500, 100, 500])
    assert again.read_bytes() == bundle.read_bytes()


def test_opened_run_keeps_the_manifest_and_checks_its_weights(bundle: Path, tmp_path: Path) -> None:
    run = open_bundle(bundle, tmp_path / "r")
    assert json.loads((run.path / "bundle.json").read_text())["format"] == FORMAT
    (run.path / "snapshots" / "step_0000100.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(RunError, match="corrupt or truncated safetensors snapshot"):
        run.load_state(100)


def test_extract_into_an_empty_directory_but_never_a_used_one(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert open_bundle(bundle, tmp_path / "empty").steps[-1] == 1500
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.md").write_text("mine")
    with pytest.raises(RunError, match="not empty"):
        open_bundle(bundle, tmp_path / "used")
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["notes.md"]


# -- export refusals ---------------------------------------------------------------------------------
def test_export_refuses_and_writes_nothing(source: Run, tmp_path: Path) -> None:
    out = tmp_path / "b.tar.gz"
    with pytest.raises(RunError, match=r"no weights saved at step 123; nearest saved steps: \[100, 200\]"):
        export_bundle(source, out, [123])
    copy = Run(shutil.copytree(source.path, tmp_path / "copy"))
    with copy.lock(), pytest.raises(RunError, match="being trained"):
        export_bundle(copy, out)
    shutil.rmtree(copy.checkpoint_dir)
    with pytest.raises(RunError, match="no saved weights"):
        export_bundle(copy, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]
    out.write_text("keep me")
    with pytest.raises(RunError, match="already exists"):
        export_bundle(source, out)
    assert out.read_text() == "keep me"


# -- refusing bad bundles ----------------------------------------------------------------------------
Entry = tuple[tarfile.TarInfo, bytes]


def read_entries(bundle: Path) -> list[Entry]:
    with tarfile.open(bundle, "r:gz") as tar:
        return [(i, tar.extractfile(i).read() if i.isreg() else b"") for i in tar.getmembers()]  # type: ignore[union-attr]


def write_entries(entries: list[Entry], out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for info, data in entries:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out


def edit(name: str, change: Callable[[bytes], bytes]) -> Callable[[list[Entry]], list[Entry]]:
    return lambda entries: [(i, change(d) if i.name == name else d) for i, d in entries]


def flip_byte(data: bytes) -> bytes:
    i = len(data) - 7  # inside the tensor data, past the safetensors header
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def drop(name: str) -> Callable[[list[Entry]], list[Entry]]:
    return lambda entries: [(i, d) for i, d in entries if i.name != name]


def rename(old: str, new: str) -> Callable[[list[Entry]], list[Entry]]:
    def change(entries: list[Entry]) -> list[Entry]:
        for info, _ in entries:
            if info.name == old:
                info.name = new
        return entries

    return change


def add(
    name: str, data: bytes = b"hello\n", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> Callable[[list[Entry]], list[Entry]]:
    def change(entries: list[Entry]) -> list[Entry]:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        return [*entries, (info, data)]

    return change


def replace_manifest(**changes: object) -> Callable[[list[Entry]], list[Entry]]:
    return edit("bundle.json", lambda d: json.dumps({**json.loads(d), **changes}).encode())


def drop_consistently(name: str) -> Callable[[list[Entry]], list[Entry]]:
    """Remove a member and its line in the manifest: an edit the checksums cannot see."""

    def change(entries: list[Entry]) -> list[Entry]:
        def unlist(raw: bytes) -> bytes:
            manifest = json.loads(raw)
            return json.dumps({**manifest, "members": [m for m in manifest["members"] if m["path"] != name]}).encode()

        return edit("bundle.json", unlist)(drop(name)(entries))

    return change


def same_size_metrics_edit(data: bytes) -> bytes:
    edited = data.replace(b'"test_acc": 0.', b'"test_acc": 1.', 1)
    assert edited != data and len(edited) == len(data)
    return edited


W100 = "snapshots/step_0000100.safetensors"
TAMPERED = {
    "flipped weights byte": (edit(W100, flip_byte), f"checksum mismatch for member '{W100}'"),
    "edited metrics": (edit("metrics.jsonl", same_size_metrics_edit), "checksum mismatch for member 'metrics.jsonl'"),
    "appended metrics": (edit("metrics.jsonl", lambda d: d + b'{"step": 9999}\n'), "member 'metrics.jsonl' is"),
    "removed analysis": (
        drop("analysis/summary.json"),
        "incomplete bundle: 1 member(s) missing, first 'analysis/summary.json'",
    ),
    "removed weights": (drop(W100), f"incomplete bundle: 1 member(s) missing, first '{W100}'"),
    "added member": (add("notes.txt"), "member 'notes.txt' is not listed in bundle.json"),
    "renamed weights": (
        rename(W100, W100.replace("100", "101")),
        "step_0000101.safetensors' is not listed in bundle.json",
    ),
    "duplicate member": (lambda e: [*e, e[1]], "member 'config.yaml' appears twice"),
    "parent path": (add("../evil"), "unsafe member path '../evil'"),
    "nested parent path": (add("analysis/../../evil"), "unsafe member path 'analysis/../../evil'"),
    "absolute path": (add("/tmp/evil"), "unsafe member path '/tmp/evil'"),
    "symlink": (add("analysis/x.json", b"", tarfile.SYMTYPE, "/etc/passwd"), "unsafe member 'analysis/x.json': a link"),
    "hard link": (add("evil", b"", tarfile.LNKTYPE, "config.yaml"), "unsafe member 'evil': a link"),
    "device": (add("evil", b"", tarfile.CHRTYPE), "unsafe member 'evil': not a regular file"),
    "manifest not first": (lambda e: [*e[1:], e[0]], "not a groklab bundle (first member is 'config.yaml'"),
    "manifest of another format": (replace_manifest(format="zip-of-things"), "not a groklab bundle"),
    "manifest from the future": (replace_manifest(version=VERSION + 1), f"bundle format version {VERSION + 1}"),
    "manifest steps disagree": (replace_manifest(steps=[100]), "bundle.json is malformed"),
    "part of the analysis": (drop_consistently("analysis/fourier.json"), "lists part of analysis/"),
    "no metrics": (
        drop_consistently("metrics.jsonl"),
        "it must list config.yaml, status.json, split.npz, metrics.jsonl",
    ),
    "empty archive": (lambda e: [], "not a groklab bundle (empty archive)"),
}


def assert_refused(bad: Path, fragment: str, tmp_path: Path, private_tmp: Path) -> None:
    """Refused with one line containing ``fragment``, both into a named directory and a temporary
    one, with nothing left behind in either place."""
    before = sorted(tmp_path.iterdir())
    for target in (tmp_path / "dest", None):
        with pytest.raises(RunError) as err:
            open_bundle(bad, target)
        message = str(err.value)
        assert fragment in message and "\n" not in message and message.startswith(str(bad)), message
        assert sorted(tmp_path.iterdir()) == before and not any(private_tmp.iterdir())
    with pytest.raises(RunError):
        gl.load_run(bad)


@pytest.mark.parametrize("case", TAMPERED, ids=str)
def test_tampered_bundles_are_refused(bundle: Path, tmp_path: Path, private_tmp: Path, case: str) -> None:
    change, fragment = TAMPERED[case]
    bad = write_entries(change(read_entries(bundle)), tmp_path / "bad.tar.gz")
    assert_refused(bad, fragment, tmp_path, private_tmp)


def test_repacking_unchanged_is_accepted(source: Run, bundle: Path, tmp_path: Path) -> None:
    """The oracle for the cases above: the same repacking without a change opens fine."""
    repacked = write_entries(read_entries(bundle), tmp_path / "same.tar.gz")
    assert open_bundle(repacked, tmp_path / "r").steps == [*STEPS, source.steps[-1]]


@pytest.mark.parametrize("keep", [0.01, 0.5, -40, -4], ids=["1%", "half", "40 bytes short", "4 bytes short"])
def test_truncated_archive_is_refused(bundle: Path, tmp_path: Path, private_tmp: Path, keep: float) -> None:
    data = bundle.read_bytes()
    bad = tmp_path / "short.tar.gz"
    bad.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[: int(keep)])
    assert_refused(bad, "truncated or corrupt archive", tmp_path, private_tmp)


def test_not_a_bundle(tmp_path: Path, private_tmp: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert_refused(text, "not a groklab bundle (not a gzip-compressed tar archive)", tmp_path, private_tmp)
    plain = tmp_path / "plain.gz"
    plain.write_bytes(gzip.compress(b"not a tar archive" * 100))
    assert_refused(plain, "truncated or corrupt archive", tmp_path, private_tmp)


# -- the command line --------------------------------------------------------------------------------
def assert_one_line_error(r, fragment: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr and fragment in r.stderr, r.stderr


def test_cli_export_all_steps(cli, source: Run, tmp_path: Path) -> None:
    r = cli("export", source.path, tmp_path / "all.tar.gz", "--steps", "all")
    assert r.returncode == 0, r.stderr
    assert f"weights at steps {source.steps}" in r.stdout
    assert open_bundle(tmp_path / "all.tar.gz", tmp_path / "r").steps == source.steps


def test_cli_bad_input_exits_2_and_writes_nothing(cli, source: Run, tmp_path: Path) -> None:
    out = tmp_path / "out" / "b.tar.gz"
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    for name in ("config.yaml", "status.json", "split.npz", "metrics.jsonl"):
        shutil.copy(source.path / name, no_weights / name)
    cases = [
        ((source.path, out, "--steps", "123"), "nearest saved steps: [100, 200]"),
        ((source.path, out, "--steps", "100,x"), "--steps: expected comma-separated step numbers or 'all'"),
        ((tmp_path / "missing", out), "no such directory"),
        ((tmp_path / "out", out), "not a run directory"),
        ((no_weights, out), "no saved weights"),
    ]
    (tmp_path / "out").mkdir()
    for args, fragment in cases:
        assert_one_line_error(cli("export", *args), fragment)
        assert not any((tmp_path / "out").iterdir())
    out.write_text("keep me")
    assert_one_line_error(cli("export", source.path, out), "already exists")
    assert out.read_text() == "keep me" and [p.name for p in out.parent.iterdir()] == ["b.tar.gz"]
