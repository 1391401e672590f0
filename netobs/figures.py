"""Every figure a point records, declared once: its runs.csv column, where the point result
holds it, its label and unit, and what it means.

The store's columns and row flattening, the analysis loader's numeric columns, the labels the
answers, charts and report print, the C header's trace-figure indices (checked by a test and
at import by `netobs.tracer`) and DESIGN.md's column list (checked by a test against
`markdown()`) all come from these tables.

To add a figure: a row in the table of its source (a worker stat: WORKER_FIGURES and the
stat in the worker's JSON; a trace figure: TRACE_FIGURES, its NETOBS_FIG_* index in
bpf/netobs_trace.h and the program that counts it), then `make test`: the tests name every
place that disagrees.
"""
from __future__ import annotations

from dataclasses import dataclass

from netobs import costclass, netstat
from netobs.placement import DEFAULT as PLACEMENT_DEFAULT

# The two sides of a point. The tracer's role indices (NETOBS_ROLE_* in bpf/netobs_trace.h)
# follow this order, and so do the trace columns.
ROLES = ("client", "server")


@dataclass(frozen=True)
class Figure:
    column: str                   # runs.csv column (a trace figure: the name after trace_<role>_)
    label: str                    # what the answers, charts and report call it
    unit: str = ""
    path: tuple[str, ...] = ()    # where the point result holds it: ("latency_us", "p50")
    help: str = ""                # what it means (DESIGN.md)
    text: bool = False            # a word, not a number (the loader keeps it as text)


# ---- the study's nine columns, in the study's order ---------------------------------------
# The four counters come from these perf events (as netobs asks perf for them).
EVENT_BY_COLUMN = {
    "cpu_cycles": "cpu-cycles",
    "l1_cache_misses": "L1-dcache-load-misses",
    "llc_cache_misses": "LLC-load-misses",
    "context_switches": "context-switches",
}
COLUMN_BY_EVENT = {event: column for column, event in EVENT_BY_COLUMN.items()}

STUDY_FIGURES: tuple[Figure, ...] = (
    Figure("implementation", "strategy", "", ("strategy",), "the copy strategy (the study's name for it)", text=True),
    Figure("msg_size", "message size", "B", ("msg_size",)),
    Figure("threads", "client threads", "", ("threads",)),
    Figure("throughput_gbps", "throughput", "Gbit/s", ("throughput_gbps",),
           "sender throughput over the measured window: bytes_sent*8/window_s/1e9"),
    Figure("latency_us", "mean per-send latency", "µs", ("latency_us", "mean"),
           "mean time around one message's send call(s)"),
    Figure("cpu_cycles", "CPU cycles (cpu-cycles)", "cycles", (), "perf event cpu-cycles, measured window"),
    Figure("l1_cache_misses", "L1 cache misses (L1-dcache-load-misses)", "misses", (),
           "perf event L1-dcache-load-misses, measured window"),
    Figure("llc_cache_misses", "LLC misses (LLC-load-misses)", "misses", (),
           "perf event LLC-load-misses, measured window"),
    Figure("context_switches", "context switches", "switches", (), "perf event context-switches, measured window"),
)

# ---- then the run's own columns: identity, timing, the workers' stats -----------------------
WORKER_FIGURES: tuple[Figure, ...] = (
    Figure("repeat", "repeat", "", ("repeat",), "0-based repeat of the configuration"),
    Figure("status", "status", "", ("status",), "ok or failed", text=True),
    Figure("error", "error", "", ("error",), "why a failed point failed", text=True),
    Figure("topology", "topology", "", ("topology",), "netns, loopback, ...", text=True),
    Figure("duration_s", "measured window asked", "s", ("duration_s",)),
    Figure("warmup_s", "warm-up", "s", ("warmup_s",)),
    Figure("window_s", "measured window", "s", ("window_s",), "the client's measured window as it ran"),
    Figure("bytes_sent", "bytes sent", "B", ("bytes_sent",), "in the measured window"),
    Figure("bytes_sent_total", "bytes sent in all", "B", ("bytes_sent_total",), "warm-up included"),
    Figure("bytes_received", "bytes received", "B", ("bytes_received",), "by the server, warm-up included"),
    Figure("messages", "messages sent", "", ("messages",), "in the measured window"),
    Figure("goodput_gbps", "receiver goodput", "Gbit/s", ("goodput_gbps",),
           "bytes received*8 / the server's first-to-last-byte time"),
    Figure("latency_p50_us", "median per-send latency", "µs", ("latency_us", "p50")),
    Figure("latency_p99_us", "p99 per-send latency", "µs", ("latency_us", "p99")),
    Figure("latency_p999_us", "p99.9 per-send latency", "µs", ("latency_us", "p999")),
    Figure("latency_max_us", "longest send", "µs", ("latency_us", "max")),
    Figure("cpu_user_s", "client CPU time", "s", ("cpu", "user_s"), "user CPU of the sending threads, window"),
    Figure("cpu_sys_s", "client system CPU time", "s", ("cpu", "sys_s"), "system CPU of the sending threads, window"),
    Figure("server_cpu_user_s", "server CPU time", "s", ("server_cpu", "user_s"), "receiving threads, whole run"),
    Figure("server_cpu_sys_s", "server system CPU time", "s", ("server_cpu", "sys_s"), "receiving threads, whole run"),
    Figure("zc_completions", "zero-copy completions", "", ("zerocopy", "completions"),
           "send ids covered by completion ranges"),
    Figure("zc_copied", "copied zero-copy completions (SO_EE_CODE_ZEROCOPY_COPIED)", "", ("zerocopy", "copied"),
           "ids whose completion said the kernel copied the pages anyway"),
    Figure("zc_notifications", "zero-copy notifications", "", ("zerocopy", "notifications"),
           "error-queue messages read"),
    Figure("zc_enobufs", "ENOBUFS answers", "", ("zerocopy", "enobufs"), "zero-copy sends refused for memory"),
    Figure("zc_empty_reads", "empty error-queue reads", "reads", ("zerocopy", "empty_reads"),
           "MSG_ERRQUEUE reads that returned nothing (wasted syscalls)"),
    Figure("rx_zc_mapped_bytes", "bytes mapped on receive (TCP_ZEROCOPY_RECEIVE)", "B",
           ("rx_zerocopy", "mapped_bytes"), "--recv zerocopy: bytes the server mapped instead of copying"),
    Figure("fields", "fields per message", "", ("params", "fields"), "the message's fields (--fields; the study's 8)"),
    Figure("recv", "receive mode", "", ("params", "recv"), "the server's receive mode (--recv)", text=True),
    Figure("nodelay", "TCP_NODELAY", "", ("params", "nodelay"), "1 when the client set TCP_NODELAY"),
    Figure("rx_zc_copied_bytes", "bytes copied on receive beside the mapping", "B", ("rx_zerocopy", "copied_bytes"),
           "--recv zerocopy: bytes it could not map (or all, after a fallback), copied"),
    Figure("placement", "CPU placement", "", ("params", "placement"),
           "the placement asked for (--placement: split, same, none, explicit)", text=True),
    Figure("sndbuf", "SO_SNDBUF asked", "B", ("params", "sndbuf"),
           "the client's SO_SNDBUF asked for (--sndbuf; 0: the kernel's default)"),
    Figure("rcvbuf", "SO_RCVBUF asked", "B", ("params", "rcvbuf"),
           "the server's SO_RCVBUF asked for (--rcvbuf; 0: the kernel's default)"),
    Figure("sndbuf_bytes", "SO_SNDBUF granted", "B", ("sndbuf_bytes",),
           "the client's SO_SNDBUF read back once connected (the kernel doubles what is asked, up to "
           "net.core.wmem_max; not asked: its default)"),
    Figure("rcvbuf_bytes", "SO_RCVBUF granted", "B", ("rcvbuf_bytes",),
           "the server's SO_RCVBUF read back once accepted (doubled, up to net.core.rmem_max; not asked: its default)"),
    # where the threads ran, across roles (netobs.observers.placement; per role: PLACEMENT_FIGURES)
    Figure("place_shared_cpu_share", "share of the window a client and a server thread shared a CPU", "",
           ("placement", "shared_cpu_share"),
           "samples in the window in which a client and a server working thread were on one CPU "
           "(empty: the two ends on two hosts)"),
    Figure("place_rx_softirq_cpu", "CPU of the receive softirq", "", ("placement", "rx_softirq_cpu"),
           "the CPU that ran most of the window's NET_RX softirqs on the server's host (/proc/softirqs, host-wide)"),
    Figure("place_rx_softirq_on_client", "receive softirqs on the client's CPUs", "",
           ("placement", "rx_softirq_on_client"),
           "share of the window's NET_RX softirqs on a CPU the client's threads were seen on (one host only)"),
)

# ---- where a point result's own keys come from (netobs.runner.point_result builds it from these)
# (result key, RunSpec field): the point's identity and timing as asked
POINT_SPEC: tuple[tuple[str, str], ...] = (
    ("strategy", "strategy"), ("msg_size", "msg_size"), ("threads", "threads"), ("repeat", "repeat"),
    ("duration_s", "duration"), ("warmup_s", "warmup"))
# (result key, the role whose worker report holds it, its key there)
POINT_REPORTS: tuple[tuple[str, str, str], ...] = (
    ("window_s", "client", "window_s"), ("bytes_sent", "client", "bytes_sent"),
    ("bytes_sent_total", "client", "bytes_sent_total"), ("bytes_received", "server", "bytes_received"),
    ("messages", "client", "messages"), ("messages_total", "client", "messages_total"),
    ("throughput_gbps", "client", "throughput_gbps"), ("goodput_gbps", "server", "goodput_gbps"),
    ("latency_us", "client", "latency_us"), ("cpu", "client", "cpu"), ("server_cpu", "server", "cpu"),
    ("recv", "server", "recv"), ("rx_zerocopy", "server", "rx_zerocopy"),
    ("sndbuf_bytes", "client", "sndbuf_bytes"), ("rcvbuf_bytes", "server", "rcvbuf_bytes"))
# (the client's counter objects, "zerocopy", "io_uring", "pages", come by name from the C header:
# netobs.native.counter_groups())


# ---- kernel trace figures, per role (runs.csv: trace_<role>_<figure>) -----------------------
# The order is the C side's: NETOBS_FIG_<FIGURE> in bpf/netobs_trace.h is the index.
TRACE_FIGURES: tuple[Figure, ...] = (
    Figure("sendmsg_calls", "traced send calls", "calls", help="tcp_sendmsg calls (or send syscalls) that sent"),
    Figure("sendmsg_bytes", "traced bytes sent", "B", help="bytes those calls sent"),
    Figure("zc_sends", "traced sends that did not copy", "calls",
           help="sends that did not copy: MSG_ZEROCOPY, io_uring SENDMSG_ZC, sendfile/splice page references"),
    Figure("zc_send_bytes", "traced bytes sent without a copy", "B", help="bytes those sends sent"),
    Figure("rx_copy_calls", "traced receive copies", "calls", help="skb_copy_datagram_iter calls"),
    Figure("rx_copy_bytes", "traced bytes copied on receive", "B", help="bytes skb_copy_datagram_iter copied"),
    Figure("errqueue_reads", "traced error-queue reads", "reads",
           help="reads with MSG_ERRQUEUE that returned a notification"),
    Figure("zc_callbacks", "traced zero-copy completion callbacks", "calls",
           help="one per completed zero-copy buffer, where it can be probed"),
    Figure("zc_deferred_copies", "traced deferred zero-copy copies (skb_copy_ubufs)", "calls",
           help="skb_copy_ubufs calls: zero-copy pages copied after all"),
    Figure("send_syscalls", "traced send syscalls", "calls", help="every call counted"),
    Figure("send_syscall_ns", "traced send-syscall time", "ns", help="estimate: 1 in N calls timed, scaled"),
    Figure("recv_syscalls", "traced recv syscalls", "calls", help="every call counted"),
    Figure("recv_syscall_ns", "traced recv-syscall time", "ns", help="estimate: 1 in N calls timed, scaled"),
    Figure("offcpu_switches", "traced off-CPU switches", "switches", help="times a tracked thread left the CPU"),
    Figure("offcpu_ns", "traced off-CPU time", "ns", help="time tracked threads spent off the CPU"),
    Figure("mem_pressure_events", "traced socket-memory pressure events", "events",
           help="sock:sock_exceed_buf_limit"),
)
TRACE_NAMES: tuple[str, ...] = tuple(f.column for f in TRACE_FIGURES)


# ---- profiles (--profile), per role: where the CPU time went and why threads slept ----------
# The classes and reasons are the data file's (netobs/costclasses.toml, netobs.costclass);
# runs.csv: prof_<role>_<figure> and wait_<role>_<figure>. The profile covers the point's whole
# life (warm-up included), so per-GB figures divide by the bytes of that life: the client's
# bytes_sent_total, the server's bytes_received.
def _profile_figures() -> tuple[tuple[Figure, ...], tuple[Figure, ...]]:
    t = costclass.table()
    on = ("profile", "{role}", "on_cpu")
    prof = [
        Figure("samples", "on-CPU samples", "samples", on + ("samples",), "stack samples of the role's threads"),
        Figure("event", "sampling event", "", on + ("event",), "cycles (hardware) or cpu-clock (software)",
               text=True),
        Figure("hz", "sampling frequency", "Hz", on + ("hz",), "samples per second per CPU asked"),
        Figure("cpu_s", "sampled CPU time", "s", on + ("cpu_s",), "samples / frequency"),
        Figure("skid", "skid share", "", on + ("skid", "share"),
               "share of samples that skid: the innermost kernel frame re-enables interrupts (classed by callers) or the sample landed on a syscall's return to user space"),
        Figure("softirq", "softirq share", "", on + ("context", "softirq"),
               "share of samples taken in softirq context while the role's thread was current"),
        Figure("irq", "hard-irq share", "", on + ("context", "irq"), "share of samples taken in hard-irq context"),
    ]
    for c in t.classes:
        prof.append(Figure(c.name, f"{c.name} share", "", on + ("classes", c.name),
                           f"share of samples: {c.help}"))
        prof.append(Figure(f"{c.name}_cpu_s_per_gb", f"{c.name} CPU per GB", "s/GB",
                           on + ("cpu_s_per_gb", c.name), f"CPU-seconds per GB moved: {c.help}"))
    off = ("profile", "{role}", "off_cpu")
    wait = [Figure("switches", "off-CPU switch-outs", "switches", off + ("switches",),
                   "times the role's threads left the CPU"),
            Figure("total_s", "off-CPU time", "s", off + ("seconds",), "summed over the role's threads")]
    wait += [Figure(f"{r.name}_s", f"off-CPU: {r.name}", "s", off + ("reasons", r.name), r.help)
             for r in t.reasons]
    work = ("profile", "{role}", "working")
    working = [Figure("on_cpu_s", "working threads' on-CPU time", "s", work + ("on_cpu_s",),
                      "sampled on-CPU time of the role's sending or receiving threads (threads created by a worker's non-main thread; the harness left out)"),
               Figure("off_cpu_s", "working threads' off-CPU time", "s", work + ("off_cpu_s",), "their off-CPU time"),
               Figure("thread_s", "working threads' time", "s", work + ("thread_s",), "on-CPU + off-CPU time of them"),
               Figure("utilisation", "working-thread utilisation", "", work + ("utilisation",),
                      "on-CPU share of the working threads' time"),
               Figure("preempted_share", "working threads preempted", "", work + ("preempted_share",),
                      "runnable-but-not-running share of the working threads' time")]
    working += [Figure(f"{r.name}_s", f"working threads off-CPU: {r.name}", "s", work + ("reasons", r.name), r.help)
                for r in t.reasons]
    return tuple(prof), tuple(wait), tuple(working)


PROFILE_FIGURES, WAIT_FIGURES, WORK_FIGURES = _profile_figures()
PROFILE_CLASSES: tuple[str, ...] = costclass.table().class_names
WAIT_REASONS: tuple[str, ...] = costclass.table().reason_names
# ---- the network stack's own counters per role: TCP MIB deltas (netobs.netstat, read in the
# role's namespace) and the link's (runs.csv: netstat_<role>_<counter>, link_<role>_<counter>)
NETSTAT_FIGURES: tuple[Figure, ...] = tuple(
    Figure(netstat.column_stem(c.name), c.name, c.unit, ("netstat", "{role}", c.name),
           f"{c.help}; change over the point, read in the role's namespace (loopback: the host's, all its traffic)")
    for c in netstat.COUNTERS)
LINK_FIGURES: tuple[Figure, ...] = tuple(
    Figure(k, f"link {k.replace('_', ' ')}", "B" if k.endswith("bytes") else "packets", ("link", "{role}", k),
           "change over the point on the role's link (veth end; loopback: lo)")
    for k in ("tx_bytes", "tx_packets", "rx_bytes", "rx_packets"))

# where each role's working threads ran in the measured window, and the CPUs its placement
# asked for (netobs.observers.placement; runs.csv: place_<role>_<figure>)
PLACEMENT_FIGURES: tuple[Figure, ...] = (
    Figure("asked", "CPUs asked", "", ("placement", "{role}", "asked"),
           "the CPUs the placement pinned the role's threads to (the workers' --cpus; empty: not pinned)", text=True),
    Figure("cpus", "CPUs the working threads ran on", "", ("placement", "{role}", "cpus"),
           "the CPUs the role's working threads were seen on in the window", text=True),
    Figure("on_asked", "share of samples on the asked CPUs", "", ("placement", "{role}", "on_asked"),
           "share of the role's samples on the CPUs its placement asked for (empty: not pinned)"),
    Figure("migrations", "migrations", "migrations", ("placement", "{role}", "migrations"),
           "moves of the role's working threads between CPUs in the window (the scheduler's se.nr_migrations)"),
    Figure("threads", "working threads seen", "threads", ("placement", "{role}", "threads")),
    Figure("samples", "placement samples", "samples", ("placement", "{role}", "samples"),
           "samples of the role's working threads' CPUs in the window"),
)

# (column prefix, figures) per family of role columns
ROLE_FAMILIES = (("prof", PROFILE_FIGURES), ("wait", WAIT_FIGURES), ("work", WORK_FIGURES), ("netstat", NETSTAT_FIGURES),
                 ("link", LINK_FIGURES), ("place", PLACEMENT_FIGURES))


def role_column(family: str, role: str, name: str) -> str:
    return f"{family}_{role}_{name}"


def role_path(fig: Figure, role: str) -> tuple[str, ...]:
    return tuple(role if p == "{role}" else p for p in fig.path)


def _role_columns(families) -> list[str]:
    return [role_column(fam, r, f.column) for fam, figs in families for r in ROLES for f in figs]


PROFILE_COLUMNS: list[str] = _role_columns(ROLE_FAMILIES[:3])
ROLE_COLUMNS: list[str] = _role_columns(ROLE_FAMILIES)
LOST_EVENTS = Figure("trace_lost_events", "trace events lost", "events", ("trace", "lost_events"),
                     "map updates that failed (a full map) and tracked pids that shared a slot")


def is_text(column: str) -> bool:
    """Whether a stored column holds words (a strategy, a status, an error), not numbers."""
    f = figure(column)
    return bool(f and f.text) or column.endswith("_status")


def trace_column(role: str, figure: str) -> str:
    return f"trace_{role}_{figure}"


TRACE_COLUMNS: list[str] = [trace_column(r, f) for r in ROLES for f in TRACE_NAMES] + [LOST_EVENTS.column]

STUDY_COLUMNS: list[str] = [f.column for f in STUDY_FIGURES]
WORKER_COLUMNS: list[str] = [f.column for f in WORKER_FIGURES]
# A point's identity: the configuration (strategy, size, threads), its repeat, and the message
# shape (fields per message, TCP_NODELAY); the study's shape is 8 fields without TCP_NODELAY,
# what every row of a store written before shapes were swept has.
SHAPE_KEY = ("fields", "nodelay")
STUDY_FIELDS = 8
STUDY_SHAPE = {"fields": STUDY_FIELDS, "nodelay": 0}
# CPU placement (--placement), the socket buffers and the receive mode are part of a point's
# identity too (netobs.params.POINT_KEY, from the table's `ident`s); a default names none, so a
# point at the defaults has the name it always had.


# ---- perf event columns --------------------------------------------------------------------
SERVER_PREFIX = "server_"   # --perf-server: the server's whole-life counts, server_perf_<e>...
PERF_CELLS = ("", "_status", "_running_pct")   # value, perf's status, % of the window it ran


def event_column(event: str) -> str:
    """perf event name -> its runs.csv column stem: 'L1-dcache-load-misses' -> 'perf_l1_dcache_load_misses'."""
    return "perf_" + "".join(c if c.isalnum() else "_" for c in event.lower()).strip("_")


def perf_columns(events, prefix: str = "") -> list[str]:
    return [f"{prefix}{event_column(ev)}{cell}" for ev in events for cell in PERF_CELLS]


def columns_for(events, server_events=()) -> list[str]:
    """runs.csv's header for a results directory counting `events` (and `server_events`)."""
    return ([f.column for f in STUDY_FIGURES + WORKER_FIGURES] + perf_columns(events)
            + perf_columns(server_events, SERVER_PREFIX) + TRACE_COLUMNS + ROLE_COLUMNS)


# ---- labels --------------------------------------------------------------------------------
def figure(column: str) -> Figure | None:
    """The declaration behind a stored column (trace columns of either role included)."""
    for f in STUDY_FIGURES + WORKER_FIGURES + (LOST_EVENTS,):
        if f.column == column:
            return f
    for role in ROLES:
        for family, figs in (("trace", TRACE_FIGURES),) + ROLE_FAMILIES:
            stem = f"{family}_{role}_"
            if column.startswith(stem):
                name = column[len(stem):]
                for f in figs:
                    if f.column == name:
                        return f
    return None


def label(column: str) -> str | None:
    """The stored column's label; None for a column no table declares (see analysis.labels)."""
    f = figure(column)
    return f.label if f else None


def unit(column: str) -> str:
    f = figure(column)
    return f.unit if f else ""


def markdown() -> str:
    """The runs.csv column list as DESIGN.md prints it (a test holds DESIGN.md to this)."""
    def names(figs):
        return ",".join(f.column for f in figs)

    lines = [
        "Study columns first, in the study's order:",
        f"`{names(STUDY_FIGURES)}`",
        "(`latency_us` = mean per-send latency; the counters come from perf events "
        + ", ".join(f"`{EVENT_BY_COLUMN[c]}`" for c in EVENT_BY_COLUMN) + "; empty when not counted).",
        f"Then: `{names(WORKER_FIGURES)}`,",
        "then per perf event `e` (name lowercased, non-alphanumerics → `_`): `perf_<e>`, `perf_<e>_status`, "
        "`perf_<e>_running_pct`; with `--perf-server`, the same three per event for the server's whole life, "
        "`server_perf_<e>`, `server_perf_<e>_status`, `server_perf_<e>_running_pct`;",
        f"then trace figures `trace_<role>_<figure>` for role in {', '.join(f'`{r}`' for r in ROLES)}:",
    ]
    lines += [f"- `{f.column}` ({f.unit}): {f.help}" for f in TRACE_FIGURES]
    lines.append(f"and `{LOST_EVENTS.column}`: {LOST_EVENTS.help}.")
    lines.append("Then per role, with `--profile` (the classes and reasons are netobs/costclasses.toml's; "
                 "whole run, warm-up included; per GB: of the client's `bytes_sent_total`, the server's "
                 "`bytes_received`): `prof_<role>_<figure>`:")
    fixed_figs = [f for f in PROFILE_FIGURES if f.path[-2] != "classes" and f.path[-2] != "cpu_s_per_gb"]
    lines += [f"- `{f.column}` ({f.unit or 'share'}): {f.help}" for f in fixed_figs]
    lines.append("- per cost class `<c>`: `<c>` (the share of samples) and `<c>_cpu_s_per_gb` (CPU-seconds per GB "
                 "moved), for:")
    lines += [f"  - `{c.name}`: {c.help}" for c in costclass.table().classes]
    lines.append("`wait_<role>_<figure>`:")
    lines += [f"- `{f.column}` ({f.unit}): {f.help}" for f in WAIT_FIGURES]
    lines.append("`work_<role>_<figure>` (the working threads only: those a worker's non-main thread created, the sending or receiving ones; its harness threads left out):")
    lines += [f"- `{f.column}` ({f.unit or 'share'}): {f.help}" for f in WORK_FIGURES]
    lines.append("and always, the network stack's counters per role: `netstat_<role>_<counter>` for "
                 + ", ".join(f"`{f.column}` ({f.label})" for f in NETSTAT_FIGURES)
                 + " (TCP MIB deltas in the role's namespace; loopback: the host's, all its traffic), and "
                 + "`link_<role>_<counter>` for " + ", ".join(f"`{f.column}`" for f in LINK_FIGURES)
                 + " (the role's link).")
    lines.append("Where each role's working threads ran in the measured window (netobs.observers.placement): "
                 "`place_<role>_<figure>`:")
    lines += [f"- `{f.column}`{f' ({f.unit})' if f.unit else ''}: {f.help or f.label}" for f in PLACEMENT_FIGURES]
    return "\n".join(lines)


def shape_suffix(fields=STUDY_FIELDS, nodelay=False) -> str:
    """What a point's name adds for a message shape other than the study's: `-f1`, `-nd`."""
    return ("" if int(fields) == STUDY_FIELDS else f"-f{int(fields)}") + ("-nd" if nodelay else "")


def shape_label(fields=STUDY_FIELDS, nodelay=False) -> str:
    """How answers and charts name a message shape: "f=1", "f=8 nodelay"."""
    return f"f={int(fields)}" + (" nodelay" if nodelay else "")


def placement_suffix(placement=PLACEMENT_DEFAULT) -> str:
    """What a point's name adds for a placement other than the default: `-psame`, `-pnone`."""
    return "" if not placement or placement == PLACEMENT_DEFAULT else f"-p{placement}"


def point_id(strategy: str, msg_size: int, threads: int, repeat: int, *ident) -> str:
    """A point's name: its directory under points/ and how every message names it. `ident`: the
    values of the point's identity parameters (netobs.params.IDENTITY: fields, nodelay,
    placement, sndbuf, rcvbuf, recv), those left out at their defaults. The study's shape at the
    defaults names nothing (`one_copy-65536-1-r0`, as every store before shapes); another value
    says its own before the repeat (`one_copy-65536-1-f1-nd-r0`, `one_copy-65536-1-psame-r0`,
    `one_copy-65536-1-sb4194304-r0`), each parameter as its `ident` declares."""
    from netobs.params import ident_suffix   # (the table imports this module)

    return f"{strategy}-{int(msg_size)}-{int(threads)}{ident_suffix(ident)}-r{int(repeat)}"