"""The CLI surface: help with examples, doctor's facts (root), one-line errors."""
from __future__ import annotations

import json
import subprocess

import pytest
from conftest import NETOBS



def netobs(*args, timeout=120):
    return subprocess.run(NETOBS + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.mark.integration
@pytest.mark.parametrize("cmd", ["run", "sweep", "import", "explain", "report", "doctor"])
def test_every_subcommand_has_help_with_examples(cmd):
    proc = netobs(cmd, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Examples:" in proc.stdout and "netobs " + cmd in proc.stdout


@pytest.mark.integration
def test_top_level_help_lists_commands():
    proc = netobs("--help")
    assert proc.returncode == 0
    for cmd in ("run", "sweep", "import", "explain", "report", "doctor"):
        assert cmd in proc.stdout


@pytest.mark.parametrize("args, needle", [
    (["run", "--strategy", "three_copy", "--topology", "loopback"], "unknown strategy"),
    (["run", "--strategy", "one_copy", "--msg-size", "4", "--topology", "loopback"], "message size 4"),
    (["run", "--strategy", "one_copy", "--threads", "300", "--topology", "loopback"], "thread count 300"),
    (["run", "--strategy", "one_copy", "--duration", "0", "--topology", "loopback"], "duration"),
    (["run", "--strategy", "one_copy", "--threads", "many"], "many"),
])
@pytest.mark.integration
def test_bad_input_is_one_line_exit_2(args, needle):
    proc = netobs(*args)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.root
def test_doctor_json_reports_every_part(root):
    proc = netobs("doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["root"] is True
    assert facts["workers"]["ok"] and {c["name"] for c in facts["workers"]["checks"]} >= {"C copy workers", "SO_ZEROCOPY"}
    assert facts["topology"]["netns_veth"]["ok"]
    events = facts["perf"]["events"]
    assert events["task-clock"]["supported"] and events["context-switches"]["supported"]
    # hardware counters: what the probe finds here, and where it finds none doctor says why
    from netobs import perf
    cycles = perf.probe_events(["cpu-cycles"])["cpu-cycles"]["supported"]
    assert events["cpu-cycles"]["supported"] is cycles
    assert cycles or events["cpu-cycles"]["reason"]
    setup = facts["tracing_setup"]   # doctor is where the host is prepared for tracing
    assert setup["ok"] and setup["env"]["tracefs"] and setup["env"]["headers"]["path"]
    assert {c["name"] for c in setup["checks"]} == {"root", "BCC", "tracefs", "kernel headers"}
    plan = facts["tracing"]["plan"]
    assert plan["sendmsg_bytes"]["probe"] and plan["rx_copy_bytes"]["probe"]
    assert plan["zc_deferred_copies"]["probe"] is None and plan["zc_deferred_copies"]["reason"]


@pytest.mark.root
def test_doctor_text(root):
    proc = netobs("doctor")
    assert proc.returncode == 0, proc.stderr
    for part in ("workers", "topology", "perf", "tracing setup", "tracing", "SO_ZEROCOPY", "kernel headers"):
        assert part in proc.stdout


@pytest.mark.integration
def test_port_in_use_is_a_one_line_usage_error():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = netobs("run", "--topology", "loopback", "--strategy", "one_copy", "--port", str(port),
                      "--no-perf", "--duration", "0.2")
    assert proc.returncode == 2
    assert f"port {port} is in use" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.integration
def test_import_of_a_directory_is_a_one_line_error(tmp_path):
    proc = netobs("import", str(tmp_path), "--duration", "10", "-o", str(tmp_path / "out"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.integration
def test_run_on_loopback_with_a_free_port():
    """Loopback picks a free port (the server's); the client learns it with `go`."""
    proc = netobs("run", "--topology", "loopback", "--strategy", "two_copy", "--msg-size", "4K", "--threads", "2",
                  "--duration", "0.3", "--warmup", "0.1", "--no-perf", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["topology"] == "loopback" and r["bytes_sent_total"] == r["bytes_received"] > 0


def test_sweep_eta_from_finished_points_with_a_fake_clock():
    from netobs.cli.sweep import eta_seconds

    # before any point finished: the guess per point, less what the first has run
    assert eta_seconds(10, 0, started=100.0, last_done=100.0, now=101.0, guess_per_point=2.0) == 19.0
    # 4 of 10 done in 20 s (5 s each), 2 s into the fifth: 6 x 5 - 2
    assert eta_seconds(10, 4, started=100.0, last_done=120.0, now=122.0, guess_per_point=2.0) == 28.0
    assert eta_seconds(10, 10, started=100.0, last_done=150.0, now=151.0, guess_per_point=2.0) == 0.0
