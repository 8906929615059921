"""Device profiles: the constants that turn counters and time into modeled joules.

A profile is a small TOML file:

    name = "rpi4"
    description = "..."          # the device it describes
    source = "..."               # where every number came from
    fitted_on = ""               # the device it was fitted on by `tunable calibrate`; "" = not fitted
    base_watts = 3.06            # drawn anyway while an inference runs (idle board), x latency
    active_watts = 0.9           # extra while the CPU computes, x latency
    cache_bytes = 1048576        # weights up to this size are read at cache cost, above it at DRAM cost
    weight_bytes_dram_pj = 160.0 # optional: weight_bytes' cost when the weights do not fit the cache
    [pj_per_count]               # picojoules per unit of each counter (tunable.planspec.COUNTERS)
    mults = 0.2
    ...
    [fit]                        # fitted profiles only: sensor, windows, errors

Shipped profiles live in tunable/energy/profiles/; fitted ones are saved to the user's config directory
(tunable.paths.config_dir()/profiles, by default ~/.config/tunable/profiles). Names resolve in the package first,
then the user directory; a path to a .toml file also works.
"""
from __future__ import annotations

import math
import os
import platform
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .. import planspec
from ..errors import TunableError
from ..units import PICO
from .sysfs import read_device_model

PROFILE_ENV = "TUNABLE_PROFILE"
_TOP_KEYS = {"name", "description", "source", "fitted_on", "base_watts", "active_watts", "cache_bytes",
             "weight_bytes_dram_pj", "pj_per_count", "fit"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ProfileError(TunableError):
    """A profile that does not exist or does not validate."""


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    source: str
    fitted_on: str = ""
    base_watts: float = 0.0
    active_watts: float = 0.0
    cache_bytes: int | None = None
    weight_bytes_dram_pj: float | None = None
    pj_per_count: Mapping[str, float] = field(default_factory=dict)
    fit: Mapping[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def fitted(self) -> bool:
        return bool(self.fitted_on)

    def label(self) -> str:
        """What every modeled number is tagged with: the profile and whether it was fitted on a device
        (`source` says where the numbers came from)."""
        how = f"fitted on {self.fitted_on}" if self.fitted else "not fitted on a device"
        return f"profile {self.name}, {how}"

    def joules_per_count(self, counter: str) -> float:
        return self.pj_per_count.get(counter, 0.0) * PICO

    def with_name(self, name: str) -> "Profile":
        return replace(self, name=name)


def _check_number(where: str, key: str, v: Any, *, allow_none: bool = False) -> float | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ProfileError(f"{where}: '{key}' must be a number >= 0, got {v!r}")
    return float(v)


def profile_from_dict(data: Mapping[str, Any], where: str = "<profile>") -> Profile:
    """Validates a parsed profile; every error names the file and the key."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: "
                           f"{', '.join(sorted(_TOP_KEYS))})")
    for key in ("name", "description", "source"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ProfileError(f"{where}: '{key}' is required and must be a non-empty string")
    if not _NAME.fullmatch(data["name"]):
        raise ProfileError(f"{where}: name {data['name']!r} must be letters, digits, '.', '_' or '-'")
    fitted_on = data.get("fitted_on", "")
    if not isinstance(fitted_on, str):
        raise ProfileError(f"{where}: 'fitted_on' must be a string ('' when not fitted)")
    pj = data.get("pj_per_count", {})
    if not isinstance(pj, Mapping):
        raise ProfileError(f"{where}: [pj_per_count] must be a table")
    bad = set(pj) - set(planspec.COUNTERS)
    if bad:
        raise ProfileError(f"{where}: [pj_per_count] has unknown counter(s) {', '.join(sorted(bad))} "
                           f"(counters: {', '.join(planspec.COUNTERS)})")
    cache = data.get("cache_bytes")
    if cache is not None and (isinstance(cache, bool) or not isinstance(cache, int) or cache < 0):
        raise ProfileError(f"{where}: 'cache_bytes' must be an integer >= 0")
    fit = data.get("fit", {})
    if not isinstance(fit, Mapping):
        raise ProfileError(f"{where}: [fit] must be a table")
    return Profile(
        name=data["name"], description=data["description"].strip(), source=data["source"].strip(),
        fitted_on=fitted_on.strip(),
        base_watts=_check_number(where, "base_watts", data.get("base_watts", 0.0)),
        active_watts=_check_number(where, "active_watts", data.get("active_watts", 0.0)),
        cache_bytes=cache,
        weight_bytes_dram_pj=_check_number(where, "weight_bytes_dram_pj", data.get("weight_bytes_dram_pj"),
                                           allow_none=True),
        pj_per_count={k: _check_number(where, f"pj_per_count.{k}", v) for k, v in pj.items()},
        fit=dict(fit), path=where)


def parse_profile(text: str, where: str = "<profile>") -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{where}: not valid TOML ({e})") from None
    return profile_from_dict(data, where)


def user_profiles_dir() -> Path:
    """<config dir>/profiles: $TUNABLE_CONFIG_DIR, else $XDG_CONFIG_HOME/tunable, else ~/.config/tunable."""
    from ..paths import config_dir
    return config_dir() / "profiles"


def _shipped() -> dict[str, Any]:
    d = resources.files("tunable.energy") / "profiles"
    return {p.name[:-5]: p for p in d.iterdir() if p.name.endswith(".toml")}


def list_profiles() -> list[tuple[str, str]]:
    """(name, where) for every loadable profile: shipped ones first, then the user's."""
    out = [(n, "shipped") for n in sorted(_shipped())]
    udir = user_profiles_dir()
    if udir.is_dir():
        out += [(p.stem, str(p)) for p in sorted(udir.glob("*.toml")) if p.stem not in _shipped()]
    return out


def load_profile(name: str | os.PathLike) -> Profile:
    """By name (package, then user directory) or by path to a .toml file."""
    text_name = str(name)
    if text_name.endswith(".toml") or os.sep in text_name:
        p = Path(text_name)
        try:
            return parse_profile(p.read_text(encoding="utf-8"), str(p))
        except OSError as e:
            raise ProfileError(f"{p}: cannot read profile ({e.strerror or e})") from None
    shipped = _shipped()
    if text_name in shipped:
        return parse_profile(shipped[text_name].read_text(encoding="utf-8"), f"{text_name} (shipped)")
    user = user_profiles_dir() / f"{text_name}.toml"
    if user.is_file():
        return parse_profile(user.read_text(encoding="utf-8"), str(user))
    names = ", ".join(n for n, _ in list_profiles())
    raise ProfileError(f"no profile named '{text_name}' (available: {names}; user profiles live in "
                       f"{user_profiles_dir()})")


def detect_profile_name(root: str | os.PathLike | None = None) -> str:
    """The shipped profile that describes this machine: $TUNABLE_PROFILE if set, else from the device tree's
    board name or the CPU architecture, else the paper constants (horowitz45)."""
    env = os.environ.get(PROFILE_ENV)
    if env:
        return env
    model = read_device_model(root)
    if "Raspberry Pi 5" in model or "Raspberry Pi Compute Module 5" in model or "Raspberry Pi 500" in model:
        return "rpi5"
    if "Raspberry Pi 4" in model or "Raspberry Pi Compute Module 4" in model or "Raspberry Pi 400" in model:
        return "rpi4"
    if "Orin Nano" in model:
        return "jetson-orin-nano"
    if platform.machine().lower() in ("x86_64", "amd64", "i686", "i386"):
        return "generic-x86"
    return "horowitz45"


def active_profile(name: str | None = None, root: str | os.PathLike | None = None) -> Profile:
    return load_profile(name or detect_profile_name(root))


# ---- writing: a tiny TOML writer for flat tables (no dependency) ----

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESC = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESC:
            out.append(_ESC[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            raise ValueError("NaN has no place in a profile")
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # shortest round-tripping form, valid TOML ('1e-05', '2.0')
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _toml_str(k)


def dumps_toml(top: Mapping[str, Any], comment: str = "") -> str:
    """Scalars and lists at the top, then one level of tables (dict values)."""
    lines = [f"# {c}" if c else "#" for c in comment.splitlines()] if comment else []
    tables = {k: v for k, v in top.items() if isinstance(v, Mapping)}
    for k, v in top.items():
        if v is not None and not isinstance(v, Mapping):
            lines.append(f"{_toml_key(k)} = {toml_value(v)}")
    for name, table in tables.items():
        lines += ["", f"[{_toml_key(name)}]"]
        for k, v in table.items():
            if isinstance(v, Mapping):
                raise TypeError(f"nested table {name}.{k}: only flat tables are written")
            if v is not None:
                lines.append(f"{_toml_key(k)} = {toml_value(v)}")
    return "\n".join(lines) + "\n"


def profile_to_toml(p: Profile) -> str:
    top: dict[str, Any] = {
        "name": p.name, "description": p.description, "source": p.source, "fitted_on": p.fitted_on,
        "base_watts": float(p.base_watts), "active_watts": float(p.active_watts), "cache_bytes": p.cache_bytes,
        "weight_bytes_dram_pj": p.weight_bytes_dram_pj,
        "pj_per_count": {c: float(p.pj_per_count.get(c, 0.0)) for c in planspec.COUNTERS},
    }
    if p.fit:
        top["fit"] = dict(p.fit)
    return dumps_toml(top, "tunable device profile (see docs/energy.md); energies in picojoules per count")


def save_profile(p: Profile, directory: str | os.PathLike | None = None) -> Path:
    """Writes the profile as <dir>/<name>.toml (default: the user profile directory)."""
    if p.name in _shipped():
        raise ProfileError(f"'{p.name}' is the name of a shipped profile; save the fitted one under another "
                           "name (--name)")
    d = Path(directory) if directory is not None else user_profiles_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{p.name}.toml"
    text = profile_to_toml(p)
    parse_profile(text, str(path))  # never write a file this module could not read back
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
