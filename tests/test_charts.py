"""Charts: each chart's Vega-Lite spec (marks, encodings, data rows) checked; missing data → note."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from netobs.analysis import charts, flame, stats
from netobs.analysis.answer import Answer, Prose
from netobs.analysis.charts import CHARTS, MissingChart, chart_for
from netobs.analysis.questions.common import Facts

IMPLS = ["two_copy", "one_copy", "zero_copy"]
SIZES = [1024, 4096, 16384, 65536]
THREADS = [1, 2, 4, 8]
STUDY = ["implementation", "msg_size", "threads", "throughput_gbps", "latency_us", "cpu_cycles",
         "l1_cache_misses", "llc_cache_misses", "context_switches"]


def make_raw_runs(impls=IMPLS, sizes=SIZES, threads=THREADS, repeats=3, counters=True, traces=True,
                  seed=1, window_s=1.0, warmup_s=0.2) -> pd.DataFrame:
    """Synthetic runs.csv rows (DESIGN.md schema 1): study columns first, then the extended ones.

    Planted truth: one_copy beats two_copy from 4096 B on; zero_copy only at 65536 B;
    zero-copy completions are all copied (receiver on the same host)."""
    rng = np.random.default_rng(seed)
    rows = []
    for impl in impls:
        for size in sizes:
            for t in threads:
                for r in range(repeats):
                    base = 2.0 * np.log2(size / 512) * min(t, 4) ** 0.6
                    factor = {"two_copy": 1.0, "one_copy": 1.0 if size < 4096 else 1.25,
                              "zero_copy": 0.7 if size < 65536 else 1.4}[impl]
                    gbps = base * factor * (1 + rng.normal(0, 0.02))
                    sent = int(gbps * 1e9 / 8 * window_s)
                    total = int(sent * (window_s + warmup_s) / window_s)
                    msgs = max(1, sent // size)
                    row = {
                        "implementation": impl, "msg_size": size, "threads": t, "throughput_gbps": gbps,
                        "latency_us": size / (gbps * 1e3 / 8) * t * (1 + rng.normal(0, 0.02)),
                        "cpu_cycles": sent * (1.5 if impl == "two_copy" else 1.0) if counters else np.nan,
                        "l1_cache_misses": sent / 64 * (1.3 if impl == "two_copy" else 1.0) if counters else np.nan,
                        "llc_cache_misses": sent / 4096 * (1.05 if impl == "two_copy" else 1.0) if counters else np.nan,
                        "context_switches": 100.0 * t if counters else np.nan,
                        "repeat": r, "status": "ok", "error": "", "topology": "netns", "duration_s": window_s,
                        "warmup_s": warmup_s, "window_s": window_s, "bytes_sent": sent, "bytes_sent_total": total,
                        "bytes_received": total, "messages": msgs, "goodput_gbps": gbps,
                        "cpu_user_s": 0.3 * t, "cpu_sys_s": 0.6 * t,
                        "server_cpu_user_s": 0.1 * t, "server_cpu_sys_s": 0.5 * t,
                        "zc_completions": msgs if impl == "zero_copy" else np.nan,
                        "zc_copied": msgs if impl == "zero_copy" else np.nan,
                        "zc_notifications": msgs // 4 if impl == "zero_copy" else np.nan,
                        "zc_enobufs": 0 if impl == "zero_copy" else np.nan,
                    }
                    if traces:
                        zc_bytes = total if impl == "zero_copy" else 0
                        row.update({
                            "trace_client_sendmsg_bytes": total, "trace_client_zc_send_bytes": zc_bytes,
                            "trace_server_rx_copy_bytes": total, "trace_client_send_syscall_ns": total * 0.3,
                            "trace_client_offcpu_ns": t * (window_s + warmup_s) * 1e9 * min(0.9, 0.1 * t),
                        })
                    else:
                        row.update({k: np.nan for k in ("trace_client_sendmsg_bytes", "trace_client_zc_send_bytes",
                                                        "trace_server_rx_copy_bytes", "trace_client_send_syscall_ns",
                                                        "trace_client_offcpu_ns")})
                    rows.append(row)
    from netobs.figures import columns_for

    df = pd.DataFrame(rows)  # every runs.csv column, the ones not planted here empty
    return df.reindex(columns=list(dict.fromkeys(list(df.columns) + columns_for([]))))


def make_runs(**kw) -> pd.DataFrame:
    """The rows as load_results gives them: with the analysis's own derived columns."""
    from netobs.analysis.load import derive

    return derive(make_raw_runs(**kw))


# ----------------------------------------------------------------------------- spec helpers

def spec(chart) -> dict:
    assert not isinstance(chart, MissingChart), chart
    d = chart.to_dict()
    json.dumps(d)  # serialisable as-is
    return d


def rows(d: dict) -> list[dict]:
    """The inline data rows of a spec (Altair hoists them into `datasets`)."""
    (values,) = d["datasets"].values()
    return values


def layers(d: dict) -> list[dict]:
    inner = d.get("spec", d)
    return inner.get("layer", [inner])


def marks(d: dict) -> list[str]:
    return [m["mark"]["type"] if isinstance(m["mark"], dict) else m["mark"] for m in layers(d)]


def enc(layer: dict, channel: str) -> tuple[str, str]:
    e = layer["encoding"][channel]
    return e.get("field") or e.get("aggregate"), e["type"]


def title_text(d: dict) -> str:
    t = d.get("title") or d.get("spec", {}).get("title")
    return t["text"] if isinstance(t, dict) else t


def subtitle(d: dict) -> str:
    t = d.get("title") or d.get("spec", {}).get("title")
    sub = t.get("subtitle", []) if isinstance(t, dict) else []
    return " ".join(sub if isinstance(sub, list) else [sub])


@pytest.fixture(scope="module")
def runs():
    return make_runs()


# ----------------------------------------------------------------------------- the study's four

def test_throughput_vs_size_spec(runs):
    d = spec(charts.throughput_vs_size(runs))
    assert marks(d) == ["area", "line"]
    band, line = layers(d)
    assert enc(line, "x") == ("msg_size", "quantitative")
    assert line["encoding"]["x"]["scale"]["type"] == "log" and line["encoding"]["x"]["scale"]["base"] == 2
    assert line["encoding"]["x"]["axis"]["values"] == SIZES
    assert enc(line, "y") == ("throughput_gbps", "quantitative")
    assert enc(line, "color") == ("implementation", "nominal")
    assert enc(band, "y") == ("ci_lo", "quantitative") and band["encoding"]["y2"]["field"] == "ci_hi"
    data = pd.DataFrame(rows(d))
    # every thread count, one panel each: not one slice
    assert d["facet"]["column"]["field"] == "threads" and d["facet"]["column"]["sort"] == THREADS
    assert set(data["threads"]) == set(THREADS)
    assert len(data) == len(IMPLS) * len(SIZES) * len(THREADS)
    assert (data["n"] == 3).all()
    # the line is the median of the planted repeats; the band the answers' 95% t-interval for the mean
    for x in data.itertuples():
        want = stats.summarize(runs[(runs.implementation == x.implementation) & (runs.msg_size == x.msg_size)
                                    & (runs.threads == x.threads)].throughput_gbps)
        assert x.throughput_gbps == pytest.approx(want.median, rel=1e-12)
        assert (x.ci_lo, x.ci_hi) == pytest.approx((want.ci_low, want.ci_high), rel=1e-9)
    # 2 to 30 Gbit/s: more than an order of magnitude, so a log axis, said in the title
    assert line["encoding"]["y"]["scale"]["type"] == "log"
    assert title_text(d) == "Throughput vs message size, one panel per thread count (log y)"
    assert subtitle(d) == "line = median of up to 3 repeats; band = 95% t-interval for the mean"
    assert enc(line, "y") == ("throughput_gbps", "quantitative") and line["encoding"]["y"]["title"] == \
        "throughput (Gbit/s)"


def test_colors_are_the_same_in_every_chart(runs):
    scales = []
    for chart in (charts.throughput_vs_size(runs), charts.latency_vs_threads(runs),
                  charts.cycles_per_byte_vs_size(runs), charts.cache_misses_vs_size(runs)):
        d = spec(chart)
        (line,) = [lay for lay in layers(d) if lay["mark"]["type"] == "line"]
        scales.append(line["encoding"]["color"]["scale"])
    # even a chart that only has one strategy keeps the same domain and colors
    only_zc = spec(charts.throughput_vs_size(runs[runs.implementation == "zero_copy"]))
    scales.append(layers(only_zc)[-1]["encoding"]["color"]["scale"])
    assert all(s == scales[0] for s in scales)
    assert scales[0]["domain"] == IMPLS


def test_a_narrow_axis_stays_linear_and_the_title_says_nothing():
    runs = make_runs(sizes=[16384, 65536])
    d = spec(charts.throughput_vs_size(runs))
    assert layers(d)[-1]["encoding"]["y"]["scale"].get("type") != "log"
    assert "log" not in title_text(d)


def test_single_repeat_has_no_band_and_says_so():
    d = spec(charts.throughput_vs_size(make_runs(repeats=1)))
    assert marks(d) == ["line"]
    assert "one repeat" in subtitle(d)


def test_latency_vs_threads_spec(runs):
    d = spec(charts.latency_vs_threads(runs))
    band, line = layers(d)
    assert enc(line, "x") == ("threads", "quantitative")
    assert line["encoding"]["x"]["axis"]["values"] == THREADS
    assert enc(line, "y") == ("latency_us", "quantitative")
    data = pd.DataFrame(rows(d))
    assert d["facet"]["column"]["field"] == "msg_size"
    assert set(data["msg_size"]) == set(SIZES) and len(data) == len(IMPLS) * len(THREADS) * len(SIZES)
    assert "one panel per message size" in title_text(d)


def test_cache_misses_spec(runs):
    d = spec(charts.cache_misses_vs_size(runs))
    assert d["facet"]["row"]["field"] == "level" and d["facet"]["column"]["field"] == "threads"
    assert d["resolve"]["scale"]["y"] == "independent" and "independent per panel" in title_text(d)
    band, line = d["spec"]["layer"]
    assert enc(line, "y") == ("misses_per_kib", "quantitative")
    assert enc(line, "x") == ("msg_size", "quantitative")
    data = pd.DataFrame(rows(d))
    assert set(data["level"]) == {"L1", "LLC"} and set(data["threads"]) == set(THREADS)
    l1 = data[(data.level == "L1") & (data.implementation == "two_copy")].misses_per_kib
    assert np.allclose(l1, 1024 / 64 * 1.3)


def test_cache_misses_with_one_level_missing_draws_the_other_and_says_so(runs):
    part = runs.copy()
    part["llc_misses_per_kib"] = np.nan
    d = spec(charts.cache_misses_vs_size(part))
    assert set(pd.DataFrame(rows(d))["level"]) == {"L1"}
    assert "LLC-load-misses" in subtitle(d)


def test_cycles_per_byte_spec(runs):
    d = spec(charts.cycles_per_byte_vs_size(runs))
    line = layers(d)[-1]
    assert enc(line, "y") == ("cycles_per_byte", "quantitative")
    data = pd.DataFrame(rows(d))
    assert np.allclose(data[data.implementation == "two_copy"].cycles_per_byte, 1.5)


def test_missing_counters_give_notes_not_charts():
    runs = make_runs(counters=False)
    for fn in (charts.cache_misses_vs_size, charts.cycles_per_byte_vs_size):
        out = fn(runs)
        assert isinstance(out, MissingChart), fn
        assert "not counted" in out.reason
    # what was measured is still drawn
    assert not isinstance(charts.cpu_per_gb_vs_size(runs), MissingChart)


def test_missing_traces_give_notes_not_charts():
    runs = make_runs(traces=False)
    for name in ("copies_per_byte", "syscall_time", "offcpu_share"):
        out = CHARTS[name](runs)
        assert isinstance(out, MissingChart), name
        assert "--trace" in out.reason


# ----------------------------------------------------------------------------- beyond the study

def test_copies_per_byte_spec(runs):
    d = spec(charts.copies_per_byte(runs))
    assert d["facet"]["column"]["field"] == "msg_size"
    (bar,) = layers(d)
    assert bar["mark"]["type"] == "bar"
    assert bar["encoding"]["y"]["field"] == "copies_per_byte" and bar["encoding"]["y"]["aggregate"] == "sum"
    assert bar["encoding"]["y"]["stack"] == "zero"
    assert enc(bar, "color") == ("path", "nominal")
    data = pd.DataFrame(rows(d))
    assert set(data["path"]) == {"user", "send-kernel", "deferred-kernel", "receive-kernel"}
    total = data.groupby("implementation")["copies_per_byte"].sum() / len(SIZES)
    assert total["two_copy"] == pytest.approx(3.0)
    assert total["one_copy"] == pytest.approx(2.0)
    # every zero-copy completion was flagged copied: the kernel copied on delivery after all
    assert total["zero_copy"] == pytest.approx(2.0)
    deferred = data[data.path == "deferred-kernel"].groupby("implementation")["copies_per_byte"].sum() / len(SIZES)
    assert deferred["zero_copy"] == pytest.approx(1.0) and deferred["one_copy"] == 0


def test_zc_copied_fraction_spec(runs):
    d = spec(charts.zc_copied_fraction(runs))
    bar = layers(d)[0]
    assert enc(bar, "y") == ("zc_copied_fraction", "quantitative")
    assert enc(bar, "x") == ("msg_size", "ordinal") and enc(bar, "xOffset") == ("threads", "ordinal")
    data = pd.DataFrame(rows(d))
    assert set(data["implementation"]) == {"zero_copy"} and (data["zc_copied_fraction"] == 1.0).all()
    no_zc = runs[runs.implementation != "zero_copy"]
    assert isinstance(charts.zc_copied_fraction(no_zc), MissingChart)


def test_syscall_and_offcpu_specs(runs):
    d = spec(charts.syscall_time_per_byte(runs))
    assert enc(layers(d)[-1], "y") == ("syscall_ns_per_byte", "quantitative")
    assert np.allclose(pd.DataFrame(rows(d)).syscall_ns_per_byte, 0.3)
    d = spec(charts.offcpu_share_by_threads(runs))
    line = layers(d)[-1]
    assert enc(line, "x") == ("threads", "quantitative") and enc(line, "y") == ("offcpu_share", "quantitative")
    data = pd.DataFrame(rows(d))
    assert np.allclose(data.sort_values("threads").offcpu_share.unique(), [0.1, 0.2, 0.4, 0.8])


def test_relative_throughput_heatmap(runs):
    d = spec(charts.relative_throughput(runs))
    assert d["facet"]["column"]["field"] == "implementation"
    rect, text = d["spec"]["layer"]
    assert rect["mark"]["type"] == "rect" and text["mark"]["type"] == "text"
    assert enc(rect, "x") == ("msg_size", "ordinal") and enc(rect, "y") == ("threads", "ordinal")
    assert enc(rect, "color") == ("shade", "quantitative")
    assert rect["encoding"]["color"]["scale"] == {"type": "log", "scheme": "redblue", "domain": [0.25, 4.0],
                                                  "domainMid": 1, "clamp": True}
    data = pd.DataFrame(rows(d))
    assert set(data["implementation"]) == {"one_copy", "zero_copy"}
    assert len(data) == 2 * len(SIZES) * len(THREADS)
    zc = data[(data.implementation == "zero_copy")].set_index("msg_size").ratio
    assert (zc.loc[65536] > 1.2).all() and (zc.loc[1024] < 0.8).all()
    assert isinstance(charts.relative_throughput(runs[runs.implementation == "two_copy"]), MissingChart)


def test_failed_points_are_not_drawn(runs):
    bad = runs.copy()
    bad.loc[bad.implementation == "zero_copy", "status"] = "failed"
    data = pd.DataFrame(rows(spec(charts.throughput_vs_size(bad))))
    assert "zero_copy" not in set(data.implementation)


# each chart's data rows for the planted runs: 3 strategies x 4 sizes x 4 thread counts
ROWS = {"throughput": 48, "latency": 48, "cache_misses": 96, "cycles_per_byte": 48, "cpu_per_gb": 48,
        "copies_per_byte": 48, "zc_copied_fraction": 16, "syscall_time": 48, "offcpu_share": 48,
        "relative_throughput": 32, "threads_effect": 7 * 48, "throughput_grid": 48}


def test_the_registry_is_the_report_s_charts_with_their_titles():
    assert {n: c.title for n, c in CHARTS.items()} == {
        "throughput": "Throughput vs message size", "latency": "Latency vs client threads",
        "cache_misses": "Cache misses per KiB sent vs message size",
        "cycles_per_byte": "CPU cycles per byte vs message size",
        "cpu_per_gb": "Client CPU time per GB vs message size", "copies_per_byte": "Copies per byte sent, by path",
        "zc_copied_fraction": "Zero-copy sends the kernel copied anyway, per size and thread count",
        "syscall_time": "Send-syscall time per byte vs message size",
        "offcpu_share": "Client off-CPU share vs threads",
        "relative_throughput": "Throughput relative to two_copy, every size and thread count",
        "cache_ratio": "Cache misses per KiB sent relative to two_copy, every size and thread count",
        "ratio_vs_size": "Throughput relative to two_copy vs message size, per thread count",
        "threads_effect": "What changes with client threads", "throughput_grid": "Throughput at every measured point",
        "flame": "Flame graph of each point (icicle)", "cpu_by_class": "CPU time per GB, by cost class",
        "wait_by_reason": "Off-CPU time, by wait reason",
        "bottleneck": "What limits each point: CPU-bound, waiting or oversubscribed, per strategy"}
    assert [n for n, c in CHARTS.items() if c.section == "profile"] == ["flame", "cpu_by_class", "wait_by_reason",
                                                                          "bottleneck"]


def test_every_registered_chart_draws_or_explains(runs):
    for name, chart in charts.section_charts("figures").items():   # the profile's: test_profile_* below
        d = spec(chart(runs))
        assert len(rows(d)) == ROWS[name], name
        assert title_text(d).startswith(chart.title), name  # the registered title, and where it is drawn
    empty = runs.iloc[0:0]
    for name, chart in CHARTS.items():
        out = chart(empty)
        assert isinstance(out, MissingChart) and out.title == chart.title, name


# ----------------------------------------------------------------------------- answers → charts

def _answer(question, chart_data, note=None):
    facts = Facts(code="test", caveats=[], evidence=pd.DataFrame(), chart_data=chart_data)
    return Answer(question, question, facts, Prose(verdict="v", caveats=[], table=pd.DataFrame(), chart_note=note))


def test_chart_for_empty_answer_is_a_note():
    out = chart_for(_answer("cache", pd.DataFrame(), "hardware counters were not counted"))
    assert isinstance(out, MissingChart) and "not counted" in out.reason


def test_chart_for_runs_like_chart_data(runs):
    d = spec(chart_for(_answer("one-copy-crossover", runs)))
    assert pd.DataFrame(rows(d)).columns.tolist()[:3] == ["implementation", "msg_size", "threads"]


def test_chart_for_any_tidy_table():
    tidy = pd.DataFrame({"implementation": ["one_copy", "one_copy", "zero_copy", "zero_copy"],
                         "msg_size": [1024, 4096, 1024, 4096], "speedup": [0.9, 1.2, 0.6, 0.8]})
    d = spec(chart_for(_answer("zero-copy-crossover", tidy)))
    assert any(lay.get("encoding", {}).get("y", {}).get("field") in ("speedup", "value") for lay in layers(d))
    assert rows(d)


def test_threads_effect_spec(runs):
    d = spec(charts.threads_effect(runs))
    assert d["facet"]["row"]["field"] == "metric" and d["facet"]["column"]["field"] == "msg_size"
    assert d["resolve"]["scale"]["y"] == "independent" and "independent per panel" in title_text(d)
    line = d["spec"]["layer"][-1]
    assert enc(line, "x") == ("threads", "quantitative") and enc(line, "y") == ("value", "quantitative")
    data = pd.DataFrame(rows(d))
    assert set(data["msg_size"]) == set(SIZES)
    assert list(data["metric"].unique()) == ["throughput (Gbit/s)", "L1 misses per KiB", "LLC misses per KiB",
                                             "context switches per MiB", "mean per-send latency (µs)",
                                             "CPU-s per GB", "off-CPU share"]
    assert len(data) == 7 * len(IMPLS) * len(THREADS) * len(SIZES)
    assert isinstance(charts.threads_effect(runs[runs.threads == 4]), MissingChart)
    # without traces and perf (a VM): the panels that were measured, and what was not
    bare = runs.drop(columns=[c for c in runs.columns if c.startswith(("trace_", "perf_"))])
    bare = bare.drop(columns=[c for c in ("offcpu_share", "l1_misses_per_kib", "llc_misses_per_kib", "cs_per_mib")
                              if c in bare.columns])
    d = spec(charts.threads_effect(bare))
    assert set(pd.DataFrame(rows(d))["metric"]) == {"throughput (Gbit/s)", "mean per-send latency (µs)", "CPU-s per GB"}
    assert any("not measured: L1 misses per KiB" in t for t in d["title"]["subtitle"])


def test_throughput_grid_rings_anomalies(runs):
    d = spec(charts.throughput_grid(runs))
    assert d["facet"]["column"]["field"] == "msg_size" and len(d["spec"]["layer"]) == 1
    flagged = runs.copy()
    flagged["anomaly"] = ""
    flagged.loc[(flagged.implementation == "one_copy") & (flagged.msg_size == 4096) & (flagged.threads == 8),
                "anomaly"] = "1"
    d = spec(charts.throughput_grid(flagged))
    line, ring = d["spec"]["layer"]   # no text beside the rings: ranks at one point would collide
    assert ring["mark"]["type"] == "point" and not any(lay["mark"]["type"] == "text" for lay in d["spec"]["layer"])
    assert {"field": "anomaly", "type": "nominal", "title": "anomaly rank"} in ring["encoding"]["tooltip"]
    data = pd.DataFrame(rows(d))
    hit = data[data.anomaly != ""]
    assert hit[["implementation", "msg_size", "threads", "anomaly"]].values.tolist() == [["one_copy", 4096, 8, "1"]]


# ----------------------------------------------------------------------------- where the time goes (--profile)

from profile_synth import USER_COPY, write_profile_results  # noqa: E402

from netobs.figures import PROFILE_CLASSES, WAIT_REASONS  # noqa: E402


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """12 points (3 strategies x 4 KiB, 64 KiB x 1, 2 threads), one without folded files."""
    from netobs.analysis.load import load_results

    path = write_profile_results(tmp_path_factory.mktemp("prof") / "r", no_files=("one_copy-65536-2-r0",),
                                 no_offcpu=("zero_copy-4096-1-r0",))
    return path, load_results(path).runs


def test_profile_charts_are_absent_without_profile_columns(runs):
    assert not charts.has_profile(runs)
    for name in ("flame", "cpu_by_class", "wait_by_reason"):
        out = CHARTS[name](runs)
        assert isinstance(out, MissingChart) and out.title == CHARTS[name].title, name
    assert "--profile" in CHARTS["cpu_by_class"](runs).reason


def test_class_and_reason_colours_come_from_one_place():
    domain, colours = charts.class_colors()
    assert domain == list(PROFILE_CLASSES) and len(set(colours)) == len(colours)
    assert charts.reason_colors()[0] == list(WAIT_REASONS)
    # a class the data file adds later still gets a colour, the same each time
    assert charts._palette(["kernel_copy", "new_class"], charts.CLASS_COLORS) == \
        (["kernel_copy", "new_class"], [charts.CLASS_COLORS["kernel_copy"], charts._SPARE[0]])


def test_cpu_by_class_spec(profiled):
    path, runs = profiled
    assert charts.has_profile(runs)
    d = spec(charts.cpu_by_class(runs))
    assert d["facet"]["row"]["field"] == "panel" and d["facet"]["column"]["field"] == "msg_size"
    (bar,) = layers(d)
    assert bar["mark"]["type"] == "bar" and bar["encoding"]["y"]["stack"] == "zero"
    assert enc(bar, "x") == ("implementation", "nominal") and enc(bar, "color") == ("part", "nominal")
    assert bar["encoding"]["color"]["scale"]["domain"] == list(PROFILE_CLASSES)
    data = pd.DataFrame(rows(d))
    assert set(data["role"]) == {"client", "server"}
    assert d["facet"]["row"]["sort"] == ["client · 1 thr", "client · 2 thr", "server · 1 thr", "server · 2 thr"]
    client = data[data.role == "client"]
    # the planted truths: two_copy's user copy, none in one_copy; zero_copy pins pages and copies nothing itself
    uc = client[(client.part == "user_copy")]
    assert set(uc.implementation) == {"two_copy"}
    tc = runs[(runs.implementation == "two_copy") & (runs.msg_size == 4096) & (runs.threads == 1)].iloc[0]
    got = uc[(uc.msg_size == 4096) & (uc.threads == 1)].value.item()
    assert got == pytest.approx(tc.prof_client_user_copy_cpu_s_per_gb)
    assert tc.prof_client_user_copy == pytest.approx(USER_COPY / sum([0.30, 0.20, 0.15, 0.08, 0.05, 0.07, 0.05,
                                                                      USER_COPY]))
    assert "zc_pin" in set(client[client.implementation == "zero_copy"].part)
    assert "kernel_copy" not in set(client[client.implementation == "zero_copy"].part)
    assert set(data[data.role == "server"].part) >= {"kernel_copy"}
    assert (data["value"] > 0).all() and (data["n"] == 1).all()


def test_cpu_by_class_says_which_role_was_not_sampled(tmp_path):
    from netobs.analysis.load import load_results

    runs = load_results(write_profile_results(tmp_path / "r", server_missing=True)).runs
    d = spec(charts.cpu_by_class(runs))
    assert set(pd.DataFrame(rows(d))["role"]) == {"client"}
    assert "no on-CPU samples for the server" in subtitle(d)
    # its off-CPU time was still measured
    assert set(pd.DataFrame(rows(spec(charts.wait_by_reason(runs))))["role"]) == {"client", "server"}


def test_wait_by_reason_spec(profiled):
    _, runs = profiled
    d = spec(charts.wait_by_reason(runs))
    (bar,) = layers(d)
    assert bar["encoding"]["color"]["scale"]["domain"] == list(WAIT_REASONS)
    data = pd.DataFrame(rows(d))
    client = data[data.role == "client"]
    assert set(client[client.part == "errqueue_poll"].implementation) == {"zero_copy"}
    server = data[(data.role == "server") & (data.part == "wait_data")]
    assert sorted(server.groupby("threads").value.first().round(6).tolist()) == [0.6, 1.2]


def _flame(profiled):
    path, runs = profiled
    d = spec(charts.flame_graph(runs, results_dir=path))
    return d, pd.DataFrame(rows(d))


def test_flame_menu_lists_every_point_and_role_with_stacks(profiled):
    d, data = _flame(profiled)
    params = {p["name"]: p for p in d["params"]}
    menu, kind = params["flame_point"], params["flame_kind"]
    assert menu["bind"]["input"] == "select" and kind["bind"]["input"] == "radio"
    labels = menu["bind"]["labels"]
    assert len(labels) == len(menu["bind"]["options"]) == 11 * 2      # the point without files is not there
    assert labels[0] == "two_copy · 4 KiB · 1 thr · repeat 0 · client"
    assert labels[1] == "two_copy · 4 KiB · 1 thr · repeat 0 · server"
    assert not [x for x in labels if x.startswith("one_copy · 64 KiB · 2 thr")]
    assert kind["bind"]["options"] == ["on", "off"] and menu["value"] == 0 and kind["value"] == "on"
    assert set(data["p"]) == set(range(len(labels)))
    # every layer shows only the chosen point and kind
    for lay in d["layer"]:
        assert lay["transform"][0] == {"filter": "datum.p == flame_point && datum.m == flame_kind"}


def test_flame_rectangles_and_colours(profiled):
    d, data = _flame(profiled)
    on, off, text, none = d["layer"]
    assert [lay["mark"]["type"] for lay in d["layer"]] == ["rect", "rect", "text", "text"]
    assert on["encoding"]["color"]["scale"]["domain"] == list(PROFILE_CLASSES)
    assert off["encoding"]["color"]["scale"]["domain"] == list(WAIT_REASONS)
    assert on["encoding"]["color"]["condition"]["value"] == charts.ROOT_COLOR
    assert d["resolve"]["scale"]["color"] == "independent"
    tips = {t["title"] for t in on["encoding"]["tooltip"]}
    assert {"function", "share of the point", "samples", "cost class"} <= tips
    assert "off-CPU ms" in {t["title"] for t in off["encoding"]["tooltip"]}
    rects = data[data.z == 0]
    first = rects[(rects.p == 0) & (rects.m == "on")]
    assert first[first.d == 0][["n", "x0", "x1", "c"]].values.tolist() == [["client", 0.0, 1.0, ""]]
    assert first[first.d == 1].x1.max() == pytest.approx(1.0)
    assert set(first[first.d == 1].c) <= set(PROFILE_CLASSES) and "user_copy" in set(first.c)
    # the planted narrow frames merged into one rectangle; kernel frames flagged, their suffix cut
    assert first[first.o > 0].n.tolist() == ["other (40 frames)"]
    assert first[first.n == "rep_movs_alternative"].k.tolist() == [1]
    assert not first.n.str.endswith("_[k]").any()
    assert rects.groupby(["p", "m"]).size().max() <= flame.MAX_RECTS
    # off-CPU: coloured by the wait reason; a point without off-CPU stacks says so
    off_rows = rects[(rects.p == 0) & (rects.m == "off")]
    assert {"sndbuf_full", "sleep"} <= set(off_rows.c)
    zc = next(i for i, x in enumerate(d["params"][0]["bind"]["labels"]) if x.startswith("zero_copy · 4 KiB · 1 thr")
              and x.endswith("client"))
    placeholder = data[(data.p == zc) & (data.m == "off")]
    assert placeholder.z.tolist() == [1] and "no off-CPU stacks" in placeholder.n.item()


def test_flame_is_stable_and_needs_the_results_dir(profiled):
    path, runs = profiled
    assert charts.flame_graph(runs, results_dir=path).to_dict() == charts.flame_graph(runs, results_dir=path).to_dict()
    assert isinstance(charts.flame_graph(runs), MissingChart)


def test_flame_names_an_unreadable_file_and_draws_the_rest(profiled, tmp_path):
    import shutil

    path, runs = profiled
    copy = tmp_path / "r"
    shutil.copytree(path, copy)
    (copy / "points" / "two_copy-4096-1-r0" / "profile-client.folded").write_text("client;[other];f notanumber\n")
    d = spec(charts.flame_graph(runs, results_dir=copy))
    assert "1 folded file(s) could not be read: two_copy-4096-1-r0/profile-client.folded" in subtitle(d)
    data = pd.DataFrame(rows(d))
    assert data[(data.p == 0) & (data.m == "on")].z.tolist() == [1]
    assert str(tmp_path) not in json.dumps(d)


def test_flame_keeps_the_report_small_with_many_points(tmp_path):
    from netobs.analysis.load import load_results

    path = write_profile_results(tmp_path / "r", sizes=(1024, 4096, 16384, 65536), threads=(1, 2, 4, 8), repeats=1,
                                 noise=400)
    runs = load_results(path).runs
    d = spec(charts.flame_graph(runs, results_dir=path))
    data = pd.DataFrame(rows(d))
    assert data["p"].nunique() == 3 * 4 * 4 * 2
    assert len(data) <= charts.FLAME_BUDGET + data["p"].nunique() * 2
    assert data.groupby(["p", "m"]).size().max() <= charts.FLAME_BUDGET // (2 * data["p"].nunique())
