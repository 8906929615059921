"""The `tunable` command. Each cmd_*.py module in this package contributes commands through a module-level
`commands` list, so features add commands without touching this file."""
from __future__ import annotations

import importlib
import pkgutil

import click

from ..errors import TunableError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TunableError as e:  # a user-facing error: message, no traceback
            raise click.ClickException(str(e)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tunable")
def main() -> None:
    """tunable: power-tunable int8 CNN inference for small Linux boards."""


for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.startswith("cmd_"):
        _mod = importlib.import_module(f"{__name__}.{_info.name}")
        for _cmd in getattr(_mod, "commands", []):
            main.add_command(_cmd)
