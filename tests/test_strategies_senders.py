"""The senders beyond the study's three (io_uring, io_uring_zc, sendfile, splice), the receive
modes (copy, fields, trunc, zerocopy), --fields, and zero-copy without wasted error-queue
reads: on real loopback sockets in this process (no root needed), with the known workload
(`count` messages per thread), and through `netobs run` on both topologies (root)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import strategy_params

from netobs import strategies
from netobs.errors import CapabilityError, UsageError
from netobs.native import ClientConfig, Server, ServerConfig, doctor_facts, run_client, strategy_support
from netobs.params import PARAMS, RECV_MODES

NEW = [s.name for s in strategies.STRATEGIES if s.name not in strategies.STUDY]
PAGE_SENDERS = ["zero_copy", "io_uring_zc", "sendfile", "splice"]   # the kernel holds the user's pages


def counted(strategy: str, size: int, threads: int = 1, count: int = 200, verify: bool = True,
            recv: str = "copy", server_fields: int | None = None, rcvbuf: int = 0, **client_kw):
    """Exactly `count` messages per thread; (client stats, server stats)."""
    fields = client_kw.get("fields", 8)
    srv = Server(ServerConfig(connections=threads, verify=verify, msg_size=size, recv=recv, timeout=30,
                              fields=server_fields or fields, rcvbuf=rcvbuf))
    port = srv.start()
    try:
        c = run_client(ClientConfig(port=port, strategy=strategy, msg_size=size, threads=threads, count=count,
                                    verify=verify, **client_kw))
        s = srv.wait(timeout=20)
    finally:
        srv.stop()
    return c, s


def test_the_table_lists_the_new_senders_and_the_sweep_keeps_the_studys():
    assert set(NEW) == {"io_uring", "io_uring_zc", "sendfile", "splice"}
    sweep = PARAMS.by_name["strategy"].sweep
    assert sweep.default == strategies.STUDY == ("two_copy", "one_copy", "zero_copy")
    assert strategies.BY_NAME["io_uring_zc"].baseline == "io_uring"
    assert strategies.BY_NAME["zero_copy"].baseline == "one_copy"
    raw = {p.sweep.axis if p.sweep.axis else p.name: None for p in PARAMS.for_command("sweep")}
    assert PARAMS.from_cli("sweep", {**raw, "strategies": "all"})["strategies"] == strategies.NAMES
    assert PARAMS.from_cli("sweep", {**raw, "strategies": "io_uring,splice"})["strategies"] == ("io_uring", "splice")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", [1024, 16387, 65536])
@pytest.mark.parametrize("strategy", strategy_params(NEW))
def test_new_senders_send_exactly_and_verify(strategy, size, threads):
    c, s = counted(strategy, size, threads=threads, count=150)
    assert c["messages_total"] == 150 * threads
    assert c["bytes_sent_total"] == s["bytes_received"] == 150 * threads * size
    assert sorted(c["per_thread_bytes"]) == sorted(s["per_connection_bytes"]) == [150 * size] * threads
    assert s["verify_messages"] == 150 * threads and s["verify_errors"] == 0
    assert s["conn_errors"] == 0 and c["latency_samples"] == 150 * threads


@pytest.mark.root   # (PINS_LOCKED_MEMORY)
def test_io_uring_zc_counts_every_notification_and_the_copied_ones(root):
    c, s = counted("io_uring_zc", 65536, count=300, uring_depth=4)
    zc = c["zerocopy"]
    assert zc["sends"] == c["send_calls"] == 300              # MSG_WAITALL: one CQE per message
    assert zc["notifications"] == zc["completions"] == 300 and zc["outstanding"] == 0
    # loopback delivers locally: the kernel copies the pages and says so (IORING_NOTIF_USAGE_ZC_COPIED)
    assert zc["copied"] == zc["completions"]
    assert c["io_uring"]["depth"] == 4 and c["io_uring"]["submits"] <= 300
    plain, _ = counted("io_uring", 65536, count=300)
    assert plain["zerocopy"]["notifications"] == 0 and plain["io_uring"]["submits"] == 300


def test_sendfile_writes_the_file_once_without_verify_and_per_message_with_it():
    c, _ = counted("sendfile", 65536, count=100, verify=False)
    assert c["pages"]["file_writes"] == 1 and c["pages"]["page_releases"] == 0
    c, s = counted("sendfile", 65536, count=100)
    assert c["pages"]["file_writes"] == 101 and c["pages"]["page_releases"] == 100
    assert s["verify_errors"] == 0


@pytest.mark.parametrize("strategy", strategy_params(PAGE_SENDERS))   # io_uring_zc pins locked memory: root
def test_no_buffer_is_rewritten_while_the_kernel_holds_it(strategy):
    """A slow reader (small receive buffer) keeps sent bytes in the kernel for long. Rewriting
    buffers at once (`unsafe_reuse`) corrupts what is still to go: verify sees it. The worker
    as it runs waits for completions or lets the old pages go first: nothing corrupted."""
    pool = {"zc_pool": 2} if strategy in ("zero_copy", "io_uring_zc") else {}
    _, bad = counted(strategy, 65536, count=200, rcvbuf=16384, unsafe_reuse=True, **pool)
    assert bad["verify_errors"] > 0          # the check can fail: early reuse shows
    c, good = counted(strategy, 65536, count=200, rcvbuf=16384, **pool)
    assert good["verify_messages"] == 200 and good["verify_errors"] == 0
    if strategy == "zero_copy":
        assert c["zerocopy"]["pool_waits"] > 0 and c["zerocopy"]["outstanding"] == 0


@pytest.mark.parametrize("size", [1024, 65536])
def test_zero_copy_wastes_no_error_queue_reads(size):
    """Issue 15 item 4: reads of MSG_ERRQUEUE that return nothing <= 1% of sends."""
    srv = Server(ServerConfig(connections=1, timeout=30))
    port = srv.start()
    c = run_client(ClientConfig(port=port, strategy="zero_copy", msg_size=size, duration=0.4, warmup=0.1))
    srv.wait(timeout=10)
    zc = c["zerocopy"]
    assert zc["completions"] == zc["sends"] > 0 and zc["notifications"] > 0
    assert zc["empty_reads"] <= 0.01 * c["send_calls"], zc
    # the kernel merged completion ranges while they waited: far fewer reads than sends
    assert zc["notifications"] < c["send_calls"] / 10


@pytest.mark.parametrize("fields", [1, 3, 64])
def test_fields_shape_the_message_on_both_sides(fields):
    c, s = counted("one_copy", 4096, count=100, fields=fields)
    assert c["fields"] == s["fields"] == fields
    assert s["verify_messages"] == 100 and s["verify_errors"] == 0
    # the pattern is per field: a server expecting another layout sees every message wrong
    _, other = counted("one_copy", 4096, count=100, fields=fields, server_fields=8 if fields != 8 else 4)
    assert other["verify_errors"] == 100


def test_a_message_needs_a_byte_per_field():
    with pytest.raises(UsageError, match="cannot have 64 fields"):
        ClientConfig(strategy="one_copy", msg_size=32, fields=64)


@pytest.mark.parametrize("strategy", ["one_copy", "splice"])
def test_recv_trunc_discards_without_verify(strategy):
    c, s = counted(strategy, 65536, count=200, verify=False, recv="trunc")
    assert s["recv"] == "trunc" and s["bytes_received"] == c["bytes_sent_total"] == 200 * 65536
    with pytest.raises(UsageError, match="nothing to --verify"):
        ServerConfig(recv="trunc", verify=True, msg_size=1024)


@pytest.mark.parametrize("strategy", ["one_copy", "sendfile"])
def test_recv_zerocopy_counts_mapped_and_copied_bytes(strategy):
    c, s = counted(strategy, 65536, count=200, recv="zerocopy")
    z = s["rx_zerocopy"]
    assert s["recv"] == "zerocopy" and not z["fallback"] and z["calls"] > 0
    assert z["mapped_bytes"] + z["copied_bytes"] == s["bytes_received"] == c["bytes_sent_total"]
    assert s["verify_errors"] == 0 and s["verify_messages"] == 200   # mapped pages are read and checked
    if strategy == "sendfile":   # whole page-cache pages arrive: the kernel maps them
        assert z["mapped_bytes"] > 0


def test_recv_copy_is_recv_fields():
    c, s = counted("one_copy", 1024, count=100, verify=False, recv="fields")
    assert s["recv"] == "fields" and "recv_copy" not in s and s["messages_copied"] == 100
    with pytest.raises(UsageError, match="--recv fields needs the message size"):
        ServerConfig(recv="fields")
    assert RECV_MODES[0] == "copy" and PARAMS.by_name["recv"].default == "copy"


def test_doctor_lists_which_strategies_this_kernel_runs():
    support = strategy_support()
    assert list(support) == list(strategies.NAMES)
    assert all(v["ok"] for v in support.values()), support   # Linux 6.18 with liburing: every one
    facts = doctor_facts()
    assert {c["name"] for c in facts["checks"]} >= {f"strategy {n}" for n in strategies.NAMES}


def test_a_strategy_the_kernel_lacks_is_one_capability_error():
    from netobs.native import _error, _lib
    ffi, _ = _lib()
    err = ffi.new("struct nob_error *")
    err.err, err.where, err.detail = 95, b"io_uring probe", b"IORING_OP_SENDMSG_ZC (Linux 6.1+)"
    exc = _error(ffi, err)
    assert isinstance(exc, CapabilityError) and exc.exit_code == 2
    assert "IORING_OP_SENDMSG_ZC" in exc.message and "netobs doctor" in exc.message and "\n" not in exc.message
    lib = _lib()[1]
    assert lib.nob_strategy_probe(99, ffi.new("struct nob_error *")) < 0


# ------------------------------------------------------------------ through `netobs run` (root)

def _run(*args) -> dict:
    proc = subprocess.run([sys.executable, "-m", "netobs", "run", "--no-perf", "--duration", "0.3",
                           "--warmup", "0.1", "--json", *args], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.root
@pytest.mark.parametrize("topology", ["loopback", "netns"])
@pytest.mark.parametrize("strategy", NEW)
def test_each_new_sender_runs_verified_on_both_topologies(root, strategy, topology):
    r = _run("--strategy", strategy, "--msg-size", "16K", "--threads", "2", "--topology", topology,
             "--verify", "--fields", "5", "--nodelay")
    assert r["status"] == "ok" and r["verify_errors"] == 0
    assert r["bytes_sent_total"] == r["bytes_received"] > 0
    assert r["params"]["fields"] == 5 and r["params"]["nodelay"] is True
    if strategy == "io_uring_zc":
        zc = r["zerocopy"]
        assert zc["completions"] == zc["sends"] > 0 and zc["outstanding"] == 0

