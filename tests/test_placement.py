"""CPU placement (issue 27): asked (--placement), derived (netobs.placement), refused where the
host lacks the CPU, pinned and recorded (netobs.observers.placement), and described (analysis.noise)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from netobs import placement
from netobs.observers import placement as recorder
from netobs.errors import UsageError
from netobs.figures import point_id
from netobs.spec import RunSpec, SweepSpec
from netobs.analysis import noise

TWO_CPUS = len(placement.online()) >= 2


# ---- the plan -------------------------------------------------------------------------------

def test_each_placement_gives_each_role_its_cpus():
    cpus = (0, 1, 2, 3)
    assert placement.plan("split", usable=cpus) == placement.Plan("split", (0, 1), (2, 3))
    assert placement.plan("same", usable=cpus) == placement.Plan("same", cpus, cpus)
    assert placement.plan("none", usable=cpus) == placement.Plan("none", (), ())
    assert placement.plan("explicit", (3,), None, usable=cpus) == placement.Plan("explicit", (3,), ())
    with pytest.raises(UsageError, match="needs two CPUs"):
        placement.plan("split", usable=(0,))
    with pytest.raises(UsageError, match="is for --placement explicit"):
        placement.plan("split", client_cpus=(1,), usable=cpus)
    with pytest.raises(UsageError, match="needs the CPUs"):
        placement.plan("explicit", usable=cpus)
    with pytest.raises(UsageError, match="another host"):
        placement.plan("same", topology="remote", usable=cpus)


def test_more_threads_than_cpus_says_how_they_share():
    p = placement.Plan("split", (0,), (1,))
    assert p.sharing("client", 1) is None
    text = p.sharing("client", 4)
    assert "4 client threads on 1 CPU" in text and "i mod 1" in text
    assert set(p.to_dict(4)["sharing"]) == {"client", "server"}


def test_a_cpu_this_host_lacks_is_refused_in_one_line():
    missing = placement.MAX_CPUS - 1
    with pytest.raises(UsageError) as exc:
        RunSpec(strategy="one_copy", placement="explicit", client_cpus=(missing,))
    assert f"CPU {missing} does not exist" in exc.value.message and "\n" not in exc.value.message
    with pytest.raises(UsageError, match="does not exist"):
        SweepSpec(placement=("explicit",), server_cpus=(missing,))


def test_cpu_lists_parse_as_the_kernel_writes_them():
    assert placement.parse_list("0-2,5") == (0, 1, 2, 5)
    from netobs.params import PARAMS
    with pytest.raises(UsageError, match="bad client CPUs"):
        PARAMS.by_name["client_cpus"].parse("a,b")
    with pytest.raises(UsageError, match="named twice"):
        PARAMS.by_name["client_cpus"].parse("1,1")


@pytest.mark.skipif(not TWO_CPUS, reason="split needs two CPUs")
def test_placement_is_a_sweep_axis_and_names_a_point_only_off_the_default():
    s = SweepSpec(strategies=("one_copy",), sizes=(1024,), threads=(1,), placement=("same", "split"))
    assert [p.point_id for p in s.points()] == ["one_copy-1024-1-psame-r0", "one_copy-1024-1-r0"]
    assert point_id("one_copy", 1024, 1, 0) == "one_copy-1024-1-r0"
    assert s.to_dict()["placement"] == ["same", "split"]
    assert RunSpec(strategy="one_copy").placement == placement.DEFAULT


# ---- the recorder's figures (pure) -----------------------------------------------------------

def test_recorded_figures_from_samples():
    same = [(t / 100, {"client": {11: 0}, "server": {21: 0}}) for t in range(100)]
    slow = [(0.0, {"client": {11: 5}, "server": {21: 0}}, [100, 0]),
            (0.99, {"client": {11: 7}, "server": {21: 0}}, [300, 100])]
    f = recorder.figures(same, slow, (0.0, 1.0), {"client": (0,), "server": (0,)})
    assert f["shared_cpu_share"] == 1.0 and f["client"]["cpus"] == "0" and f["client"]["asked"] == "0"
    assert f["client"]["on_asked"] == 1.0 and f["client"]["migrations"] == 2
    assert f["rx_softirq_cpu"] == 0 and f["rx_softirq_on_client"] == pytest.approx(2 / 3)
    split = [(t / 100, {"client": {11: 0}, "server": {21: 1}}) for t in range(100)]
    g = recorder.figures(split, [], (0.0, 0.5), {"client": (0,), "server": (0,)})
    assert g["shared_cpu_share"] == 0.0 and g["client"]["samples"] == 51 and g["server"]["on_asked"] == 0.0
    assert g["client"]["migrations"] is None   # fewer than two reads: not measured, not 0
    empty = recorder.figures([], [], None, {})   # a sampler halted before it started: every figure missing
    assert empty["client"]["cpus"] is None and empty["shared_cpu_share"] is None and empty["rx_softirq_cpu"] is None


def test_one_end_here_measures_only_what_it_can_and_the_far_end_is_merged():
    """A remote server: the client's end here, the server's at the far end (the same
    observer); two hosts never share a CPU (not measured), the far host's softirqs are the server's."""
    client = [(t / 100, {"client": {11: 0}}) for t in range(50)]
    slow = [(0.0, {"client": {11: 0}}, [10, 10]), (0.4, {"client": {11: 0}}, [20, 900])]
    mine = recorder.figures(client, slow, None, {"client": (0,)}, roles=("client",))
    assert "server" not in mine and mine["shared_cpu_share"] is None and mine["rx_softirq_cpu"] is None
    server = [(t / 100, {"server": {21: 3}}) for t in range(50)]
    far_slow = [(0.0, {"server": {21: 0}}, [0, 0, 0, 5]), (0.4, {"server": {21: 1}}, [0, 0, 0, 805])]
    theirs = recorder.figures(server, far_slow, None, {}, roles=("server",))
    assert theirs["rx_softirq_cpu"] == 3 and theirs["rx_softirq_on_client"] is None
    got = recorder.Placement.merge({"placement": mine}, {"placement": theirs}, None)["placement"]
    assert got["client"]["cpus"] == "0" and got["server"]["cpus"] == "3" and got["server"]["migrations"] == 1
    assert got["rx_softirq_cpu"] == 3 and got["shared_cpu_share"] is None
    gone = recorder.Placement.merge({"placement": mine}, None, "no answer")["placement"]
    assert gone["server"] == {"missing": "no answer"}


def test_the_observer_gives_each_worker_its_cpus_and_records_the_window():
    from netobs.observers import REGISTRY
    assert recorder.Placement in REGISTRY
    point = RunSpec(strategy="one_copy", topology="loopback", placement="none")
    obs = recorder.Placement.open(point, ("client", "server"), None)
    obs.point = point
    obs.begin(None)
    assert obs.worker_values("client") == {"cpus": None} == obs.worker_values("server")
    assert recorder._window({"client": {"window_s": 2.0}, "server": {"last_byte_s": 10.0}}, point,
                            ("client", "server")) == (8.0, 10.0)
    assert recorder._window({"server": {"last_byte_s": 10.0}}, point, ("server",)) == (10.0 - point.duration, 10.0)
    assert recorder._window({"client": {"window_s": 2.0}}, point, ("client",)) is None   # the server's clock is elsewhere
    if TWO_CPUS:
        split = RunSpec(strategy="one_copy", topology="loopback", placement="split")
        obs.point = split
        obs.begin(None)
        c, s = obs.worker_values("client")["cpus"], obs.worker_values("server")["cpus"]
        assert c and s and not set(c) & set(s) and set(c) | set(s) == set(placement.online())


# ---- noise: two modes ------------------------------------------------------------------------

def test_a_planted_bimodal_set_is_flagged_and_a_unimodal_one_is_not():
    m = noise.two_modes([1.1, 3.0, 1.2, 3.4, 3.2], repeats=[0, 1, 2, 3, 4])
    assert m is not None and m.low == [0, 2] and m.high == [1, 3, 4] and m.ashman_d > 2
    for unimodal in ([5.2, 5.4, 5.3, 5.6, 5.1], [1.0, 1.01, 1.02, 1.05, 1.06], [1.0, 1.1, 1.2, 1.3, 1.4],
                     [3.0, 3.0, 3.0, 3.0, 3.0]):
        assert noise.two_modes(unimodal) is None, unimodal
    assert noise.two_modes([1.0, 3.0, 3.1]) is None   # too few repeats for two modes of two
    assert noise.spread([1.0, 2.0, 3.0]) == pytest.approx(1.0)


def _results(rows: list[dict], matrix_placement=("none",), cores=2):
    from netobs.analysis.load import Results, derive
    base = {"fields": 8, "nodelay": 0, "threads": 1, "msg_size": 1024, "bytes_sent": 1e9, "bytes_sent_total": 1e9}
    runs = derive(pd.DataFrame([{**base, **r} for r in rows]).reindex(
        columns=list(dict.fromkeys([*base, *rows[0], "cpu_cycles", "l1_cache_misses", "llc_cache_misses",
                                    "context_switches", "cpu_user_s", "cpu_sys_s", "server_cpu_user_s",
                                    "server_cpu_sys_s", "bytes_received", "zc_copied", "zc_completions",
                                    "trace_client_sendmsg_bytes", "trace_client_zc_send_bytes",
                                    "trace_server_rx_copy_bytes", "trace_client_send_syscall_ns",
                                    "trace_client_offcpu_ns", "warmup_s", "window_s", "trace_client_errqueue_reads",
                                    "trace_client_sendmsg_calls", "zc_notifications",
                                    "trace_client_zc_deferred_copies", "trace_server_zc_deferred_copies",
                                    "trace_client_zc_sends", "link_client_tx_bytes", "link_client_tx_packets",
                                    "netstat_client_tcp_outsegs", "netstat_client_tcp_retranssegs"]))))
    manifest = {"source": "netobs", "host": {"cores": cores}, "matrix": {"placement": list(matrix_placement)}}
    return Results(path=Path("planted"), manifest=manifest, runs=runs, failed=runs.iloc[0:0], notes=[])


def test_explain_names_a_bimodal_point_and_says_placement_did_it():
    tput = [1.1, 3.0, 1.2, 3.4, 3.2]
    shared = [0.0, 1.0, 0.02, 0.97, 1.0]
    rows = [{"implementation": "one_copy", "repeat": r, "placement": "none", "throughput_gbps": t,
             "place_shared_cpu_share": s} for r, (t, s) in enumerate(zip(tput, shared))]
    rows += [{"implementation": "two_copy", "repeat": r, "placement": "none", "throughput_gbps": t,
              "place_shared_cpu_share": 0.9} for r, t in enumerate([2.8, 2.9, 2.85, 2.95, 2.9])]
    d = noise.describe(_results(rows))
    assert [p.config["implementation"] for p in d.bimodal] == ["one_copy"]
    assert d.bimodal[0].modes.separated_by == "place_shared_cpu_share"
    codes = {i["code"]: i["text"] for i in d.items()}
    assert "placement did it" in codes["bimodal"] and "one_copy 1024 B" in codes["bimodal"]
    assert "2-core host" in codes["unpinned_few_cores"]
    # the strategy gap (median 3.0 vs 2.9) is far below the placement effect (~2.7x): said so
    assert d.placement_effect["ratio"] > 2.5
    assert "not properties of the strategies" in codes["below_placement_effect"]
    # the same repeats, not separated by placement: bimodal, but placement is not named
    flat = [{**r, "place_shared_cpu_share": 0.5} for r in rows]
    text = {i["code"]: i["text"] for i in noise.describe(_results(flat)).items()}["bimodal"]
    assert "placement did it" not in text and "do not separate" in text and "0.50 to 0.50" in text


def test_a_pinned_run_has_no_unpinned_caveat_and_compare_lists_placement():
    rows = [{"implementation": "one_copy", "repeat": r, "placement": "split", "throughput_gbps": 5.0 + r / 100,
             "place_shared_cpu_share": 0.0} for r in range(5)]
    pinned = _results(rows, matrix_placement=("split",))
    assert noise.describe(pinned).items() == []
    unpinned = _results([{**r, "placement": "none", "place_shared_cpu_share": 1.0} for r in rows])
    diffs = noise.placement_differences(pinned, unpinned)
    assert any(d["what"].startswith("placement measured") and d["base"] == 0.0 and d["new"] == 1.0 for d in diffs)
    old = _results(rows, matrix_placement=("split",))
    old.manifest["matrix"].pop("placement")
    assert {"what": "placement", "base": "not recorded (assumed not pinned)", "new": "split"} in \
        noise.placement_differences(old, pinned)


def _answer(impls=("one_copy", "two_copy"), shape=""):
    from types import SimpleNamespace
    ev = pd.DataFrame({"msg_size": [1024], "threads": [1], **{f"{i}_gbps": [1.0] for i in impls}})
    return SimpleNamespace(evidence=ev, facts=SimpleNamespace(caveats=[]),
                           prose=SimpleNamespace(caveats=[], own_caveats=[]), shape=shape)


def test_no_answer_calls_a_gap_below_the_placement_effect_the_strategys():
    tput = [1.1, 3.0, 1.2, 3.4, 3.2]
    shared = [0.0, 1.0, 0.02, 0.97, 1.0]
    rows = [{"implementation": "one_copy", "repeat": r, "placement": "none", "throughput_gbps": t,
             "place_shared_cpu_share": s} for r, (t, s) in enumerate(zip(tput, shared))]
    rows += [{"implementation": "two_copy", "repeat": r, "placement": "none", "throughput_gbps": t,
              "place_shared_cpu_share": 0.9} for r, t in enumerate([2.8, 2.9, 2.85, 2.95, 2.9])]
    loose, other = _answer(), _answer(("zero_copy", "two_copy"))
    noise.guard(_results(rows), [loose, other])
    assert [c.code for c in loose.facts.caveats] == [noise.BELOW_EFFECT]
    text = loose.prose.own_caveats[0]
    assert "not properties of the strategies" in text and "one_copy over two_copy at 1024 B x 1" in text
    assert other.facts.caveats == []   # its strategies' gaps are not among them
    pinned = _answer()
    noise.guard(_results([{**r, "placement": "split"} for r in rows], matrix_placement=("split",)), [pinned])
    assert pinned.facts.caveats == []   # a controlled placement: strategies compared within it


def test_causes_placement_moves_cite_the_measured_shared_cpu_share():
    from netobs.analysis import hypotheses as hy
    from netobs.analysis.questions import prose
    rows = [{"implementation": i, "repeat": r, "placement": "none", "throughput_gbps": 3.0,
             "place_shared_cpu_share": s} for i, s in (("one_copy", 0.98), ("two_copy", 0.02)) for r in range(2)]
    r = _results(rows)
    scope = hy.Scope(at=(("one_copy", 1024, 1),), ref=(("two_copy", 1024, 1),))
    assert noise.placement_numbers(r, scope) == {"shared_cpu": 0.98, "shared_cpu_ref": 0.02}
    for name in ("softirq_on_sender", "scheduling"):
        j = hy.judge(r, scope, [name])[0]   # (not profiled here: its class gap not measured, the share still cited)
        assert j.numbers["shared_cpu"] == 0.98 and "shared a CPU 98.0% of the window vs 2.0%" in prose.hypothesis(j)
    unrecorded = _results([{k: v for k, v in row.items() if k != "place_shared_cpu_share"} for row in rows])
    assert noise.placement_numbers(unrecorded, scope) == {}


# ---- as root, the real thing ---------------------------------------------------------------

def _run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "netobs", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.root
def test_a_bad_cpu_is_refused_before_any_setup(root):
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    proc = _run("run", "--strategy", "one_copy", "--placement", "explicit", "--client-cpus", "0",
                "--server-cpus", str(placement.MAX_CPUS - 1), "--duration", "0.3", "--no-perf")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("netobs: error: cannot pin to --server-cpus"), proc.stderr
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert after == before   # nothing was set up


def _point(placement_name: str, size: str) -> dict:
    proc = _run("run", "--strategy", "one_copy", "--msg-size", size, "--fields", "1", "--duration", "1",
                "--warmup", "0.3", "--placement", placement_name, "--no-perf", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.root
@pytest.mark.skipif(not TWO_CPUS, reason="split needs two CPUs")
@pytest.mark.parametrize("size", ["1024", "16384"])
def test_same_and_split_show_in_the_placement_figures_and_split_is_slower(root, size):
    pairs = [(_point("same", size), _point("split", size)) for _ in range(5)]   # interleaved: drift hits both
    for r in (r for pair in pairs for r in pair):
        m = r["placement"]
        asked = placement.of_spec(RunSpec.from_dict(r["params"]))
        for role in ("client", "server"):
            assert m[role]["samples"] >= 50 and m[role]["asked"] == placement.list_text(asked.cpus(role))
            seen = {int(c) for c in m[role]["cpus"].split(",")}
            assert seen <= set(asked.cpus(role)) and m[role]["on_asked"] == 1.0 and m[role]["threads"] == 1
            assert m[role]["migrations"] == 0
    assert all(same["placement"]["shared_cpu_share"] > 0.9 for same, _ in pairs)
    assert all(split["placement"]["shared_cpu_share"] < 0.1 for _, split in pairs)
    # this host's own result (issue 27): two CPUs are slower than one over veth; the direction only,
    # of the medians of five interleaved pairs (the host is shared: a pair can be overtaken)
    gbps = [[p[i]["throughput_gbps"] for p in pairs] for i in (0, 1)]
    median = [sorted(g)[2] for g in gbps]
    assert median[1] < median[0], f"same {gbps[0]}, split {gbps[1]}"


@pytest.mark.root
@pytest.mark.skipif(not TWO_CPUS, reason="split needs two CPUs")
def test_a_sweep_over_placements_is_stored_named_and_explained_by_placement(root, tmp_path):
    out = tmp_path / "res"
    proc = _run("sweep", "--strategies", "one_copy", "--sizes", "16384", "--threads", "1", "--fields", "1",
                "--placement", "same,split", "--duration", "0.5", "--warmup", "0.2", "--no-perf", "-o", str(out))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert {p.name for p in (out / "points").iterdir()} == {"one_copy-16384-1-f1-psame-r0", "one_copy-16384-1-f1-r0"}
    assert json.loads((out / "manifest.json").read_text())["matrix"]["placement"] == ["same", "split"]
    import csv
    rows = {r["placement"]: r for r in csv.DictReader((out / "runs.csv").open())}
    assert float(rows["same"]["place_shared_cpu_share"]) > 0.9 > 0.1 > float(rows["split"]["place_shared_cpu_share"])
    text = _run("explain", str(out))
    assert text.returncode == 0, text.stderr
    assert "(placement split)" in text.stdout and "(placement same)" in text.stdout
    assert "not pinned" not in text.stdout   # a controlled run gets no unpinned caveat


def test_a_sweep_checks_every_point_at_its_own_placement(monkeypatch):
    """On one usable CPU (taskset -c 0), `--placement same` is a sweep that can run and split is
    refused: the matrix's points are checked at the placement they will have, not the default."""
    monkeypatch.setattr(placement, "online", lambda: (0,))
    s = SweepSpec(strategies=("one_copy",), sizes=(1024,), threads=(2,), placement=("same",))
    assert {p.placement for p in s.points()} == {"same"}
    with pytest.raises(UsageError, match="split needs two CPUs"):
        SweepSpec(strategies=("one_copy",), sizes=(1024,), threads=(2,), placement=("same", "split"))
