"""Power policy commands: `tunable policy check FILE`, `tunable mode list`, `tunable mode set NAME|auto`."""
from __future__ import annotations

import functools

import click

from ..errors import TunableError

_POLICY_OPT = click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
                           help="Policy file (default: ~/.config/tunable/policy.toml, else the bundled example).")
_ROOT_OPT = click.option("--sysfs-root", type=click.Path(file_okay=False), default=None,
                         help="Read /sys under this directory (a fake tree); default $TUNABLE_SYSFS_ROOT or /.")


def _with_root(fn):
    @functools.wraps(fn)
    def wrapper(*args, sysfs_root: str | None = None, **kw):
        from ..energy import sysfs_root_override
        with sysfs_root_override(sysfs_root):
            return fn(*args, **kw)
    return _ROOT_OPT(wrapper)


def _system_state():
    from governor.policy import SystemState
    from governor.system import read_thermal
    from ..energy import list_batteries
    bats = list_batteries()
    return SystemState(bats[0].read() if bats else None, read_thermal()), [b.name for b in bats]


@click.group("policy")
def policy_group() -> None:
    """Power policies: named modes, battery and thermal rules, budgets (TOML)."""


@policy_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@_with_root
def policy_check(file: str) -> None:
    """Validate a policy file; errors give the line and key."""
    from governor.policy import load_policy
    policy = load_policy(file)  # PolicyError is a TunableError: the CLI prints it without a traceback
    click.echo(f"{file}: OK: {len(policy.modes)} modes, {len(policy.rules)} rules, default mode "
               f"'{policy.default_mode}', hold {policy.hold_s:g} s")
    for m in policy.modes.values():
        click.echo(f"  mode {m.name}: {m.describe()}" + (f"  ({m.description})" if m.description else ""))
    state, bats = _system_state()
    for r in policy.rules:
        rel = f", released when {r.release.text}" if r.release else ""
        click.echo(f"  rule {r.index + 1} (line {r.line}): when {r.when.text}{rel} -> {r.mode}"
                   + (" [force]" if r.force else ""))
        for a in r.when.atoms:
            if a.reading(state) is None:
                what = ("no battery" if a.var in ("battery", "status") else
                        "no thermal zones" if a.var == "thermal" else f"no thermal zone '{a.var}'")
                click.echo(f"    note: {what} on this machine: '{a.text}' cannot hold here")
    for w in policy.warnings:
        click.echo(f"  warning: {w}")


@click.group("mode")
def mode_group() -> None:
    """Power modes of the policy: list them, or set one by hand (auto: back to the rules)."""


@mode_group.command("list")
@_POLICY_OPT
@_with_root
def mode_list(policy_path: str | None) -> None:
    """The policy's modes; * marks the one that would run now."""
    from governor.modes import ModeSelector, default_policy_path, read_manual_mode
    from governor.policy import load_policy
    policy = load_policy(policy_path or default_policy_path())
    manual = read_manual_mode()
    if manual is not None and manual not in policy.modes:
        click.echo(f"note: the manual mode '{manual}' is not in this policy; it is ignored "
                   "(`tunable mode set auto` clears it)")
        manual = None
    state, _ = _system_state()
    sel = ModeSelector(policy, manual).select(state, 0.0)
    click.echo(f"policy {policy.source}")
    width = max(len(n) for n in policy.modes)
    for m in policy.modes.values():
        mark = "*" if m.name == sel.mode else " "
        click.echo(f"{mark} {m.name:<{width}}  {m.describe()}" + (f"  ({m.description})" if m.description else ""))
    click.echo(f"now: {sel.mode} ({sel.reason})" + ("" if manual else "; manual mode: none (auto)"))


@mode_group.command("set")
@click.argument("name")
@_POLICY_OPT
def mode_set(name: str, policy_path: str | None) -> None:
    """Run mode NAME from now on (a running `tunable run` picks it up); `auto` returns to the rules."""
    from governor.modes import AUTO, default_policy_path, write_manual_mode
    from governor.policy import load_policy
    policy = load_policy(policy_path or default_policy_path())
    if name != AUTO and name not in policy.modes:
        raise TunableError(f"no mode '{name}' in {policy.source}; modes: {', '.join(policy.modes)} (or auto)")
    path = write_manual_mode(name, policy)
    if name == AUTO:
        click.echo(f"mode: auto (the policy's rules decide); cleared {path}")
    else:
        forced = [r for r in policy.rules if r.force]
        note = (f"; rules with force = true still override it ({', '.join(r.when.text for r in forced)})"
                if forced else "")
        click.echo(f"mode: {name} (saved in {path}){note}")


commands = [policy_group, mode_group]
