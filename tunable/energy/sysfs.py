"""Every read of /sys (and /proc) by the energy code goes through here, under one root directory.

The root is "/" on a real machine. `set_sysfs_root()` (the CLI's --sysfs-root) or the environment variable
TUNABLE_SYSFS_ROOT point it at a directory tree laid out like /sys, so tests and demos run against fake
trees (jetson-stats does the same). OS errors become the sensor errors of this package, with the errno's
meaning decided once: ENOENT/ENODEV/ENXIO mean the device is gone, EACCES/EPERM a permission problem.
"""
from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import TunableError

ENV_VAR = "TUNABLE_SYSFS_ROOT"
_root_override: Path | None = None


class SensorError(TunableError):
    """A sensor could not be read."""


class SensorUnavailable(SensorError):
    """The sensor (or the whole source) is not present on this machine."""


class SensorPermissionError(SensorError):
    """The sensor exists but this user may not read it; the message says how to allow it."""


class SensorGone(SensorError):
    """The sensor was readable and has disappeared (device removed, driver unbound, tool exited)."""


def set_sysfs_root(path: str | os.PathLike | None) -> None:
    """Overrides the root for this process (None: back to TUNABLE_SYSFS_ROOT or '/')."""
    global _root_override
    _root_override = Path(path) if path is not None else None


@contextmanager
def sysfs_root_override(path: str | os.PathLike | None) -> Iterator[None]:
    """Within the block, the root is `path` (None: unchanged); the previous setting comes back after."""
    global _root_override
    prev = _root_override
    if path is not None:
        _root_override = Path(path)
    try:
        yield
    finally:
        _root_override = prev


def sysfs_root() -> Path:
    """The directory that stands for '/': the override, else $TUNABLE_SYSFS_ROOT, else '/'."""
    if _root_override is not None:
        return _root_override
    return Path(os.environ.get(ENV_VAR) or "/")


def host_path(absolute: str, root: str | os.PathLike | None = None) -> Path:
    """'/sys/class/powercap' under the root in use."""
    base = Path(root) if root is not None else sysfs_root()
    return base / absolute.lstrip("/")


def _read_bytes(path: Path) -> bytes:
    # The single place a sysfs file is opened; tests replace it to simulate EACCES when running as root.
    with open(path, "rb") as f:
        return f.read()


_GONE = {errno.ENOENT, errno.ENODEV, errno.ENXIO}


def read_text(path: Path, *, permission_help: str = "") -> str:
    """A sysfs attribute's value, stripped. Raises SensorGone, SensorPermissionError or SensorError."""
    try:
        return _read_bytes(path).decode("utf-8", "replace").strip()
    except PermissionError:
        help_text = permission_help or ("run as root, or grant read access "
                                        f"(sudo chmod o+r {path}, or a udev rule that does so at boot)")
        raise SensorPermissionError(f"{path}: permission denied; {help_text}") from None
    except OSError as e:
        if e.errno in _GONE:
            raise SensorGone(f"{path}: {e.strerror or 'not present'}") from None
        raise SensorError(f"{path}: read failed ({e.strerror or e})") from None


def read_int(path: Path, **kw) -> int:
    text = read_text(path, **kw)
    try:
        return int(text)
    except ValueError:
        raise SensorError(f"{path}: expected an integer, read {text!r}") from None


def read_optional_text(path: Path) -> str | None:
    """The value, or None when the attribute does not exist (an optional attribute, not an error)."""
    try:
        return read_text(path)
    except SensorGone:
        return None


def read_optional_int(path: Path) -> int | None:
    text = read_optional_text(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise SensorError(f"{path}: expected an integer, read {text!r}") from None


def read_device_model(root: str | os.PathLike | None = None) -> str:
    """The board's name from the device tree ('Raspberry Pi 5 Model B Rev 1.0'), '' when there is none."""
    for p in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            return read_text(host_path(p, root)).replace("\x00", "").strip()
        except SensorError:
            continue
    return ""
