"""Where things are: the shared data folder, the model cache, the user's config folder."""
from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV = "TUNABLE_SHARED"
MODELS_ENV = "TUNABLE_MODELS_DIR"


def repo_root() -> Path | None:
    """The source checkout this package runs from, if any (editable installs and tests)."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else None


def shared_dir() -> Path:
    """$TUNABLE_SHARED, else ../shared beside the checkout (or beside the current directory)."""
    env = os.environ.get(SHARED_ENV)
    if env:
        return Path(env)
    root = repo_root() or Path.cwd()
    return (root / ".." / "shared").resolve()


def cache_dir() -> Path:
    base = os.environ.get("TUNABLE_CACHE_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tunable"


def config_dir() -> Path:
    base = os.environ.get("TUNABLE_CONFIG_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "tunable"
