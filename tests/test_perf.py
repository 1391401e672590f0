"""netobs.perf: the one perf-stat parser (golden outputs), event names, and the control
protocol as it ships: the C client worker (its perf_ctl, driven by --perf-ctl/--perf-ack)
against a stand-in for perf's end of the fifos, and, as root, under real `perf stat --control`
with a real server on loopback, counting only the measured window."""
from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from netobs import perf
from netobs.errors import CapabilityError, NetobsError, UsageError
from netobs.params import PARAMS
from netobs.runner import WORKER
from netobs.store import PointFiles
from conftest import REPO, need, need_workers

FIXTURES = Path(__file__).parent / "fixtures" / "perf"
HW_EVENTS = ["cpu-cycles", "L1-dcache-load-misses", "LLC-load-misses", "instructions"]

NS, NC = perf.NOT_SUPPORTED, perf.NOT_COUNTED


def load(name: str) -> list[perf.Counter]:
    fmt = "json" if name.endswith(".jsonl") else "csv"
    return perf.parse((FIXTURES / name).read_text(), fmt)


def by_event(counters):
    return {c.event: c for c in counters}


# ------------------------------------------------------------------ parser on golden outputs

# fixture -> {event as perf printed it: (status, value, running_pct)}
EXPECTED = {
    "vm61-window": {
        "cpu-cycles": (NS, None, None), "L1-dcache-load-misses": (NS, None, None),
        "LLC-load-misses": (NS, None, None), "instructions": (NS, None, None),
        "context-switches": ("counted", 1.0, 100.0), "cpu-migrations": ("counted", 0.0, 100.0),
    },
    "vm61-never-enabled": {
        "cpu-cycles": (NS, None, None), "instructions": (NS, None, None),
        "context-switches": (NC, None, None), "task-clock": (NC, None, None), "cpu-migrations": (NC, None, None),
    },
    "vm61-verbose": {
        "cs": ("counted", None, 100.0), "cycles:u": (NS, None, None), "page-faults:k": ("counted", 0.0, 100.0),
    },
    "baremetal61": {
        "cpu-cycles": ("counted", 8123456789.0, 100.0),
        "L1-dcache-load-misses": ("scaled", 412345678.0, 83.33),
        "LLC-load-misses": ("scaled", 2345678.0, 66.67),
        "context-switches": ("counted", 15234.0, 100.0),
        "instructions": ("counted", 9876543210.0, 100.0),
        "cpu-migrations": ("counted", 3.0, 100.0),
        "branch-misses": (NC, None, None),
    },
    "newer-perf": {
        "context-switches": ("counted", 412.0, 100.0),
        "cpu_core/cycles/u": ("scaled", 5e9, 75.0),
        "cpu_atom/cycles/u": ("counted", 1e9, 100.0),
        "instructions:u": ("counted", 8e9, 100.0),
        "L1-dcache-load-misses:u": (NS, None, None),
        "LLC-load-misses:u": (NC, None, None),
        "page-faults": ("counted", 17.0, 100.0),
    },
}


@pytest.mark.parametrize("ext", ["jsonl", "csv"])
@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_parser_statuses(fixture, ext):
    got = by_event(load(f"{fixture}.{ext}"))
    for event, (status, value, pct) in EXPECTED[fixture].items():
        c = got[event]
        assert c.status == status, (event, c)
        if value is not None:
            assert c.value == pytest.approx(value)
        if status in (NS, NC):
            assert c.value is None and c.reason, c  # missing, with its reason: never 0
        if status == "scaled":
            assert "scaled" in c.reason and c.value is not None
        if pct is not None:
            assert c.running_pct == pytest.approx(pct)


@pytest.mark.parametrize("ext", ["jsonl", "csv"])
def test_parser_keeps_only_counter_lines(ext):
    # comments, blanks, -v lines and metric-only lines are not counters
    assert [c.event for c in load(f"vm61-verbose.{ext}")] == ["task-clock", "cs", "cycles:u", "page-faults:k"]
    assert len(load(f"baremetal61.{ext}")) == 8


def test_parser_units_and_runtime():
    tc = by_event(load("vm61-window.jsonl"))["task-clock"]
    assert tc.unit == "msec" and tc.status == "counted"
    assert tc.runtime_ns == 200120769 and tc.value == pytest.approx(200.120769)
    # -x, prints msec with two decimals; the runtime keeps the nanoseconds
    tc_csv = by_event(load("vm61-window.csv"))["task-clock"]
    assert tc_csv.value == pytest.approx(200.13) and tc_csv.runtime_ns == 200129001
    scaled = by_event(load("baremetal61.csv"))["L1-dcache-load-misses"]
    assert scaled.enabled_ns == pytest.approx(1667015612 / 0.8333)


def test_parser_newer_json_quirks():
    events = [c.event for c in load("newer-perf.jsonl")]
    # two objects on one line both read; the truncated `migrations` object is skipped, not guessed;
    # the last object (no trailing newline) is read
    assert "LLC-load-misses:u" in events and "L1-dcache-load-misses:u" in events
    assert "migrations" not in events
    assert events[-1] == "page-faults"
    assert "migrations" in [c.event for c in load("newer-perf.csv")]


def test_parser_edge_cases():
    assert perf.parse_json("") == [] and perf.parse_csv("") == []
    assert perf.parse_csv("# started on x\n\nnot,a,counter\n") == []
    [c] = perf.parse_csv("0,,context-switches,100,100.00,,\n")
    assert c.status == "counted" and c.value == 0.0  # a real zero stays a zero
    [c] = perf.parse_csv("12,,cycles,0,0.00,,\n")
    assert c.status == NC and c.value is None  # ran 0% of the time: no value, not 0
    [c] = perf.parse_json('{"counter-value" : "<unknown>", "unit" : "", "event" : "x", "event-runtime" : 0}')
    assert c.status == NC and "<unknown>" in c.reason
    with pytest.raises(ValueError):
        perf.parse("", "xml")


def test_counter_to_dict_is_json_with_null():
    c = by_event(load("vm61-window.jsonl"))["cpu-cycles"]
    d = json.loads(json.dumps(c.to_dict()))
    assert d["value"] is None and d["status"] == "not supported" and d["running_pct"] is None
    assert set(d) >= {"event", "value", "unit", "status", "running_pct", "reason"}


# ------------------------------------------------------------------ event names

def test_match_events_round_trips_names():
    counters = load("newer-perf.csv")
    asked = ["cpu-cycles", "instructions", "L1-dcache-load-misses", "LLC-load-misses", "cpu-migrations",
             "task-clock", "faults", "branch-misses"]
    got = perf.match_events(asked, counters)
    assert list(got) == asked and all(c.event == name for name, c in got.items())
    cyc = got["cpu-cycles"]  # hybrid: cpu_core (scaled) + cpu_atom, summed
    assert cyc.value == pytest.approx(6e9) and cyc.status == "scaled" and cyc.running_pct == 75.0
    assert got["instructions"].value == pytest.approx(8e9)
    assert got["L1-dcache-load-misses"].status == NS and got["LLC-load-misses"].status == NC
    assert got["cpu-migrations"].value == 2.0  # printed as `migrations`
    assert got["faults"].value == 17.0  # asked as the alias, printed as `page-faults`
    assert got["branch-misses"].status == NC and got["branch-misses"].reason == perf.REASON_NO_LINE


def test_user_only_counting_is_said_and_never_a_fake_zero():
    # perf 6.1 as a user with perf_event_paranoid=2 narrows every event to `:u`
    got = perf.match_events(["cpu-cycles", "context-switches", "task-clock", "cpu-migrations", "page-faults"],
                            load("vm61-user-only.jsonl"))
    assert got["cpu-cycles"].status == NS
    for name in ("context-switches", "cpu-migrations"):  # kernel-only: perf's 0 is not a measurement
        assert got[name].status == NC and got[name].value is None and "kernel" in got[name].reason
    assert got["task-clock"].status == "counted" and got["task-clock"].value == pytest.approx(199.852106)
    assert "user space only" in got["task-clock"].reason
    assert got["page-faults"].value == 0.0 and "user space only" in got["page-faults"].reason
    # asked for with the modifier: taken as asked
    [c] = perf.match_events(["context-switches:u"], load("vm61-user-only.jsonl")).values()
    assert c.status == "counted" and c.value == 0.0 and c.reason is None


def test_match_events_exact_name_wins():
    counters = perf.parse_csv("5,,cycles:u,10,100.00,,\n7,,cpu-cycles,10,100.00,,\n")
    got = perf.match_events(["cycles:u", "cpu-cycles"], counters)
    assert got["cycles:u"].value == 5 and got["cpu-cycles"].value == 7


def test_canonical_event():
    assert perf.canonical_event("cycles:u") == "cpu-cycles"
    assert perf.canonical_event("cpu_core/cycles/") == "cpu-cycles"
    assert perf.canonical_event("CS") == "context-switches"
    assert perf.canonical_event("sched:sched_switch") == "sched:sched_switch"
    assert perf.canonical_event("cpu/event=0x3c,umask=0x0/") == "cpu/event=0x3c,umask=0x0/"


def test_validate_events():
    assert perf.validate_events("task-clock, cs,task-clock") == ["task-clock", "cs"]
    assert perf.validate_events(["cpu/event=0x3c/u", "sched:sched_switch", "r003c"]) == \
        ["cpu/event=0x3c/u", "sched:sched_switch", "r003c"]
    for bad in ["cycles;rm -rf /", "--output=x", "a b", "", "$(id)", "-e"]:
        with pytest.raises(UsageError):
            perf.validate_events([bad])
    with pytest.raises(UsageError):
        perf.validate_events([])


# ------------------------------------------------------------------ finding perf, permission

def test_perf_missing_says_how_to_install(monkeypatch):
    monkeypatch.setattr(perf, "_which_perf", lambda: None)
    with pytest.raises(CapabilityError) as exc:
        perf.find_perf()
    assert "perf not found" in exc.value.message and "linux-perf" in exc.value.message
    assert perf.perf_version() is None
    facts = perf.doctor_facts()
    assert facts["ok"] is False and "linux-perf" in facts["error"]


def test_perf_broken_or_too_old(monkeypatch, tmp_path):
    monkeypatch.setattr(perf, "_which_perf", lambda: "/usr/bin/perf")
    monkeypatch.setattr(perf, "_version_of", lambda p: (None, "WARNING: perf not found for kernel 6.18"))
    with pytest.raises(CapabilityError, match="kernel 6.18"):
        perf.find_perf()
    # a perf without --control still counts a whole process life (the server's), not a window
    monkeypatch.setattr(perf, "_version_of", lambda p: ("4.19.0", "perf version 4.19.0"))
    monkeypatch.setattr(perf, "perf_features",
                        lambda p: {"json": False, "control_fifo": False, "delay_disabled": False})
    monkeypatch.setattr(perf, "check_permission", lambda: {"level": "full"})
    assert perf.find_perf() == "/usr/bin/perf"
    with pytest.raises(CapabilityError, match="cannot count a window") as exc:
        perf.PerfStat(["task-clock"], PointFiles(tmp_path))
    assert "--no-perf" in exc.value.message
    from netobs.cli._common import check_perf
    from netobs.spec import RunSpec
    with pytest.raises(CapabilityError, match="cannot count a window"):   # refused before any point
        check_perf(RunSpec("one_copy"))
    check_perf(RunSpec("one_copy", perf=False))   # without perf there is nothing to refuse
    whole = perf.PerfStat(["task-clock"], PointFiles(tmp_path), "server", window=False)
    argv = whole.argv(["true"])
    assert whole.window is False and argv[argv.index("-x"):][:2] == ["-x", ","]   # CSV: no -j here
    assert whole.out == tmp_path / "perf-server-stat.csv"   # the store's name for the server's output
    assert "--control" not in argv and "-D" not in argv
    monkeypatch.setattr(perf, "perf_permission", lambda: {"level": "full", "paranoid": 2, "privileged": True, "reason": None})
    monkeypatch.setattr(perf, "probe_events", lambda evs: {e: {"supported": True, "reason": None, "status": "counted"}
                                                            for e in evs})   # no real perf runs here
    facts = perf.doctor_facts()
    window = next(c for c in facts["checks"] if c["name"].startswith("window control"))
    assert facts["version"] == "4.19.0" and window["ok"] is False


@pytest.mark.parametrize("paranoid,euid,caps,level", [
    (3, 1000, 0, "denied"), (2, 1000, 0, "user-only"), (1, 1000, 0, "full"),
    (3, 0, 0, "full"), (4, 1000, 1 << 38, "full"),
])
def test_permission_levels(monkeypatch, tmp_path, paranoid, euid, caps, level):
    p = tmp_path / "paranoid"
    p.write_text(f"{paranoid}\n")
    monkeypatch.setattr(perf, "PARANOID_PATH", p)
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    monkeypatch.setattr(perf.procfs, "cap_effective", lambda pid="self": caps)
    assert perf.perf_permission()["level"] == level
    if level == "denied":
        with pytest.raises(CapabilityError) as exc:
            perf.check_permission()
        assert "perf_event_paranoid" in exc.value.message and "sudo" in exc.value.message
        assert exc.value.exit_code == 2


# ------------------------------------------------------------------ the C client's side (no perf needed)

@contextlib.contextmanager
def _server():
    """A real receiving server in this process, on loopback: yields its port."""
    from netobs.native import Server, ServerConfig

    with Server(ServerConfig(connections=1, timeout=30)) as srv:
        yield srv.start()


def _client_argv(port: int, warmup: float, duration: float, **values) -> list[str]:
    return WORKER + PARAMS.worker_argv("client", {"host": "127.0.0.1", "port": port, "strategy": "two_copy",
                                                  "msg_size": 4096, "threads": 1, "warmup": warmup,
                                                  "duration": duration, **values})


def _fake_perf(tmp_path: Path, acks: bytes | None):
    """perf's end of the fifos, as perf opens them (O_RDWR): read each command, answer `acks`."""
    ctl, ack = tmp_path / "ctl", tmp_path / "ack"
    os.mkfifo(ctl)
    os.mkfifo(ack)
    cfd = os.open(ctl, os.O_RDWR | os.O_NONBLOCK)
    afd = os.open(ack, os.O_RDWR | os.O_NONBLOCK)
    stop_r, stop_w = os.pipe()   # the test's end: the thread stops before the fds are closed
    got: list[tuple[float, bytes]] = []

    def serve():
        for _ in range(2):
            ready, _, _ = select.select([cfd, stop_r], [], [], 20)
            if cfd not in ready:
                return
            got.append((time.monotonic(), os.read(cfd, 64)))
            if acks is not None:
                os.write(afd, acks)

    t = threading.Thread(target=serve, daemon=True)
    t.start()

    def close():
        os.write(stop_w, b"x")
        t.join(5)
        for fd in (cfd, afd, stop_r, stop_w):
            os.close(fd)

    return ctl, ack, got, t, close


@pytest.mark.integration
def test_c_client_enables_and_disables_around_its_window(tmp_path):
    """perf 6.1 acks with `ack\n\0`: the C client reads both acks and opens its window between."""
    need_workers()
    ctl, ack, got, t, close = _fake_perf(tmp_path, b"ack\n\0")
    try:
        with _server() as port:
            started = time.monotonic()
            proc = subprocess.run(_client_argv(port, 0.4, 0.3, perf_ctl=str(ctl), perf_ack=str(ack)),
                                  capture_output=True, text=True, timeout=30, cwd=REPO)
        t.join(5)
    finally:
        close()
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [cmd for _, cmd in got] == [b"enable\n", b"disable\n"]
    (enabled, _), (disabled, _) = got
    assert enabled - started >= 0.4                    # after the warm-up, not before
    assert disabled - enabled == pytest.approx(report["window_s"], abs=0.05)
    assert report["window_s"] == pytest.approx(0.3, abs=0.1)


@pytest.mark.integration
def test_c_client_gives_up_when_perf_never_acks(tmp_path):
    need_workers()
    ctl, ack, got, t, close = _fake_perf(tmp_path, None)
    try:
        with _server() as port:
            started = time.monotonic()
            proc = subprocess.run(_client_argv(port, 0.05, 5.0, perf_ctl=str(ctl), perf_ack=str(ack)),
                                  capture_output=True, text=True, timeout=30, cwd=REPO)
            took = time.monotonic() - started
    finally:
        close()
    assert proc.returncode == 1, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("netobs: error: perf did not answer on its control fifo (perf control ack)")
    assert "no ack for enable" in line
    assert [cmd for _, cmd in got] == [b"enable\n"]
    assert took < 10   # the C client's ack timeout (2 s), not the 5 s window or a hang


# ------------------------------------------------------------------ PerfStat without running it

def _need_perf():
    need(shutil.which("perf") is not None, "perf (apt-get install linux-perf)")


@pytest.mark.integration
def test_perfstat_argv_and_fifos(tmp_path):
    _need_perf()
    need(perf.perf_permission()["level"] != "denied", "perf permitted (root or perf_event_paranoid <= 2)")
    ps = perf.PerfStat(["task-clock", "cs"], PointFiles(tmp_path / "w"))
    argv = ps.argv(WORKER + PARAMS.worker_argv("client", ps.worker_values))
    i = argv.index("stat")
    assert argv[:2] == [argv[0], "LC_ALL=C"] and argv[i - 1] == ps.perf
    assert argv[argv.index("-D") + 1] == "-1"
    assert argv[argv.index("--control") + 1] == f"fifo:{ps.ctl},{ps.ack}"
    assert argv[argv.index("-o") + 1] == str(ps.out)
    assert ("-j" in argv) == (ps.format == "json")
    assert argv[argv.index("--") + 1:] == WORKER + ["send", "--perf-ctl", str(ps.ctl), "--perf-ack", str(ps.ack)]
    assert ps.ctl.is_fifo() and ps.ack.is_fifo()
    # the point's files, named by the store
    files = PointFiles(tmp_path / "w")
    assert (ps.out, ps.ctl, ps.ack) == (files.at(files.perf_output("client", ps.format)),
                                        files.at(files.perf_fifo("client", "ctl")), files.at(files.perf_fifo("client", "ack")))
    assert ps.out.name == ("perf-stat.jsonl" if ps.format == "json" else "perf-stat.csv")
    with pytest.raises(NetobsError, match="no counts"):
        ps.result()  # perf never ran: an error, not a row of zeros
    assert not ps.ctl.exists() and not ps.ack.exists()  # fifos removed, never left in results


@pytest.mark.integration
def test_perfstat_rejects_bad_events_and_formats(tmp_path):
    _need_perf()
    with pytest.raises(UsageError):
        perf.PerfStat(["cycles,instructions"], PointFiles(tmp_path))
    need(perf.perf_permission()["level"] != "denied", "perf permitted")
    with pytest.raises(UsageError):
        perf.PerfStat(None, PointFiles(tmp_path), output_format="xml")


# ------------------------------------------------------------------ live, as root

def _run_client(ps: perf.PerfStat, warmup: float, duration: float, enable: bool = True) -> tuple[dict, dict]:
    """The C client worker under `perf stat --control`, sending to a real server; (its report,
    perf's result). `enable=False`: the client is not told the fifos, so it never enables."""
    need_workers()
    with _server() as port:
        argv = ps.argv(_client_argv(port, warmup, duration, **(ps.worker_values if enable else {})))
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    return report, ps.result(window_s=report["window_s"])


@pytest.mark.root
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_live_counts_only_the_window(root, tmp_path, fmt):
    """1.0 s of sending before the window, 0.3 s in it: task-clock ~0.3 s, not >= 1.3 s."""
    ps = perf.PerfStat(None, PointFiles(tmp_path), output_format=fmt)
    report, res = _run_client(ps, warmup=1.0, duration=0.3)
    ev = res["events"]
    assert res["format"] == fmt and Path(res["raw_path"]).exists()
    tc = ev["task-clock"]
    assert tc["status"] == "counted" and tc["unit"] == "msec"
    assert 0.02 <= tc["value"] / 1e3 <= 0.6, tc  # the window, not the process lifetime (> 1.3 s)
    # the worker's own CPU time for its window agrees with perf's task-clock for the window
    worker_cpu = report["cpu"]["user_s"] + report["cpu"]["sys_s"]
    assert abs(tc["value"] / 1e3 - worker_cpu) < 0.5 * worker_cpu + 0.05, (tc, report["cpu"])
    assert ev["context-switches"]["status"] == "counted" and ev["context-switches"]["value"] is not None
    assert ev["cpu-migrations"]["status"] == "counted"
    assert res["window_s"] == report["window_s"] and report["window_s"] == pytest.approx(0.3, abs=0.1)
    assert res["window_enabled_s"] and res["window_enabled_s"] < 1.0
    assert list(ev) == list(perf.DEFAULT_EVENTS)  # names as asked, in order
    assert not ps.ctl.exists()


@pytest.mark.root
def test_live_hardware_counters_missing_not_zero(root, tmp_path):
    """End to end through JSON: what this host cannot count is null with "not supported"."""
    support = perf.probe_events(HW_EVENTS)
    ps = perf.PerfStat(None, PointFiles(tmp_path))
    _, res = _run_client(ps, warmup=0.05, duration=0.1)
    ev = json.loads(json.dumps(res))["events"]
    for name in HW_EVENTS:
        if support[name]["supported"]:  # bare metal: counted for real
            assert ev[name]["status"] in ("counted", "scaled") and ev[name]["value"] is not None
        else:  # this VM
            assert ev[name]["status"] == "not supported", ev[name]
            assert ev[name]["value"] is None and ev[name]["reason"]
            assert res["unsupported"][name] == ev[name]["reason"]


@pytest.mark.root
def test_live_never_enabled_is_not_counted(root, tmp_path):
    ps = perf.PerfStat(["task-clock", "context-switches", "cpu-cycles"], PointFiles(tmp_path), output_format="csv")
    _, res = _run_client(ps, warmup=0.05, duration=0.05, enable=False)
    for name in ("task-clock", "context-switches"):
        c = res["events"][name]
        assert c["status"] == "not counted" and c["value"] is None
        assert c["reason"] == perf.REASON_NEVER_ENABLED
    assert res["window_enabled_s"] is None


@pytest.mark.root
def test_live_probe_and_doctor(root):
    probe = perf.probe_events(["task-clock", "context-switches", "cpu-cycles", "no-such-event-xyz"])
    assert probe["task-clock"]["supported"] and probe["context-switches"]["supported"]
    assert probe["no-such-event-xyz"]["supported"] is False
    assert "rejected" in probe["no-such-event-xyz"]["reason"]
    with pytest.raises(UsageError, match="no-such-event-xyz"):
        perf.check_events(["task-clock", "no-such-event-xyz"])
    assert perf.check_events(["task-clock", "cpu-cycles"])["task-clock"]["supported"]
    facts = perf.doctor_facts()
    assert facts["ok"] and facts["version"] and facts["control"]
    assert set(facts["events"]) == set(perf.DEFAULT_EVENTS)
    assert facts["events"]["task-clock"]["supported"]
    assert all({"name", "ok", "detail"} <= set(c) for c in facts["checks"])
    json.dumps(facts)
