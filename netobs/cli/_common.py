"""Options and helpers shared by `netobs run` and `netobs sweep`.

Their parameter options are the parameter table's (netobs.params), made into click options
here: `table_options("run")` adds one option per parameter `netobs run` takes, and
`PARAMS.from_cli` reads their text back into values (one error style for every bad value).
"""
from __future__ import annotations

import os
import sys

import click

from netobs.errors import CapabilityError
from netobs.files import dumps
from netobs.params import PARAMS, REQUIRED, Flag, Param, Table


class _Option(click.Option):
    """A click option whose older spellings (`--impl` for `--strategy`) still parse but are
    left out of --help."""

    def get_help_record(self, ctx):
        opts, self.opts = self.opts, self.opts[:1]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = opts


def _option(table: Table, p: Param, command: str):
    name, axis = table.option_name(p, command), table.is_axis(p, command)
    flag = p.axis_flag if axis else p.flag
    aliases = p.sweep.aliases if axis else p.aliases
    default = p.default_for(command)
    text = (p.sweep.help if axis and p.sweep.help else p.help)
    if isinstance(p.kind, Flag) and not axis:
        decl = f"{flag}/--no-{flag[2:]}" if default else flag
        return click.option(decl, *aliases, name, cls=_Option, is_flag=True, default=bool(default),
                            show_default=bool(default), help=text)
    kw: dict = {"required": True} if default is REQUIRED else {}
    if default not in (REQUIRED, None):
        kw.update(default=",".join(p.kind.text(v) for v in default) if axis else p.kind.text(default),
                  show_default=True)
    metavar = f"{p.kind.metavar},..." if axis else p.kind.metavar
    if isinstance(p.kind, Flag):   # an axis of on/off: the flag alone still means on
        kw.update(is_flag=False, flag_value=p.kind.text(True))
    return click.option(flag, *aliases, name, cls=_Option, type=str, metavar=metavar, help=text, **kw)


def _shorthands(table: Table, p: Param, command: str):
    """A flag standing for one value of the parameter (`--recv-copy`: `--recv fields`), hidden
    from --help; it fills the parameter's own option, and wins over its default."""
    name = table.option_name(p, command)
    return [click.option(flag, name, flag_value=p.kind.text(value), hidden=True) for flag, value in p.shorthands]


def table_options(command: str, table: Table = PARAMS):
    """A decorator adding the click options of every parameter `netobs <command>` takes, in
    the table's order (their values are text: `table.from_cli` reads them)."""
    options = [o for p in table.for_command(command) for o in (_option(table, p, command), *_shorthands(table, p, command))]

    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def remote_topology(values: dict) -> dict:
    """A kind's required parameter without `--topology` means that kind (`--remote HOST`:
    `--topology remote`; a contradiction is the spec's to refuse, in one line)."""
    from netobs.params import TOPOLOGY_KINDS

    ctx = click.get_current_context()
    if ctx.get_parameter_source("topology") != click.core.ParameterSource.COMMANDLINE:
        for kind in TOPOLOGY_KINDS:
            if any(values.get(name) for name in kind.required):
                values["topology"] = kind.name
    return values


def check_perf(spec) -> None:
    """Before any point: perf can count a window here and knows every event the spec (a
    RunSpec or SweepSpec) asks for. Nothing to check without perf."""
    if not spec.perf:
        return
    from netobs import perf

    perf.check_window(perf.find_perf())   # the client's counts are per window
    perf.check_permission()
    if tuple(spec.events) != tuple(perf.DEFAULT_EVENTS):   # the defaults are netobs's own: known
        perf.check_events(list(spec.events))


def check_strategies(names) -> None:
    """Before anything on the system changes: refuse a strategy this kernel cannot run."""
    from netobs.native import check_strategy

    for name in names:
        check_strategy(name)


def prepare_tracing(spec) -> dict | None:
    """Before any point of a traced run: make the host ready for BCC (mount tracefs, link the
    kernel headers Debian has). Returns what was found and done (the sweep puts it in the
manifest); None without --trace or --profile."""
    if not (spec.trace or spec.profile):
        return None
    from netobs import hostprep

    return hostprep.prepare()


def need_root(topology: str, trace: bool) -> None:
    if os.geteuid() == 0:
        return
    from netobs.params import KIND_BY_NAME

    why = [w for w, on in ((KIND_BY_NAME[topology].needs_root, KIND_BY_NAME[topology].needs_root),
                           ("BPF tracing or profiling", trace)) if on]
    if why:
        raise CapabilityError(f"{' and '.join(why)} need root", fix="sudo " + " ".join(["netobs"] + sys.argv[1:]))


def echo_json(obj) -> None:
    click.echo(dumps(obj))


def leftovers_line(removed: list[str]) -> str:
    """What a start cleaned up of runs killed before they could (SIGKILL), in one line."""
    return "cleaned up after an earlier netobs run that was killed: " + ", ".join(removed)
