"""Integration (root): `netobs run` and `netobs sweep` for real, in namespaces, under perf stat."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import NETOBS

from netobs import perf

from netobs.figures import STUDY_COLUMNS, columns_for
from netobs.params import PARAMS

pytestmark = pytest.mark.root


def netobs(*args, timeout=120, **kw):
    return subprocess.run(NETOBS + list(args), capture_output=True, text=True, timeout=timeout, **kw)


def leftovers(run_id: str) -> list[str]:
    """Namespaces and links of one netobs run (other runs may be going on beside this test)."""
    from netobs.topology import NETNS_DIR

    ns = [p.name for p in Path(NETNS_DIR).iterdir() if run_id in p.name] if Path(NETNS_DIR).exists() else []
    links = [p.name for p in Path("/sys/class/net").iterdir() if run_id.split("-")[-1] in p.name]
    return ns + links


def run_id_of(out: Path) -> str:
    return json.loads((out / "manifest.json").read_text())["topology"]["run_id"]


def rows(path: Path) -> list[dict]:
    with open(path / "runs.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_zero_copy_json_in_namespaces(root):
    proc = netobs("run", "--strategy", "zero_copy", "--msg-size", "65536", "--threads", "2",
                  "--duration", "1", "--warmup", "0.3", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    for key in ("strategy", "msg_size", "threads", "duration_s", "bytes_sent", "bytes_received", "messages",
                "throughput_gbps", "goodput_gbps", "latency_us", "cpu", "zerocopy", "perf"):
        assert key in r, key
    assert r["topology"] == "netns"
    assert r["zerocopy"]["completions"] > 0
    # between namespaces on one host the kernel copies zero-copy pages on delivery
    assert r["zerocopy"]["copied"] == r["zerocopy"]["completions"]
    assert r["bytes_sent_total"] == r["bytes_received"]  # every byte sent arrived
    # the traffic crossed the veth: its counters moved by at least the payload
    assert r["link"]["client"]["tx_bytes"] >= r["bytes_received"]
    assert r["link"]["client"]["tx_bytes"] <= r["bytes_received"] * 1.1
    events = r["perf"]["events"]
    assert events["task-clock"]["status"] == "counted" and events["task-clock"]["value"] > 0
    assert events["context-switches"]["status"] == "counted"
    # the window only: task-clock (ms) cannot exceed threads x window by much
    assert events["task-clock"]["value"] / 1000 < 2 * r["window_s"] * 1.5 + 0.2
    assert not leftovers(r["topology_facts"]["run_id"])


def test_run_traced_json_echoes_every_parameter(root):
    proc = netobs("run", "--strategy", "one_copy", "--msg-size", "4K", "--threads", "2", "--duration", "0.5",
                  "--trace", "--mtu", "9000", "--events", "task-clock,context-switches", "--perf-server", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    echo = r["params"]
    assert set(echo) == {p.name for p in PARAMS if p.point}
    assert {k: echo[k] for k in ("strategy", "msg_size", "threads", "duration", "warmup", "topology", "mtu",
                                 "recv", "verify", "perf", "events", "perf_server", "trace")} == {
        "strategy": "one_copy", "msg_size": 4096, "threads": 2, "duration": 0.5, "warmup": 0.5, "topology": "netns",
        "mtu": 9000, "recv": "copy", "verify": False, "perf": True, "events": ["task-clock", "context-switches"],
        "perf_server": True, "trace": True}
    assert r["topology_facts"]["mtu"] == 9000 and list(r["perf"]["events"]) == echo["events"]
    # the probe plan has one shape: each figure's entry, as the manifest and doctor show it
    plan = r["trace"]["plan"]
    assert plan["sendmsg_bytes"]["probe"] and set(plan) == set(r["trace"]["client"])
    assert r["trace"]["client"]["sendmsg_bytes"] >= r["bytes_sent_total"]


def test_small_sweep_in_namespaces(root, tmp_path):
    out = tmp_path / "res"
    proc = netobs("sweep", "--strategies", "one_copy,zero_copy", "--sizes", "1024,65536", "--threads", "1,2",
                  "--duration", "0.5", "--warmup", "0.1", "-o", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "overhead" in proc.stdout
    data = rows(out)
    assert len(data) == 8
    header = (out / "runs.csv").read_text().splitlines()[0].split(",")
    assert header[:9] == STUDY_COLUMNS
    manifest = json.loads((out / "manifest.json").read_text())
    assert header == columns_for(manifest["perf_events"])
    cycles = perf.probe_events(["cpu-cycles"])["cpu-cycles"]["supported"]   # what this host can count
    for r in data:
        assert r["status"] == "ok" and int(r["bytes_sent"]) > 0
        if cycles:   # bare metal: counted for real
            assert float(r["cpu_cycles"]) > 0
        else:        # a VM without a PMU: empty, never 0 (the parser's side of it: tests/test_perf.py)
            assert r["cpu_cycles"] == ""
        assert float(r["context_switches"]) >= 0 and r["perf_task_clock_status"] == "counted"
    for key in ("schema_version", "netobs_version", "command", "started", "finished", "host", "tools",
                "topology", "perf", "matrix", "summary"):
        assert manifest.get(key) is not None, key
    assert manifest["state"] == "complete"
    assert manifest["host"]["cores"] and manifest["host"]["kernel"]
    assert manifest["perf"]["unsupported"].get("cpu-cycles")
    sysctls = manifest["topology"]["sysctls"]
    assert sysctls, "sysctl changes are recorded"
    point = out / "points" / "one_copy-1024-1-r0"
    assert (point / "result.json").exists() and list(point.glob("perf*"))
    assert not leftovers(run_id_of(out))


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _wait_rows(out: Path, n: int, proc, timeout=60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (out / "runs.csv").exists() and len(rows(out)) >= n:
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    raise AssertionError(f"no {n} rows in {timeout} s")


def test_sigint_keeps_finished_points_and_resume_completes(root, tmp_path):
    out = tmp_path / "res"
    args = ["sweep", "--strategies", "one_copy,two_copy", "--sizes", "4096,65536", "--threads", "1",
            "--duration", "0.4", "--warmup", "0.1", "--no-perf", "-o", str(out)]
    proc = subprocess.Popen(NETOBS + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_rows(out, 2, proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    before = rows(out)
    assert 2 <= len(before) < 4
    assert all(r["status"] == "ok" for r in before)
    assert json.loads((out / "manifest.json").read_text())["state"] == "interrupted"
    assert not leftovers(run_id_of(out))
    other = netobs(*args, "--sizes", "1024", "--resume")
    assert other.returncode == 2 and "other settings" in other.stderr and "sizes" in other.stderr
    other = netobs("sweep", "-o", str(out), "--recv-copy", "--resume")   # (the older spelling of --recv fields)
    assert other.returncode == 2 and "(recv)" in other.stderr  # every setting of the numbers is checked
    # --resume alone reuses what the directory was started with
    resumed = netobs("sweep", "-o", str(out), "--resume", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "already stored" in resumed.stdout
    after = rows(out)
    keys = [(r["implementation"], r["msg_size"], r["threads"], r["repeat"]) for r in after]
    assert len(keys) == len(set(keys)) == 4
    assert after[: len(before)] == before  # finished rows untouched


def test_resume_of_a_directory_written_before_the_strategies_key(root, tmp_path):
    """A results directory from before issue 12 (matrix "impls", no "verify" or "events"), as
    `make demo`'s --impls spells it: --resume alone finishes it."""
    out = tmp_path / "res"
    proc = netobs("sweep", "--impls", "one_copy,two_copy", "--sizes", "4096", "--threads", "1", "--duration", "0.3",
                  "--warmup", "0.1", "--events", "task-clock", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    matrix = manifest["matrix"]
    matrix["impls"] = matrix.pop("strategies")
    del matrix["verify"], matrix["events"]
    manifest["state"] = "interrupted"
    (out / "manifest.json").write_text(json.dumps(manifest))
    lines = (out / "runs.csv").read_text().splitlines(keepends=True)
    (out / "runs.csv").write_text("".join(lines[:-1]))   # the last point never finished:
    last = lines[-1].split(",")
    (out / "points" / f"{last[0]}-{last[1]}-{last[2]}-r0" / "result.json").unlink()   # (a whole one is stored, not re-run)
    resumed = netobs("sweep", "-o", str(out), "--resume", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 already stored" in resumed.stdout
    data = rows(out)
    assert sorted(r["implementation"] for r in data) == ["one_copy", "two_copy"]
    assert all(r["perf_task_clock_status"] == "counted" for r in data)
    other = netobs("sweep", "-o", str(out), "--events", "context-switches", "--resume")
    assert other.returncode == 2 and "events" in other.stderr


def test_point_whose_server_dies_is_recorded_and_sweep_goes_on(root, tmp_path):
    out = tmp_path / "res"
    proc = subprocess.Popen(NETOBS + ["sweep", "--strategies", "one_copy", "--sizes", "4096", "--threads", "1",
                                      "--repeats", "2", "--duration", "2", "--warmup", "0.1", "--no-perf",
                                      "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, killed = time.monotonic() + 30, None
    while time.monotonic() < deadline and killed is None:
        for kid in _children(proc.pid):
            try:
                cmd = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in cmd:
                time.sleep(0.5)  # into the measured window
                os.kill(kid, signal.SIGKILL)
                killed = kid
                break
        time.sleep(0.05)
    assert killed, "server process not found"
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    data = rows(out)
    assert sorted(r["status"] for r in data) == ["failed", "ok"]
    failed = next(r for r in data if r["status"] == "failed")
    assert failed["error"] and failed["throughput_gbps"] == ""
    assert not leftovers(run_id_of(out))


def test_refuses_to_overwrite_and_validates_before_changing_anything(root, tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    proc = netobs("sweep", "--sizes", "1024", "--threads", "1", "--strategies", "one_copy", "--duration", "0.2", "-o", str(out))
    assert proc.returncode == 2 and "not empty" in proc.stderr and "--resume" in proc.stderr
    assert (out / "keep.txt").read_text() == "precious"
    for bad, needle in ((["--sizes", "4"], "message size 4"), (["--threads", "0"], "thread count 0"),
                        (["--strategies", "four_copy"], "unknown strategy"), (["--duration", "-1"], "duration"),
                        (["--sizes", "4K,big"], "bad message size 'big'")):
        fresh = tmp_path / f"fresh{len(needle)}"
        proc = netobs("sweep", *bad, "-o", str(fresh))
        assert proc.returncode == 2 and needle in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
        assert not fresh.exists()


def test_perf_server_counts_the_servers_whole_life(root):
    proc = netobs("run", "--strategy", "one_copy", "--msg-size", "65536", "--duration", "0.5", "--warmup", "0.2",
                  "--perf-server", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["perf"]["counted"] == "measured window"
    server = r["server_perf"]
    assert server["counted"] == "whole process life"
    assert server["events"]["task-clock"]["status"] == "counted" and server["events"]["task-clock"]["value"] > 0
    cycles = server["events"]["cpu-cycles"]
    if perf.probe_events(["cpu-cycles"])["cpu-cycles"]["supported"]:
        assert cycles["value"] > 0
    else:   # not countable here: missing, not 0
        assert cycles["value"] is None and cycles["reason"]
