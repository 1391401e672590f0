"""The remote end of `--remote HOST`: what `netobs remote-serve` does on that host, started by
the local side through ssh (netobs.ssh; the local side is netobs.topology's RemoteTopology).

Nothing of netobs runs there but this process and the server worker it starts; nothing is
installed. Two uses:

- `hello(addr)`: netobs's version and protocol number (the local side refuses a mismatch
  before the first point), whether the login is root, and the host's facts (kernel, CPU, and
  the interface that holds `addr`: driver, MTU, `ethtool -k` offloads) for the manifest.
- `serve(worker_args, ...)`: one point's server: `python -m netobs.workerproc serve ...`
  (its flags are the parameter table's, checked here by the same table's parser), under
  `perf stat` when asked, the tracer and the profiler on its PID when asked (root only:
  otherwise skipped with the reason, not failed), the TCP MIB of this namespace and the
  counters of the data interface before and after. `on_ready(port)` is called once the worker
  listens and the observers are on it (the CLI prints `ready <port>`); the result is one dict
  (the CLI prints it as the last stdout line).

The process watches its stdin: EOF (the ssh session ended, the local side died) or SIGHUP/
SIGTERM kills the worker's process group and ends this process, so nothing is left behind.
"""
from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from netobs import __version__
from netobs.errors import NetobsError, UsageError

# Bumped whenever what the two sides say to each other changes (arguments, ready line, JSON).
PROTOCOL = 1
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


# ------------------------------------------------------------------- one point's server

class _Watch:
    """EOF on stdin (or SIGHUP/SIGTERM) -> the worker's process group killed, this process
    ended: the local side is gone, nobody will read a result."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.lock = threading.RLock()   # (end() may run in a signal handler of the holder)
        self.pgid: int | None = None

    def start(self) -> None:
        for sig in (signal.SIGHUP, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.end())
        threading.Thread(target=self._read, name="netobs-remote-stdin", daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while os.read(sys.stdin.fileno(), 4096):
                pass
        self.end()

    def end(self) -> None:
        with self.lock:
            if self.pgid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pgid, signal.SIGKILL)
            shutil.rmtree(self.tmp, ignore_errors=True)
            os._exit(1)


def _observers(trace: bool, profile: bool, profile_hz: int, skipped: dict) -> tuple:
    """The tracer and profiler, opened here (root only; what cannot be had is skipped)."""
    tracer = profiler = None
    if (trace or profile) and os.geteuid() != 0:
        why = f"the ssh login ({getpass.getuser()}) is not root on this host: no BPF tracing or profiling here"
        for name, on in (("trace", trace), ("profile", profile)):
            if on:
                skipped[name] = why
        return None, None
    if trace or profile:
        from netobs import hostprep
        try:
            hostprep.prepare()
        except NetobsError as exc:
            for name, on in (("trace", trace), ("profile", profile)):
                if on:
                    skipped[name] = exc.message
            return None, None
    if trace:
        from netobs.tracer import Tracer
        try:
            tracer = Tracer()
        except NetobsError as exc:
            skipped["trace"] = exc.message
    if profile:
        from netobs.profiler import Profiler
        try:
            profiler = Profiler(hz=profile_hz)
        except NetobsError as exc:
            skipped["profile"] = exc.message
    return tracer, profiler


def serve(worker_args: list[str], events: list[str] | None, trace: bool, profile: bool, profile_hz: int,
          on_ready) -> tuple[int, dict]:
    """Run one point's server worker (`worker_args`: `serve --bind ... ` as the parameter table
    writes them); returns (exit status, result)."""
    from netobs import netstat
    from netobs.params import PARAMS
    from netobs.runner import READY_TIMEOUT_S, WORKER, _read_ready, _tail_of

    parsed = vars(PARAMS.worker_parser("netobs remote-serve --", "the server worker").parse_args(worker_args))
    if parsed["command"] != "serve" or parsed["ready_fd"] is not None:
        raise UsageError("remote-serve runs the server worker", f"got {' '.join(worker_args[:1])!r}"
                         + (" with --ready-fd" if parsed["ready_fd"] is not None else ""),
                         "the worker's `serve ...` arguments without --ready-fd")
    tmp = Path(tempfile.mkdtemp(prefix="netobs-remote-"))
    watch = _Watch(tmp)
    watch.start()
    skipped: dict[str, str] = {}
    try:
        tracer, profiler = _observers(trace, profile, profile_hz, skipped)
        perf = None
        if events:
            from netobs.perf import PerfStat
            try:
                perf = PerfStat(events, tmp, prefix="perf-server", window=False)
            except NetobsError as exc:
                skipped["perf"] = exc.message
        ifname = interface_of(parsed["bind"])
        link_before = link_counters(ifname)
        netstat_before = netstat.read()
        rfd, wfd = os.pipe()
        argv = WORKER + list(worker_args) + ["--ready-fd", str(wfd)]
        if perf is not None:
            argv = perf.argv(argv)
        stderr_path = tmp / "server.stderr"
        try:
            with watch.lock, open(stderr_path, "wb") as err:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                        pass_fds=(wfd,), start_new_session=True)
                proc._netobs_stderr = stderr_path
                watch.pgid = proc.pid
        finally:
            os.close(wfd)
        try:
            try:
                port = _read_ready(rfd, proc, READY_TIMEOUT_S)
            finally:
                os.close(rfd)
            if tracer is not None:
                tracer.start_point({ROLE: proc.pid})
            if profiler is not None:
                profiler.start_point({ROLE: proc.pid}, wrappers=(ROLE,) if perf else ())
            on_ready(port)
            budget = (parsed["timeout"] or 0.0) + 30.0
            try:
                out, _ = proc.communicate(timeout=budget)
            except subprocess.TimeoutExpired:
                raise NetobsError("the server worker did not finish", f"still running {budget:g} s after it started") from None
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _copy_stderr(stderr_path)
        result: dict = {"protocol": PROTOCOL, "exit": proc.returncode, "skipped": skipped, "interface": ifname}
        if proc.returncode != 0:
            why = (f"killed by signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
                   else _tail_of(proc) or f"exit status {proc.returncode}")
            result["error"] = f"the server worker failed: {why}"
            return (1 if proc.returncode < 0 else proc.returncode), result
        text = out.decode(errors="replace").strip()
        result["worker"] = json.loads(text.splitlines()[-1]) if text else {}
        result["link"] = {"before": link_before, "after": link_counters(ifname)}
        result["netstat"] = {"before": netstat_before, "after": netstat.read()}
        if tracer is not None:
            result["trace"] = tracer.stop_point()
        if profiler is not None:
            prof = profiler.stop_point(tmp, {ROLE: result["worker"].get("bytes_received")})
            result["profile"] = prof
            result["folded"] = {name: (tmp / name).read_text() for name in (prof.get("files") or {}).get(ROLE, {}).values()}
        if perf is not None:
            try:
                result["perf"] = perf.result()
                result["perf_raw"] = {"name": perf.out.name, "text": perf.out.read_text(errors="replace")}
            except NetobsError as exc:
                skipped["perf"] = exc.message
        return 0, result
    finally:
        with watch.lock:
            watch.pgid = None
        for obs in ("tracer", "profiler"):
            o = locals().get(obs)
            if o is not None:
                with contextlib.suppress(Exception):
                    o.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_stderr(path: Path) -> None:
    """The worker's own messages, passed on to the local side (its server.stderr)."""
    with contextlib.suppress(OSError):
        data = path.read_bytes()
        if data:
            os.write(sys.stderr.fileno(), data)
