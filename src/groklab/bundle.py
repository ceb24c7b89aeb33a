"""Release bundles: one archive holding a run that a colleague opens with ``gl.load_run(BUNDLE)``.

The format (``groklab-bundle``, version 1) is a tar archive, gzip-compressed, whose members are::

    bundle.json                          the manifest; always the first member
    config.yaml  status.json  split.npz  metrics.jsonl       byte copies of the run's files
    analysis/summary.json  fourier.json  neurons.json  ablation.json  progress.jsonl   (if analysed)
    analysis/lenses.json  llc.json                                  (when the run has them)
    snapshots/step_NNNNNNN.safetensors   model weights (the final saved step, plus chosen steps)

``bundle.json`` is ``{"format": "groklab-bundle", "version": 1, "groklab_version": "...",
"run": NAME, "steps": [ascending steps with weights, the last is the final step],
"members": [{"path": ..., "sha256": HEX, "size": BYTES}, ...]}``, listing every other member.
Members are regular files only (no directories, no links), mode 0644, mtime 0, so exporting the
same run twice gives the same bytes. Weights are stored with ``safetensors.torch.save`` (the
model state dict, tensors as saved, metadata ``{"step": "N"}``); no pickle crosses the boundary.

Opening a bundle verifies everything before anything is exposed: a member that is unsafe (an
absolute path, ``..``, a link or other non-regular file), not in the manifest, duplicated, of the
wrong size or checksum, or missing, and an archive that is truncated or not a bundle, each raise a
one-line :class:`~groklab.runs.RunError` naming the problem, and nothing extracted is left behind.
"""

from __future__ import annotations

import atexit
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from groklab.files import UMASK
from groklab.runs import ANALYSIS_FILES, Run, RunError

__all__ = ["FORMAT", "VERSION", "export_bundle", "open_bundle"]

FORMAT = "groklab-bundle"
VERSION = 1
MANIFEST = "bundle.json"
RUN_FILES = ("config.yaml", "status.json", "split.npz", "metrics.jsonl")  # required members
ANALYSIS_MEMBERS = tuple(f"analysis/{n}.json" for n in ANALYSIS_FILES) + ("analysis/progress.jsonl",)
# written by analyses of this version on (lenses) or on request (the LLC): carried when present
OPTIONAL_ANALYSIS_MEMBERS = ("analysis/lenses.json", "analysis/llc.json")
_SNAPSHOT = re.compile(r"^snapshots/step_(\d{7,})\.safetensors$")
_MAX_MANIFEST = 1 << 20  # bytes; a manifest lists a few dozen members
_CHUNK = 1 << 20


def snapshot_member(step: int) -> str:
    return f"snapshots/step_{step:07d}.safetensors"


# -- export -------------------------------------------------------------------------------------------
def export_bundle(run: Run, out: Path | str, steps: Iterable[int] | None = None) -> Path:
    """Write the bundle ``out`` (a new file, never overwritten) of ``run`` with the weights of its
    final saved step plus ``steps``; returns ``out``. RunError, with nothing written, for a run being
    trained, a run without weights, a step without saved weights, or an ``out`` that exists."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise RunError(f"{out}: already exists (a bundle is never overwritten)")
    if run.is_locked():
        raise RunError(f"{run.path}: being trained (locked); export it when training has stopped")
    members = dict(_run_members(run))
    chosen = _bundle_steps(run, steps)
    for step in chosen:
        members[snapshot_member(step)] = _safetensors_bytes(run, step)
    manifest = _manifest(run.path.name, chosen, members)
    _write_archive(out, {MANIFEST: manifest, **members})
    return out


def _run_members(run: Run) -> Iterator[tuple[str, bytes]]:
    """The run's files as (member path, bytes), each checked to load now rather than at the colleague's."""
    _ = run.config, run.split, run.metric_records()
    for name in RUN_FILES:
        path = run.path / name
        if not path.is_file():
            raise RunError(f"{path}: missing; a bundle needs {', '.join(RUN_FILES)}")
        yield name, path.read_bytes()
    if run.has_analysis():
        _ = run.analysis
        for name in ANALYSIS_MEMBERS:
            yield name, (run.path / name).read_bytes()
        for name in OPTIONAL_ANALYSIS_MEMBERS:
            if (run.path / name).is_file():
                yield name, (run.path / name).read_bytes()


def _bundle_steps(run: Run, steps: Iterable[int] | None) -> list[int]:
    """The final saved step plus ``steps`` (each must have saved weights), ascending."""
    saved = run.steps
    if not saved:
        raise RunError(f"{run.path}: no saved weights (no checkpoints or snapshots)")
    chosen = sorted({*(steps or ()), saved[-1]})
    for step in chosen:
        run.weights_path(step)  # a RunError naming the nearest saved steps
    return chosen


def _safetensors_bytes(run: Run, step: int) -> bytes:
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous().clone() for k, v in run.load_state(step).items()}
    return save(state, metadata={"step": str(step)})


def _manifest(name: str, steps: list[int], members: dict[str, bytes]) -> bytes:
    import groklab

    listing = [{"path": p, "sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for p, b in members.items()]
    manifest = {"format": FORMAT, "version": VERSION, "groklab_version": groklab.__version__, "run": name,
                "steps": steps, "members": listing}  # fmt: skip
    return (json.dumps(manifest, indent=1) + "\n").encode()


def _write_archive(out: Path, members: dict[str, bytes]) -> None:
    """Write the tar.gz via a temporary file beside ``out``, then link it into place (which fails
    rather than replace a file that appeared meanwhile)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for path, data in members.items():
                        info = tarfile.TarInfo(path)
                        info.size, info.mode, info.mtime = len(data), 0o644, 0
                        tar.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)
        try:
            os.link(tmp, out)
        except FileExistsError:
            raise RunError(f"{out}: already exists (a bundle is never overwritten)") from None
        except OSError:  # a file system without hard links
            if out.exists():
                raise RunError(f"{out}: already exists (a bundle is never overwritten)") from None
            os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


# -- import -------------------------------------------------------------------------------------------
def open_bundle(path: Path | str, extract_to: Path | str | None = None) -> Run:
    """Verify the bundle ``path`` and extract it into a new run directory; returns its Run.

    ``extract_to`` must not exist or be an empty directory; by default a fresh temporary directory,
    removed when the process exits. Every member is checked (safe path, regular file, listed in the
    manifest with this size and sha256, none missing) while it is written to a hidden staging
    directory, which becomes the run directory only when all checks pass; on any failure it is
    removed and a one-line RunError names the problem. The run directory keeps ``bundle.json``.
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no such bundle file")
    if extract_to is None:
        dest = staging = Path(tempfile.mkdtemp(prefix="groklab-bundle-"))
        atexit.register(shutil.rmtree, dest, ignore_errors=True)
    else:
        dest = _check_extract_to(Path(extract_to))
        staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"))
    try:
        _extract_verified(path, staging)
        if staging != dest:
            _move_into_place(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Run.open(dest)


def _check_extract_to(dest: Path) -> Path:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise RunError(f"{dest}: exists and is not a directory; extract a bundle into a new directory")
    if dest.is_dir() and any(dest.iterdir()):
        raise RunError(f"{dest}: directory is not empty; extract a bundle into a new directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def _move_into_place(staging: Path, dest: Path) -> None:
    """Rename the verified staging directory to ``dest`` (which may be an empty directory, replaced)."""
    try:
        os.rename(staging, dest)
    except OSError as e:
        raise RunError(f"{dest}: cannot extract there ({e.strerror or e})") from None


def _extract_verified(path: Path, staging: Path) -> None:
    """Stream the archive once: read the manifest (first member), then write and hash each member;
    read on to the end of the gzip stream, whose length and CRC check catch any truncation."""
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise RunError(f"{path}: cannot read ({e.strerror or e})") from None
    with raw:
        if raw.read(2) != b"\x1f\x8b":
            raise RunError(f"{path}: not a groklab bundle (not a gzip-compressed tar archive)")
        raw.seek(0)
        manifest = _read_archive(path, raw, staging)
    missing = [m for m in manifest if not (staging / m).is_file()]
    if missing:
        raise RunError(f"{path}: incomplete bundle: {len(missing)} member(s) missing, first {missing[0]!r}")


def _read_archive(path: Path, raw: IO[bytes], staging: Path) -> dict[str, dict[str, Any]]:
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            manifest = _verify_members(path, tar, staging)
            while gz.read(_CHUNK):
                pass
            return manifest
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RunError(f"{path}: truncated or corrupt archive ({detail})") from None


def _verify_members(path: Path, tar: tarfile.TarFile, staging: Path) -> dict[str, dict[str, Any]]:
    """The manifest's members by path, after writing every archive member into ``staging``."""
    manifest: dict[str, dict[str, Any]] | None = None
    seen: set[str] = set()
    for info in tar:
        _check_safe(path, info)
        if manifest is None:
            if info.name != MANIFEST:
                raise RunError(f"{path}: not a groklab bundle (first member is {info.name!r}, not {MANIFEST})")
            raw = _read_small(path, tar, info)
            manifest = _read_manifest(path, raw)
            (staging / MANIFEST).write_bytes(raw)  # kept in the run directory: where it came from
            continue
        entry = manifest.get(info.name)
        if entry is None:
            raise RunError(f"{path}: member {info.name!r} is not listed in {MANIFEST} (tampered or renamed)")
        if info.name in seen:
            raise RunError(f"{path}: member {info.name!r} appears twice (tampered)")
        seen.add(info.name)
        if info.size != entry["size"]:
            raise RunError(
                f"{path}: member {info.name!r} is {info.size} bytes, {MANIFEST} says {entry['size']} (tampered)"
            )
        digest = _copy_hashed(tar.extractfile(info), staging / info.name)
        if digest != entry["sha256"]:
            raise RunError(f"{path}: checksum mismatch for member {info.name!r} (tampered or corrupt)")
    if manifest is None:
        raise RunError(f"{path}: not a groklab bundle (empty archive)")
    return manifest


def _check_safe(path: Path, info: tarfile.TarInfo) -> None:
    """Refuse absolute paths, ``..``, odd path spellings, links and anything not a regular file."""
    name = info.name
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in name.split("/")):
        raise RunError(f"{path}: unsafe member path {name!r} (absolute or leaving the bundle)")
    if not info.isreg():
        kind = "a link" if info.issym() or info.islnk() else "not a regular file"
        raise RunError(f"{path}: unsafe member {name!r}: {kind}")


def _read_small(path: Path, tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(info)
    if f is None or info.size > _MAX_MANIFEST:
        raise RunError(f"{path}: {MANIFEST} is malformed (over {_MAX_MANIFEST} bytes)")
    return f.read()


def _read_manifest(path: Path, raw: bytes) -> dict[str, dict[str, Any]]:
    """Check ``bundle.json`` and return its members by path."""
    bad = f"{path}: {MANIFEST} is malformed"
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RunError(f"{bad} (not JSON)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RunError(f"{path}: not a groklab bundle ({MANIFEST} has no format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise RunError(f"{path}: bundle format version {data.get('version')!r}; this groklab reads version {VERSION}")
    listing = data.get("members")
    if not isinstance(listing, list):
        raise RunError(f"{bad} (no member list)")
    members: dict[str, dict[str, Any]] = {}
    for m in listing:
        if not _valid_entry(m) or m["path"] in members:
            raise RunError(f"{bad} (member entry {json.dumps(m)[:200]})")
        members[m["path"]] = m
    steps = sorted(int(g.group(1)) for p in members if (g := _SNAPSHOT.match(p)))
    if any(f not in members for f in RUN_FILES) or not steps or data.get("steps") != steps:
        raise RunError(f"{bad} (it must list {', '.join(RUN_FILES)} and the weights of its steps)")
    if 0 < sum(p in members for p in ANALYSIS_MEMBERS) < len(ANALYSIS_MEMBERS):
        raise RunError(f"{bad} (it lists part of analysis/; a bundle holds all of it or none)")
    return members


def _valid_entry(m: Any) -> bool:
    return (
        isinstance(m, dict)
        and (
            m.get("path") in (*RUN_FILES, *ANALYSIS_MEMBERS, *OPTIONAL_ANALYSIS_MEMBERS)
            or bool(_SNAPSHOT.match(str(m.get("path"))))
        )
        and isinstance(m.get("size"), int)
        and m["size"] >= 0
        and isinstance(m.get("sha256"), str)
        and re.fullmatch(r"[0-9a-f]{64}", m["sha256"]) is not None
    )


def _copy_hashed(src: IO[bytes] | None, dest: Path) -> str:
    """Copy ``src`` to the new file ``dest``; return the sha256 hex digest of what was copied."""
    assert src is not None  # a regular member always has a file object
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with open(dest, "xb") as f:
        while chunk := src.read(_CHUNK):
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()
