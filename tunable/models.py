"""The model manifest: bundled models shipped in the package, external models by URL and sha256.

Lookup order for a manifest model: the bundled file, the folder named by $TUNABLE_MODELS_DIR (for offline
use, e.g. ../shared/models/mlperf-tiny), then the download cache (`tunable models pull`)."""
from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import TunableError
from .paths import MODELS_ENV, cache_dir, repo_root


class ModelNotFoundError(TunableError):
    pass


@dataclass(frozen=True)
class ModelEntry:
    name: str
    filename: str
    task: str = ""
    url: str = ""
    sha256: str = ""
    bundled: bool = False
    preprocess: dict = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    accuracy: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def _bundled_dir() -> Path:
    root = repo_root()
    if root is not None and (root / "models" / "manifest.json").exists():
        return root / "models"
    return Path(str(resources.files("tunable.bundled")))


def manifest() -> list[ModelEntry]:
    data = json.loads((_bundled_dir() / "manifest.json").read_text())
    out = []
    known = {"name", "filename", "file", "task", "url", "sha256", "preprocess", "classes", "accuracy"}
    for e in data["models"]:
        out.append(ModelEntry(e["name"], e.get("file") or e["filename"], e.get("task", ""), e.get("url", ""),
                              e.get("sha256", ""), "file" in e, e.get("preprocess", {}),
                              tuple(e.get("classes", ())), e.get("accuracy", {}),
                              {k: v for k, v in e.items() if k not in known}))
    return out


def entry(name: str) -> ModelEntry:
    for e in manifest():
        if e.name == name:
            return e
    raise ModelNotFoundError(f"no model named '{name}' in the manifest (known: "
                             f"{', '.join(x.name for x in manifest())})")


def entry_for_file(path: str | os.PathLike) -> ModelEntry | None:
    name = Path(path).name
    for e in manifest():
        if e.filename == name:
            return e
    return None


def default_model() -> ModelEntry:
    bundled = [e for e in manifest() if e.bundled]
    if not bundled:
        raise ModelNotFoundError("this installation ships no bundled model")
    return bundled[0]


def locate(e: ModelEntry) -> tuple[Path | None, str]:
    """(path, where) for a manifest entry; path is None when it is not available locally."""
    if e.bundled:
        return _bundled_dir() / e.filename, "bundled"
    env = os.environ.get(MODELS_ENV)
    if env and (Path(env) / e.filename).exists():
        return Path(env) / e.filename, f"${MODELS_ENV}"
    cached = cache_dir() / "models" / e.filename
    if cached.exists():
        return cached, "cache"
    return None, "not downloaded"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A model file path from a path or a manifest name (bundled, $TUNABLE_MODELS_DIR or cache)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    try:
        e = entry(str(name_or_path))
    except ModelNotFoundError:
        raise ModelNotFoundError(f"{name_or_path}: no such file, and no model of that name in the manifest "
                                 f"(known: {', '.join(x.name for x in manifest())})") from None
    path, where = locate(e)
    if path is None:
        raise ModelNotFoundError(f"model '{e.name}' is not available locally: run `tunable models pull {e.name}` "
                                 f"or point ${MODELS_ENV} at a folder holding {e.filename}")
    return path


def pull(name: str, timeout_s: float = 60.0) -> Path:
    """Downloads a manifest model into the cache and checks its sha256; returns its path."""
    e = entry(name)
    path, where = locate(e)
    if path is not None:
        if e.sha256 and sha256_of(path) != e.sha256:
            raise TunableError(f"{path} ({where}) does not match the manifest's sha256 {e.sha256}")
        return path
    if not e.url:
        raise ModelNotFoundError(f"model '{name}' has no download URL")
    dest = cache_dir() / "models" / e.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(e.url, timeout=timeout_s) as r:
            data = r.read()
    except OSError as err:
        raise TunableError(f"downloading {e.url} failed: {err}") from None
    digest = hashlib.sha256(data).hexdigest()
    if e.sha256 and digest != e.sha256:
        raise TunableError(f"{e.url}: sha256 {digest} does not match the manifest's {e.sha256}; not saved")
    tmp = dest.with_suffix(".part")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return dest
