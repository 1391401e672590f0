"""Synthetic results directories with planted truths, in DESIGN.md's format (schema 1).

`write_results(path, **plants)` writes manifest.json + runs.csv as a netobs sweep would, from a
model whose truths the tests know: where one_copy / zero_copy cross two_copy, which cache
level the copy-avoiding strategies relieve, an anomaly, missing hardware counters, failed
points, one or several repeats. `write_imported(path, rows, duration)` writes what
`netobs import` makes of a CSV in the study's format. No root, no perf, no kernel.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from netobs.figures import EVENT_BY_COLUMN, STUDY_COLUMNS, columns_for, event_column

IMPLS = ("two_copy", "one_copy", "zero_copy")
SIZES = (1024, 4096, 16384, 65536)
THREADS = (1, 2, 4, 8)
EVENTS = list(EVENT_BY_COLUMN.values())

BASE_CYCLES_PER_BYTE = {"two_copy": 3.0, "one_copy": 2.4, "zero_copy": 2.8}
BASE_CPU_S_PER_GB = {"two_copy": 0.50, "one_copy": 0.42, "zero_copy": 0.65}
SYSCALL_NS_PER_BYTE = {"two_copy": 0.30, "one_copy": 0.25, "zero_copy": 0.45}
L1_PER_KIB, LLC_PER_KIB = 120.0, 4.0


def two_copy_gbps(size: int, threads: int) -> float:
    return 2.0 * (size / 1024) ** 0.35 * threads ** 0.6


def model_gbps(impl: str, size: int, threads: int, crossover: dict) -> float:
    base = two_copy_gbps(size, threads)
    if impl == "two_copy":
        return base
    cross = crossover.get(impl)
    below, above = {"one_copy": (0.85, 1.15), "zero_copy": (0.60, 1.10)}.get(impl, (1.0, 1.0))
    if cross is None:
        return base * below
    return base * (above if size >= cross else below)


def write_results(path, *, impls=IMPLS, sizes=SIZES, threads=THREADS, repeats=3, duration=2.0, warmup=0.5,
                  noise=0.01, seed=1, crossover=None, l1_reduction=0.40, llc_reduction=0.0,
                  hw_counters=True, traces=True, copied_fraction=1.0, cores=32, anomaly=None,
                  failed=(), scale=None, gbps_factor=None, topology="netns") -> Path:
    """Write a results directory; return its path.

    crossover:   {"one_copy": 16384, "zero_copy": 65536} by default: the smallest size at which
                 the strategy beats two_copy (None = never);
    l1_reduction / llc_reduction: fraction by which one_copy and zero_copy cut misses per KiB;
    anomaly:     (impl, size, threads, factor): that configuration's throughput x factor, with
                 context switches per MiB x4 and LLC misses per KiB x3;
    failed:      [(impl, size, threads, repeat, error)];
    scale:       {(impl, size, threads, repeat): k}: that point ran k times longer (bytes and
                 every count x k, rates unchanged);
    gbps_factor: {(impl, size, threads): f}: multiply the model throughput (data changes).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    crossover = {"one_copy": 16384, "zero_copy": 65536} if crossover is None else crossover
    rng = np.random.default_rng(seed)
    failed = {(i, s, t, r): e for i, s, t, r, e in failed}
    scale = scale or {}
    gbps_factor = gbps_factor or {}
    columns = columns_for(EVENTS)
    rows = []
    for impl in impls:
        for size in sizes:
            for t in threads:
                for rep in range(repeats):
                    jitter = lambda: float(rng.normal(1.0, noise))  # noqa: E731
                    key = (impl, size, t, rep)
                    row = {c: "" for c in columns}
                    row.update(implementation=impl, msg_size=size, threads=t, repeat=rep, topology=topology)
                    if key in failed:
                        row.update(status="failed", error=failed[key], duration_s=duration, warmup_s=warmup)
                        rows.append(row)
                        continue
                    k = scale.get(key, 1.0)
                    window = duration * k
                    gbps = model_gbps(impl, size, t, crossover) * gbps_factor.get((impl, size, t), 1.0)
                    cs_factor = llc_factor = 1.0
                    if anomaly and (impl, size, t) == tuple(anomaly[:3]):
                        gbps *= anomaly[3]
                        cs_factor, llc_factor = 4.0, 3.0
                    gbps *= jitter()
                    bytes_sent = gbps * 1e9 / 8 * window
                    bytes_total = bytes_sent * (duration + warmup) / duration
                    messages = bytes_sent / size
                    messages_total = bytes_total / size
                    kib, mib, gb = bytes_sent / 1024, bytes_sent / 2 ** 20, bytes_sent / 1e9
                    lat = t * size * 8 / (gbps * 1e3)
                    saving = impl != "two_copy"
                    l1 = L1_PER_KIB * (1 - l1_reduction if saving else 1.0) * jitter()
                    llc = LLC_PER_KIB * (1 - llc_reduction if saving else 1.0) * (1 + 0.1 * math.log2(t))
                    llc *= llc_factor * jitter()
                    cycles = BASE_CYCLES_PER_BYTE[impl] * jitter()
                    cs = 2.0 * t * cs_factor * jitter()
                    cpu = BASE_CPU_S_PER_GB[impl] * jitter()
                    row.update(
                        throughput_gbps=gbps, latency_us=lat, status="ok", duration_s=duration * k,
                        warmup_s=warmup * k, window_s=window, bytes_sent=bytes_sent, bytes_sent_total=bytes_total,
                        bytes_received=bytes_total, messages=messages, goodput_gbps=gbps,
                        latency_p50_us=lat * 0.9, latency_p99_us=lat * 3, latency_p999_us=lat * 6,
                        latency_max_us=lat * 20, cpu_user_s=cpu * gb * 0.3, cpu_sys_s=cpu * gb * 0.7,
                        server_cpu_user_s=0.1 * gb, server_cpu_sys_s=0.3 * gb,
                        context_switches=cs * mib,
                    )
                    if impl == "zero_copy":
                        row.update(zc_completions=messages, zc_copied=messages * copied_fraction,
                                   zc_notifications=messages / 2, zc_enobufs=0)
                    else:
                        row.update(zc_completions=0, zc_copied=0, zc_notifications=0, zc_enobufs=0)
                    perf = {"cpu-cycles": cycles * bytes_sent, "L1-dcache-load-misses": l1 * kib,
                            "LLC-load-misses": llc * kib, "context-switches": cs * mib}
                    for col, ev in EVENT_BY_COLUMN.items():
                        stem = event_column(ev)
                        hardware = ev != "context-switches"
                        if hardware and not hw_counters:
                            row[stem + "_status"] = "not supported"
                            continue
                        row[col] = perf[ev]
                        row[stem] = perf[ev]
                        row[stem + "_status"] = "counted"
                        row[stem + "_running_pct"] = 100.0
                    if traces:
                        zc = impl == "zero_copy"
                        tr = {
                            "client": {"sendmsg_calls": messages_total, "sendmsg_bytes": bytes_total,
                                       "zc_sends": messages_total if zc else 0, "zc_send_bytes": bytes_total if zc else 0,
                                       "rx_copy_calls": 0, "rx_copy_bytes": 0,
                                       "errqueue_reads": messages_total * 0.5 if zc else 0, "zc_callbacks": 0,
                                       "zc_deferred_copies": messages_total if zc else 0,
                                       "send_syscalls": messages_total,
                                       "send_syscall_ns": bytes_total * SYSCALL_NS_PER_BYTE[impl],
                                       "recv_syscalls": messages_total * 0.5 if zc else 0, "recv_syscall_ns": 0,
                                       "offcpu_switches": cs * mib, "offcpu_ns": 0.1 * t * (duration + warmup) * k * 1e9,
                                       "mem_pressure_events": 0},
                            "server": {"rx_copy_calls": messages_total, "rx_copy_bytes": bytes_total,
                                       "recv_syscalls": messages_total, "recv_syscall_ns": bytes_total * 0.2,
                                       "zc_callbacks": messages_total if zc else 0, "zc_deferred_copies": 0},
                        }
                        for role, figures in tr.items():
                            for fig, val in figures.items():
                                row[f"trace_{role}_{fig}"] = val
                        row["trace_lost_events"] = 0
                    rows.append(row)
    manifest = {
        "schema_version": 1, "netobs_version": "0.1.0", "source": "netobs",
        "command": ["netobs", "sweep", "--trace"], "started": "2026-01-01T00:00:00+0000",
        "finished": "2026-01-01T01:00:00+0000",
        "host": {"kernel": "6.1.0-synthetic", "cpu_model": "Synthetic CPU", "cores": cores,
                 "memory_bytes": 8 * 2 ** 30, "virtualized": not hw_counters},
        "tools": {"perf": "6.1", "bcc": "0.26" if traces else None},
        "topology": {"kind": topology},
        "perf": {"events": EVENTS, "unsupported": {} if hw_counters else {
            "cpu-cycles": "<not supported> (no PMU in this VM)",
            "L1-dcache-load-misses": "<not supported> (no PMU in this VM)",
            "LLC-load-misses": "<not supported> (no PMU in this VM)"}},
        "probe_plan": ({"sendmsg_bytes": {"probe": "kprobe:tcp_sendmsg"},
                        "rx_copy_bytes": {"probe": "kprobe:skb_copy_datagram_iter"}} if traces else None),
        "matrix": {"impls": list(impls), "sizes": list(sizes), "threads": list(threads), "repeats": repeats,
                   "duration": duration, "warmup": warmup, "order": "interleaved"},
        "perf_events": EVENTS,
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
    _write_csv(path / "runs.csv", columns, rows)
    return path


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v)) if isinstance(v, float) else str(v)


def _write_csv(file: Path, columns: list[str], rows: list[dict]) -> None:
    with open(file, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({c: _cell(r.get(c)) for c in columns})


def study_rows(crossover=None, hw_counters=True, seed=3, repeats=None, gbps_factor=None) -> list[dict]:
    """Rows in the study's 9-column format (one run per point), from the same model; with
    `repeats`, that many rows per point with a `repeat` column (what `netobs import` accepts).
    gbps_factor: {(impl, size, threads): f}, as write_results."""
    crossover = {"one_copy": 16384, "zero_copy": 65536} if crossover is None else crossover
    gbps_factor = gbps_factor or {}
    rng = np.random.default_rng(seed)
    rows = []
    for impl in IMPLS:
        for size in SIZES:
            for t, rep in ((t, rep) for t in THREADS for rep in range(repeats or 1)):
                gbps = (model_gbps(impl, size, t, crossover) * gbps_factor.get((impl, size, t), 1.0)
                        * float(rng.normal(1, 0.01)))
                b = gbps * 1e9 / 8 * 10
                saving = impl != "two_copy"
                rows.append({
                    "implementation": impl, "msg_size": size, "threads": t, "throughput_gbps": round(gbps, 4),
                    "latency_us": round(t * size * 8 / (gbps * 1e3), 3),
                    "cpu_cycles": int(BASE_CYCLES_PER_BYTE[impl] * b) if hw_counters else "",
                    "l1_cache_misses": int(L1_PER_KIB * (0.6 if saving else 1) * b / 1024) if hw_counters else "",
                    "llc_cache_misses": int(LLC_PER_KIB * b / 1024) if hw_counters else "",
                    "context_switches": int(2 * t * b / 2 ** 20),
                    **({"repeat": rep} if repeats else {}),
                })
    return rows


def write_study_csv(file, rows) -> Path:
    file = Path(file)
    with open(file, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=STUDY_COLUMNS + (["repeat"] if rows and "repeat" in rows[0] else []),
                           lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return file


def write_imported(path, rows: list[dict], duration: float = 10.0) -> Path:
    """What `netobs import study.csv --duration D -o path` writes: source import, host facts
    unknown, bytes_sent = throughput * 1e9 / 8 * duration, the other extended columns empty."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    columns = columns_for(EVENTS)
    out = []
    unsupported = {}
    for r in rows:
        row = {c: "" for c in columns}
        row.update({c: r.get(c, "") for c in STUDY_COLUMNS})
        gbps = float(r["throughput_gbps"])
        row.update(repeat=0, status="ok", topology="unknown", duration_s=duration, window_s=duration,
                   bytes_sent=gbps * 1e9 / 8 * duration)
        for col, ev in EVENT_BY_COLUMN.items():
            stem = event_column(ev)
            if r.get(col, "") == "":
                row[stem + "_status"] = "not counted"
                unsupported.setdefault(ev, "empty in the imported file")
            else:
                row[stem] = r[col]
                row[stem + "_status"] = "counted"
        out.append(row)
    manifest = {
        "schema_version": 1, "source": "import", "netobs_version": "0.1.0",
        "command": ["netobs", "import", "study.csv", "--duration", str(duration)],
        "host": {"kernel": "unknown", "cpu_model": "unknown", "cores": None, "memory_bytes": None,
                 "virtualized": None, "note": "host facts are unknown for imported results"},
        "tools": {"perf": "unknown", "bcc": None}, "topology": {"kind": "unknown"},
        "perf": {"events": EVENTS, "unsupported": unsupported}, "probe_plan": None,
        "matrix": {"impls": list(IMPLS), "sizes": list(SIZES), "threads": list(THREADS), "repeats": 1,
                   "duration": duration, "warmup": None, "order": "unknown"},
        "perf_events": EVENTS,
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
    _write_csv(path / "runs.csv", columns, out)
    return path


def write_pair(path, base=None, new=None) -> tuple[Path, Path]:
    """Two results directories from the same model, `path/base` and `path/new`, with their own
    noise (seeds 1 and 2): `base` and `new` are write_results' keywords for each (the changes
    planted in NEW)."""
    path = Path(path)
    base, new = {"seed": 1, **(base or {})}, {"seed": 2, **(new or {})}
    return write_results(path / "base", **base), write_results(path / "new", **new)


def edit_manifest(path, edit) -> Path:
    """Apply `edit(manifest)` to a results directory's manifest.json, in place."""
    file = Path(path) / "manifest.json"
    manifest = json.loads(file.read_text())
    edit(manifest)
    file.write_text(json.dumps(manifest, indent=2))
    return Path(path)


def edit_runs(path, edit) -> Path:
    """Apply `edit(row)` to every row of a results directory's runs.csv (a dict of strings, in
    place): plants a figure the model does not make (a wait reason at one point, a column
    emptied). Returns the path."""
    file = Path(path) / "runs.csv"
    with open(file, newline="") as fh:
        reader = csv.DictReader(fh)
        columns, rows = list(reader.fieldnames or []), list(reader)
    for row in rows:
        edit(row)
    with open(file, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return Path(path)


def rename_strategies(path, names: dict) -> Path:
    """Rename strategies in runs.csv and the manifest's matrix (a metamorphic test's input)."""
    edit_runs(path, lambda row: row.update(implementation=names.get(row["implementation"], row["implementation"])))
    return edit_manifest(path, lambda m: m["matrix"].update(impls=[names.get(i, i) for i in m["matrix"]["impls"]]))
