"""The server half of a point, per topology kind, behind one interface:

    server.spawn(spec, bind, files, observers)   start it (wrapped by the observers here)
    server.ready()    -> the port it listens on (its `ready <port>` line; never a sleep)
    server.pids()     -> {role: pid} of its processes on this host (for the observers)
    server.finish(client_failed) -> its worker's report (None where the client failed and
                         the server has nothing to add); raises PointFailed with its reason
    server.figures()  -> what was observed at its end ({observer name: collected figures},
                         the reasons of those it could not have, result keys of its own)
    server.cleanup()  after every point; server.close() once at the end

`LocalServer`: the worker as a process here, spawned in the topology's server place (its
namespace). `RemoteServer`: `netobs remote-serve --session` over ssh, one session for a
sweep; each point's request goes down its stdin, the ready line and the result come up its
stdout; at the remote end the *same* `LocalServer` runs the worker under that end's observers
(netobs.remote_side), which are opened once per session (its BPF programs compiled once).
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netobs.errors import EXIT_USAGE, NetobsError, UsageError
from netobs.params import PARAMS

READY_TIMEOUT_S = 10.0
# a remote server: ssh and the remote's Python start first; the session's first point with
# --trace/--profile also compiles its BPF programs (below the client's 60 s wait for `go`)
REMOTE_READY_TIMEOUT_S = 30.0
REMOTE_TRACING_READY_TIMEOUT_S = 55.0
# beyond warm-up + duration: process start-up, connection set-up, draining completions
FINISH_SLACK_S = 20.0
SERVER_END_S = 10.0   # a server's end after its client's
REMOTE_END_S = 10.0   # a remote server's on top: ssh, the remote's last reads
# The one definition of the worker command (the bench starts workers with it too).
WORKER = [sys.executable, "-m", "netobs.workerproc"]


class PointFailed(NetobsError):
    """A point could not be measured; the message says which side failed and why."""

    def __init__(self, what: str, cause: str | None = None,
                 fix: str | None = "reading the workers' own output: client.stderr and server.stderr in the "
                                   "point's directory (`netobs run --keep DIR` keeps them)"):
        super().__init__(what, cause, fix)


def budget_s(spec) -> float:
    """How long a point's workers may take: warm-up, window and the slack."""
    return spec.warmup + spec.duration + FINISH_SLACK_S


def server_values(spec, bind: str) -> dict:
    """The server worker's parameters for the point (the parameter table's), listening on `bind`."""
    return {**PARAMS.worker_values("server", spec), "bind": bind, "connections": spec.threads,
            "timeout": budget_s(spec)}


def tail_of(text: str) -> str | None:
    """A worker's last message line, without netobs's prefix."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].removeprefix("netobs: error: ") if lines else None


def exit_cause(code: int | None, text: str) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by signal {signal.Signals(-code).name}"
    return tail_of(text) or f"exit status {code}"


class LineReader:
    """Lines from a pipe, each waited for within a deadline (select, never a blocking read):
    the worker's ready pipe, a remote session's stdout. Read in chunks; what comes after a
    line is kept for the next."""

    def __init__(self, fd: int):
        self.fd = fd
        self._buf = b""

    def line(self, timeout: float, alive=None) -> bytes | None:
        """The next line, with its newline: b"" once the writer closed the pipe (or `alive()`,
        asked while nothing comes, turned false), None when no whole line came in `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line, self._buf = self._buf[:end + 1], self._buf[end + 1:]
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], min(0.1, left))
            if ready:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    return b""
                self._buf += chunk
            elif alive is not None and not alive():
                return b""


def ready_port(line: bytes | None) -> int | None:
    """The port of a `ready <port>` line (None: another line, or none)."""
    words = (line or b"").decode(errors="replace").split()
    return int(words[1]) if len(words) > 1 and words[0] == "ready" else None


class LocalServer:
    """The server worker as a process of this host, started by `spawn(role, argv, **popen)`
    (a topology's: in the server's namespace)."""

    local = True

    def __init__(self, spawn, kill_group: bool = False):
        self._spawn = spawn
        self._kill_group = kill_group   # its process leads a group of its own: all of it goes
        self.proc: subprocess.Popen | None = None
        self.wrapped: tuple[str, ...] = ()
        self._rfd: int | None = None

    def spawn(self, spec, bind: str, files, observers) -> None:
        self.files, self._stderr = files, files.at(files.stderr("server"))
        rfd, wfd = os.pipe()
        self._rfd = rfd
        values = server_values(spec, bind)
        for obs in observers:
            values.update(obs.worker_values("server"))
        argv = bare = WORKER + PARAMS.worker_argv("server", {**values, "ready_fd": wfd})
        for obs in observers:
            argv = obs.wrap("server", argv)
        self.wrapped = ("server",) if argv != bare else ()
        try:
            with files.create(files.stderr("server")) as err:
                self.proc = self._spawn("server", argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                        pass_fds=(wfd,))
        finally:
            os.close(wfd)

    def _text(self) -> str:
        return self._stderr.read_text(errors="replace") if self._stderr.exists() else ""

    def ready(self) -> int:
        port = ready_port(LineReader(self._rfd).line(READY_TIMEOUT_S, lambda: self.proc.poll() is None))
        if port is not None:
            return port
        try:
            code = self.proc.wait(timeout=2)   # it closed the pipe or exited: how did it end?
        except subprocess.TimeoutExpired:
            code = None
        if code == EXIT_USAGE:   # the worker refused its parameters (the port is in use): the user's to fix
            raise UsageError(tail_of(self._text()) or "the server refused its parameters")
        raise PointFailed("the server did not become ready",
                          cause=tail_of(self._text()) or f"no answer in {READY_TIMEOUT_S:g} s")

    def pids(self) -> dict[str, int]:
        return {"server": self.proc.pid}

    def finish(self, client_failed: bool, timeout: float = SERVER_END_S) -> dict | None:
        if client_failed:   # the client's error is the point's; the server (killed) would only wait
            return None
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PointFailed("the server did not finish", cause=f"still running {timeout:g} s after it should have ended") from None
        if self.proc.returncode != 0:
            raise PointFailed("the server failed", cause=exit_cause(self.proc.returncode, self._text()))
        text = out.decode(errors="replace").strip()
        try:
            return json.loads(text.splitlines()[-1]) if text else {}
        except ValueError:
            raise PointFailed("the server printed no result", cause=tail_of(self._text()) or text[-200:]) from None

    def figures(self) -> dict | None:
        return None   # its observers are this host's

    def cleanup(self) -> None:
        if self._rfd is not None:
            os.close(self._rfd)
            self._rfd = None
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if self._kill_group:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.cleanup()


class RemoteServer:
    """The server on the remote topology's host: one `netobs remote-serve --session` over its
    ssh connection for every point, a new one after a point that failed (or a dropped
    connection: the topology's ssh reconnects)."""

    local = False
    wrapped: tuple[str, ...] = ()   # (its wrappers are the remote end's)

    def __init__(self, topology):
        self.topology = topology
        self.session: subprocess.Popen | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="netobs-session-"))
        self.points = 0
        self._far: dict | None = None
        self._ok = False

    # -- the session
    def _start(self) -> None:
        self.topology.ensure_connection()
        self._stderr = self.dir / f"ssh-{self.points}.stderr"
        with open(self._stderr, "wb") as err:
            self.session = self.topology.spawn("server", self.topology.remote_command(["--session"]),
                                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        self._lines = LineReader(self.session.stdout.fileno())   # its stdout, line by line
        self._fresh = True

    def _end_session(self) -> None:
        proc, self.session = self.session, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()      # the remote end ends (and ends its worker) when its stdin closes
        try:
            proc.wait(timeout=REMOTE_END_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def _failure(self, what: str | None = None) -> NetobsError:
        """Why the session's ssh ended badly: ssh's own failure, or the remote's message."""
        proc = self.session
        code = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = proc.wait(timeout=REMOTE_END_S)
        text = self._stderr.read_text(errors="replace") if self._stderr.exists() else ""
        if text:
            with contextlib.suppress(OSError):
                with open(self.files.at(self.files.stderr("server")), "a") as f:
                    f.write(text)
        known = self.topology.explain(code, text)
        if known is not None:
            return PointFailed(f"the remote server failed: {known.what}", known.cause, known.fix)
        return PointFailed("the remote server failed", cause=what or exit_cause(code, text))

    # -- one point
    def spawn(self, spec, bind: str, files, observers) -> None:
        self.files, self.spec, self._far, self._ok = files, spec, None, False
        files.write(files.stderr("server"), "")
        if self.session is None or self.session.poll() is not None:
            self._end_session()
            self._start()
        self.points += 1
        request = json.dumps({"spec": spec.to_dict(), "bind": bind}) + "\n"
        try:
            self.session.stdin.write(request.encode())
            self.session.stdin.flush()
        except (BrokenPipeError, OSError):
            pass   # the session is gone: ready() says why

    def ready(self) -> int:
        timeout = (REMOTE_TRACING_READY_TIMEOUT_S if (self.spec.trace or self.spec.profile) and self._fresh
                   else REMOTE_READY_TIMEOUT_S)
        self._fresh = False
        line = self._lines.line(timeout)
        if not line:
            raise self._failure(None if line == b"" else f"no answer in {timeout:g} s")
        port = ready_port(line)
        if port is not None:
            return port
        self._result(line.decode(errors="replace").strip())   # it failed before listening: its result says why (raised there)
        raise self._failure("it ended the point before listening")

    def _result(self, text: str) -> dict:
        try:
            far = json.loads(text)
        except ValueError:
            raise self._failure(text[-200:]) from None
        for name, body in (far.pop("files", None) or {}).items():
            if "/" not in name:
                self.files.write(name, body)
        self._far = far
        if far.get("exit"):
            if far.get("exit") == EXIT_USAGE:
                raise UsageError(far.get("message") or "the remote server refused its parameters")
            raise PointFailed("the remote server failed", cause=far.get("error") or f"exit status {far['exit']}")
        self._ok = True
        return far

    def pids(self) -> dict[str, int]:
        return {}   # nothing of it runs here

    def finish(self, client_failed: bool) -> dict | None:
        observed = self.spec.trace or self.spec.profile
        line = self._lines.line(REMOTE_END_S if client_failed else SERVER_END_S + REMOTE_END_S + (30.0 if observed else 0.0))
        if line is None and client_failed:
            return None   # the remote server has nothing to add: the client's error is the point's
        if not line:
            raise self._failure(None if line == b"" else "its result did not come")
        return self._result(line.decode(errors="replace")).get("worker") or {}

    def figures(self) -> dict:
        far = self._far or {}
        return {"observed": far.get("observed") or {}, "skipped": far.get("skipped") or {},
                "result": {"remote": {"interface": far.get("interface"), "skipped": far.get("skipped") or {},
                                      # the point's place in its session (its observers opened at the first)
                                      "session_point": far.get("session_point")}}}

    def cleanup(self) -> None:
        if not self._ok:   # a point that failed: the next one starts a new session
            self._end_session()

    def close(self) -> None:
        self._end_session()
        shutil.rmtree(self.dir, ignore_errors=True)
