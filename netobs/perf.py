"""`perf stat` around one process, counting only the steady-state window, parsed in one place.

How the window is counted
-------------------------
perf starts with its events disabled (`-D -1`) and listens on a control fifo
(`--control fifo:CTL,ACK`). The target (the client worker) writes `enable\\n` to CTL when its
warm-up ends and `disable\\n` when its measured window ends, and waits for perf's `ack` on ACK
after each. Process start-up, connection set-up, warm-up and teardown are not counted.

Why the fifos cannot deadlock: netobs creates both fifos (mkfifo) before perf starts and never
opens them itself. perf opens both while parsing its options, before it forks the target, with
`O_RDWR | O_NONBLOCK` (tools/perf/util/evlist.c, evlist__parse_control_fifo). An O_RDWR open of
a fifo never waits for a peer, and perf then holds a reader and a writer on each fifo. So when
the target starts (as perf's child), its `open(CTL, O_WRONLY)` and `open(ACK, O_RDONLY)` return
at once in any order. The target's side (the C client's perf_ctl; `open_control_fifos` here)
still opens both non-blocking and waits for each ack with a timeout, so a perf that died cannot
hang the target.

perf 6.1 writes the ack as the 5 bytes `ack\\n\\0` (the C string with its terminator), so the
second ack's line starts with a NUL byte; a target must look for `ack`, not a whole line.

Missing is not zero: a counter perf could not count is a `Counter` with `value=None`, a status
("not supported" / "not counted") and a reason. Nothing here prints; errors are NetobsErrors.
"""
from __future__ import annotations

import errno
import functools
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from netobs import procfs
from netobs.figures import EVENT_BY_COLUMN
from netobs.errors import CapabilityError, NetobsError, UsageError

# The study's four counters (netobs.figures declares which column each fills), then what
# explains them where hardware counters are missing (task-clock) or present (instructions).
DEFAULT_EVENTS = tuple(EVENT_BY_COLUMN.values()) + ("instructions", "task-clock", "cpu-migrations")

# Counting only the measured window needs `--control fifo:` (perf 5.10) and -D -1 (a little
# earlier): read from perf's own option list (perf_features), not from its version.
PARANOID_PATH = Path("/proc/sys/kernel/perf_event_paranoid")
INSTALL_FIX = "apt-get install linux-perf (Debian) or your distribution's perf package"
PERMISSION_FIX = ("run netobs as root (sudo), or allow perf for users with "
                  "`sudo sysctl -w kernel.perf_event_paranoid=1`")

COUNTED, SCALED, NOT_SUPPORTED, NOT_COUNTED = "counted", "scaled", "not supported", "not counted"

REASON_NOT_SUPPORTED = ("perf reported <not supported>: this host's kernel or PMU cannot count it "
                        "(hardware counters are often unavailable in VMs)")
REASON_NOT_COUNTED = ("perf reported <not counted>: the event never ran while enabled (the measured "
                      "window was never enabled, or the PMU never scheduled it)")
REASON_NO_LINE = "perf printed no result for this event"
REASON_NEVER_RAN = "the counter ran 0% of the enabled time"
REASON_NEVER_ENABLED = ("the measured window was never enabled (the target never wrote `enable` to "
                        "perf's control fifo)")

# One event name as the user may give it: a symbolic name, `pmu/term=value/`, a raw `rNNNN`,
# a tracepoint `sys:name`, optional `:modifiers`. No commas (they separate events, and `-x,`
# output would become ambiguous), no spaces, no shell or option syntax.
_EVENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/=@+\-]{0,127}$")
# perf's event modifiers, as perf may append them (`cycles:u`, `instructions:uk`)
_MODIFIERS_RE = re.compile(r":[ukhIGHpPSDWeb]+$")
_PMU_WRAPPED_RE = re.compile(r"^[A-Za-z0-9_.\-]+/([^/=,]+)/[A-Za-z]*$")
# perf's own aliases: both spellings name the same event
_ALIASES = {
    "cycles": "cpu-cycles",
    "cs": "context-switches",
    "migrations": "cpu-migrations",
    "faults": "page-faults",
    "branches": "branch-instructions",
    "idle-cycles-frontend": "stalled-cycles-frontend",
    "idle-cycles-backend": "stalled-cycles-backend",
}


@dataclass(frozen=True)
class Counter:
    """One perf event's result. `value` is None unless status is counted or scaled; then
    `reason` says why it is missing. `scaled`: perf multiplexed the counter and extrapolated
    the value from the `running_pct` share of the enabled time (the value kept is perf's
    scaled one). `runtime_ns`: perf's event-runtime, the time the counter actually ran."""

    event: str
    value: float | None
    unit: str
    status: str
    running_pct: float | None
    reason: str | None
    runtime_ns: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def enabled_ns(self) -> float | None:
        """Time enabled = runtime / running share (perf prints only those two)."""
        if self.runtime_ns is None or not self.running_pct:
            return None
        return self.runtime_ns * 100.0 / self.running_pct


# --------------------------------------------------------------------------------------------
# The parser: the one place perf output is read.
# --------------------------------------------------------------------------------------------

def _number(text) -> float | None:
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    text = str(text).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _make_counter(event: str, raw_value, unit: str, runtime, pcnt) -> Counter:
    """Turn one perf record's fields into a Counter with its status (the rules live here)."""
    unit = (unit or "").strip()
    runtime_ns = None
    rt = _number(runtime)
    if rt is not None:
        runtime_ns = int(rt)
    pct = _number(pcnt)
    raw = str(raw_value).strip() if raw_value is not None else ""
    if raw.startswith("<"):
        if raw == "<not supported>":
            return Counter(event, None, unit, NOT_SUPPORTED, None, REASON_NOT_SUPPORTED, runtime_ns)
        if raw == "<not counted>":
            return Counter(event, None, unit, NOT_COUNTED, None, REASON_NOT_COUNTED, runtime_ns)
        return Counter(event, None, unit, NOT_COUNTED, None, f"perf reported {raw}", runtime_ns)
    value = _number(raw)
    if value is None:
        return Counter(event, None, unit, NOT_COUNTED, None,
                       f"perf printed an unreadable value {raw!r}", runtime_ns)
    if pct is not None and pct <= 0.0:
        return Counter(event, None, unit, NOT_COUNTED, pct, REASON_NEVER_RAN, runtime_ns)
    if pct is not None and pct < 100.0:
        return Counter(event, value, unit, SCALED, pct,
                       f"perf scaled it: the counter ran {pct:.2f}% of the enabled time (multiplexed)",
                       runtime_ns)
    return Counter(event, value, unit, COUNTED, pct if pct is not None else 100.0, None, runtime_ns)


def parse_json(text: str) -> list[Counter]:
    """`perf stat -j` output: one JSON object per counter, plus what perf adds around them
    (`# started on` comments, blank lines, `-v` lines like `task-clock: 1 2 3`, metric-only
    objects without an event, and objects not separated by a newline)."""
    decoder = json.JSONDecoder()
    counters: list[Counter] = []
    pos, n = 0, len(text)
    while pos < n:
        ch = text[pos]
        if ch.isspace():
            pos += 1
            continue
        if ch == "{":
            try:
                obj, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                obj, end = None, text.find("\n", pos)
                end = n if end < 0 else end
            pos = end
            if isinstance(obj, dict) and obj.get("event") and "counter-value" in obj:
                counters.append(_make_counter(
                    str(obj["event"]), obj.get("counter-value"), obj.get("unit", ""),
                    obj.get("event-runtime", obj.get("runtime")), obj.get("pcnt-running")))
            continue
        end = text.find("\n", pos)  # a comment or another line perf added: skip it
        pos = n if end < 0 else end + 1
    return counters


def parse_csv(text: str, sep: str = ",") -> list[Counter]:
    """`perf stat -x,` output: value, unit, event, run time, running %, [metric value, metric
    unit, ...]. Lines with an empty event are extra metric lines; other lines perf adds
    (comments, blanks, `-v` lines) are skipped."""
    counters: list[Counter] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(sep)
        if len(fields) < 3:
            continue
        raw, unit, event = fields[0].strip(), fields[1], fields[2].strip()
        if not event or not raw:
            continue  # a metric-only line (`,,,,,0.25,stalled cycles per insn`)
        if not raw.startswith("<") and _number(raw) is None:
            continue  # not a counter line
        runtime = fields[3] if len(fields) > 3 else None
        pcnt = fields[4] if len(fields) > 4 else None
        counters.append(_make_counter(event, raw, unit, runtime, pcnt))
    return counters


def parse(text: str, fmt: str) -> list[Counter]:
    if fmt == "json":
        return parse_json(text)
    if fmt == "csv":
        return parse_csv(text)
    raise ValueError(f"unknown perf output format {fmt!r}")


# --------------------------------------------------------------------------------------------
# Event names: validation and mapping perf's printed names back to the ones asked for.
# --------------------------------------------------------------------------------------------

def validate_events(events) -> list[str]:
    """Check names against a safe charset; drop duplicates (keeping order). `events` may be a
    comma-separated string or a list. UsageError on a bad name or an empty list."""
    if isinstance(events, str):
        events = events.split(",")
    out: list[str] = []
    for ev in events:
        ev = str(ev).strip()
        if not _EVENT_RE.match(ev):
            raise UsageError(f"bad perf event name {ev!r}",
                             fix="names as `perf list` prints them (letters, digits, - _ . : / = @ +), "
                                 "comma-separated")
        if ev not in out:
            out.append(ev)
    if not out:
        raise UsageError("no perf events given", fix="--events task-clock,context-switches, or --no-perf")
    return out


def canonical_event(name: str) -> str:
    """The name perf and the user may spell differently, reduced to one form:
    `cpu_core/cycles/u` -> `cpu-cycles`, `cycles:u` -> `cpu-cycles`, `CS` -> `context-switches`."""
    n = name.strip()
    m = _PMU_WRAPPED_RE.match(n)
    if m:
        n = m.group(1)
    n = _MODIFIERS_RE.sub("", n).lower()
    return _ALIASES.get(n, n)


# Software events that only ever fire inside the kernel: counted user-space-only they read 0.
_KERNEL_ONLY_SW = {"context-switches", "cpu-migrations"}
REASON_USER_ONLY = ("perf counted user space only (it added `:u`: not root and "
                    "kernel.perf_event_paranoid=2); kernel-side activity is not in this value")
REASON_USER_ONLY_ZERO = ("cannot be counted user-space-only (perf added `:u`: not root and "
                         "kernel.perf_event_paranoid=2): it happens in the kernel, so perf's 0 would be fake; "
                         "run as root")


def _user_only(asked: str, printed: str, c: Counter) -> Counter:
    """perf silently narrows events to user space (`cycles` -> `cycles:u`) when it may not count
    the kernel. Say so; and a kernel-only software event read that way is not counted, not 0."""
    m = _MODIFIERS_RE.search(printed)
    if not m or "u" not in m.group(0) or "k" in m.group(0) or _MODIFIERS_RE.search(asked):
        return c
    if c.value is None:
        return c
    if canonical_event(asked) in _KERNEL_ONLY_SW:
        return replace(c, value=None, status=NOT_COUNTED, running_pct=None, reason=REASON_USER_ONLY_ZERO)
    return replace(c, reason=(c.reason + "; " if c.reason else "") + REASON_USER_ONLY)


def _merge(event: str, parts: list[Counter]) -> Counter:
    """Several printed records for one asked-for event (a hybrid CPU prints one per PMU):
    their sum where any counted, else the first one's missing status."""
    have = [c for c in parts if c.value is not None]
    if not have:
        return replace(parts[0], event=event)
    if len(have) == 1:
        return replace(have[0], event=event)
    scaled = any(c.status == SCALED for c in have)
    pcts = [c.running_pct for c in have if c.running_pct is not None]
    rts = [c.runtime_ns for c in have if c.runtime_ns is not None]
    return Counter(event, sum(c.value for c in have), have[0].unit, SCALED if scaled else COUNTED,
                   min(pcts) if pcts else None,
                   f"sum of {len(have)} PMUs' counts" + ("; some scaled by perf (multiplexed)" if scaled else ""),
                   sum(rts) if rts else None)


def match_events(requested: list[str], counters: list[Counter]) -> dict[str, Counter]:
    """Map perf's records back to the names asked for (in the order asked). An exact name match
    wins; else perf's spelling (modifiers, PMU prefix, aliases) is reduced on both sides.
    An asked-for event perf printed nothing for is `not counted` with that reason; records for
    events nobody asked for are left out."""
    groups: dict[str, list[Counter]] = {ev: [] for ev in requested}
    canon = {}
    for ev in requested:
        canon.setdefault(canonical_event(ev), ev)
    for c in counters:
        if c.event in groups:
            groups[c.event].append(c)
            continue
        target = canon.get(canonical_event(c.event))
        if target is not None:
            groups[target].append(_user_only(target, c.event, c))
    out = {}
    for ev in requested:
        parts = groups[ev]
        out[ev] = _merge(ev, parts) if parts else Counter(ev, None, "", NOT_COUNTED, None, REASON_NO_LINE)
    return out


# --------------------------------------------------------------------------------------------
# Finding perf, its version and features, and whether we may use it.
# --------------------------------------------------------------------------------------------

def _c_env() -> dict:
    """perf formats numbers with the C library's locale; `-x,` with a decimal comma would be
    unreadable, so perf always runs with LC_ALL=C."""
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    return env


@functools.lru_cache(maxsize=8)
def _version_of(path: str) -> tuple[str | None, str]:
    """(version, what perf said). Debian's /usr/bin/perf may be a wrapper that fails when no
    perf matches the running kernel; its message is kept for the error."""
    try:
        proc = subprocess.run([path, "version"], capture_output=True, text=True, timeout=10, env=_c_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    said = (proc.stdout + proc.stderr).strip()
    m = re.search(r"perf version (\S+)", said)
    if proc.returncode != 0 or not m:
        return None, said.splitlines()[0] if said else f"exit status {proc.returncode}"
    return m.group(1), said


def _version_tuple(version: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _which_perf() -> str | None:
    return shutil.which("perf")


def find_perf() -> str:
    """The perf executable to use, checked to run. CapabilityError with the fix when it is
    missing or broken. (Whether it can count a window is PerfStat's check: an older perf
    still counts a whole process life, e.g. the server's.)"""
    path = _which_perf()
    if path is None:
        raise CapabilityError("perf not found", "no `perf` executable on PATH", fix=INSTALL_FIX)
    version, said = _version_of(path)
    if version is None:
        raise CapabilityError("perf does not run", f"{path} version: {said}",
                              fix=INSTALL_FIX + " (matching the running kernel)")
    return path


def check_window(path: str, feats: dict | None = None) -> None:
    """CapabilityError unless this perf can count only a measured window (the client's)."""
    feats = feats or perf_features(path)
    if not (feats["control_fifo"] and feats["delay_disabled"]):
        raise CapabilityError("this perf cannot count a window",
                              f"perf {perf_version()} lacks `stat --control fifo:` or `-D -1` (perf 5.10+)",
                              fix="a newer " + INSTALL_FIX + ", or --no-perf")


def perf_version() -> str | None:
    """perf's version string (`6.1.192`), or None when there is no working perf."""
    path = _which_perf()
    return _version_of(path)[0] if path else None


@functools.lru_cache(maxsize=8)
def perf_features(path: str) -> dict:
    """What this perf's `perf stat` supports, read from its own option list."""
    try:
        proc = subprocess.run([path, "stat", "-h"], capture_output=True, text=True, timeout=10, env=_c_env())
        text = proc.stdout + proc.stderr
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    version = _version_of(path)[0] or "0.0"
    delay_line = next((ln for ln in text.splitlines() if "--delay" in ln), "")
    return {
        "json": "--json-output" in text,
        "control_fifo": "--control" in text and "fifo:" in text,
        "delay_disabled": "-1" in delay_line or _version_tuple(version) >= (5, 9),
    }


def perf_permission() -> dict:
    """May this process count its children's events, kernel side included?
    {"paranoid": int|None, "privileged": bool, "level": "full"|"user-only"|"denied", "reason"}"""
    try:
        paranoid = int(PARANOID_PATH.read_text().strip())
    except (OSError, ValueError):
        return {"paranoid": None, "privileged": False, "level": "denied",
                "reason": "this kernel has no perf events (no /proc/sys/kernel/perf_event_paranoid)"}
    caps = procfs.cap_effective()
    privileged = os.geteuid() == 0 or bool(caps & (1 << 38)) or bool(caps & (1 << 21))  # CAP_PERFMON, CAP_SYS_ADMIN
    if privileged or paranoid <= 1:
        return {"paranoid": paranoid, "privileged": privileged, "level": "full", "reason": None}
    if paranoid == 2:
        return {"paranoid": paranoid, "privileged": False, "level": "user-only",
                "reason": "kernel.perf_event_paranoid=2 without root: only user-space counts "
                          "(the kernel's copies are not counted)"}
    return {"paranoid": paranoid, "privileged": False, "level": "denied",
            "reason": f"kernel.perf_event_paranoid={paranoid} forbids perf for users without CAP_PERFMON"}


def check_permission() -> dict:
    """perf_permission(), raising CapabilityError when perf may not be used at all."""
    perm = perf_permission()
    if perm["level"] == "denied":
        raise CapabilityError("perf is not permitted", perm["reason"], fix=PERMISSION_FIX)
    return perm


# --------------------------------------------------------------------------------------------
# One perf-stat session around one process.
# --------------------------------------------------------------------------------------------

class PerfStat:
    """`perf stat` around one target process, counting only the window the target enables.

        ps = PerfStat(events, files)   # files: the point's netobs.store.PointFiles
        argv = ps.argv(WORKER + PARAMS.worker_argv("client", {**values, **ps.worker_values}))
        ...   # run it: the client writes enable/disable; after it exited:
        ps.result(window_s=client_report["window_s"])

    Its files are the point's: the store names them (`files.perf_output(role, fmt)`,
    `files.perf_fifo(role, "ctl"|"ack")`) and says where they are (`files.at`).
    """

    def __init__(self, events: list[str] | None, files, role: str = "client", output_format: str = "auto",
                 window: bool = True):
        """`window=False`: count the whole process life (for a target that cannot say when its
        window opens, like the server); no fifos, no -D -1."""
        self.events = validate_events(list(events) if events is not None else DEFAULT_EVENTS)
        self.perf = find_perf()
        self.permission = check_permission()
        self.window = window
        feats = perf_features(self.perf)
        if window:
            check_window(self.perf, feats)
        if output_format == "auto":
            output_format = "json" if feats["json"] else "csv"
        if output_format not in ("json", "csv"):
            raise UsageError(f"unknown perf output format {output_format!r}", fix="json or csv")
        if output_format == "json" and not feats["json"]:
            raise CapabilityError("this perf has no JSON output (-j)", fix="output_format='csv'")
        self.format = output_format
        self.ctl = files.at(files.perf_fifo(role, "ctl"))
        self.ack = files.at(files.perf_fifo(role, "ack"))
        self.out = files.at(files.perf_output(role, self.format))
        if window:
            for fifo in (self.ctl, self.ack):
                _fresh_fifo(fifo)

    @property
    def worker_values(self) -> dict:
        """What the client worker needs to find the fifos it writes enable/disable to (its
        --perf-ctl and --perf-ack)."""
        return {"perf_ctl": str(self.ctl), "perf_ack": str(self.ack)} if self.window else {}

    def argv(self, target_argv: list[str]) -> list[str]:
        """perf stat with events disabled until the target enables them, output to a file
        (the target's own stdout stays the target's), run in the C locale."""
        fmt = ["-j"] if self.format == "json" else ["-x", ","]
        events = [arg for ev in self.events for arg in ("-e", ev)]
        env = shutil.which("env") or "/usr/bin/env"
        control = ["-D", "-1", "--control", f"fifo:{self.ctl},{self.ack}"] if self.window else []
        return [env, "LC_ALL=C", self.perf, "stat", *fmt, "-o", str(self.out), *control,
                *events, "--", *target_argv]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def cleanup(self) -> None:
        """Remove the fifos (the raw output stays). Safe to call more than once."""
        for fifo in (self.ctl, self.ack):
            try:
                fifo.unlink()
            except FileNotFoundError:
                pass

    def result(self, window_s: float | None = None) -> dict:
        """After the process exited: the counters, keyed by the names asked for.

        `window_s`: the measured window's wall-clock length as the target timed it (between
        perf's two acks); perf cannot say it for a per-process count. `window_enabled_s` is what
        perf does say: the time its counters were enabled, which for a per-process count
        accrues only while the target's threads run (summed over threads), i.e. CPU time in the
        window, not wall-clock time. Raises NetobsError when perf left no counts at all."""
        self.cleanup()
        try:
            text = self.out.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        counters = parse(text, self.format)
        if not counters:
            raise NetobsError("perf stat left no counts", f"{self.out.name} holds no counter lines "
                              "(perf failed to start or was killed; see the process's stderr)",
                              fix="`netobs doctor` to check perf, or --no-perf")
        events = match_events(self.events, counters)
        # every event that could be counted came back <not counted>: the window never opened
        perf_said = [c for c in events.values() if c.status != NOT_SUPPORTED]
        if perf_said and all(c.reason == REASON_NOT_COUNTED for c in perf_said):
            events = {k: (replace(c, reason=REASON_NEVER_ENABLED) if c.reason == REASON_NOT_COUNTED else c)
                      for k, c in events.items()}
        enabled = [c.enabled_ns for c in events.values() if c.value is not None and c.enabled_ns]
        return {
            "events": {name: c.to_dict() for name, c in events.items()},
            "unsupported": {name: c.reason for name, c in events.items() if c.value is None},
            "raw_path": str(self.out),
            "format": self.format,
            "counted": "measured window" if self.window else "whole process life",
            "window_s": window_s,
            "window_enabled_s": (max(enabled) / 1e9) if enabled else None,
            "perf_version": perf_version(),
            "permission": self.permission["level"],
        }


def _fresh_fifo(path: Path) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISFIFO(st.st_mode):
            raise NetobsError("cannot create perf's control fifo", f"{path} exists and is not a fifo",
                              fix="remove it or use another directory")
        path.unlink()  # a leftover from a killed run: a stale fifo could hold old commands
    os.mkfifo(path, 0o600)


# --------------------------------------------------------------------------------------------
# The target's side of the control protocol.
# --------------------------------------------------------------------------------------------

def open_control_fifos(ctl_path: str, ack_path: str) -> tuple[int, int]:
    """The target's side of `--control fifo:CTL,ACK`, opened without ever blocking: CTL
    write-only non-blocking (ENXIO: nobody reads it, perf is not running), then blocking for
    writes; ACK read-only non-blocking (the reader polls it). Returns (ctl_fd, ack_fd)."""
    try:
        ctl = os.open(ctl_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise UsageError("perf control fifo has no reader", f"{ctl_path}: perf is not running",
                             fix="start the target under `perf stat --control fifo:CTL,ACK -D -1`") from None
        raise UsageError("cannot open perf's control fifo", f"{ctl_path}: {exc.strerror}",
                         fix="the fifo path perf was given") from None
    try:
        ack = os.open(ack_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        os.close(ctl)
        raise UsageError("cannot open perf's ack fifo", f"{ack_path}: {exc.strerror}",
                         fix="the fifo path perf was given") from None
    os.set_blocking(ctl, True)
    return ctl, ack


# --------------------------------------------------------------------------------------------
# Doctor: which events this host can count.
# --------------------------------------------------------------------------------------------

def _probe_workload() -> list[str]:
    true = shutil.which("true")
    if true:
        return [true]
    import sys
    return [sys.executable, "-c", "pass"]


def _run_probe(perf: str, events: list[str], fmt: str) -> tuple[list[Counter], str, int]:
    with tempfile.TemporaryDirectory(prefix="netobs-perf-probe-") as tmp:
        out = Path(tmp) / "probe.out"
        fmt_args = ["-j"] if fmt == "json" else ["-x", ","]
        argv = [perf, "stat", *fmt_args, "-o", str(out),
                *[a for ev in events for a in ("-e", ev)], "--", *_probe_workload()]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=_c_env())
        except subprocess.TimeoutExpired:
            return [], "perf stat did not finish in 20 s", -1
        text = out.read_text(errors="replace") if out.exists() else ""
        return parse(text, fmt), proc.stderr, proc.returncode


def _perf_complaint(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if "error" in ln.lower() or "not supported" in ln.lower() or "permission" in ln.lower():
            return ln
    return lines[0] if lines else "perf failed without a message"


def probe_events(events: list[str]) -> dict[str, dict]:
    """Run a tiny `perf stat` to see which events this host supports:
    {event: {"supported": bool, "reason": str|None, "status": str|None}}. An event perf
    rejects outright (unknown name) is probed alone so that it cannot hide the others."""
    events = validate_events(events)
    perf = find_perf()
    fmt = "json" if perf_features(perf)["json"] else "csv"
    counters, stderr, rc = _run_probe(perf, events, fmt)
    if not counters:  # perf refused the list: find out per event
        results = {}
        for ev in events:
            one, err, _ = _run_probe(perf, [ev], fmt)
            if one:
                results.update(_probe_verdicts([ev], one))
            else:
                results[ev] = {"supported": False, "status": None,
                               "reason": f"perf rejected it: {_perf_complaint(err)}"}
        return results
    return _probe_verdicts(events, counters)


def check_events(events) -> dict[str, dict]:
    """Before a run: validate the names and make sure perf knows each one (an unknown name
    would make perf exit with its usage text instead of counting). UsageError naming the
    unknown events; events this host cannot count are fine here (they come back "not
    supported"). Returns probe_events()'s verdicts."""
    events = validate_events(events)
    probe = probe_events(events)
    rejected = [ev for ev, v in probe.items() if v["status"] is None and not v["supported"]]
    if rejected:
        raise UsageError(f"perf does not know event{'s' if len(rejected) > 1 else ''} {', '.join(rejected)}",
                         probe[rejected[0]]["reason"], fix="`perf list` for the names this host has")
    return probe


def _probe_verdicts(events: list[str], counters: list[Counter]) -> dict[str, dict]:
    out = {}
    for ev, c in match_events(events, counters).items():
        if c.status in (COUNTED, SCALED):
            out[ev] = {"supported": True, "status": c.status, "reason": None}
        elif c.status == NOT_SUPPORTED:
            out[ev] = {"supported": False, "status": c.status, "reason": c.reason}
        else:  # opened, but did not run during the tiny probe: not a verdict against it
            out[ev] = {"supported": True, "status": c.status,
                       "reason": "opened but did not run during the probe: " + (c.reason or "")}
    return out


def doctor_facts() -> dict:
    """perf's path, version, permission, -j/--control support, and every default event's
    support on this host. Never raises: what fails is reported with its reason."""
    facts: dict = {"ok": False, "path": _which_perf(), "version": None, "checks": []}
    checks = facts["checks"]
    perm = perf_permission()
    facts["permission"] = perm
    try:
        path = find_perf()
    except CapabilityError as exc:
        facts["error"] = exc.message
        checks.append({"name": "perf", "ok": False, "detail": exc.message})
        return facts
    facts["version"] = perf_version()
    checks.append({"name": "perf", "ok": True, "detail": f"{path}, version {facts['version']}"})
    checks.append({"name": "permission", "ok": perm["level"] != "denied",
                   "detail": (f"perf_event_paranoid={perm['paranoid']}, "
                              f"{'privileged' if perm['privileged'] else 'unprivileged'}"
                              + (f": {perm['reason']}" if perm["reason"] else ""))})
    feats = perf_features(path)
    facts.update({"json": feats["json"], "control": feats["control_fifo"], "delay_disabled": feats["delay_disabled"]})
    checks.append({"name": "JSON output (-j)", "ok": feats["json"],
                   "detail": "used" if feats["json"] else "falls back to -x, (CSV)"})
    checks.append({"name": "window control (--control fifo, -D -1)",
                   "ok": feats["control_fifo"] and feats["delay_disabled"],
                   "detail": "counts only the measured window"})
    if perm["level"] == "denied":
        facts["error"] = f"perf is not permitted: {perm['reason']}; try {PERMISSION_FIX}"
        return facts
    try:
        facts["events"] = probe_events(DEFAULT_EVENTS)
    except NetobsError as exc:
        facts["error"] = exc.message
        return facts
    for ev, v in facts["events"].items():
        checks.append({"name": f"event {ev}", "ok": v["supported"], "detail": v["reason"] or v["status"]})
    facts["ok"] = feats["control_fifo"] and feats["delay_disabled"]
    return facts
