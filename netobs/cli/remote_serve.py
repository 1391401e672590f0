"""`netobs remote-serve`: the remote end of `--remote HOST` (hidden from --help; netobs's
local side starts it through ssh). The work is netobs.remote_side's; this prints it:
`--hello` one JSON object; otherwise `ready <port>` as the first stdout line once the server
worker listens, then one JSON object as the last line."""
from __future__ import annotations

import json
import sys

import click

from netobs.errors import NetobsError
from netobs.jsonsafe import jsonable


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@click.command(hidden=True, context_settings={"ignore_unknown_options": True})
@click.option("--hello", is_flag=True, help="Print version, protocol and host facts as JSON, and exit.")
@click.option("--addr", default=None, help="With --hello: the data address (its interface's facts).")
@click.option("--perf-events", default="", help="Run the worker under perf stat counting these (comma-separated).")
@click.option("--trace", is_flag=True, help="The tracer on the worker.")
@click.option("--profile", is_flag=True, help="The profiler on the worker.")
@click.option("--profile-hz", type=int, default=999, show_default=True)
@click.argument("worker_args", nargs=-1, type=click.UNPROCESSED)
def command(hello, addr, perf_events, trace, profile, profile_hz, worker_args):
    """The server side of a remote point (run by netobs over ssh)."""
    from netobs import remote_side

    if hello:
        _say(json.dumps(jsonable(remote_side.hello(addr))))
        return
    events = [e for e in perf_events.split(",") if e] or None
    code, result = remote_side.serve(list(worker_args), events, trace, profile, profile_hz,
                                     on_ready=lambda port: _say(f"ready {port}"))
    _say(json.dumps(jsonable(result)))
    if code:
        error = NetobsError(result.get("error") or f"exit status {code}")
        error.exit_code = code
        raise error
