"""The observer registry and the server side, without root: the registry's declarations agree
with the figures, each observer's merge of a far end's figures (planted), and a whole remote
session (`remote-serve --session`) on this host's loopback, without ssh."""
from __future__ import annotations

import contextlib

import pytest
from conftest import NETOBS, need_workers
from pyroute2 import IPRoute

from netobs import figures, linkstats, native, netstat
from netobs.errors import UsageError
from netobs.observers import REGISTRY
from netobs.observers.netstat import Netstat
from netobs.observers.perf import Perf
from netobs.observers.trace import Trace
from netobs.runner import open_rig, run_point
from netobs.serverside import RemoteServer
from netobs.spec import RunSpec
from netobs.store import PointFiles
from netobs.topology import open_topology

RUNNER_KEYS = {"status", "topology", "params", "error", "verify_errors", "pids"}


def test_the_registry_names_each_observer_once_with_its_keys():
    names = [cls.name for cls in REGISTRY]
    assert names == ["perf", "trace", "profile", "placement", "netstat", "link"] and len(set(names)) == len(names)
    keys = [k for cls in REGISTRY for k in cls.keys]
    assert all(cls.keys for cls in REGISTRY) and len(set(keys)) == len(keys)


def test_every_figure_sits_where_the_spec_a_report_or_an_observer_puts_it():
    """The point result is built from declarations: each figure's path starts at a key that
    figures.POINT_SPEC / POINT_REPORTS, the runner or a registered observer fills."""
    filled = ({k for k, _ in figures.POINT_SPEC} | {k for k, _, _ in figures.POINT_REPORTS} | RUNNER_KEYS
              | set(native.counter_groups())
              | {k for cls in REGISTRY for k in cls.keys})
    paths = [f.path for f in figures.STUDY_FIGURES + figures.WORKER_FIGURES + (figures.LOST_EVENTS,) if f.path]
    paths += [f.path for _, figs in figures.ROLE_FAMILIES for f in figs]
    assert {p[0] for p in paths} <= filled, {p[0] for p in paths} - filled


def test_which_roles_each_observer_wants():
    spec = RunSpec(strategy="one_copy", topology="loopback", perf=True, perf_server=False, trace=True)
    assert Perf.wanted(spec, "client") and not Perf.wanted(spec, "server")
    assert Trace.wanted(spec, "server") and Netstat.wanted(spec, "server")
    assert not Perf.wanted(RunSpec(strategy="one_copy", topology="loopback", perf=False), "client")


def test_a_far_trace_is_merged_and_a_missing_one_said(tmp_path):
    mine = {"trace": {"client": {"sendmsg_bytes": 10}, "server": {"sendmsg_bytes": 0}, "lost_events": 1,
                      "histograms": {"client": {"a": 1}, "server": {}}}}
    theirs = {"trace": {"server": {"sendmsg_bytes": 0, "rx_copy_bytes": 9}, "lost_events": 2, "plan": {"p": 1},
                        "histograms": {"server": {"b": 2}}}}
    got = Trace.merge({"trace": {**mine["trace"]}}, theirs, None)["trace"]
    assert got["server"]["rx_copy_bytes"] == 9 and got["lost_events"] == 3 and got["server_plan"] == {"p": 1}
    assert got["histograms"]["server"] == {"b": 2}
    gone = Trace.merge({"trace": {**mine["trace"], "histograms": {"client": {}, "server": {}}}}, None, "not root")["trace"]
    assert gone["server"] == {"sendmsg_bytes": None} and gone["server_missing"] == "not root"
    assert "server" not in gone["histograms"]


def test_a_far_netstat_and_perf_are_merged_and_missing_ones_said(tmp_path):
    mine = {"netstat": {"client": {"Tcp.OutSegs": 5}}}
    got = Netstat.merge(mine, {"netstat": {"server": {"Tcp.OutSegs": 7}}}, None)
    assert list(got["netstat"]) == ["client", "server"] and "netstat_missing" not in got
    gone = Netstat.merge(mine, None, "no answer")
    assert all(v is None for v in gone["netstat"]["server"].values()) and gone["netstat_missing"]["server"]
    files = PointFiles(tmp_path)
    far = {"server_perf": {"events": {}, "raw_path": "/elsewhere/perf-server-stat.jsonl", "format": "json"}}
    assert Perf.merge({"perf": {}}, far, None, files)["server_perf"]["raw_path"] == str(tmp_path / "perf-server-stat.jsonl")
    assert Perf.merge({"perf": {}}, None, "no perf there", files)["server_perf"] == {"events": {}, "skipped": "no perf there"}


def test_point_files_take_plain_names_only(tmp_path):
    files = PointFiles(tmp_path / "p")
    files.write("a.txt", "x")
    assert files.read("a.txt") == "x" and files.texts() == {"a.txt": "x"}
    for bad in ("../x", "d/x", "", ".."):
        with pytest.raises(ValueError):
            files.at(bad)


class _HereAsRemote:
    """A remote topology whose other host is this one: `remote-serve --session` runs here,
    without ssh, the client on loopback."""

    kind = "remote"
    server_addr = "127.0.0.1"

    def __init__(self, topo):
        self.topo = topo

    def spawn(self, role, argv, **popen):
        return self.topo.spawn(role, argv, **popen)

    def ensure_connection(self):
        pass

    def remote_command(self, args):
        return [*NETOBS, "remote-serve", *args]

    def explain(self, code, stderr):
        return None

    def server_side(self):
        return RemoteServer(self)

    def netstat(self):
        return {"client": netstat.read()}

    def link_stats(self):
        with IPRoute() as ipr:
            return {"client": linkstats.read(ipr, "lo")}


@pytest.mark.integration
def test_a_remote_session_serves_every_point_on_the_same_local_server(tmp_path):
    need_workers()
    spec = dict(strategy="one_copy", msg_size=4096, threads=1, duration=0.2, warmup=0.05, topology="loopback",
                perf=False)
    with open_topology("loopback", sysctls={}) as topo, contextlib.ExitStack() as stack:
        rig = open_rig(stack, RunSpec(**spec), _HereAsRemote(topo))
        assert not rig.server.local and [o.name for o in rig.observers] == ["placement", "netstat", "link"]
        results = [run_point(RunSpec(**spec, repeat=i), rig, PointFiles(tmp_path / str(i))) for i in range(2)]
        with pytest.raises(UsageError, match="in use"):   # a point the far end refuses ...
            run_point(RunSpec(**spec, port=_busy_port(stack)), rig, PointFiles(tmp_path / "busy"))
        after = run_point(RunSpec(**spec, repeat=3), rig, PointFiles(tmp_path / "3"))   # ... then a new session
    for r in results + [after]:
        assert r["bytes_received"] == r["bytes_sent_total"] > 0 and r["topology"] == "remote"
        assert r["link"]["server"]["rx_bytes"] >= r["bytes_received"]           # lo, read at the far end
        assert r["netstat"]["server"] is not None and r["remote"]["skipped"] == {}
        placed = r["placement"]   # the server's sampled at the far end (its window on its clock), the client's here
        assert placed["server"]["samples"] > 0 and placed["server"]["window"] and placed["client"]["samples"] > 0
        assert placed["client"]["window"] is None and placed["shared_cpu_share"] is None
    assert [r["remote"]["session_point"] for r in results + [after]] == [1, 2, 1]
    assert (tmp_path / "0" / "server.stderr").exists() and (tmp_path / "0" / "result.json").exists()


def _busy_port(stack) -> int:
    import socket

    s = stack.enter_context(socket.socket())
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s.getsockname()[1]


def test_one_line_reader_serves_the_ready_pipe_and_a_session_s_stdout():
    import os
    import time

    from netobs.serverside import LineReader, ready_port

    rfd, wfd = os.pipe()
    try:
        lines = LineReader(rfd)
        os.write(wfd, b"ready 5201\n{\"worker\": {}}\npart")    # one chunk: two lines and the start of a third
        assert ready_port(lines.line(1.0)) == 5201
        assert lines.line(1.0) == b'{"worker": {}}\n'             # kept for the next call, not lost with the chunk
        t = time.monotonic()
        assert lines.line(0.2) is None and time.monotonic() - t < 1.0   # no whole line in time: None, bounded
        assert lines.line(0.2, alive=lambda: False) == b""       # the writer is gone: as at the pipe's end
        os.write(wfd, b" of it\n")
        assert lines.line(1.0) == b"part of it\n"
        os.close(wfd)
        wfd = None
        assert lines.line(1.0) == b""                             # closed
        assert ready_port(b"listening\n") is None and ready_port(None) is None
    finally:
        os.close(rfd)
        if wfd is not None:
            os.close(wfd)
