"""A known workload in plain Python sockets, for the tracer's tests.

    python tests/trace_driver.py serve                  # prints "port N", receives until EOF
    python tests/trace_driver.py send --port N --count 23 --size 4096 --mode sendmsg [--go]

`serve` prints one JSON line {"bytes", "recv_calls"} at the end; `send` prints
{"bytes", "send_calls", "zc_sends", "errqueue_reads", "completions", "copied"}. With --go the
sender waits for a line on stdin before connecting, so a test can register it first
(--connect-first: after connecting and setting its socket options).
Modes: `send` (send() of one buffer), `sendmsg` (8-field iovec), `zerocopy` (SO_ZEROCOPY +
sendmsg(MSG_ZEROCOPY), then completions drained from the error queue until all are in).
"""
from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import sys
import time

SO_ZEROCOPY = 60
MSG_ZEROCOPY = 0x4000000
SO_EE_ORIGIN_ZEROCOPY = 5
SO_EE_CODE_ZEROCOPY_COPIED = 1


def serve() -> dict:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    print(f"port {ls.getsockname()[1]}", flush=True)
    conn, _ = ls.accept()
    total = calls = 0
    while True:
        data = conn.recv(1 << 20)
        calls += 1
        if not data:
            break
        total += len(data)
    conn.close()
    return {"bytes": total, "recv_calls": calls}


def _drain(sock: socket.socket, out: dict, want: int, timeout: float = 5.0) -> None:
    """Read zero-copy completions until notifications for `want` sends arrived."""
    deadline = time.monotonic() + timeout
    done = 0
    while done < want and time.monotonic() < deadline:
        p = select.poll()
        p.register(sock, select.POLLERR)
        if not p.poll(100):
            continue
        _, anc, _, _ = sock.recvmsg(0, 256, socket.MSG_ERRQUEUE)
        out["errqueue_reads"] += 1
        for level, typ, data in anc:
            ee_errno, origin, _type, code, _pad, lo, hi = struct.unpack("=IBBBBII", data[:16])
            if origin != SO_EE_ORIGIN_ZEROCOPY:
                continue
            n = hi - lo + 1
            done += n
            out["completions"] += n
            if code & SO_EE_CODE_ZEROCOPY_COPIED:
                out["copied"] += n
    if done < want:
        raise SystemExit(f"only {done} of {want} zero-copy completions arrived")


def send(port: int, count: int, size: int, mode: str, go: bool, connect_first: bool = False) -> dict:
    if go and not connect_first:
        sys.stdin.readline()
    sock = socket.create_connection(("127.0.0.1", port))
    out = {"bytes": 0, "send_calls": 0, "zc_sends": 0, "errqueue_reads": 0, "completions": 0, "copied": 0}
    if mode == "zerocopy":
        sock.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
    if go and connect_first:
        sys.stdin.readline()
    field = size // 8
    for i in range(count):
        buf = memoryview(bytes([i % 251]) * size)
        while len(buf):
            if mode == "send":
                n = sock.send(buf)
            elif mode == "sendmsg":
                n = sock.sendmsg([buf[k:k + field] for k in range(0, len(buf), field)])
            else:
                n = sock.sendmsg([buf], [], MSG_ZEROCOPY)
                out["zc_sends"] += 1
            out["send_calls"] += 1
            out["bytes"] += n
            buf = buf[n:]
    if mode == "zerocopy":
        _drain(sock, out, out["zc_sends"])
    sock.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve")
    s = sub.add_parser("send")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--count", type=int, default=23)
    s.add_argument("--size", type=int, default=4096)
    s.add_argument("--mode", choices=("send", "sendmsg", "zerocopy"), default="send")
    s.add_argument("--go", action="store_true")
    s.add_argument("--connect-first", action="store_true",
                   help="with --go: connect (and set SO_ZEROCOPY) before waiting")
    a = ap.parse_args()
    res = serve() if a.cmd == "serve" else send(a.port, a.count, a.size, a.mode, a.go, a.connect_first)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
