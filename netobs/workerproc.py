"""One copy worker as a process: `python -m netobs.workerproc {serve,send} ...` (DESIGN.md,
"Worker process protocol"). Used inside namespaces and under `perf stat`.

Its flags are the parameter table's (netobs.params: `PARAMS.worker_parser`), the same table
the runner builds their values from (`PARAMS.worker_argv`), so the two cannot drift.
Prints one JSON object on stdout. Exit status: 0 ok; 2 bad parameters (one line on stderr);
1 runtime failure (one line on stderr, `what: cause`); 130 interrupted (SIGINT/SIGTERM stop
the run within a second; the stats are still printed, with "interrupted": true).
"""
from __future__ import annotations

import json
import os
import select
import sys
from dataclasses import replace

from netobs.errors import EXIT_INTERRUPTED, Interrupted, NetobsError, UsageError
from netobs.interrupt import signals_as_interrupt
from netobs.params import PARAMS

START_TIMEOUT_S = 60.0


def _serve(a: dict) -> dict:
    from netobs.native import Server, ServerConfig

    srv = Server(ServerConfig(**PARAMS.config_values("server", a)))
    port = srv.listen()
    ready_fd = a["ready_fd"]
    if ready_fd is not None:
        try:
            os.write(ready_fd, f"ready {port}\n".encode())
            os.close(ready_fd)
        except OSError as exc:
            srv.close()
            raise UsageError(f"cannot write to --ready-fd {ready_fd}", exc.strerror,
                             "a file descriptor this process inherited") from None
    return srv.serve()


def _send(a: dict) -> dict:
    from netobs.native import ClientConfig, run_client
    from netobs.perf import open_control_fifos

    if (a["perf_ctl"] is None) != (a["perf_ack"] is None):
        raise UsageError("--perf-ctl and --perf-ack go together", fix="both fifos given to perf's --control")
    cfg = ClientConfig(**PARAMS.config_values("client", a))
    if a["start_fd"] is not None:  # parameters are checked above, before the wait
        cfg = replace(cfg, port=_wait_start(a["start_fd"]) or cfg.port)
    fds: tuple[int, ...] = ()
    if a["perf_ctl"]:
        fds = open_control_fifos(a["perf_ctl"], a["perf_ack"])
        cfg = replace(cfg, ctl_fd=fds[0], ack_fd=fds[1])
    try:
        return run_client(cfg)
    finally:
        for fd in fds:
            os.close(fd)


def _wait_start(fd: int) -> int | None:
    """Block (bounded) until the runner says `go [PORT]` on `fd` (the port, when the server
    picked a free one, overrides --port). EOF means the runner gave up."""
    ready, _, _ = select.select([fd], [], [], START_TIMEOUT_S)
    line = os.read(fd, 64) if ready else b""
    os.close(fd)
    if not line.startswith(b"go"):
        raise NetobsError("the client was never told to start",
                          cause="the runner closed --start-fd" if ready else f"no go in {START_TIMEOUT_S:g} s",
                          fix="leave --start-fd out when running the worker by hand (it is for netobs's runner)")
    words = line.split()
    return int(words[1]) if len(words) > 1 else None


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    try:
        with signals_as_interrupt():
            parser = PARAMS.worker_parser("python -m netobs.workerproc", __doc__.split("\n\n")[0])
            a = vars(parser.parse_args(argv))
            _emit(_serve(a) if a["command"] == "serve" else _send(a))
        return 0
    except Interrupted as exc:
        stats = getattr(exc, "stats", None) or {"pid": os.getpid()}
        stats["interrupted"] = True
        _emit(stats)
        print(f"netobs: error: {exc.message}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except NetobsError as exc:
        print(f"netobs: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # a signal before the handlers were installed
        _emit({"pid": os.getpid(), "interrupted": True})
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
