"""Stop a worker with SIGTERM at varied moments, many times, in one process (run by
tests/test_workers.py as a subprocess, so a crash is an exit status, not a dead test run).

    python tests/stop_stress.py ROLE SECONDS STRATEGY...
    ROLE: client, server (stopped by SIGTERM), free-client, free-server (freed while running)

Each round runs one server and one client on loopback in this process. client/server: the
ROLE's side in the main thread under `signals_as_interrupt` (as `python -m netobs.workerproc`
runs it), the other in the background, and a timer thread sends this process SIGTERM after a
delay drawn from 0..30 ms (some before the run starts, some while it connects, most while it
sends): the stop may land anywhere in the main thread's Python code around the C call.
free-*: the ROLE's C run goes on in a background thread and the main thread calls
nob_*_free on it after such a delay: the free must stop the run and wait for its end.
Either way the C side must never be freed under a thread still using it. Prints one JSON
line (rounds per strategy); exit 1 with a line on stderr when a free returned too early.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time

from netobs.errors import Interrupted
from netobs.interrupt import signals_as_interrupt
from netobs.native import Client, ClientConfig, Server, ServerConfig


def _kill_after(delay: float) -> threading.Timer:
    t = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGTERM))
    t.start()
    return t


def _round(role: str, strategy: str, delay: float) -> None:
    timer = None
    try:
        with signals_as_interrupt():
            if role == "client":
                srv = Server(ServerConfig(connections=1, timeout=10))
                port = srv.start()
                try:
                    timer = _kill_after(delay)
                    Client(ClientConfig(port=port, strategy=strategy, msg_size=65536,
                                        duration=5, warmup=0)).run()
                finally:
                    srv.stop()
            else:
                srv = Server(ServerConfig(connections=1, timeout=10))
                port = srv.listen()
                cli = Client(ClientConfig(port=port, strategy=strategy, msg_size=65536, duration=5, warmup=0))
                cli.start()
                try:
                    timer = _kill_after(delay)
                    srv.serve()
                finally:
                    cli.stop()
                    try:
                        cli.wait(timeout=10)
                    except Exception:  # noqa: BLE001 - the server went away under it: expected
                        pass
    except Interrupted:
        pass
    finally:
        if timer is not None:
            timer.join()
    # a signal that came after the block ended: the default handler is back, so swallow it here
    time.sleep(0)


def _free_round(role: str, strategy: str, delay: float) -> str | None:
    """Free the ROLE's C object while its run goes on; what went wrong, or None."""
    srv = Server(ServerConfig(connections=1, timeout=10))
    port = srv.start()
    cli = Client(ClientConfig(port=port, strategy=strategy, msg_size=65536, duration=5, warmup=0))
    cli.start()
    time.sleep(delay)
    obj = cli if role == "free-client" else srv
    free = obj._lib.nob_client_free if obj is cli else obj._lib.nob_server_free
    t0 = time.monotonic()
    free(obj._handle)
    took = time.monotonic() - t0
    obj._handle = None
    problem = None
    if not obj._running.done.wait(1.0):  # the run returned before the free did: done follows at once
        problem = f"{role} {strategy}: the run still went on after its free returned"
    elif took > 5.0:
        problem = f"{role} {strategy}: the free took {took:.1f} s"
    other = srv if obj is cli else cli
    other.stop()
    try:
        other.wait(timeout=10)
    except Exception:  # noqa: BLE001 - its peer went away under it: expected
        pass
    return problem


def main() -> int:
    role, seconds, strategies = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    rng = random.Random(int(os.environ.get("STOP_STRESS_SEED", "0")) or None)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # outside a round: a late timer is harmless
    rounds = dict.fromkeys(strategies, 0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s in strategies:
            if role.startswith("free-"):
                problem = _free_round(role, s, rng.uniform(0.0, 0.03))
                if problem:
                    print(problem, file=sys.stderr)
                    return 1
            else:
                _round(role, s, rng.uniform(0.0, 0.03))
            rounds[s] += 1
    print(json.dumps(rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
