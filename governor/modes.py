"""Which mode runs: the policy's rules with hysteresis, a manual mode set with `tunable mode set`, a hold time.

The manual mode lives in a small state file in the user's config folder (tunable.paths.config_dir(),
`mode.json`), so `tunable mode set eco` in one shell steers a `tunable run` started in another (it reads
the file when it polls the battery). `tunable mode set auto` removes it.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tunable.errors import TunableError
from tunable.paths import config_dir

from .policy import Policy, Rule, SystemState, load_policy

STATE_FILE = "mode.json"
POLICY_FILE = "policy.toml"
AUTO = "auto"


def default_policy_path() -> Path:
    """The user's policy (config dir/policy.toml) when there is one, else the example shipped with tunable."""
    user = config_dir() / POLICY_FILE
    if user.exists():
        return user
    return Path(__file__).parent / "examples" / "default.toml"


def state_path() -> Path:
    return config_dir() / STATE_FILE


def read_manual_mode() -> str | None:
    """The mode set with `tunable mode set`, or None (auto). A damaged state file counts as auto."""
    try:
        data = json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    mode = data.get("mode") if isinstance(data, dict) else None
    return mode if isinstance(mode, str) and mode != AUTO else None


def write_manual_mode(name: str, policy: Policy) -> Path:
    """Persists a manual mode (checked against `policy`); AUTO clears it. Returns the state file's path."""
    path = state_path()
    if name == AUTO:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return path
    policy.mode(name)  # raises with the list of modes
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"mode": name, "policy": os.path.abspath(policy.source),
                               "set_at": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a file
    return path


@dataclass(frozen=True)
class Selection:
    mode: str
    reason: str
    rule: Rule | None = None


class ModeSelector:
    """Evaluates the rules on each system report and says which mode should run.

    A rule becomes active when its `when` holds and stays active until its `release` holds (or, without
    one, until a threshold is passed back by the policy's hysteresis); a status in `when` (discharging,
    on_ac, ...) releases the rule as soon as it stops holding. The first active rule in file order
    decides; none active: the manual mode if one is set, else default_mode. A manual mode overrides rules
    except those with force = true. Rule-driven changes wait `hold` seconds after the previous change;
    forced rules and manual changes apply at once."""

    def __init__(self, policy: Policy, manual: str | None = None):
        self.policy = policy
        self.active = [False] * len(policy.rules)
        self.manual = manual
        if manual is not None:
            policy.mode(manual)
        self.current: Selection | None = None
        self._changed_at = -float("inf")

    def set_manual(self, name: str | None) -> None:
        if name is not None:
            self.policy.mode(name)
        self.manual = name

    def _update_rules(self, st: SystemState) -> None:
        for i, r in enumerate(self.policy.rules):
            if not self.active[i]:
                self.active[i] = r.when.holds(st)
            elif r.release is not None:
                # the release replaces the hysteresis of the thresholds; a status (charging, ...) has none
                self.active[i] = not (r.release.holds(st) or any(
                    a.op in ("status", "not status") and not a.holds(st) for a in r.when.atoms))
            else:
                self.active[i] = not any(a.released(st, self.policy.hysteresis(a)) for a in r.when.atoms)

    def select(self, st: SystemState, now: float) -> Selection:
        self._update_rules(st)
        rules = self.policy.rules
        winner: Selection | None = None
        for i, r in enumerate(rules):
            if self.active[i] and (r.force or self.manual is None):
                winner = Selection(r.mode, f"rule {i + 1} ({r.when.text}) is active", r)
                break
        if winner is None:
            winner = (Selection(self.manual, "set manually (tunable mode set)") if self.manual is not None
                      else Selection(self.policy.default_mode, "default mode: no rule is active"))
        cur = self.current
        if cur is None:
            self._changed_at = now
        elif winner.mode != cur.mode:
            urgent = winner.rule.force if winner.rule is not None else self.manual is not None
            if not urgent and now - self._changed_at < self.policy.hold_s:
                return cur  # rate limit: the previous change is too recent
            self._changed_at = now
        self.current = winner
        return winner


def load_selector(policy_path: str | os.PathLike | None = None) -> ModeSelector:
    """The policy (given, or the default) and the manual mode from the state file, checked against it."""
    policy = load_policy(policy_path or default_policy_path())
    manual = read_manual_mode()
    if manual is not None and manual not in policy.modes:
        raise TunableError(f"the manual mode '{manual}' (set with `tunable mode set`, in {state_path()}) is not a "
                           f"mode of {policy.source} ({', '.join(policy.modes)}); `tunable mode set auto` clears it")
    return ModeSelector(policy, manual)

