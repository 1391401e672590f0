"""`netobs doctor`: what this host can measure and trace, and why not where it cannot."""
from __future__ import annotations

import importlib
import os

import click
from rich.console import Console
from rich.table import Table

from netobs.cli._common import echo_json
from netobs.fmt import gib


# part -> the module whose doctor_facts() answers for it, in the order shown. "tracing_setup"
# is the setup step itself (netobs.hostprep.prepare: tracefs, kernel headers), so it runs
# before "tracing" looks at which probes attach.
PARTS = {
    "workers": "netobs.native",
    "topology": "netobs.topology",
    "perf": "netobs.perf",
    "tracing_setup": "netobs.hostprep",
    "tracing": "netobs.tracer",
    "profiling": "netobs.profiler",
}


def collect() -> dict:
    """Facts from every part; a part that fails to answer reports its error instead."""
    from netobs import hostinfo

    facts = {"root": os.geteuid() == 0, "host": hostinfo.host_facts()}
    for name, module in PARTS.items():
        try:
            facts[name] = importlib.import_module(module).doctor_facts()
        except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
            facts[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return facts


@click.command(epilog="""\b
Examples:
  sudo netobs doctor
  sudo netobs doctor --json | jq .perf.events
  netobs doctor --json | jq .tracing.plan      (already root: no sudo)
  sudo netobs doctor --clean                   # undo what killed netobs runs left behind, now
""")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--clean", is_flag=True,
              help="Only undo what netobs runs killed with SIGKILL left behind (namespaces, links, host "
                   "sysctls, their processes and temporary directories), and say what that was.")
def command(as_json, clean):
    """Show what this host can do: root, perf counters, BCC probes, namespaces, SO_ZEROCOPY."""
    if clean:
        _clean(as_json)
        return
    facts = collect()
    if as_json:
        echo_json(facts)
        return
    con = Console()
    host = facts["host"]
    con.print(f"[bold]host[/] {host['hostname']}: Linux {host['kernel']}, {host['cpu_model']}, "
              f"{host['cores']} cores, {gib(host['memory_bytes']) or 'memory unknown'}"
              f"{', virtualized' if host['virtualized'] else ''}")
    con.print(f"[bold]root[/] {'yes' if facts['root'] else 'no (namespaces, perf control and BPF need root)'}")
    for part in PARTS:
        show_part(con, part.replace("_", " "), facts[part])


def _clean(as_json: bool) -> None:
    from netobs import topology
    from netobs.cli._common import need_root

    need_root("netns", False)
    removed = topology.cleanup_leftovers()
    if as_json:
        echo_json({"removed": removed})
    elif removed:
        click.echo("cleaned up after netobs runs that were killed:")
        for item in removed:
            click.echo(f"  {item}")
    else:
        click.echo("nothing to clean: no netobs run left anything behind")


def show_part(con: Console, name: str, facts: dict) -> None:
    """Each part's doctor_facts() may carry `checks`: [{name, ok, detail}] — shown as a table;
    everything else is shown as key: value."""
    table = Table(title=name, title_justify="left", show_header=False, expand=True)
    table.add_column("check", ratio=2)
    table.add_column("ok", width=4)
    table.add_column("detail", ratio=5, overflow="fold")
    if "error" in facts and not facts.get("checks"):
        table.add_row("(part)", "[red]no[/]", facts["error"])
    for check in facts.get("checks", []):
        ok = check.get("ok")
        table.add_row(str(check.get("name")), "[green]yes[/]" if ok else ("[red]no[/]" if ok is False else "—"),
                      str(check.get("detail") or ""))
    con.print(table)
