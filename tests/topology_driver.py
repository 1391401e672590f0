"""Test driver: open a topology, start a long-lived child in each namespace, say "ready", sleep.

Prints one line `ready <json>` (the topology's facts plus the children's PIDs) once everything
is up, then sleeps until a signal arrives. Exit status: the exception's exit code (130 when
interrupted by SIGINT or SIGTERM), 0 if the sleep ever ends.

    python tests/topology_driver.py [netns|loopback] [sleep_s] [bare]

With `bare` the driver does not call signals_as_interrupt(): the topology's own SIGTERM guard
must still turn SIGTERM into Interrupted.
"""
from __future__ import annotations

import contextlib
import json
import sys
import time

from netobs.errors import NetobsError
from netobs.topology import open_topology, signals_as_interrupt

CHILD = [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"]


def main() -> int:
    kind = sys.argv[1] if len(sys.argv) > 1 else "netns"
    sleep_s = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    bare = "bare" in sys.argv[3:]
    try:
        with (contextlib.nullcontext() if bare else signals_as_interrupt()), open_topology(kind) as topo:
            children = {role: topo.spawn(role, CHILD).pid for role in ("server", "client")}
            print("ready", json.dumps({**topo.facts(), "child_pids": children}), flush=True)
            time.sleep(sleep_s)
    except NetobsError as exc:
        print(f"driver: {exc.message}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
