"""One copy worker as a process: `python -m netobs.worker {serve,send} ...` (DESIGN.md,
"Worker process protocol"). Used inside namespaces and under `perf stat`.

Prints one JSON object on stdout. Exit status: 0 ok; 2 bad parameters (one line on stderr);
1 runtime failure (one line on stderr, `what: cause`); 130 interrupted (SIGINT/SIGTERM stop
the run within a second; the stats are still printed, with "interrupted": true).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from netobs.errors import EXIT_INTERRUPTED, Interrupted, NetobsError, UsageError
from netobs.interrupt import signals_as_interrupt


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (exit 2), like every netobs error."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}", fix=f"{self.prog} --help")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m netobs.worker", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="role", required=True, parser_class=_Parser)

    s = sub.add_parser("serve", help="receive: accept N connections, count bytes, print stats")
    s.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=0, help="port; 0 = any free port (default)")
    s.add_argument("--connections", type=int, default=1, help="end when this many connections have closed")
    s.add_argument("--recv-copy", action="store_true", help="copy each message into 8 separate fields")
    s.add_argument("--verify", action="store_true", help="check the per-message pattern (needs --msg-size)")
    s.add_argument("--msg-size", type=int, default=0, help="message size the client sends")
    s.add_argument("--timeout", type=float, default=0.0, help="end after T seconds (0 = no limit)")
    s.add_argument("--rcvbuf", type=int, default=0, help="SO_RCVBUF in bytes (0 = default)")
    s.add_argument("--ready-fd", type=int, default=None, help="write `ready <port>\\n` here once listening")

    c = sub.add_parser("send", help="send: N threads, one connection each, print stats")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=5201)
    c.add_argument("--impl", default="one_copy", help="two_copy, one_copy or zero_copy")
    c.add_argument("--msg-size", type=int, default=65536)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--duration", type=float, default=2.0, help="measured window in seconds")
    c.add_argument("--warmup", type=float, default=0.5, help="seconds before the window")
    c.add_argument("--count", type=int, default=0, help="send exactly M messages per thread (no warm-up)")
    c.add_argument("--start-fd", type=int, default=None,
                   help="wait for a line on this fd before connecting (lets the runner start the client "
                        "while the server comes up, and attach its tracer before the first byte)")
    c.add_argument("--verify", action="store_true", help="stamp every field with its message number")
    c.add_argument("--nodelay", action="store_true", help="set TCP_NODELAY")
    c.add_argument("--sndbuf", type=int, default=0, help="SO_SNDBUF in bytes (0 = default)")
    c.add_argument("--zc-pool", type=int, default=0, help="zero_copy buffers per thread (0 = auto)")
    c.add_argument("--connect-timeout", type=float, default=3.0)
    c.add_argument("--corrupt-seq", type=int, default=-1, help=argparse.SUPPRESS)  # tests: break message K
    c.add_argument("--perf-ctl", default=None, help="perf --control fifo to write enable/disable to")
    c.add_argument("--perf-ack", default=None, help="perf's ack fifo")
    return p


def _serve(a) -> dict:
    from netobs.workers import Server, ServerConfig

    cfg = ServerConfig(bind=a.bind, port=a.port, connections=a.connections, recv_copy=a.recv_copy,
                       verify=a.verify, msg_size=a.msg_size, timeout=a.timeout, rcvbuf=a.rcvbuf)
    srv = Server(cfg)
    port = srv.listen()
    if a.ready_fd is not None:
        try:
            os.write(a.ready_fd, f"ready {port}\n".encode())
            os.close(a.ready_fd)
        except OSError as exc:
            srv.close()
            raise UsageError(f"cannot write to --ready-fd {a.ready_fd}", exc.strerror,
                             "a file descriptor this process inherited") from None
    return srv.serve()


def _send(a) -> dict:
    from dataclasses import replace

    from netobs.perf import open_control_fifos
    from netobs.workers import ClientConfig, run_client

    if (a.perf_ctl is None) != (a.perf_ack is None):
        raise UsageError("--perf-ctl and --perf-ack go together", fix="both fifos given to perf's --control")
    cfg = ClientConfig(host=a.host, port=a.port, impl=a.impl, msg_size=a.msg_size, threads=a.threads,
                       duration=a.duration, warmup=a.warmup, count=a.count, verify=a.verify,
                       nodelay=a.nodelay, sndbuf=a.sndbuf, zc_pool=a.zc_pool,
                       connect_timeout=a.connect_timeout, corrupt_seq=a.corrupt_seq)
    if a.start_fd is not None:  # parameters are checked above, before the wait
        cfg = replace(cfg, port=_wait_start(a.start_fd) or cfg.port)
    fds: tuple[int, ...] = ()
    if a.perf_ctl:
        fds = open_control_fifos(a.perf_ctl, a.perf_ack)
        cfg = replace(cfg, ctl_fd=fds[0], ack_fd=fds[1])
    try:
        return run_client(cfg)
    finally:
        for fd in fds:
            os.close(fd)


START_TIMEOUT_S = 60.0


def _wait_start(fd: int) -> int | None:
    """Block (bounded) until the runner says `go [PORT]` on `fd` (the port, when the server
    picked a free one, overrides --port). EOF means the runner gave up."""
    import select

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
            a = _parser().parse_args(argv)
            _emit(_serve(a) if a.role == "serve" else _send(a))
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

