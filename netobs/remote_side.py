"""The remote end of `--remote HOST`: what `netobs remote-serve` does on that host, started by
the local side through ssh (netobs.ssh; the local side is netobs.topology's RemoteTopology).

Nothing of netobs runs there but this process and the server worker it starts; nothing is
installed. Two uses:

- `hello(addr)`: netobs's version and protocol number (the local side refuses a mismatch
  before the first point), whether the login is root, and the host's facts (kernel, CPU, and
  the interface that holds `addr`: driver, MTU, `ethtool -k` offloads) for the manifest.
- `session(say)`: the server of every point of a sweep. Each line on stdin is one point's
  request (`{"spec": RunSpec fields, "bind": address}`); the point runs on the *same*
  `netobs.serverside.LocalServer` the local topologies use, under this end's observers (the
  registry's, for the server role: perf stat, the tracer and profiler, root only, otherwise
  skipped with the reason, not failed; the TCP MIB of this namespace, the data interface's
  counters), opened once for the session, so its BPF programs are compiled once per sweep.
  `say("ready <port>")` once the worker listens and the observers are on it; then one JSON
  object: the worker's report, each observer's collected figures, what was skipped, and the
  point's files (its stderr, perf's output, folded stacks) for the local store.

The process watches its stdin: EOF (the ssh session ended, the local side died) or SIGHUP/
SIGTERM kills the worker's process group and ends this process, so nothing is left behind.
"""
from __future__ import annotations

import contextlib
import getpass
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import queue
import tempfile
import threading
from pathlib import Path

from netobs import __version__
from netobs.errors import NetobsError
from netobs.jsonsafe import jsonable
from netobs.serverside import budget_s

# Bumped whenever what the two sides say to each other changes (arguments, ready line, JSON).
PROTOCOL = 2
ROLE = "server"


# ------------------------------------------------------------------- the data interface

def interface_of(addr: str | None) -> str | None:
    """The interface here that holds `addr` (the address the server listens on)."""
    if not addr:
        return None
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for a in ipr.get_addr():
            if a.get_attr("IFA_ADDRESS") == addr or a.get_attr("IFA_LOCAL") == addr:
                links = ipr.get_links(a["index"])
                return links[0].get_attr("IFLA_IFNAME") if links else None
    return None


def link_counters(ifname: str | None) -> dict | None:
    from netobs import linkstats

    return linkstats.of(ifname)


def _ethtool(*args: str) -> tuple[str | None, str | None]:
    tool = shutil.which("ethtool") or next((p for p in ("/usr/sbin/ethtool", "/sbin/ethtool") if os.path.exists(p)), None)
    if tool is None:
        return None, "ethtool is not installed here"
    try:
        proc = subprocess.run([tool, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"ethtool {' '.join(args)}: {exc}"
    if proc.returncode != 0:
        return None, f"ethtool {' '.join(args)}: {(proc.stderr or proc.stdout).strip() or f'exit {proc.returncode}'}"
    return proc.stdout, None


def parse_offloads(text: str) -> dict[str, str]:
    """`ethtool -k` output -> {feature: "on"/"off" (with " [fixed]" when it cannot change)}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([a-z0-9-]+):\s+(on|off)(\s+\[fixed\])?\s*$", line)
        if m:
            out[m.group(1)] = m.group(2) + (" [fixed]" if m.group(3) else "")
    return out


def interface_facts(ifname: str | None, addr: str | None) -> dict:
    """Driver, MTU, kind and offloads of the data interface (each missing one: its reason)."""
    if ifname is None:
        return {"name": None, "address": addr, "reason": f"no interface here holds {addr}"}
    from pyroute2 import IPRoute

    out: dict = {"name": ifname, "address": addr}
    with IPRoute() as ipr:
        link = ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0]
    out["mtu"] = link.get_attr("IFLA_MTU")
    info = link.get_attr("IFLA_LINKINFO")
    out["kind"] = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    driver_link = Path(f"/sys/class/net/{ifname}/device/driver")
    driver, reason = (driver_link.resolve().name, None) if driver_link.exists() else (None, None)
    text, why = _ethtool("-i", ifname)
    if text:
        fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
        driver = driver or fields.get("driver")
        out["driver_version"] = fields.get("version") or None
        out["firmware"] = fields.get("firmware-version") or None
        out["bus"] = fields.get("bus-info") or None
    out["driver"] = driver or out["kind"]
    if out["driver"] is None:
        out["driver_reason"] = why or "no device driver in sysfs"
    text, why = _ethtool("-k", ifname)
    out["offloads"] = parse_offloads(text) if text else None
    if text is None:
        out["offloads_reason"] = why
    return out


def hello(addr: str | None = None) -> dict:
    """Who and what is here: version and protocol first (the local side checks them)."""
    from netobs import hostinfo

    ifname = interface_of(addr)
    return {"netobs_version": __version__, "protocol": PROTOCOL, "python": sys.executable,
            "user": getpass.getuser(), "root": os.geteuid() == 0,
            "host": {**hostinfo.host_facts(), "interface": interface_facts(ifname, addr)}}


# ------------------------------------------------------------------- the session

class _Watch:
    """Requests from stdin, one per line; EOF on stdin (or SIGHUP/SIGTERM) -> the worker's
    process group killed, this process ended: the local side is gone, nobody will read a
    result."""

    def __init__(self):
        self.lock = threading.RLock()   # (end() may run in a signal handler of the holder)
        self.pgid: int | None = None
        self.tmp: Path | None = None
        self.requests: queue.Queue = queue.Queue()

    def start(self) -> None:
        for sig in (signal.SIGHUP, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.end())
        threading.Thread(target=self._read, name="netobs-remote-stdin", daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in sys.stdin:
                self.requests.put(line)
        self.end()

    def spawn(self, role: str, argv: list[str], **popen) -> subprocess.Popen:
        with self.lock:
            proc = subprocess.Popen(argv, start_new_session=True, **popen)
            self.pgid = proc.pid
        return proc

    def end(self) -> None:
        with self.lock:
            if self.pgid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pgid, signal.SIGKILL)
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
            os._exit(1 if self.pgid is not None else 0)


class Here:
    """What this end reads for the observers: the server's TCP MIB and data interface."""

    def __init__(self, bind: str | None):
        self.interface = interface_of(bind)

    def netstat(self) -> dict:
        from netobs import netstat

        return {ROLE: netstat.read()}

    def link_stats(self) -> dict:
        return {ROLE: link_counters(self.interface)}


def session(say) -> None:
    """Serve points until stdin ends (see the module's docstring)."""
    from netobs.observers import open_all
    from netobs.serverside import LocalServer
    from netobs.spec import RunSpec
    from netobs.store import PointFiles

    watch = _Watch()
    watch.start()
    with contextlib.ExitStack() as stack:
        observers = here = None
        skipped: dict[str, str] = {}
        for point in itertools.count(1):
            request = json.loads(watch.requests.get())
            spec = RunSpec(**request["spec"])
            if observers is None:
                here = Here(request["bind"])
                observers = open_all(stack, spec, (ROLE,), here, skipped)
            with watch.lock:
                watch.tmp = Path(tempfile.mkdtemp(prefix="netobs-remote-"))
            files = PointFiles(watch.tmp)
            result = serve(spec, request["bind"], LocalServer(watch.spawn, kill_group=True), observers, files,
                           dict(skipped), here, say)
            say(json.dumps(jsonable({**result, "session_point": point})))
            with watch.lock:
                watch.pgid = None
                shutil.rmtree(watch.tmp, ignore_errors=True)
                watch.tmp = None


def serve(spec, bind: str, server, observers: list, files, skipped: dict, here, say) -> dict:
    """One point's server: the result the local side reads (its "exit" 0 when it went well)."""
    result: dict = {"protocol": PROTOCOL, "exit": 0, "skipped": skipped, "interface": here.interface}
    live = list(observers)   # (an observer whose step fails leaves the point)
    try:
        for obs in observers:
            obs.point = spec
            _tolerant(obs, skipped, live, obs.begin, files)
        server.spawn(spec, bind, files, live)
        port = server.ready()
        for obs in list(live):
            _tolerant(obs, skipped, live, obs.attach, server.pids(), server.wrapped)
        say(f"ready {port}")
        report = server.finish(client_failed=False, timeout=budget_s(spec) + 30.0)
        for obs in list(live):
            _tolerant(obs, skipped, live, obs.end)
        result["worker"] = report
        result["observed"] = {}
        for obs in list(live):
            got = _tolerant(obs, skipped, live, obs.collect, {ROLE: report}, files)
            if got is not None:
                result["observed"][obs.name] = got
    except NetobsError as exc:
        result.update(exit=exc.exit_code or 1, message=exc.message,
                      error=exc.what + (f": {exc.cause}" if exc.cause else ""))
    finally:
        for part in (server, *observers):
            with contextlib.suppress(Exception):
                part.cleanup()
    result["files"] = files.texts()
    return result


def _tolerant(obs, skipped: dict, live: list, step, *args):
    """One observer's step; what fails leaves that observer out of the point, with the reason."""
    if obs not in live:
        return None
    try:
        return step(*args)
    except NetobsError as exc:
        skipped[obs.name] = exc.message
        live.remove(obs)
        return None
