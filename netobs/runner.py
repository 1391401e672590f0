"""One point end to end: server and client processes in a topology, `perf stat` around the
client (and optionally the server), the tracer on their PIDs -> one result dict (DESIGN.md).

What the point counts comes from its RunSpec (`perf`, `events`, `perf_server`, `trace`); the
workers' command lines are the parameter table's (`PARAMS.worker_argv`: every parameter a
worker takes from the point is passed as it is). The files of points/<id>/ are written with
the store's atomic writer.

The runner raises on what makes the point meaningless (a worker that failed or hung) with the
worker's own message; the sweep records that as a failed point and goes on.
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from netobs import placement, placement_recorder
from netobs.errors import EXIT_USAGE, NetobsError, UsageError
from netobs.figures import ROLES
from netobs.files import atomic_write, write_json
from netobs.interrupt import raise_if_interrupted
from netobs.params import PARAMS
from netobs.spec import RunSpec

READY_TIMEOUT_S = 10.0
# a remote server: ssh and the remote's Python start first; with --trace/--profile it also
# compiles its BPF programs before it starts the worker (below the client's 60 s wait for `go`)
REMOTE_READY_TIMEOUT_S = 30.0
REMOTE_TRACING_READY_TIMEOUT_S = 55.0
# beyond warm-up + duration: process start-up, connection set-up, draining completions
FINISH_SLACK_S = 20.0
REMOTE_END_S = 10.0   # a remote server's end after its client's: ssh, the remote's last reads
# The one definition of the worker command (the bench starts workers with it too).
WORKER = [sys.executable, "-m", "netobs.workerproc"]


class PointFailed(NetobsError):
    """A point could not be measured; the message says which side failed and why."""

    def __init__(self, what: str, cause: str | None = None,
                 fix: str | None = "reading the workers' own output: client.stderr and server.stderr in the "
                                   "point's directory (`netobs run --keep DIR` keeps them)"):
        super().__init__(what, cause, fix)


def _read_ready(fd: int, proc: subprocess.Popen, timeout: float, explain=None) -> int:
    """Wait for the server's `ready <port>` line on its readiness pipe (never a sleep).
    `explain(exit status, stderr)`: the error a failed start means, where the caller knows
    better (ssh's own failures), or None."""
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 256)
            if not chunk:  # the server closed the pipe without saying ready: it failed
                break
            buf += chunk
            if b"\n" in buf:
                line = buf.split(b"\n", 1)[0].decode()
                if line.startswith("ready"):
                    return int(line.split()[1])
        if proc.poll() is not None:
            break
    try:
        code = proc.wait(timeout=2)  # it closed the pipe or exited: how did it end?
    except subprocess.TimeoutExpired:
        code = None
    known = explain(code, _text_of(proc)) if explain is not None else None
    if known is not None:
        raise known
    if code == EXIT_USAGE:  # the worker refused its parameters (e.g. the port is in use): the user's to fix
        raise UsageError(_tail_of(proc) or "the server refused its parameters")
    raise PointFailed("the server did not become ready", cause=_tail_of(proc) or f"no answer in {timeout:g} s")


def _tail_of(proc: subprocess.Popen) -> str | None:
    path = getattr(proc, "_netobs_stderr", None)
    if path and Path(path).exists():
        lines = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1].removeprefix("netobs: error: ")
    return None


def _text_of(proc: subprocess.Popen) -> str:
    path = getattr(proc, "_netobs_stderr", None)
    return Path(path).read_text(errors="replace") if path and Path(path).exists() else ""


def _json_out(proc: subprocess.Popen, out: bytes, who: str) -> dict:
    text = out.decode(errors="replace").strip()
    try:
        return json.loads(text.splitlines()[-1]) if text else {}
    except ValueError:
        raise PointFailed(f"the {who} printed no result", cause=_tail_of(proc) or text[-200:]) from None


def _spawn(topology, role: str, argv: list[str], stderr_path: Path, **kw) -> subprocess.Popen:
    with open(stderr_path, "wb") as err:
        proc = topology.spawn(role, argv, stdout=subprocess.PIPE, stderr=err, **kw)
    proc._netobs_stderr = stderr_path
    return proc


def _finish(proc: subprocess.Popen, timeout: float, who: str) -> bytes:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise PointFailed(f"the {who} did not finish", cause=f"still running {timeout:g} s after it should have ended") from None
    return out


def open_observers(stack, spec) -> dict:
    """The kernel observers a run's points need, opened once for all of them on `stack` (a
    contextlib.ExitStack): {"tracer": Tracer or None, "profiler": Profiler or None}."""
    out = {"tracer": None, "profiler": None}
    if spec.trace:
        from netobs.tracer import Tracer
        out["tracer"] = stack.enter_context(Tracer())
    if spec.profile:
        from netobs.profiler import Profiler
        out["profiler"] = stack.enter_context(Profiler(hz=spec.profile_hz))
    return out


def run_point(spec: RunSpec, topology, point_dir: Path, tracer=None, profiler=None) -> dict:
    """Measure one point; `tracer` (an open netobs.tracer.Tracer) exactly when `spec.trace`,
    `profiler` (an open netobs.profiler.Profiler) exactly when `spec.profile`."""
    from netobs import netstat
    from netobs.perf import PerfStat

    if spec.trace != (tracer is not None):
        raise ValueError(f"spec.trace is {spec.trace} but {'a' if tracer is not None else 'no'} tracer was given")
    if spec.profile != (profiler is not None):
        raise ValueError(f"spec.profile is {spec.profile} but {'a' if profiler is not None else 'no'} profiler was given")
    point_dir = Path(point_dir)
    # remote: the server is `netobs remote-serve` on the other host, over ssh; its ready line
    # and its result come on ssh's stdout, and it lives while ssh's stdin (`hold`) is open
    remote = topology.kind == "remote"
    plan = placement.of_spec(spec)   # each role's CPU list, passed as the workers' --cpus
    server_values = {**PARAMS.worker_values("server", spec), "bind": topology.server_addr, "cpus": plan.server or None,
                     "connections": spec.threads, "timeout": spec.warmup + spec.duration + FINISH_SLACK_S}
    events = list(spec.events) if spec.perf else None
    rfd = wfd = hold_r = hold_w = None
    server_perf = None
    if remote:
        server_argv = topology.server_argv(_remote_args(spec, events) + PARAMS.worker_argv("server", server_values))
        hold_r, hold_w = os.pipe()
    else:
        rfd, wfd = os.pipe()
        server_argv = WORKER + PARAMS.worker_argv("server", {**server_values, "ready_fd": wfd})
        # the server cannot tell when the client's window opens: its counts cover its whole life
        server_perf = (PerfStat(events, point_dir, prefix="perf-server", window=False)
                       if (events and spec.perf_server) else None)
        if server_perf:
            server_argv = server_perf.argv(server_argv)
    client_perf = PerfStat(events, point_dir) if events else None

    link_before = topology.link_stats()
    netstat_before = topology.netstat()
    server = client = None
    recorder = placement_recorder.Recorder()
    start_r, start_w = os.pipe()
    try:
        try:
            if remote:
                server = _spawn(topology, "server", server_argv, point_dir / "server.stderr", stdin=hold_r)
                rfd = os.dup(server.stdout.fileno())
            else:
                server = _spawn(topology, "server", server_argv, point_dir / "server.stderr", pass_fds=(wfd,))
        finally:
            for fd in (wfd, hold_r):
                if fd is not None:
                    os.close(fd)
        # The client starts (Python, perf) while the server comes up, then waits for `go`:
        # start-up overlaps, and the tracer is on both PIDs before the first byte is sent.
        # (the port comes with `go`: with --port 0 only the server knows it once it listens)
        client_values = {**PARAMS.worker_values("client", spec), "host": topology.server_addr, "start_fd": start_r,
                         "cpus": plan.client or None}
        if client_perf:
            client_values.update(client_perf.worker_values)
        client_argv = WORKER + PARAMS.worker_argv("client", client_values)
        if client_perf:
            client_argv = client_perf.argv(client_argv)
        try:
            client = _spawn(topology, "client", client_argv, point_dir / "client.stderr", pass_fds=(start_r,))
        finally:
            os.close(start_r)
        if remote:
            port = _read_ready(rfd, server, REMOTE_TRACING_READY_TIMEOUT_S if (spec.trace or spec.profile)
                               else REMOTE_READY_TIMEOUT_S, explain=topology.explain)
        else:
            port = _read_ready(rfd, server, READY_TIMEOUT_S)
        here = {"client": client.pid} if remote else {"client": client.pid, "server": server.pid}
        if tracer is not None:
            tracer.start_point(here)
        if profiler is not None:   # perf stat wraps the client: its child is the worker
            profiler.start_point(here, wrappers=("client",) if client_perf else ())
        recorder.start(here, wrappers=("client",) if client_perf else (), asked={r: plan.cpus(r) for r in ROLES})
        try:
            os.write(start_w, f"go {port}\n".encode())
        except BrokenPipeError:
            pass  # the client already died (perf refused it, say): its exit status tells why

        raise_if_interrupted()   # a Ctrl-C lost while the workers were forked ends the point now
        budget = spec.warmup + spec.duration + FINISH_SLACK_S
        client_out = _finish(client, budget, "client")
        if client.returncode != 0 and remote:   # the remote server's end says more (killed, dropped)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=REMOTE_END_S)
            if server.returncode not in (0, None):
                raise _remote_failure(topology, server)
        if client.returncode != 0:  # its error is the point's; the server (killed below) would only wait
            raise PointFailed("the client failed", cause=_tail_of(client) or f"exit status {client.returncode}")
        # (the remote side reads its tracer, profiler and perf once its worker has ended)
        server_out = _finish(server, 10.0 + (REMOTE_END_S + (30.0 if spec.trace or spec.profile else 0.0)
                                             if remote else 0.0), "server")
        trace = tracer.stop_point() if tracer is not None else None
        if profiler is not None:
            profiler.freeze()
    finally:
        recorder.stop()   # sampling ends with the workers
        if rfd is not None:
            os.close(rfd)
        if hold_w is not None:
            os.close(hold_w)   # the remote side ends (and ends its worker) when its stdin closes
        os.close(start_w)  # a client still waiting for `go` gives up
        for perf in (client_perf, server_perf):
            if perf is not None:
                perf.cleanup()
        for proc in (client, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    if server.returncode != 0:
        if remote:
            raise _remote_failure(topology, server)
        raise PointFailed("the server failed", cause=_tail_of(server) or f"exit status {server.returncode}")
    c = _json_out(client, client_out, "client")
    s = _json_out(server, server_out, "server")
    link_after = topology.link_stats()
    netstat_after = topology.netstat()
    far = None
    if remote:   # the remote side's report: the worker's stats and what was observed there
        far, s = s, s.get("worker") or {}
        for before, after, key in ((link_before, link_after, "link"), (netstat_before, netstat_after, "netstat")):
            if (far.get(key) or {}).get("before") is not None and far[key].get("after") is not None:
                before["server"], after["server"] = far[key]["before"], far[key]["after"]
            elif key == "netstat":
                before["server"] = after["server"] = {"counters": {}, "missing": {}}
    write_json(point_dir / "client.json", c)
    write_json(point_dir / "server.json", s)

    result = {
        "strategy": spec.strategy, "msg_size": spec.msg_size, "threads": spec.threads, "repeat": spec.repeat,
        "status": "ok", "topology": topology.kind,
        "duration_s": spec.duration, "warmup_s": spec.warmup, "window_s": c.get("window_s"),
        "bytes_sent": c.get("bytes_sent"), "bytes_sent_total": c.get("bytes_sent_total"),
        "bytes_received": s.get("bytes_received"), "messages": c.get("messages"),
        "messages_total": c.get("messages_total"),
        "throughput_gbps": c.get("throughput_gbps"), "goodput_gbps": s.get("goodput_gbps"),
        "latency_us": c.get("latency_us"), "cpu": c.get("cpu"), "server_cpu": s.get("cpu"),
        "zerocopy": c.get("zerocopy"), "recv": s.get("recv"), "rx_zerocopy": s.get("rx_zerocopy"),
        "io_uring": c.get("io_uring"), "pages": c.get("pages"), "verify_errors": (c.get("verify_errors") or 0) + (s.get("verify_errors") or 0),
        "link": _link_delta(link_before, link_after),
        "pids": {"client": c.get("pid"), "server": s.get("pid")},
        "params": spec.to_dict(),   # every parameter of the point (iperf3 -J echoes its test's)
        "placement": {**plan.to_dict(spec.threads), "measured": recorder.stop(_window(c, s, remote))},
    }
    if client_perf:
        result["perf"] = client_perf.result(window_s=c.get("window_s"))
    if server_perf:
        result["server_perf"] = server_perf.result()
    if far is not None and events and spec.perf_server:
        result["server_perf"] = far.get("perf") or {"events": {}, "skipped": (far.get("skipped") or {}).get("perf")}
        raw = far.get("perf_raw") or {}
        if raw.get("name") and "/" not in raw["name"]:   # perf's own output, kept here as for a local server
            atomic_write(point_dir / raw["name"], raw.get("text") or "")
            result["server_perf"]["raw_path"] = str((point_dir / raw["name"]).resolve())
    result["netstat"] = {r: netstat.delta(netstat_before[r], netstat_after[r]) for r in ROLES}
    gaps = {r: m for r in ROLES if (m := netstat.missing(netstat_before[r], netstat_after[r]))}
    if gaps:
        result["netstat_missing"] = gaps
    if far is not None:
        result["remote"] = {"interface": far.get("interface"), "skipped": far.get("skipped") or {}}
        trace = _merge_remote_trace(trace, far)
    if trace is not None:
        result["trace"] = trace
        write_json(point_dir / "trace.json", trace)
    if profiler is not None:
        # the profile covers the workers' whole lives: per GB of what they moved in them
        result["profile"] = profiler.stop_point(point_dir, {"client": c.get("bytes_sent_total"),
                                                            "server": s.get("bytes_received")})
        if far is not None:
            _merge_remote_profile(result["profile"], far, point_dir)
    if result["verify_errors"]:
        raise PointFailed("verification failed", cause=f"{result['verify_errors']} corrupted messages")
    write_json(point_dir / "result.json", result)
    return result


def _window(c: dict, s: dict, remote: bool) -> tuple[float, float] | None:
    """The measured window on CLOCK_MONOTONIC: it ends with the server's last byte (the client
    stops sending when it closes) and lasts the client's window_s. None where the clocks are
    not one (a remote server) or there is no window (--count)."""
    end, span = s.get("last_byte_s"), c.get("window_s")
    return None if remote or not end or not span else (end - span, end)


def _remote_args(spec, events: list[str] | None) -> list[str]:
    """`netobs remote-serve`'s own options for this point (the worker's flags follow)."""
    args = []
    if events and spec.perf_server:
        args += ["--perf-events", ",".join(events)]
    if spec.trace:
        args.append("--trace")
    if spec.profile:
        args += ["--profile", "--profile-hz", str(spec.profile_hz)]
    return args + ["--"]


def _remote_failure(topology, server: subprocess.Popen) -> NetobsError:
    """Why the remote server's ssh ended badly: ssh's own failure, or the remote's message."""
    known = topology.explain(server.returncode, _text_of(server))
    if known is not None:
        return PointFailed(f"the remote server failed: {known.what}", known.cause, known.fix)
    return PointFailed("the remote server failed", cause=_tail_of(server) or f"exit status {server.returncode}")


def _merge_remote_trace(trace: dict | None, far: dict) -> dict | None:
    """The local trace (the client's) with the server's figures from the remote's tracer."""
    if trace is None:
        return None
    theirs = far.get("trace")
    if theirs is None:   # not traced there: every server figure missing, with the reason
        why = (far.get("skipped") or {}).get("trace") or "the remote side returned no trace"
        trace["server"] = {f: None for f in trace.get("client") or {}}
        trace["server_missing"] = why
        (trace.get("histograms") or {}).pop("server", None)
        return trace
    trace["server"] = theirs.get("server") or {}
    trace.setdefault("histograms", {})["server"] = (theirs.get("histograms") or {}).get("server")
    trace["lost_events"] = (trace.get("lost_events") or 0) + (theirs.get("lost_events") or 0)
    trace["server_plan"] = theirs.get("plan")
    return trace


def _merge_remote_profile(profile: dict, far: dict, point_dir: Path) -> None:
    """The server's role of the profile from the remote's profiler; its folded stacks written here."""
    theirs = far.get("profile")
    if theirs is None:
        why = (far.get("skipped") or {}).get("profile") or "the remote side returned no profile"
        profile["server"] = {"on_cpu": {"samples": None, "missing": why}, "off_cpu": {"switches": None, "missing": why}}
        profile.setdefault("files", {})["server"] = {}
        return
    profile["server"] = theirs.get("server") or {}
    profile["server_plan"] = theirs.get("plan")
    for name, text in (far.get("folded") or {}).items():
        if "/" not in name and name.endswith(".folded"):
            atomic_write(point_dir / name, text)
    profile.setdefault("files", {})["server"] = (theirs.get("files") or {}).get("server") or {}


def _link_delta(before: dict, after: dict) -> dict:
    out = {}
    for role, counters in (after or {}).items():
        if counters is None:
            continue
        prev = (before or {}).get(role) or {}
        out[role] = {k: v - prev.get(k, 0) for k, v in counters.items() if isinstance(v, (int, float))}
    return out


def failed_result(spec: RunSpec, topology_kind: str, error: Exception) -> dict:
    """The row a failed point leaves in the store."""
    msg = error.message if isinstance(error, NetobsError) else f"{type(error).__name__}: {error}"
    return {"strategy": spec.strategy, "msg_size": spec.msg_size, "threads": spec.threads, "repeat": spec.repeat,
            "status": "failed", "error": msg, "topology": topology_kind,
            "duration_s": spec.duration, "warmup_s": spec.warmup, "params": spec.to_dict()}   # (its shape: the key)
