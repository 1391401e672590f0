"""The Python face of the C copy workers (`netobs._workers`, built from native/).

ClientConfig and ServerConfig are declared by the parameter table (netobs.params: every
parameter a worker role takes that has a C field), so they are checked here, before any
socket exists, with the same messages as the command line, and `PARAMS.fill` copies them
into the C structs field by field.
The C calls run in a Python thread (cffi releases the GIL), so the calling thread stays free
to take Ctrl-C/SIGTERM and ask C to stop; a stopped run ends within a second, both sides
closed, and its partial stats travel on the `Interrupted` exception as `.stats`.

C returns -errno and names the failing step; `_error()` turns that into a `NetobsError` whose
cause is `os.strerror(errno)`.

Per-send latency: the time around one message's send call(s): for two_copy the send() after
the memcpy, for zero_copy including ENOBUFS drain-and-retry but not a wait for a free buffer.

CPU time: both sides report `getrusage(RUSAGE_THREAD)` deltas summed over their sending or
receiving threads (the client over the measured window only), so neither the Python
interpreter nor the other side leaks into the figure even when both run in one process.

    srv = Server(ServerConfig(connections=1)); port = srv.start()
    stats = run_client(ClientConfig(port=port, strategy="zero_copy", duration=2))
    server_stats = srv.wait(timeout=10)
"""
from __future__ import annotations

import errno as E
import functools
import os
import signal
import socket
import threading
from collections.abc import Callable

from netobs.errors import CapabilityError, Interrupted, NetobsError, UsageError
from netobs.params import PARAMS, RECV_MODES, Field

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SERVER_HINT = "starting the server first (python -m netobs.workerproc serve), or check --host and --port"


def _lib():
    try:
        from netobs import _workers
    except ImportError as exc:
        raise CapabilityError("the native copy workers are not built", str(exc),
                              "`make setup` (or `pip install -e .`) to build netobs._workers") from None
    return _workers.ffi, _workers.lib


def _check_cpus(value) -> tuple[int, ...]:
    """The pinning list of either role: CPU ids, thread (or connection) i on cpus[i % len];
    empty = not pinned. Its limits are the C header's (NOB_MAX_CPUS ids, NOB_MAX_THREADS long)."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not all(isinstance(c, int) and not isinstance(c, bool) for c in value):
        raise UsageError(f"bad CPU list {value!r}", fix="CPU ids as whole numbers, e.g. 0,1")
    cpus = tuple(value)
    if cpus:
        _, lib = _lib()
        if len(cpus) > lib.NOB_MAX_THREADS:
            raise UsageError(f"{len(cpus)} CPUs to pin to, more than {lib.NOB_MAX_THREADS}",
                             fix=f"at most {lib.NOB_MAX_THREADS} CPU ids")
        bad = [c for c in cpus if not 0 <= c < lib.NOB_MAX_CPUS]
        if bad:
            raise UsageError(f"CPU {bad[0]} is not an id between 0 and {lib.NOB_MAX_CPUS - 1}",
                             fix="CPU ids of this host (`nproc`, `lscpu`)")
    return cpus


def _with_cpus(role: str) -> list[Field]:
    """The role's fields from the parameter table, and `cpus` (the pinning contract,
    DESIGN.md) unless the table declares it."""
    fields = PARAMS.config_fields(role)
    return fields if any(f.name == "cpus" for f in fields) else fields + [Field("cpus", (), _check_cpus)]


FILLED_HERE = ("cpus", "ncpus")   # C config fields filled by `_fill_cpus`, after the table's


def _fill_cpus(c, cpus) -> None:
    """`cpus` into the C config's cpus[] and ncpus (derived from the list)."""
    for i, cpu in enumerate(cpus):
        c.cpus[i] = cpu
    c.ncpus = len(cpus)


ClientConfig = PARAMS.dataclass(
    "ClientConfig", _with_cpus("client"), rules=PARAMS.config_rules("client"), module=__name__,
    doc="""A sending run: `threads` connections to host:port, each sending `msg_size`-byte messages
    with `strategy` for `duration` s after `warmup` s, or exactly `count` messages each.""")

ServerConfig = PARAMS.dataclass(
    "ServerConfig", _with_cpus("server"), rules=PARAMS.config_rules("server"), module=__name__,
    doc="""A receiving server: listens on bind:port (0 = any free port), one thread per connection;
    ends when `connections` connections have all closed (0: only on stop or timeout).""")


# ----------------------------------------------------------------------------- errors

def _error(ffi, err, *, host: str = "", port: int = 0, bind: str = "") -> NetobsError:
    e = err.err or E.EIO
    where = ffi.string(err.where).decode(errors="replace")
    detail = ffi.string(err.detail).decode(errors="replace")
    cause = os.strerror(e)
    if where == "bind":
        if e == E.EADDRINUSE:
            return UsageError(f"port {port} is in use on {bind}", cause, "another --port N, or --port 0 for any free port")
        if e == E.EADDRNOTAVAIL:
            return UsageError(f"cannot listen on {bind}", cause, "an address of this host in --bind")
        if e == E.EACCES:
            return CapabilityError(f"cannot listen on port {port}", cause, "a port above 1023, or run as root")
    if where == "connect":
        return UsageError(f"cannot reach {host}:{port}", cause, SERVER_HINT)
    if where == "setsockopt(SO_ZEROCOPY)":
        return CapabilityError("this kernel refuses SO_ZEROCOPY on TCP sockets", cause,
                               "--strategy one_copy, or a kernel with MSG_ZEROCOPY (4.14+)")
    if where in ("io_uring_queue_init", "io_uring probe"):
        return CapabilityError(f"this kernel cannot run the io_uring senders ({detail or where})", cause,
                               "--strategy one_copy or zero_copy; `netobs doctor` lists the strategies that work here")
    if where in ("memfd_create", "fallocate(PUNCH_HOLE)", "vmsplice", "pipe2"):
        return CapabilityError(f"this kernel refuses {where}", cause,
                               "another --strategy; `netobs doctor` lists the strategies that work here")
    if where == "allocate message buffers" and e == E.ENOMEM:
        return UsageError("the messages do not fit in memory", detail or cause, "fewer --threads or a smaller --msg-size")
    if where.startswith("sched_setaffinity"):
        return UsageError(f"cannot pin a worker thread ({where})", f"{cause} ({detail})" if detail else cause,
                          "CPUs this host has and this process may use (`nproc`, `taskset -p $$`)")
    if where == "config":
        return UsageError("bad worker configuration", detail or cause, "values within the documented ranges")
    if where.startswith("perf control"):
        return NetobsError(f"perf did not answer on its control fifo ({where})", detail or cause,
                           "run the sender under `perf stat --control fifo:CTL,ACK -D -1`")
    if where == "sendmsg" and e == E.ENOBUFS:
        return NetobsError("the kernel keeps refusing zero-copy sends", f"{cause} for over a second with no "
                           "completion outstanding", "raising net.core.optmem_max (memory for completion notifications)")
    if where in ("send", "sendmsg") and e in (E.EPIPE, E.ECONNRESET):
        return NetobsError(f"the connection to {host}:{port} broke during the run", cause,
                           "checking that the server is still running and expects this many connections")
    return NetobsError(f"{where} failed", f"{cause} ({detail})" if detail else cause)


# ----------------------------------------------------------------------------- running C

class _Call:
    """A GIL-free C call running in a daemon thread. Its end is an Event, not Thread.join: a
    join cut by KeyboardInterrupt can report a still-running thread as dead (CPython < 3.13),
    and C would be freed under it."""

    def __init__(self, call: Callable[[], int], name: str):
        self.done = threading.Event()
        self.rc = 0
        self.exc: BaseException | None = None

        def target():
            try:
                self.rc = call()
            except BaseException as exc:  # noqa: BLE001 - carried to the caller
                self.exc = exc
            finally:
                self.done.set()

        threading.Thread(target=target, name=name, daemon=True).start()

    def result(self) -> int:
        if self.exc is not None:
            raise self.exc
        return self.rc


def _run_stoppable(call: Callable[[], int], stop: Callable[[], None]) -> tuple[int, BaseException | None]:
    """Run `call` in a thread until it returns; a SIGINT/SIGTERM meanwhile asks C to stop and
    is held, then handed to the handler that was there before once C returned: what that
    raises (Interrupted, KeyboardInterrupt) comes back as the second value.

    The signal must not raise while C runs: an exception raised anywhere in this thread's
    Python code between the start of the call and its end (the thread's start, the wait
    loop's own line) would let the caller free the C state under the running call, whose
    sending threads then write into freed memory (the SIGSEGV of a stopped worker)."""
    held: list[int] = []
    owner = os.getpid()

    def hold(signum: int, _frame: object) -> None:
        if os.getpid() != owner:  # a forked helper: the default action, as interrupt.py does
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        held.append(signum)
        stop()

    previous: dict[int, Callable] = {}
    try:
        if threading.current_thread() is threading.main_thread():
            for sig in _STOP_SIGNALS:
                handler = signal.getsignal(sig)
                if callable(handler):  # SIG_DFL/SIG_IGN and handlers set outside Python stay
                    previous[sig] = signal.signal(sig, hold)
        running = _Call(call, "netobs-worker")
        while not running.done.wait(0.05):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stopped_by: BaseException | None = None
    if held:
        try:
            previous[held[0]](held[0], None)
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt, Interrupted, SystemExit
            stopped_by = exc
    return running.result(), stopped_by


def _interrupted(cause: BaseException, stats: dict) -> Interrupted:
    if isinstance(cause, Interrupted):
        exc = cause
    else:
        exc = Interrupted("interrupted", "received SIGINT" if isinstance(cause, KeyboardInterrupt) else repr(cause))
    exc.stats = stats
    return exc


# ----------------------------------------------------------------------------- client

class Client:
    """One sending run. `start()` returns at once; `wait()` returns the stats dict;
    `stop()` (any thread) ends the run early. `run_client()` is start + wait."""

    def __init__(self, cfg: ClientConfig):
        self.cfg = cfg
        self._ffi, self._lib = _lib()
        self._handle = None
        self._running: _Call | None = None

    def _create(self):
        ffi, lib, cfg = self._ffi, self._lib, self.cfg
        c = ffi.new("struct nob_client_config *")
        PARAMS.fill("client", c, cfg)
        _fill_cpus(c, cfg.cpus)
        self._err = ffi.new("struct nob_error *")
        self._stats = ffi.new("struct nob_client_stats *")
        h = ffi.new("struct nob_client **")
        if lib.nob_client_create(c, h, self._err) < 0:
            raise _error(ffi, self._err, host=cfg.host, port=cfg.port)
        self._handle = h[0]

    def run(self) -> dict:
        """Run in the calling thread's care: Ctrl-C/SIGTERM there stop the run and raise
        `Interrupted` carrying the partial stats as `.stats`."""
        self._create()
        try:
            rc, stopped_by = _run_stoppable(
                lambda: self._lib.nob_client_run(self._handle, self._stats, self._err),
                lambda: self._lib.nob_client_stop(self._handle))
            return self._finish(rc, stopped_by)
        finally:
            self._free()

    def start(self) -> None:
        """Run in a background thread (for callers that own their own signal handling)."""
        self._create()
        self._running = _Call(lambda: self._lib.nob_client_run(self._handle, self._stats, self._err), "netobs-client")

    def stop(self) -> None:
        if self._handle is not None:
            self._lib.nob_client_stop(self._handle)

    def wait(self, timeout: float | None = None) -> dict:
        assert self._running is not None, "start() first"
        if not self._running.done.wait(timeout):
            raise TimeoutError(f"the client is still running after {timeout} s")
        try:
            return self._finish(self._running.result(), None)
        finally:
            self._free()

    def _free(self):
        if self._handle is not None:
            self._lib.nob_client_free(self._handle)
            self._handle = None

    def _finish(self, rc: int, stopped_by: BaseException | None) -> dict:
        stats = client_stats(self.cfg, self._stats)
        if stopped_by is not None:
            stats["interrupted"] = True
            raise _interrupted(stopped_by, stats)
        if rc < 0:
            raise _error(self._ffi, self._err, host=self.cfg.host, port=self.cfg.port)
        return stats


# Each side's counters as its C header exports them: (counter prefix, group prefix, the groups
# whose counters form an object of their own; None: every group but CALLS)
_SIDES = {"client": ("NOB_CTR_", "NOB_GROUP_", None),
          "server": ("NOB_SERVER_CTR_", "NOB_SERVER_GROUP_", "NOB_SERVER_GROUPS_NESTED")}


def counter_layout(side: str = "client") -> tuple[tuple[str | None, str, int], ...]:
    """A side's counters as the C header exports them (NOB_CTR_<GROUP>_<NAME> = index,
    NOB_GROUP_<GROUP> = bit; the server's NOB_SERVER_CTR_/NOB_SERVER_GROUP_): (object, key,
    index) in index order, object None for the counters at the report's top level."""
    _, lib = _lib()
    return tuple(row[:3] for row in _layout(lib, side))


@functools.lru_cache(maxsize=None)
def _layout(lib, side: str = "client") -> tuple[tuple[str | None, str, int, int], ...]:
    """(object, key, index, group bit) per counter of `side`, in index order."""
    ctr, grp, nested_name = _SIDES[side]
    names = dir(lib)
    groups = sorted((n[len(grp):] for n in names if n.startswith(grp)), key=len, reverse=True)
    nested = getattr(lib, nested_name) if nested_name else ~getattr(lib, grp + "CALLS")
    out = []
    for n in names:
        if not n.startswith(ctr):
            continue
        rest = n[len(ctr):]
        group = next((g for g in groups if rest.startswith(g + "_")), None)
        if group is None:
            raise RuntimeError(f"{n} names no {grp}* of netobs_workers.h")
        name, bit = rest[len(group) + 1:].lower(), getattr(lib, grp + group)
        if group == "CALLS":
            out.append((None, name, getattr(lib, n), bit))
        elif bit & nested:
            out.append((group.lower(), name, getattr(lib, n), bit))
        else:
            out.append((None, f"{group.lower()}_{name}", getattr(lib, n), bit))
    return tuple(sorted(out, key=lambda row: row[2]))


def counter_groups() -> tuple[str, ...]:
    """The point result's objects of worker counters ("zerocopy", ...), from the C header."""
    return tuple(dict.fromkeys(g for g, _, _ in counter_layout() if g is not None))


def _counters(lib, st, side: str = "client") -> dict:
    """stats.counters[] by the header's names: the top-level ones, then each group's object
    (None where the run does not report the group: stats.groups)."""
    out: dict = {}
    for obj, key, idx, bit in _layout(lib, side):
        reported = bool(st.groups & bit)
        if obj is None:
            out[key] = st.counters[idx] if reported else None
        elif reported:
            out.setdefault(obj, {})[key] = st.counters[idx]
        else:
            out[obj] = None
    return out


def client_stats(cfg: ClientConfig, st) -> dict:
    """The client's stats (DESIGN.md's point result names) from the C struct."""
    _, lib = _lib()
    window = st.window_s
    lat = None
    if st.lat_samples:
        lat = {"mean": st.lat_mean_us, "p50": st.lat_p50_us, "p99": st.lat_p99_us,
               "p999": st.lat_p999_us, "max": st.lat_max_us}
    return {
        "strategy": cfg.strategy, "msg_size": cfg.msg_size, "threads": cfg.threads,
        "duration_s": float(cfg.duration), "warmup_s": 0.0 if cfg.count else float(cfg.warmup),
        "count": cfg.count or None, "host": cfg.host, "port": cfg.port,
        "window_s": window,
        "bytes_sent": st.bytes_sent, "bytes_sent_total": st.bytes_sent_total,
        "messages": st.messages, "messages_total": st.messages_total,
        "throughput_gbps": st.bytes_sent * 8 / window / 1e9 if window > 0 else None,
        "latency_us": lat, "latency_samples": st.lat_samples,
        "cpu": {"user_s": st.cpu_user_s, "sys_s": st.cpu_sys_s},
        **_counters(lib, st),
        "fields": cfg.fields,
        "verify": bool(cfg.verify), "verify_errors": 0,  # the receiver checks the pattern
        "per_thread_bytes": [st.per_thread_bytes[i] for i in range(cfg.threads)],
        "cpus": list(cfg.cpus) or None,
        "thread_cpu": [st.thread_cpu[i] for i in range(cfg.threads)],
        "sndbuf_bytes": st.sndbuf_bytes or None,
        "interrupted": bool(st.interrupted),
        "pid": os.getpid(),
    }


def run_client(cfg: ClientConfig) -> dict:
    """Connect, warm up, measure, stop; the stats dict. Raises NetobsError (Interrupted with
    `.stats` on Ctrl-C/SIGTERM)."""
    return Client(cfg).run()


# ----------------------------------------------------------------------------- server

class Server:
    """`listen()` binds and returns the port (the readiness point); `start()` also begins
    accepting in a background thread; `wait()` returns the stats when the server ends by
    itself; `stop()` ends it now and returns the stats. Usable as a context manager."""

    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg
        self._ffi, self._lib = _lib()
        self._handle = None
        self._running: _Call | None = None
        self._stats = self._ffi.new("struct nob_server_stats *")
        self._err = self._ffi.new("struct nob_error *")
        self._rc = 0
        self._result: dict | None = None
        self.port: int | None = None

    def listen(self) -> int:
        if self._handle is None:
            ffi, lib, cfg = self._ffi, self._lib, self.cfg
            c = ffi.new("struct nob_server_config *")
            PARAMS.fill("server", c, cfg)
            _fill_cpus(c, cfg.cpus)
            h = ffi.new("struct nob_server **")
            if lib.nob_server_open(c, h, self._err) < 0:
                raise _error(ffi, self._err, port=cfg.port, bind=cfg.bind)
            self._handle = h[0]
            self.port = lib.nob_server_port(self._handle)
        return self.port

    def start(self) -> int:
        port = self.listen()
        if self._running is None:
            self._running = _Call(lambda: self._lib.nob_server_run(self._handle, self._stats, self._err),
                                  "netobs-server")
        return port

    def serve(self) -> dict:
        """Listen (if not yet), run in the caller's care until the server ends; Ctrl-C/SIGTERM
        stop it and raise Interrupted with `.stats`."""
        self.listen()
        try:
            rc, stopped_by = _run_stoppable(
                lambda: self._lib.nob_server_run(self._handle, self._stats, self._err),
                lambda: self._lib.nob_server_stop(self._handle))
            self._rc = rc
            self._result = self._finish()
            if stopped_by is not None:
                self._result["interrupted"] = True
                raise _interrupted(stopped_by, self._result)
            return self._result
        finally:
            self.close()

    def wait(self, timeout: float | None = None) -> dict:
        if self._result is not None:
            return self._result
        assert self._running is not None, "start() first"
        if not self._running.done.wait(timeout):
            raise TimeoutError(f"the server is still running after {timeout} s")
        self._rc = self._running.result()
        self._result = self._finish()
        self.close()
        return self._result

    def stop(self) -> dict | None:
        """Stop now; the stats (None if it never started)."""
        if self._handle is not None:
            self._lib.nob_server_stop(self._handle)
        if self._running is None:
            self.close()
            return None
        return self.wait()

    def close(self) -> None:
        if self._handle is not None and (self._running is None or self._running.done.is_set()):
            self._lib.nob_server_free(self._handle)
            self._handle = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        if self._result is None:
            try:
                self.stop()
            except NetobsError:
                if exc[0] is None:
                    raise

    def _finish(self) -> dict:
        if self._rc < 0:
            raise _error(self._ffi, self._err, port=self.cfg.port, bind=self.cfg.bind)
        return server_stats(self.cfg, self._stats)


def server_stats(cfg: ServerConfig, st) -> dict:
    """The server's stats from the C struct; its counters by the header's names (_counters)."""
    _, lib = _lib()
    n = st.connections
    active = st.active_s
    counters = _counters(lib, st, "server")
    if counters.get("rx_zerocopy") is not None:
        e = st.rx_zc_fallback_errno
        counters["rx_zerocopy"].update(fallback=bool(e),
                                       fallback_reason=f"TCP_ZEROCOPY_RECEIVE refused: {os.strerror(e)}" if e else None)
    return {
        "bind": cfg.bind, "port": st.port,
        "bytes_received": st.bytes_received, "connections": n,
        "per_connection_bytes": [st.per_conn_bytes[i] for i in range(n)],
        "cpus": list(cfg.cpus) or None,
        "conn_cpu": [st.conn_cpu[i] for i in range(n)],
        "active_s": active, "last_byte_s": st.last_byte_s or None,   # CLOCK_MONOTONIC (the placement window)
        "goodput_gbps": st.bytes_received * 8 / active / 1e9 if active > 0 else None,
        "cpu": {"user_s": st.cpu_user_s, "sys_s": st.cpu_sys_s},
        **counters,
        "rcvbuf_bytes": st.rcvbuf_bytes or None,
        "recv": RECV_MODES[st.recv_mode] if 0 <= st.recv_mode < len(RECV_MODES) else None,
        "fields": cfg.fields,
        "verify": bool(cfg.verify), "msg_size": cfg.msg_size or None,
        "timed_out": bool(st.timed_out), "interrupted": bool(st.interrupted),
        "pid": os.getpid(),
    }


__all__ = ["ClientConfig", "ServerConfig", "Client", "Server", "run_client", "client_stats", "server_stats",
           "counter_layout", "counter_groups"]


SO_ZEROCOPY = getattr(socket, "SO_ZEROCOPY", 60)


def doctor_facts() -> dict:
    """Can the copy workers run here: the C extension loads, and the kernel accepts SO_ZEROCOPY
    on a TCP socket (it is refused on kernels before 4.14 and on some sandboxes)."""
    checks = []
    try:
        _lib()
        checks.append({"name": "C copy workers", "ok": True, "detail": "netobs._workers loaded (cffi)"})
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        checks.append({"name": "C copy workers", "ok": False, "detail": f"{exc}; try `make setup`"})
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
            on = sock.getsockopt(socket.SOL_SOCKET, SO_ZEROCOPY)
        checks.append({"name": "SO_ZEROCOPY", "ok": bool(on), "detail": "accepted on a TCP socket (MSG_ZEROCOPY usable)"})
    except OSError as exc:
        checks.append({"name": "SO_ZEROCOPY", "ok": False, "detail": f"refused: {os.strerror(exc.errno)}; zero_copy cannot run here"})
    ok = all(c["ok"] for c in checks)
    support = strategy_support()
    # each strategy a row of doctor's table too; one this kernel lacks does not make the
    # workers part fail (the study's three decide that, through the checks above)
    checks += [{"name": f"strategy {name}", "ok": s["ok"], "detail": s["detail"]} for name, s in support.items()]
    return {"ok": ok, "checks": checks, "strategies": support}


def strategy_support() -> dict:
    """Strategy -> {"ok", "detail"}: whether this kernel runs it (C tries what it needs:
    SO_ZEROCOPY, an io_uring ring and its opcode, a memfd hole punch, vmsplice)."""
    from netobs import strategies

    try:
        ffi, lib = _lib()
    except CapabilityError as exc:
        return {s.name: {"ok": False, "detail": exc.message} for s in strategies.STRATEGIES}
    out = {}
    for s in strategies.STRATEGIES:
        err = ffi.new("struct nob_error *")
        if lib.nob_strategy_probe(s.code, err) == 0:
            out[s.name] = {"ok": True, "detail": s.how}
        else:
            exc = _error(ffi, err)
            out[s.name] = {"ok": False, "detail": exc.message}
    return out


def check_strategy(name: str) -> None:
    """Refuse a strategy this kernel cannot run, in one line, before anything starts."""
    from netobs import strategies

    ffi, lib = _lib()
    err = ffi.new("struct nob_error *")
    if lib.nob_strategy_probe(strategies.BY_NAME[name].code, err) != 0:
        raise _error(ffi, err)
