"""`netobs remote-serve`: the remote end of `--remote HOST` (hidden from --help; netobs's
local side starts it through ssh). The work is netobs.remote_side's; this prints it:
`--hello` one JSON object; `--session`: per point requested on stdin, `ready <port>` once the
server worker listens, then one JSON object (netobs.remote_side.session)."""
from __future__ import annotations

import json
import sys

import click

from netobs.errors import UsageError
from netobs.jsonsafe import jsonable


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@click.command(hidden=True)
@click.option("--hello", is_flag=True, help="Print version, protocol and host facts as JSON, and exit.")
@click.option("--addr", default=None, help="With --hello: the data address (its interface's facts).")
@click.option("--session", is_flag=True, help="Serve the points requested on stdin, one JSON line each.")
def command(hello, addr, session):
    """The server side of remote points (run by netobs over ssh)."""
    from netobs import remote_side

    if hello:
        _say(json.dumps(jsonable(remote_side.hello(addr))))
        return
    if not session:
        raise UsageError("remote-serve needs --hello or --session", fix="netobs sweep --remote HOST (it starts it)")
    remote_side.session(_say)
