"""Charts: pure functions from a runs table (or an answer's chart data) to an Altair chart.

Every function takes a DataFrame with the columns of `load_results(...).runs` (DESIGN.md:
runs.csv plus the derived per-byte columns) and returns either an Altair chart or a
`MissingChart` saying why it cannot be drawn. A chart whose data is missing (no hardware
counters, no traces) is never drawn empty or as zeros.

Conventions shared by all charts:
- message sizes sit on a log2 axis labelled in B/KiB/MiB, ticks at the measured sizes;
- one fixed color per strategy (`STRATEGY_COLORS`), the same in every chart;
- repeats are summarised as the median (the line) and the 95% Student-t interval for the mean
  (the band or error bars): `stats.summarize`, the interval every answer states; with one
  repeat per point no band is drawn and the subtitle says so;
- axis and panel titles come from `labels`, each chart's title from its registration in CHARTS.

To add a chart: a function `fn(runs, title, ...)` registered with `@chart(name, title)`; the
report draws every registered chart in registration order.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from netobs import figures, fmt, strategies
from netobs.strategies import STUDY, ordered

from . import flame
from .labels import axis
from .load import SHAPE, by_series
from .stats import ALPHA, _t_quantile as t_quantile, compare

# Altair refuses a data set of more than 5,000 rows (MaxRowsError) so that a notebook does not
# embed a huge one by accident. The report holds each data set once for the whole page (the
# charts name it; report.columnar, column by column), so a sweep of 10,000 points draws every
# point, as a smaller one does, instead of failing.
alt.data_transformers.disable_max_rows()

STRATEGY_COLORS = {s.name: s.color for s in strategies.STRATEGIES}
EXTRA_COLORS = ["#f0e442", "#000000", "#999999", "#882255", "#44aa99"]   # Okabe-Ito / Tol: colour-blind safe
PATHS = ["user", "send-kernel", "deferred-kernel", "receive-kernel"]
PATH_COLORS = {"user": "#9d755d", "send-kernel": "#b279a2", "deferred-kernel": "#e45756", "receive-kernel": "#ff9da6"}

WIDTH, HEIGHT = 330, 230

THREADS_LABEL = "datum.value + (datum.value == 1 ? ' thread' : ' threads')"
SIZE_LABEL = ("datum.value >= 1048576 ? format(datum.value / 1048576, '~g') + ' MiB' : "
              "datum.value >= 1024 ? format(datum.value / 1024, '~g') + ' KiB' : "
              "format(datum.value, '~g') + ' B'")


@dataclass(frozen=True)
class MissingChart:
    """A chart that is not drawn because its data was not measured; `reason` says why."""

    title: str
    reason: str

    def to_dict(self) -> dict:
        return {"missing": True, "title": self.title, "reason": self.reason}


@dataclass(frozen=True)
class WithData:
    """A chart whose named data sets are added to its spec as they are (`frames`: name ->
    DataFrame), not walked and validated by Altair: the flame graph's thousands of rectangles.
    The report takes the frames as they are (`bare()` is the spec without them)."""

    chart: object
    frames: dict

    def bare(self) -> dict:
        return self.chart.to_dict(validate=False)

    def to_dict(self, validate: bool = True) -> dict:
        spec = self.chart.to_dict(validate=validate)
        spec["datasets"] = {**(spec.get("datasets") or {}),
                            **{k: json.loads(f.to_json(orient="records")) for k, f in self.frames.items()}}
        return spec


@dataclass(frozen=True)
class Drawn:
    """A chart already turned into its spec (`spec`, without the `frames` WithData adds): what a
    worker process hands back (Altair objects do not cross process boundaries)."""

    spec: dict
    frames: dict

    @staticmethod
    def of(chart):
        """The chart as a Drawn (a MissingChart as it is)."""
        if isinstance(chart, (MissingChart, Drawn)):
            return chart
        if isinstance(chart, WithData):
            return Drawn(chart.bare(), dict(chart.frames))
        return Drawn(chart.to_dict(validate=False), {})

    def bare(self) -> dict:
        return dict(self.spec)

    def to_dict(self, validate: bool = True) -> dict:
        spec = dict(self.spec)
        if self.frames:
            spec["datasets"] = {**(spec.get("datasets") or {}),
                                **{k: json.loads(f.to_json(orient="records")) for k, f in self.frames.items()}}
        return spec


def chart_spec(chart) -> dict:
    """The Vega-Lite spec of a drawn chart, unvalidated (the report's: Altair's schema check costs
    seconds on big data; the tests validate every chart's spec with to_dict())."""
    return chart.to_dict(validate=False)


@dataclass(frozen=True)
class Chart:
    """A registered chart: its name (the export's file stem), its title, the function drawing it;
    `section`: the report section it is drawn in ("figures", or "profile": Where the time goes);
    `reads_points`: it also reads the points' files (`results_dir=` is passed to it)."""

    name: str
    title: str
    draw: Callable
    section: str = "figures"
    reads_points: bool = False

    def __call__(self, runs: pd.DataFrame, **kw):
        # a strategy in another message shape than the study's is a series of its own ("one_copy f=1")
        return self.draw(by_series(runs), self.title, **kw)


CHARTS: dict[str, Chart] = {}
"""Every chart of the report, in report order (the study's four first)."""


def chart(name: str, title: str, section: str = "figures", reads_points: bool = False):
    def register(fn: Callable) -> Chart:
        CHARTS[name] = Chart(name, title, fn, section, reads_points)
        return CHARTS[name]
    return register


def section_charts(section: str) -> dict[str, Chart]:
    """The registered charts of one report section, in registration order."""
    return {n: c for n, c in CHARTS.items() if c.section == section}


# ----------------------------------------------------------------------------- helpers

def _strategies(df: pd.DataFrame) -> list[str]:
    """The color domain: the study's three always (so colors never shift), then extras."""
    present = ordered(df["implementation"].astype(str)) if "implementation" in df else []
    return list(STUDY) + [s for s in present if s not in STUDY]


def strategy_color(df: pd.DataFrame, title: str = "strategy") -> alt.Color:
    """The strategy colour: the same domain and colours in every chart (the study's three always,
    so colours never shift), the legend listing only the strategies the chart's data has."""
    domain = _strategies(df)
    colors = [STRATEGY_COLORS.get(s) or EXTRA_COLORS[i % len(EXTRA_COLORS)] for i, s in enumerate(domain)]
    present = set(df["implementation"].astype(str)) if "implementation" in df else set()
    return alt.Color("implementation:N", title=title, sort=domain,
                     scale=alt.Scale(domain=domain, range=colors),
                     legend=alt.Legend(orient="right", symbolOpacity=1, values=[s for s in domain if s in present]))


def _size_axis(sizes, title: str = "message size (log2)") -> alt.X:
    values = sorted({int(s) for s in sizes})
    return alt.X("msg_size:Q", title=title,
                 scale=alt.Scale(type="log", base=2, nice=False,
                                 domain=[values[0] / 1.25, values[-1] * 1.25] if values else None),
                 axis=alt.Axis(values=values, labelExpr=SIZE_LABEL, grid=False))


def _threads_axis(threads) -> alt.X:
    values = sorted({int(t) for t in threads})
    return alt.X("threads:Q", title="client threads (log2)",
                 scale=alt.Scale(type="log", base=2, nice=False,
                                 domain=[values[0] / 1.25, values[-1] * 1.25] if values else None),
                 axis=alt.Axis(values=values, format="d", grid=False))


# One colour domain per quantity across the report: a ratio to a baseline is always this log
# scale, symmetric about 1 (x0.5 as strong as x2), clamped; RdBu is safe for colour-blind readers.
RATIO_LIMIT = 4.0
RATIO_TICKS = [0.25, 0.5, 1, 2, 4]
LOG_SPAN = 10.0   # a positive axis whose values span this factor or more is drawn on a log scale


# a row panel's name above the panel, left (a long name beside it would be cut or collide)
ROW_HEADER = alt.Header(labelOrient="top", labelAngle=0, labelAnchor="start", labelAlign="left",
                        labelFontSize=12, labelFontWeight="bold", labelPadding=4, labelLimit=600)


def ratio_color(field: str = "ratio", title: str = "× baseline") -> alt.Color:
    """The colour of every ratio to a baseline in the report (RATIO_LIMIT, centred at 1)."""
    return alt.Color(f"{field}:Q", title=title,
                     scale=alt.Scale(type="log", scheme="redblue", domain=[1 / RATIO_LIMIT, RATIO_LIMIT],
                                     domainMid=1, clamp=True),
                     legend=alt.Legend(format=".2~f", values=RATIO_TICKS))


def threads_color(threads) -> alt.Color:
    """Thread counts as colour (sequential viridis, its light end cut for white paper)."""
    domain = sorted({int(t) for t in threads})
    return alt.Color("threads:O", title="client threads", sort=domain,
                     scale=alt.Scale(scheme=alt.SchemeParams("viridis", extent=[0, 0.85]), domain=domain))


def y_scale(values, zero: bool = True) -> tuple[alt.Scale, str]:
    """(the y scale, the words the title adds): log where the positive values span LOG_SPAN or
    more (a linear axis would flatten the small ones), else linear."""
    v = pd.to_numeric(pd.Series(list(values)), errors="coerce").dropna()
    if len(v) and (v > 0).all() and v.max() / v.min() >= LOG_SPAN:
        return alt.Scale(type="log"), " (log y)"
    return alt.Scale(zero=zero), ""


def _has(df: pd.DataFrame, column: str) -> bool:
    return column in df.columns and pd.to_numeric(df[column], errors="coerce").notna().any()


def summarize(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """One row per `keys` group with a value: `value` (the median), `ci_lo`, `ci_hi` (the 95%
    t-interval for the mean, NaN with one repeat), `n` (repeats used): `stats.summarize`'s
    numbers, computed for all groups at once (a report summarises thousands of groups)."""
    cols = keys + [value, "ci_lo", "ci_hi", "n"]
    if df.empty or value not in df:
        return pd.DataFrame(columns=cols)
    v = pd.to_numeric(df[value], errors="coerce")
    g = df[keys].assign(_v=v).groupby(keys, sort=True, observed=True)["_v"]
    out = g.agg(["median", "mean", "std", "count"]).reset_index()
    out = out[out["count"] > 0]
    if out.empty:
        return pd.DataFrame(columns=cols)
    n = out["count"].to_numpy()
    q = np.array([t_quantile(int(k) - 1) if k >= 2 else np.nan for k in n])
    half = q * out["std"].to_numpy() / np.sqrt(n)
    out = out.assign(**{value: out["median"], "ci_lo": out["mean"] - half, "ci_hi": out["mean"] + half,
                        "n": n.astype(int)})[cols]
    for k in keys:
        if k in ("msg_size", "threads"):
            out[k] = out[k].astype(int)
        elif k == "implementation":
            out[k] = out[k].astype(str)
    return out.reset_index(drop=True)


def _title(text: str, subtitle: list[str] | str | None = None) -> alt.TitleParams:
    subs = [s for s in ([subtitle] if isinstance(subtitle, str) else (subtitle or [])) if s]
    return alt.TitleParams(text=text, subtitle=subs or alt.Undefined, anchor="start",
                           fontSize=14, subtitleColor="#555")


def _repeats_note(summary: pd.DataFrame) -> str:
    if summary.empty:
        return ""
    n = int(summary["n"].max())
    if n < 2:
        return "one repeat per point: no interval drawn, differences not tested"
    return f"line = median of up to {n} repeats; band = 95% t-interval for the mean"


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    if "status" in df.columns:
        df = df[df["status"].fillna("ok").astype(str) == "ok"]
    return df


def _line_with_band(summary: pd.DataFrame, x: alt.X, value: str, y_title: str, color: alt.Color,
                    tooltip_extra: list | None = None, y_scale: alt.Scale | None = None,
                    y_format: str | None = None, embed_data: bool = True):
    """Median line with points, plus a 95% CI band when there are repeats.

    `embed_data=False` leaves the data out (for charts faceted by the caller)."""
    base = alt.Chart(summary) if embed_data else alt.Chart()
    scale = y_scale or alt.Scale(zero=True)
    y = alt.Y(f"{value}:Q", title=y_title, scale=scale,
              axis=alt.Axis(format=y_format) if y_format else alt.Axis())
    tooltip = [alt.Tooltip("implementation:N", title="strategy"),
               *(tooltip_extra or []),
               alt.Tooltip(f"{value}:Q", title=f"median {y_title}", format=y_format or ".4~g"),
               alt.Tooltip("ci_lo:Q", title="95% CI of the mean, low", format=y_format or ".4~g"),
               alt.Tooltip("ci_hi:Q", title="95% CI of the mean, high", format=y_format or ".4~g"),
               alt.Tooltip("n:Q", title="repeats")]
    line = base.mark_line(point=alt.OverlayMarkDef(size=50, filled=True), strokeWidth=2).encode(
        x=x, y=y, color=color, tooltip=tooltip)
    if summary["n"].max() > 1:
        band = base.mark_area(opacity=0.18).encode(x=x, y=alt.Y("ci_lo:Q", title=y_title, scale=scale),
                                                   y2="ci_hi:Q", color=color)
        if scale.to_dict().get("type") == "log":   # an interval reaching 0 has no place on it
            band = band.transform_filter("datum.ci_lo > 0")
        return alt.layer(band, line)
    return line


_SIZE_TIP = alt.Tooltip("msg_size:Q", title="message size (B)")
_THREADS_TIP = alt.Tooltip("threads:Q", title="threads")


def _line(runs: pd.DataFrame, value: str, title: str, x: str, missing_reason: str, y_format: str | None = None):
    """`value` vs `x` ("msg_size" or "threads"), one line per strategy with its CI band, one panel
    per value of the other dimension (every measured configuration); y log where it spans
    orders of magnitude (the title says so)."""
    runs = _ok(runs)
    if not _has(runs, value):
        return MissingChart(title, missing_reason)
    other = "threads" if x == "msg_size" else "msg_size"
    df = runs[pd.to_numeric(runs[value], errors="coerce").notna()]
    summary = summarize(df, ["implementation", x, other], value)
    scale, log = y_scale(summary[value])
    if x == "msg_size":
        x_axis, tips = _size_axis(summary["msg_size"]), [_SIZE_TIP, _THREADS_TIP]
        column, per = alt.Column("threads:O", title="client threads", sort=sorted(summary["threads"].unique()),
                                 header=alt.Header(labelExpr=THREADS_LABEL, labelFontWeight="bold")), \
            "thread count"
    else:
        x_axis, tips = _threads_axis(summary["threads"]), [_THREADS_TIP, _SIZE_TIP]
        column, per = alt.Column("msg_size:O", title="message size", sort=sorted(summary["msg_size"].unique()),
                                 header=alt.Header(labelExpr=SIZE_LABEL, labelFontWeight="bold")), "message size"
    drawn = _line_with_band(summary, x_axis, value, axis(value), strategy_color(summary), tips, y_scale=scale,
                            y_format=y_format, embed_data=False)
    return (drawn.properties(width=170, height=170).facet(column=column, data=summary)
            .properties(title=_title(f"{title}, one panel per {per}{log}", _repeats_note(summary))))


# ----------------------------------------------------------------------------- the study's four

@chart("throughput", "Throughput vs message size")
def throughput_vs_size(runs: pd.DataFrame, title: str):
    """Throughput (Gbps) vs message size, one panel per thread count."""
    return _line(runs, "throughput_gbps", title, "msg_size", "no successful runs with a measured throughput")


@chart("latency", "Latency vs client threads")
def latency_vs_threads(runs: pd.DataFrame, title: str):
    """Mean per-send latency (µs) vs client threads, one panel per message size."""
    return _line(runs, "latency_us", title, "threads", "no per-send latency in these results")


@chart("cache_misses", "Cache misses per KiB sent vs message size")
def cache_misses_vs_size(runs: pd.DataFrame, title: str):
    """L1-dcache and LLC load misses per KiB sent vs message size: one row per level, one
    column per thread count (y independent per level)."""
    runs = _ok(runs)
    levels = [("L1", "l1_misses_per_kib", "L1-dcache-load-misses"), ("LLC", "llc_misses_per_kib", "LLC-load-misses")]
    present = [lv for lv in levels if _has(runs, lv[1])]
    if not present:
        return MissingChart(title, "hardware cache counters (L1-dcache-load-misses, LLC-load-misses) were not "
                                   "counted on this host (common in VMs); see the run summary for perf's reason")
    parts = []
    for level, col, _ in present:
        df = runs[pd.to_numeric(runs[col], errors="coerce").notna()]
        s = summarize(df, ["implementation", "msg_size", "threads"], col).rename(columns={col: "misses_per_kib"})
        s["level"] = level
        parts.append(s)
    data = pd.concat(parts, ignore_index=True)
    subs = [_repeats_note(data)]
    absent = [event for _, col, event in levels if not _has(runs, col)]
    if absent:
        subs.append(f"not counted on this host: {', '.join(absent)}")
    inner = _line_with_band(data, _size_axis(data["msg_size"]), "misses_per_kib", "misses per KiB sent",
                            strategy_color(data), [alt.Tooltip("level:N"), _SIZE_TIP, _THREADS_TIP],
                            embed_data=False)
    return (inner.properties(width=165, height=150)
            .facet(row=alt.Row("level:N", title=None, sort=[lv for lv, _, _ in present],
                               header=alt.Header(labelFontSize=13, labelFontWeight="bold")),
                   column=alt.Column("threads:O", title="client threads", sort=sorted(data["threads"].unique()),
                                     header=alt.Header(labelExpr=THREADS_LABEL, labelFontWeight="bold")),
                   data=data)
            .resolve_scale(y="independent")
            .properties(title=_title(f"{title}, per level and thread count (y independent per panel)", subs)))


@chart("cycles_per_byte", "CPU cycles per byte vs message size")
def cycles_per_byte_vs_size(runs: pd.DataFrame, title: str):
    """CPU cycles per byte sent vs message size."""
    return _line(runs, "cycles_per_byte", title, "msg_size",
                 "the cpu-cycles counter was not counted on this host (common in VMs); "
                 "CPU seconds per GB is shown instead")


# ----------------------------------------------------------------------------- beyond the study

@chart("cpu_per_gb", "Client CPU time per GB vs message size")
def cpu_per_gb_vs_size(runs: pd.DataFrame, title: str):
    """Client CPU seconds (user+sys) per GB sent: the cost measure that needs no counters."""
    return _line(runs, "cpu_s_per_gb", title, "msg_size",
                 "client CPU time (user/sys) was not recorded in these results")


@chart("copies_per_byte", "Copies per byte sent, by path")
def copies_per_byte(runs: pd.DataFrame, title: str):
    """Copies per byte by path (user / send-kernel / deferred-kernel / receive-kernel) and strategy:
    stacked bars. deferred-kernel is the zero-copy pages the kernel copied anyway, from the
    completions flagged SO_EE_CODE_ZEROCOPY_COPIED."""
    runs = _ok(runs)
    traced = {"send-kernel": "send_copy_per_byte", "receive-kernel": "rx_copy_per_byte"}
    if not any(_has(runs, c) for c in traced.values()):
        return MissingChart(title, "no kernel trace figures (tcp_sendmsg, skb_copy_datagram_iter) in these results; "
                                   "run the sweep with --trace as root to measure where bytes are copied")
    columns = {"user": "user_copy_per_byte", "send-kernel": traced["send-kernel"],
               "deferred-kernel": "deferred_copy_per_byte", "receive-kernel": traced["receive-kernel"]}
    parts = []
    for path, col in columns.items():
        if not _has(runs, col):
            continue
        s = summarize(runs, ["implementation", "msg_size"], col).rename(columns={col: "copies_per_byte"})
        s["path"] = path
        s["source"] = {"user": "by construction", "deferred-kernel": "completion codes"}.get(path, "traced")
        parts.append(s)
    data = pd.concat(parts, ignore_index=True)
    untraced = [p for p, c in traced.items() if not _has(runs, c)]
    subs = ["median over threads and repeats; user copies by construction (two_copy serialises), send/receive copies "
            "traced, deferred copies of zero-copy pages from completions flagged SO_EE_CODE_ZEROCOPY_COPIED"]
    if untraced:
        subs.append(f"not traced (missing, not zero): {', '.join(untraced)}")
    domain = _strategies(data)
    bars = alt.Chart().mark_bar().encode(
        x=alt.X("implementation:N", title=None, sort=domain, axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("sum(copies_per_byte):Q", title="copies per byte sent", stack="zero"),
        color=alt.Color("path:N", title="copy path", sort=PATHS,
                        scale=alt.Scale(domain=PATHS, range=[PATH_COLORS[p] for p in PATHS])),
        order=alt.Order("path_order:Q"),
        tooltip=[alt.Tooltip("implementation:N", title="strategy"), alt.Tooltip("msg_size:Q", title="size (B)"),
                 "path:N", "source:N", alt.Tooltip("copies_per_byte:Q", format=".3f", title="median copies/byte"),
                 alt.Tooltip("n:Q", title="runs")],
    ).transform_calculate(path_order=f"indexof({PATHS!r}, datum.path)")
    data = data.sort_values(["msg_size", "implementation", "path"]).reset_index(drop=True)
    sizes = sorted(data["msg_size"].unique())
    return (bars.properties(width=max(90, 30 * len(domain)), height=HEIGHT)
            .facet(column=alt.Column("msg_size:O", title="message size", sort=sizes,
                                     header=alt.Header(labelExpr=SIZE_LABEL)),
                   data=data)
            .properties(title=_title(title, subs)))


@chart("zc_copied_fraction", "Zero-copy sends the kernel copied anyway, per size and thread count")
def zc_copied_fraction(runs: pd.DataFrame, title: str):
    """Share of zero-copy completions the kernel flagged as copied anyway (SO_EE_CODE_ZEROCOPY_COPIED)."""
    runs = _ok(runs)
    zc = runs[runs["implementation"].astype(str) == "zero_copy"] if "implementation" in runs else runs.iloc[0:0]
    if zc.empty:
        return MissingChart(title, "no successful zero_copy runs in these results")
    if not _has(zc, "zc_copied_fraction"):
        return MissingChart(title, "no zero-copy completions were recorded (completion counts missing or zero), "
                                   "so the copied fraction is unknown")
    data = summarize(zc, ["implementation", "msg_size", "threads"], "zc_copied_fraction")
    sizes = sorted(data["msg_size"].unique())
    threads = sorted(data["threads"].unique())
    base = alt.Chart(data)
    x = alt.X("msg_size:O", title="message size", sort=sizes, axis=alt.Axis(labelExpr=SIZE_LABEL, labelAngle=0))
    bars = base.mark_bar().encode(
        x=x, xOffset=alt.XOffset("threads:O", sort=threads),
        y=alt.Y("zc_copied_fraction:Q", title=axis("zc_copied_fraction"),
                scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=threads_color(threads),
        tooltip=[alt.Tooltip("msg_size:Q", title="size (B)"), "threads:Q",
                 alt.Tooltip("zc_copied_fraction:Q", format=".1%", title="median copied"),
                 alt.Tooltip("n:Q", title="repeats")])
    layers = [bars]
    if data["n"].max() > 1:
        layers.append(base.mark_errorbar(color="#333").encode(
            x=x, xOffset=alt.XOffset("threads:O", sort=threads), y=alt.Y("ci_lo:Q", title=""), y2="ci_hi:Q"))
    sub = ["1 = every zero-copy send was copied on delivery (receiver on this host): pinning paid, nothing saved",
           _repeats_note(data)]
    return alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, title=_title(title, sub))


@chart("syscall_time", "Send-syscall time per byte vs message size")
def syscall_time_per_byte(runs: pd.DataFrame, title: str):
    """Time inside send syscalls per byte sent (ns/B), traced."""
    return _line(runs, "syscall_ns_per_byte", title, "msg_size",
                 "send-syscall time was not traced (run the sweep with --trace as root)")


@chart("offcpu_share", "Client off-CPU share vs threads")
def offcpu_share_by_threads(runs: pd.DataFrame, title: str):
    """Share of the client threads' time spent off-CPU, vs thread count."""
    return _line(runs, "offcpu_share", title, "threads",
                 "off-CPU time (sched:sched_switch) was not traced (run the sweep with "
                 "--trace as root)", y_format="%")


def ratios(runs: pd.DataFrame, value: str) -> pd.DataFrame:
    """Each strategy's median `value` over two_copy's at the same (size, threads), one row per
    strategy x size x threads: ratio, both medians, the repeats, and the Welch test's verdict
    where both sides have repeats (the test the answers use, so a chart never contradicts one)."""
    runs = runs[pd.to_numeric(runs[value], errors="coerce").notna()] if value in runs else runs.iloc[0:0]
    s = summarize(runs, ["implementation", "msg_size", "threads"], value)
    ref = s[s["implementation"] == strategies.BASELINE].set_index(["msg_size", "threads"])
    rows = []
    raw = runs.groupby(["implementation", "msg_size", "threads"])[value]
    for r in s[s["implementation"] != strategies.BASELINE].to_dict("records"):
        key = (r["msg_size"], r["threads"])
        if key not in ref.index or not ref.loc[key, value] > 0 or not r[value] >= 0:
            continue
        b = ref.loc[key]
        sig = ""
        if r["n"] > 1 and b["n"] > 1:
            cmp = compare(raw.get_group((strategies.BASELINE, *key)), raw.get_group((r["implementation"], *key)))
            sig = "untested" if cmp.significant is None else \
                "yes" if cmp.significant else f"no (Welch {fmt.p_value(cmp.p_value)})"
        rows.append({"implementation": r["implementation"], "msg_size": int(key[0]), "threads": int(key[1]),
                     "ratio": r[value] / b[value], "value": r[value], "ref": float(b[value]),
                     "n": int(min(r["n"], b["n"])), "significant": sig})
    out = pd.DataFrame(rows, columns=["implementation", "msg_size", "threads", "ratio", "value", "ref", "n",
                                      "significant"])
    # the colour's value: the ratio within the scale's clamp (a ratio of 0 has no place on a log scale)
    out["shade"] = out["ratio"].clip(lower=1 / RATIO_LIMIT, upper=RATIO_LIMIT)
    return out


def _ratio_grid(runs: pd.DataFrame, metrics: list[tuple[str, str]], title: str, meaning: str):
    """Heat maps of each strategy's ratio to two_copy over message size x threads: one column per
    strategy, one row per metric (`metrics`: (column, label)), the report's one ratio colour
    scale, the ratio written in each cell (≈ where a tested difference is not significant)."""
    parts = []
    for col, label in metrics:
        d = ratios(runs, col)
        d["metric"] = label
        parts.append(d)
    data = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if data.empty:
        return MissingChart(title, "no (size, threads) point was measured for both two_copy and another strategy")
    tested = data["significant"].str.len().gt(0).any()
    data["label"] = data["ratio"].map(fmt.times) + np.where(data["significant"].str.startswith("no"), "≈", "")
    sizes = sorted(data["msg_size"].unique())
    threads = sorted(data["threads"].unique(), reverse=True)
    x = alt.X("msg_size:O", title="message size", sort=sizes, axis=alt.Axis(labelExpr=SIZE_LABEL, labelAngle=0))
    y = alt.Y("threads:O", title="client threads", sort=threads)
    tips = [alt.Tooltip("implementation:N", title="strategy"), alt.Tooltip("metric:N"),
            alt.Tooltip("msg_size:Q", title="size (B)"), alt.Tooltip("threads:Q"),
            alt.Tooltip("ratio:Q", format=".3f", title="× two_copy"),
            alt.Tooltip("value:Q", format=".4~g", title="median, strategy"),
            alt.Tooltip("ref:Q", format=".4~g", title="median, two_copy"), alt.Tooltip("n:Q", title="repeats")]
    if tested:
        tips.append(alt.Tooltip("significant:N", title="significant (Welch)"))
    base = alt.Chart()
    rect = base.mark_rect(stroke="white", strokeWidth=1.5).encode(
        x=x, y=y, color=ratio_color("shade", "× two_copy"), tooltip=tips)
    text = base.mark_text(fontSize=12).encode(
        x=x, y=y, text="label:N", tooltip=tips,
        color=alt.condition(f"abs(log(datum.shade) / log(2)) > {0.6 * np.log2(RATIO_LIMIT):.4f}",
                            alt.value("white"), alt.value("#222")))
    impls = [i for i in _strategies(data) if i in set(data["implementation"])]
    labels = [lb for _, lb in metrics if lb in set(data["metric"])]
    facet = {"column": alt.Column("implementation:N", title=None, sort=impls,
                                  header=alt.Header(labelFontSize=13, labelFontWeight="bold"))}
    if len(labels) > 1:
        facet["row"] = alt.Row("metric:N", title=None, sort=labels, header=ROW_HEADER)
    n = int(data["n"].max())
    agg = (f"median of up to {n} repeats; ≈ = not significant (Welch p≥{ALPHA})" if tested
           else "one repeat per point: differences not tested")
    subs = [f"median ÷ two_copy's median at the same size and threads; {meaning}", agg,
            f"colour: the report's one ratio scale, log, centred at ×1, clamped at ×{1 / RATIO_LIMIT:g} and "
            f"×{RATIO_LIMIT:g}"]
    return (alt.layer(rect, text).properties(width=max(160, 64 * len(sizes)), height=max(100, 30 * len(threads)))
            .facet(**facet, data=data).properties(title=_title(title, subs)))


@chart("relative_throughput", "Throughput relative to two_copy, every size and thread count")
def relative_throughput(runs: pd.DataFrame, title: str):
    """Heat map: each strategy's median throughput / two_copy's, over message size × threads."""
    runs = _ok(runs)
    if not _has(runs, "throughput_gbps"):
        return MissingChart(title, "no measured throughput in these results")
    if strategies.BASELINE not in set(runs["implementation"].astype(str)) or runs["implementation"].nunique() < 2:
        return MissingChart(title, "needs two_copy and at least one other strategy at the same size and thread count")
    return _ratio_grid(runs, [("throughput_gbps", "throughput")], title, "blue = faster, red = slower")


COPY_CPU = [figures.role_column("prof", "client", f"{c}_cpu_s_per_gb") for c in ("user_copy", "kernel_copy")]


@chart("cache_ratio", "Cache misses per KiB sent relative to two_copy, every size and thread count",
       section="questions")
def cache_ratio(runs: pd.DataFrame, title: str):
    """The cache answer's chart: misses per KiB of each level, each strategy over two_copy, at
    every configuration; where no level was counted, what the answer measured instead (the
    profile's copy CPU per GB, CPU-s per GB, cycles and copies per byte), the same way."""
    runs = _ok(runs).copy()
    levels = [(c, lb) for c, lb in (("l1_misses_per_kib", "L1 misses per KiB"),
                                    ("llc_misses_per_kib", "LLC misses per KiB")) if _has(runs, c)]
    meaning = "red = fewer than two_copy, blue = more"
    if levels:
        return _ratio_grid(runs, levels, title, meaning)
    instead = []
    if all(_has(runs, c) for c in COPY_CPU):
        runs["copy_cpu_s_per_gb"] = runs[COPY_CPU].apply(pd.to_numeric, errors="coerce").sum(axis=1, min_count=1)
        instead.append(("copy_cpu_s_per_gb", "copy CPU-s per GB (client profile)"))
    instead += [(c, axis(c)) for c in ("cpu_s_per_gb", "cycles_per_byte", "copies_per_byte") if _has(runs, c)]
    if not instead:
        return MissingChart(title, "no cache counters and nothing measured instead (CPU time, copies per byte)")
    return _ratio_grid(runs, instead, "No cache counters: what was measured instead, relative to two_copy, every "
                                      "size and thread count", meaning)


@chart("ratio_vs_size", "Throughput relative to two_copy vs message size, per thread count", section="questions")
def ratio_vs_size(runs: pd.DataFrame, title: str):
    """The crossover answers' chart: each strategy's median throughput over two_copy's vs message
    size, one line per thread count, a rule at ×1 (above: the strategy is faster)."""
    runs = _ok(runs)
    if not _has(runs, "throughput_gbps"):
        return MissingChart(title, "no measured throughput in these results")
    data = ratios(runs, "throughput_gbps")
    data = data[data["ratio"] > 0]
    if data.empty:
        return MissingChart(title, "no (size, threads) point was measured for both two_copy and another strategy")
    tested = data["significant"].str.len().gt(0).any()
    spread = float(np.nanmax(np.abs(np.log2(data["ratio"])))) if len(data) else 0.0
    lim = float(2 ** max(spread * 1.1, 0.2))
    y = alt.Y("ratio:Q", title="× two_copy (log)",
              scale=alt.Scale(type="log", domain=[1 / lim, lim], nice=False),
              axis=alt.Axis(values=[v for v in ((0.1, 0.25, 0.5, 1, 2, 4, 10) if lim > 2.5 else
                                                (0.5, 0.67, 0.8, 1, 1.25, 1.5, 2) if lim > 1.3 else
                                                (0.8, 0.85, 0.9, 0.95, 1, 1.05, 1.1, 1.15, 1.2, 1.25))
                                    if 1 / lim <= v <= lim], format=".2~f"))
    x = _size_axis(data["msg_size"])
    tips = [alt.Tooltip("implementation:N", title="strategy"), _SIZE_TIP, _THREADS_TIP,
            alt.Tooltip("ratio:Q", format=".3f", title="× two_copy"),
            alt.Tooltip("value:Q", format=".4~g", title="median Gbps"),
            alt.Tooltip("ref:Q", format=".4~g", title="two_copy median Gbps"), alt.Tooltip("n:Q", title="repeats")]
    if tested:
        tips.append(alt.Tooltip("significant:N", title="significant (Welch)"))
    lines = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=50, filled=True), strokeWidth=2).encode(
        x=x, y=y, color=threads_color(data["threads"]), tooltip=tips)
    one = alt.Chart().mark_rule(color="#555", strokeDash=[4, 3]).encode(y=alt.datum(1))
    impls = [i for i in _strategies(data) if i in set(data["implementation"])]
    n = int(data["n"].max())
    subs = ["median throughput ÷ two_copy's median at the same size and threads; above the dashed ×1: faster",
            f"median of up to {n} repeats; the tooltips say which differences are significant (Welch)" if tested
            else "one repeat per point: differences not tested"]
    return (alt.layer(one, lines).properties(width=330, height=220)
            .facet(column=alt.Column("implementation:N", title=None, sort=impls,
                                     header=alt.Header(labelFontSize=13, labelFontWeight="bold")), data=data)
            .properties(title=_title(f"{' and '.join(impls)}: {title[0].lower()}{title[1:]}", subs)))


THREAD_METRICS = ["throughput_gbps", "l1_misses_per_kib", "llc_misses_per_kib", "cs_per_mib", "latency_us",
                  "cpu_s_per_gb", "offcpu_share"]


@chart("threads_effect", "What changes with client threads")
def threads_effect(runs: pd.DataFrame, title: str):
    """Throughput, per-byte cache misses, context switches, latency, CPU time per GB and off-CPU
    share vs threads: one row per metric measured at every size, one column per message size
    (what the threads answer discusses, at every configuration it covers)."""
    runs = _ok(runs)
    if "threads" not in runs or runs["threads"].nunique() < 2:
        return MissingChart(title, "needs at least two thread counts with measured values")
    sizes = sorted(runs["msg_size"].unique())
    parts, metrics, partial = [], [], []
    for m in THREAD_METRICS:
        if not _has(runs, m):
            continue
        s = summarize(runs[pd.to_numeric(runs[m], errors="coerce").notna()],
                      ["implementation", "threads", "msg_size"], m).rename(columns={m: "value"})
        if set(s["msg_size"]) != set(sizes):   # a row with an empty panel: said, not drawn
            partial.append(axis(m))
            continue
        s["metric"] = axis(m)
        parts.append(s)
        metrics.append(m)
    if not parts:
        return MissingChart(title, "needs at least two thread counts with measured values")
    data = pd.concat(parts, ignore_index=True)
    inner = _line_with_band(data, _threads_axis(data["threads"]), "value", "", strategy_color(data),
                            [alt.Tooltip("metric:N"), _THREADS_TIP, _SIZE_TIP], y_scale=alt.Scale(zero=False),
                            embed_data=False)
    missing = [axis(m) for m in THREAD_METRICS if m not in metrics and axis(m) not in partial]
    subs = [_repeats_note(data)] + ([f"not measured: {', '.join(missing)}"] if missing else []) + \
        ([f"not measured at every size (not drawn): {', '.join(partial)}"] if partial else [])
    return (inner.properties(width=150, height=105)
            .facet(row=alt.Row("metric:N", title=None, sort=[axis(m) for m in metrics], header=ROW_HEADER),
                   column=alt.Column("msg_size:O", title="message size", sort=sizes,
                                     header=alt.Header(labelExpr=SIZE_LABEL, labelFontWeight="bold")),
                   data=data)
            .resolve_scale(y="independent")
            .properties(title=_title(f"{title}, per metric and message size (y independent per panel)", subs)))


@chart("throughput_grid", "Throughput at every measured point")
def throughput_grid(runs: pd.DataFrame, title: str):
    """Throughput vs threads, one panel per message size: every measured point at a glance, y
    log where it spans orders of magnitude.

    When the rows carry an `anomaly` column (the anomalies answer), flagged configurations are
    ringed; their rank is in the tooltip (and the evidence table), never written beside them."""
    runs = _ok(runs)
    if not _has(runs, "throughput_gbps"):
        return MissingChart(title, "no measured throughput in these results")
    data = summarize(runs, ["implementation", "msg_size", "threads"], "throughput_gbps")
    flagged = "anomaly" in runs and runs["anomaly"].fillna("").astype(str).str.len().gt(0).any()
    if flagged:
        marks = (runs.assign(anomaly=runs["anomaly"].fillna("").astype(str))
                 .groupby(["implementation", "msg_size", "threads"])["anomaly"].max().reset_index())
        marks["implementation"] = marks["implementation"].astype(str)
        data = data.merge(marks, on=["implementation", "msg_size", "threads"], how="left")
        data["anomaly"] = data["anomaly"].fillna("")
    scale, log = y_scale(data["throughput_gbps"])
    x = _threads_axis(data["threads"])
    y = alt.Y("throughput_gbps:Q", title=axis("throughput_gbps"), scale=scale)
    tips = [alt.Tooltip("implementation:N", title="strategy"), _SIZE_TIP, _THREADS_TIP,
            alt.Tooltip("throughput_gbps:Q", format=".4~g", title="median Gbps"), alt.Tooltip("n:Q", title="repeats")]
    line = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=40, filled=True), strokeWidth=2).encode(
        x=x, y=y, color=strategy_color(data), tooltip=tips + ([alt.Tooltip("anomaly:N", title="anomaly rank")]
                                                              if flagged else []))
    layers = [line]
    subs = ["median of repeats" if data["n"].max() > 1 else "one repeat per point"]
    if flagged:
        ring = alt.Chart().mark_point(shape="circle", size=260, strokeWidth=2.5, color="#cc3311", filled=False) \
            .encode(x=x, y=y, tooltip=tips + [alt.Tooltip("anomaly:N", title="anomaly rank")]) \
            .transform_filter("datum.anomaly != ''")
        layers.append(ring)
        subs.append("rings: the configurations an anomaly was found at; hover for its rank (the evidence table "
                    "below lists them by rank)")
    sizes = sorted(data["msg_size"].unique())
    return (alt.layer(*layers).properties(width=190, height=170)
            .facet(column=alt.Column("msg_size:O", title="message size", sort=sizes,
                                     header=alt.Header(labelExpr=SIZE_LABEL, labelFontWeight="bold")),
                   data=data)
            .properties(title=_title(f"{title}, one panel per message size{log}", subs)))


# ----------------------------------------------------------------------------- where the time goes (--profile)

ROLES = ("client", "server")
# One colour per cost class and per wait reason (the names are netobs/costclasses.toml's, via
# netobs.figures), the same in the flame graph and the bars: copies warm, zero-copy's own work
# purple, the TCP stack blues, memory greens, bookkeeping greys.
CLASS_COLORS = {
    "user_copy": "#9e1b1b", "kernel_copy": "#e0413a", "deferred_copy": "#f28e2b", "zc_pin": "#7b4fa6",
    "zc_notify": "#c39bd3", "tcp_tx": "#2f6db5", "tcp_rx": "#76a7dc", "softirq_rx": "#2a9d8f",
    "skb_mem": "#59a14f", "page_fault": "#e78ac3", "syscall": "#c9a227", "sched": "#8c8c8c",
    "observer": "#3b3b3b", "user_other": "#c7a77b", "other": "#d3d3d3",
}
REASON_COLORS = {
    "sndbuf_full": "#e0413a", "wait_data": "#2f6db5", "errqueue_poll": "#7b4fa6", "lock": "#c9a227",
    "preempted": "#59a14f", "sleep": "#bcbcbc", "other": "#8c8c8c",
}
_SPARE = ["#17becf", "#bcbd22", "#ff9da6", "#9d755d", "#4e79a7", "#b07aa1"]
ROOT_COLOR = "#e6e6e6"
FLAME_WIDTH = 900
FLAME_BUDGET = 30000       # rectangles for all icicles together (the report's size)
FLAME_MIN_RECTS = 60


def _palette(names, colors: dict[str, str]) -> tuple[list[str], list[str]]:
    """(domain, range) for `names` in their declared order; a name the palette lacks (a class the
    data file added) gets a spare colour, the same for the same position every time."""
    names = list(names)
    spare = iter(_SPARE * (1 + len(names) // len(_SPARE)))
    return names, [colors.get(n) or next(spare) for n in names]


def class_colors() -> tuple[list[str], list[str]]:
    return _palette(figures.PROFILE_CLASSES, CLASS_COLORS)


def reason_colors() -> tuple[list[str], list[str]]:
    return _palette(figures.WAIT_REASONS, REASON_COLORS)


def _role_parts(runs: pd.DataFrame, family: str, names, suffix: str) -> pd.DataFrame:
    """One row per strategy x size x threads x role x part (class or reason): the median over
    repeats of <family>_<role>_<part><suffix>, parts with no value or a zero median left out."""
    columns = {figures.role_column(family, role, f"{name}{suffix}"): (role, name) for role in ROLES for name in names}
    columns = {c: rn for c, rn in columns.items() if c in runs}
    keys = ["implementation", "msg_size", "threads"]
    if not columns:
        return pd.DataFrame()
    wide = runs[keys + list(columns)].copy()
    wide["implementation"] = wide["implementation"].astype(str)
    long = wide.melt(id_vars=keys, var_name="column", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    long = long[long["value"].notna()]
    if long.empty:
        return pd.DataFrame()
    s = summarize(long, keys + ["column"], "value")
    s["role"] = s["column"].map(lambda c: columns[c][0])
    s["part"] = s["column"].map(lambda c: columns[c][1])
    order = {c: i for i, c in enumerate(columns)}
    s = s[s["value"] > 0].assign(_o=s["column"].map(order)).sort_values(["_o"] + keys, kind="stable")
    return s.drop(columns=["column", "_o"]).reset_index(drop=True)


def _stacked_by_role(data: pd.DataFrame, title: str, subs: list[str], part_title: str,
                     colors: tuple[list[str], list[str]], y_title: str, fmt_: str):
    """Stacked bars: x strategy, stacks by part, one panel per (role, threads) row x size column."""
    data = data.copy()
    data["panel"] = data["role"] + " · " + data["threads"].astype(int).astype(str) + " thr"
    panels = [f"{r} · {t} thr" for r in ROLES for t in sorted(data["threads"].unique())
              if f"{r} · {t} thr" in set(data["panel"])]
    domain, colours = colors
    data["part_order"] = data["part"].map({p: i for i, p in enumerate(domain)})
    impls = [i for i in _strategies(data) if i in set(data["implementation"])]
    sizes = sorted(data["msg_size"].unique())
    bars = alt.Chart().mark_bar().encode(
        x=alt.X("implementation:N", title=None, sort=impls, axis=alt.Axis(labelAngle=-40)),
        y=alt.Y("sum(value):Q", title=y_title, stack="zero"),
        color=alt.Color("part:N", title=part_title, scale=alt.Scale(domain=domain, range=colours),
                        legend=alt.Legend(orient="right", symbolType="square",
                                          values=[p for p in domain if p in set(data["part"])])),
        order=alt.Order("part_order:Q"),
        tooltip=[alt.Tooltip("implementation:N", title="strategy"), "role:N",
                 alt.Tooltip("msg_size:Q", title="size (B)"), "threads:Q", alt.Tooltip("part:N", title=part_title),
                 alt.Tooltip("value:Q", format=fmt_, title=f"median {y_title}"), alt.Tooltip("n:Q", title="repeats")])
    data = data.sort_values(["panel", "msg_size", "implementation", "part_order"]).reset_index(drop=True)
    return (bars.properties(width=max(70, 24 * len(impls)), height=150)
            .facet(row=alt.Row("panel:N", title=None, sort=panels, header=ROW_HEADER),
                   column=alt.Column("msg_size:O", title="message size", sort=sizes,
                                     header=alt.Header(labelExpr=SIZE_LABEL, labelFontWeight="bold")),
                   data=data)
            .resolve_scale(y="independent")
            .properties(title=_title(f"{title}, per role, thread count and message size (y independent per panel)",
                                     subs)))


def has_profile(runs: pd.DataFrame) -> bool:
    """Whether any ok point has a profile figure (on- or off-CPU) in runs.csv."""
    return any(_has(_ok(runs), c) for c in figures.PROFILE_COLUMNS if not figures.is_text(c))


def _menu_label(impl, size, threads, repeat, role) -> str:
    return f"{impl} · {fmt.size(size)} · {int(threads)} thr · repeat {int(repeat)} · {role}"


def flame_rows(runs: pd.DataFrame, results_dir) -> tuple[pd.DataFrame, list[str], list[str]]:
    """(the icicle rectangles of every point x role with folded files, the menu's labels in
    order, the files that could not be read). Rows: p (menu index), m ("on"/"off"), d (depth),
    x0, x1, n (frame), w (weight), k (1 = kernel frame), c (class or reason, "" for the root),
    o (frames merged into this one, 0 if none), z (1 = "no stacks of this kind" placeholder)."""
    points = Path(results_dir) / "points"
    found = []
    ok = _ok(runs)
    ok = ok.assign(strategy=ok["strategy"] if "strategy" in ok else ok["implementation"])   # (by_series)
    shape = [c for c in SHAPE if c in ok]
    for *r, strategy in ok[["implementation", "msg_size", "threads", "repeat", *shape, "strategy"]] \
            .drop_duplicates().itertuples(index=False):
        files = flame.folded_files(points / figures.point_id(strategy, *r[1:]))
        r = tuple(r[:4])
        for role in ROLES:
            kinds = {kind: files[(role, kind)] for kind in flame.KINDS if (role, kind) in files}
            if kinds:
                found.append((r, role, kinds))
    cols = ["p", "m", "d", "x0", "x1", "n", "w", "k", "c", "o", "z"]
    if not found:
        return pd.DataFrame(columns=cols), [], []
    cap = max(FLAME_MIN_RECTS, min(flame.MAX_RECTS, FLAME_BUDGET // (2 * len(found))))
    rows, labels, bad = [], [], []
    for p, (r, role, kinds) in enumerate(found):
        labels.append(_menu_label(*r, role))
        for kind, m in (("on_cpu", "on"), ("off_cpu", "off")):
            rects = []
            if kind in kinds:
                try:
                    rects = flame.icicle(flame.read_folded(kinds[kind]), max_rects=cap)
                except (OSError, ValueError) as exc:
                    bad.append(f"{kinds[kind].parent.name}/{kinds[kind].name}: {exc}".replace(str(results_dir), ""))
            if not rects:
                what = "on-CPU samples" if m == "on" else "off-CPU stacks"
                rows.append({"p": p, "m": m, "d": 0, "x0": 0.0, "x1": 1.0, "n": f"no {what} recorded for this point",
                             "w": 0, "k": 0, "c": "", "o": 0, "z": 1})
            for x in rects:
                rows.append({"p": p, "m": m, "d": x.depth, "x0": round(x.x0, 5), "x1": round(x.x1, 5), "n": x.name,
                             "w": x.weight, "k": int(x.kernel), "c": x.klass or "", "o": x.merged, "z": 0})
    return pd.DataFrame(rows, columns=cols), labels, bad


@chart("flame", "Flame graph of each point (icicle)", section="profile", reads_points=True)
def flame_graph(runs: pd.DataFrame, title: str, results_dir=None):
    """Every point x role's on-CPU and off-CPU stacks as icicles (root on top, each frame as
    wide as its share of the point's samples or off-CPU time), one shown at a time: a menu picks
    the point and role, a toggle the kind. Colour: the cost class (on-CPU) or wait reason
    (off-CPU) of the stacks under the frame. Data: the points' folded files (analysis.flame)."""
    if results_dir is None:
        return MissingChart(title, "drawn from the points' folded stacks: needs the results directory")
    data, labels, bad = flame_rows(runs, results_dir)
    if not labels:
        return MissingChart(title, "no folded stacks under points/ (run the sweep with --profile)")
    merged = data[data["o"] > 0]
    pick = alt.param(name="flame_point", value=0,
                     bind=alt.binding_select(options=list(range(len(labels))), labels=labels,
                                             name="point · role: "))
    kind = alt.param(name="flame_kind", value="on",
                     bind=alt.binding_radio(options=["on", "off"], labels=["on-CPU (samples)", "off-CPU (time)"],
                                            name=" stacks: "))
    shown = "datum.p == flame_point && datum.m == flame_kind"
    x = alt.X("x0:Q", scale=alt.Scale(domain=[0, 1], nice=False, zero=True), axis=None)
    y = alt.Y("d:O", axis=None, sort="ascending")
    base = alt.Chart().transform_filter(shown).transform_calculate(
        share="datum.x1 - datum.x0", space="datum.k ? 'kernel' : 'user'")
    tips = [alt.Tooltip("n:N", title="function"), alt.Tooltip("space:N", title="space"),
            alt.Tooltip("share:Q", format=".2%", title="share of the point")]

    def icicle_layer(m: str, field_title: str, colors, weight_tip):
        domain, colours = colors
        present = set(data.loc[(data["m"] == m) & (data["z"] == 0), "c"])
        return base.transform_filter(f"datum.m == '{m}' && !datum.z").mark_rect(
            stroke="white", strokeWidth=0.5).encode(
            x=x, x2="x1:Q", y=y,
            color=alt.condition("datum.c == ''", alt.value(ROOT_COLOR),
                                alt.Color("c:N", title=field_title, scale=alt.Scale(domain=domain, range=colours),
                                          legend=alt.Legend(orient="right", symbolType="square",
                                                            values=[c for c in domain if c in present]))),
            tooltip=tips[:1] + [alt.Tooltip("c:N", title=field_title)] + tips[1:] + [weight_tip])

    on = icicle_layer("on", "cost class", class_colors(), alt.Tooltip("w:Q", title="samples", format=",d"))
    off = icicle_layer("off", "wait reason", reason_colors(), alt.Tooltip("ms:Q", title="off-CPU ms", format=",.1f"))
    off = off.transform_calculate(ms="datum.w / 1000")
    chars = f"floor((datum.x1 - datum.x0) * {FLAME_WIDTH} / 6.5) - 1"
    text = base.transform_filter(f"!datum.z && (datum.x1 - datum.x0) * {FLAME_WIDTH} >= 26").transform_calculate(
        t=f"truncate(datum.n, {chars})").mark_text(align="left", baseline="middle", dx=3, fontSize=10,
                                                    color="#111").encode(x=x, y=y, text="t:N", tooltip=tips)
    none = base.transform_filter("datum.z == 1").mark_text(align="left", baseline="middle", dx=6, fontSize=12,
                                                           color="#666").encode(x=x, y=y, text="n:N")
    subs = ["one repeat's stacks, as sampled (not aggregated over repeats); width = share of the point's on-CPU "
            "samples (off-CPU: of its off-CPU time); root on top, callees below",
            "colour = cost class (on-CPU) or wait reason (off-CPU); pick the point and the stacks with the menus below"]
    if not merged.empty:
        subs.append(f"frames narrower than {flame.MIN_SHARE:.1%} of the point or more (at most "
                    f"{max(FLAME_MIN_RECTS, min(flame.MAX_RECTS, FLAME_BUDGET // (2 * len(labels))))} rectangles "
                    "per stack kind) are merged into 'other (n frames)'")
    if bad:
        subs.append(f"{len(bad)} folded file(s) could not be read: {'; '.join(bad[:3])}")
    # a named dataset: the rows (thousands in a big sweep) are embedded as they are, past
    # Altair's 5000-row guard, which is for data a browser would have to fetch
    return WithData(alt.layer(on, off, text, none, data=alt.NamedData(name="flame"))
                    .add_params(pick, kind)
                    .resolve_scale(color="independent")
                    .properties(width=FLAME_WIDTH, height=alt.Step(15), title=_title(title, subs)),
                    {"flame": data})


def _parts_by_role(runs: pd.DataFrame, title: str, family: str, names, suffix: str, *, missing: str, sub: str,
                   absent: str, part_title: str, colors, y_title: str):
    """A profile family's parts (classes or reasons) stacked per strategy, role and point."""
    data = _role_parts(_ok(runs), family, names, suffix)
    if data.empty:
        return MissingChart(title, missing)
    gone = [r for r in ROLES if r not in set(data["role"])]
    subs = [sub] + ([f"{absent} for the {' and '.join(gone)}"] if gone else [])
    return _stacked_by_role(data, title, subs, part_title, colors, y_title, ".3~g")


@chart("cpu_by_class", "CPU time per GB, by cost class", section="profile")
def cpu_by_class(runs: pd.DataFrame, title: str):
    """CPU-seconds per GB moved, stacked by cost class, client and server, per strategy; one
    panel per (role, threads) x message size; the median over repeats of each class's column."""
    return _parts_by_role(
        runs, title, "prof", figures.PROFILE_CLASSES, "_cpu_s_per_gb",
        missing="no on-CPU profile in these results (run the sweep with --profile)",
        sub="sampled CPU time of the role's threads per GB it moved (the whole point, warm-up included), "
            "split by the cost class of each sample; median over repeats",
        absent="no on-CPU samples", part_title="cost class", colors=class_colors(), y_title="CPU-s per GB")


@chart("wait_by_reason", "Off-CPU time, by wait reason", section="profile")
def wait_by_reason(runs: pd.DataFrame, title: str):
    """Off-CPU seconds stacked by wait reason, client and server, per strategy (median over repeats)."""
    return _parts_by_role(
        runs, title, "wait", figures.WAIT_REASONS, "_s",
        missing="no off-CPU profile in these results (run the sweep with --profile)",
        sub="seconds the role's threads spent off-CPU over the point's life, summed over its threads, "
            "by why they slept; median over repeats",
        absent="no off-CPU time recorded", part_title="wait reason", colors=reason_colors(), y_title="off-CPU s")


BOTTLENECK_COLORS = {"oversubscribed": "#d55e00", "client_cpu_bound": "#0072b2", "server_cpu_bound": "#e69f00",
                     "waiting": "#999999"}   # Okabe-Ito
BOTTLENECK_WORDS = {"oversubscribed": "oversubscribed (a side preempted)", "client_cpu_bound": "client CPU-bound",
                    "server_cpu_bound": "server CPU-bound", "waiting": "both waiting"}


@chart("bottleneck", "What limits each point: CPU-bound, waiting or oversubscribed, per strategy",
       section="profile")
def bottleneck_map(runs: pd.DataFrame, title: str):
    """Per configuration the accounting's bottleneck verdict (analysis.accounting.bottleneck_frame:
    from the working threads' on-CPU and preempted shares), as a grid of message size x client
    threads, one panel per strategy; the shares in the tooltip."""
    from types import SimpleNamespace

    from .accounting import CPU_BOUND, PREEMPTED, bottleneck_frame

    bn = bottleneck_frame(SimpleNamespace(runs=_ok(runs)))
    if bn is None or not bn["bottleneck"].notna().any():
        return MissingChart(title, "no working-thread figures in these results (run the sweep with --profile)")
    data = bn[bn["bottleneck"].notna()].copy()
    data["implementation"] = data["implementation"].astype(str)
    data["msg_size"] = data["msg_size"].astype(int)
    data["threads"] = data["threads"].astype(int)
    data["verdict"] = data["bottleneck"].map(lambda b: BOTTLENECK_WORDS.get(b, b))
    n = runs.groupby(["implementation", "msg_size", "threads"], observed=True).size()
    data["n"] = [int(n.get((i, s, t), 0)) for i, s, t in data[["implementation", "msg_size", "threads"]]
                 .itertuples(index=False)]
    domain = [BOTTLENECK_WORDS[b] for b in BOTTLENECK_COLORS]
    present = [v for v in domain if v in set(data["verdict"])]
    sizes, threads = sorted(data["msg_size"].unique()), sorted(data["threads"].unique())
    impls = [i for i in _strategies(data) if i in set(data["implementation"])]
    tips = [alt.Tooltip("implementation:N", title="strategy"), alt.Tooltip("msg_size:Q", title="size (B)"),
            alt.Tooltip("threads:Q", title="threads"), alt.Tooltip("verdict:N", title="bottleneck")]
    tips += [alt.Tooltip(f"{r}_{w}:Q", format=".0%", title=f"{r} {'on-CPU' if w == 'utilisation' else 'preempted'}")
             for r in ROLES for w in ("utilisation", "preempted") if data[f"{r}_{w}"].notna().any()]
    tips.append(alt.Tooltip("n:Q", title="repeats"))
    cells = alt.Chart().mark_rect(stroke="white", strokeWidth=1).encode(
        x=alt.X("threads:O", title="client threads", sort=threads),
        y=alt.Y("msg_size:O", title="message size", sort=sizes, axis=alt.Axis(labelExpr=SIZE_LABEL)),
        color=alt.Color("verdict:N", title="bottleneck", scale=alt.Scale(domain=domain,
                                                                         range=list(BOTTLENECK_COLORS.values())),
                        legend=alt.Legend(orient="right", symbolType="square", values=present, labelLimit=300)),
        tooltip=tips)
    return (cells.properties(width=44 * len(threads), height=30 * len(sizes))
            .facet(column=alt.Column("implementation:N", title=None, sort=impls,
                                     header=alt.Header(labelFontWeight="bold")), data=data)
            .properties(title=_title(title, [
                "the working threads' shares of their time, mean over repeats: oversubscribed where a side sat "
                f"runnable but not running >= {PREEMPTED:.0%} of it, else CPU-bound where a side ran >= "
                f"{CPU_BOUND:.0%} of it (the busier), else both waiting", "the shares are in the tooltips"])))


# ----------------------------------------------------------------------------- comparison

COMPARISON_TITLE = "Throughput, new / base, at every compared point"


def ratio_heatmap(points: pd.DataFrame, title: str = COMPARISON_TITLE):
    """The throughput ratio new/base per strategy x message size x threads (a comparison's
    points, `analysis.compare`): one panel per strategy, a diverging colour centred on 1,
    the ratio written in each cell and the verdict in its tooltip.

    Not in CHARTS: it is drawn from two results directories, not from one's runs."""
    data = points[points["metric"] == "throughput_gbps"] if "metric" in points else points.iloc[0:0]
    data = data[data["ratio"].notna()] if "ratio" in data else data
    if data.empty:
        return MissingChart(title, "no throughput measured at any point both runs have")
    data = data[["implementation", "msg_size", "threads", "ratio", "change_pct", "p_value", "verdict"]].copy()
    data["implementation"] = data["implementation"].astype(str)
    data["msg_size"] = data["msg_size"].astype(int)
    data["threads"] = data["threads"].astype(int)
    data["label"] = data["ratio"].map(fmt.times)
    data["shade"] = data["ratio"].clip(lower=1 / RATIO_LIMIT, upper=RATIO_LIMIT)
    sizes = sorted(data["msg_size"].unique())
    threads = sorted(data["threads"].unique())
    base = alt.Chart().encode(
        x=alt.X("threads:O", title="client threads", sort=threads),
        y=alt.Y("msg_size:O", title="message size", sort=sizes, axis=alt.Axis(labelExpr=SIZE_LABEL)))
    cells = base.mark_rect().encode(
        color=ratio_color("shade", "new / base"),
        tooltip=[alt.Tooltip("implementation:N", title="strategy"), alt.Tooltip("msg_size:Q", title="size (B)"),
                 "threads:Q", alt.Tooltip("ratio:Q", format=".3f", title="new / base"),
                 alt.Tooltip("change_pct:Q", format="+.1f", title="change %"),
                 alt.Tooltip("p_value:Q", format=".3g", title="Welch p"), "verdict:N"])
    text = base.mark_text(fontSize=11).encode(text="label:N")
    strategies_present = ordered(data["implementation"])
    return (alt.layer(cells, text).properties(width=42 * len(threads), height=30 * len(sizes))
            .facet(column=alt.Column("implementation:N", title=None, sort=strategies_present,
                                     header=alt.Header(labelFontWeight="bold")), data=data)
            .properties(title=_title(title, [
                "median of repeats, new ÷ base; blue: faster, red: slower; verdicts (Welch) in the tooltips"
                if data["p_value"].notna().any() else "one repeat per point on a side: ratios of single runs, untested",
                f"colour: the report's one ratio scale, log, centred at ×1, clamped at ×{1 / RATIO_LIMIT:g} and "
                f"×{RATIO_LIMIT:g}"])))


# ----------------------------------------------------------------------------- answers → charts

QUESTION_CHARTS: dict[str, list[str]] = {
    "zerocopy": ["relative_throughput", "zc_copied_fraction"],
    "cache": ["cache_ratio", "cache_misses", "cpu_per_gb"],
    "threads": ["threads_effect", "latency"],
    "one-copy-crossover": ["ratio_vs_size"],
    "zero-copy-crossover": ["ratio_vs_size"],
    "anomalies": ["throughput_grid"],
}
"""Each question's preferred charts, tried in order on its `chart_data` when that is runs-like."""

_KEYS = ["implementation", "msg_size", "threads"]
_NOT_VALUES = {"repeat", "n", "ci_lo", "ci_hi", "rank", "duration_s", "warmup_s", "window_s"}


def question_chart(answer, runs: pd.DataFrame | None = None) -> tuple[str | None, object]:
    """(the registered chart's name or None, the chart of one `Answer`): its question's preferred
    chart when `chart_data` has the runs' columns, else a generic chart of its tidy table, else a
    MissingChart with `chart_note`. With `runs` (the loaded frame), the answer's rows gain the
    columns they lack from it (a chart may need a figure the answer does not carry)."""
    title = answer.title
    data = answer.chart_data
    if data is None or data.empty:
        return None, MissingChart(title, answer.chart_note or "this answer has no data to draw")
    data = _with_runs(data, runs)
    tried = None
    for name in QUESTION_CHARTS.get(answer.question, []):
        fn = CHARTS[name]
        if not set(_KEYS) <= set(data.columns):
            break
        tried = name, fn(data)
        if not isinstance(tried[1], MissingChart):
            return tried
    generic = tidy_chart(data, title)
    if isinstance(generic, MissingChart) and tried is not None:
        return tried
    return None, generic


def chart_for(answer, runs: pd.DataFrame | None = None):
    """The chart of one `Answer` (see question_chart)."""
    return question_chart(answer, runs)[1]


def _with_runs(data: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    keys = _KEYS + ["repeat"]
    if runs is None or not set(keys) <= set(data.columns) or not set(keys) <= set(runs.columns):
        return data
    extra = [c for c in runs.columns if c not in data.columns]
    if not extra or runs.duplicated(keys).any():   # several shapes: the rows are not the answer's alone
        return data
    right = runs[keys + extra].copy()
    right["implementation"] = right["implementation"].astype(str)
    left = data.copy()
    left["implementation"] = left["implementation"].astype(str)
    try:
        return left.merge(right, on=keys, how="left")
    except (ValueError, TypeError):
        return data


def tidy_chart(data: pd.DataFrame, title: str):
    """A line (or bar) chart of any tidy table: x = msg_size (else threads, else the first
    label column), one panel per numeric column, colored by strategy when there is one."""
    data = _ok(data).copy()
    numeric = [c for c in data.columns
               if c not in _KEYS and c not in _NOT_VALUES and not c.startswith("ci_")
               and pd.api.types.is_numeric_dtype(data[c]) and data[c].notna().any()]
    if not numeric:
        return MissingChart(title, "no measured values to draw")
    numeric = numeric[:4]
    if "msg_size" in data:
        x_field, x = "msg_size", _size_axis(data["msg_size"].dropna())
    elif "threads" in data:
        x_field, x = "threads", _threads_axis(data["threads"].dropna())
    else:
        labels = [c for c in data.columns if c not in numeric]
        if not labels:
            return MissingChart(title, "no label column to draw against")
        x_field = labels[0]
        data[x_field] = data[x_field].astype(str)
        x = alt.X(f"{x_field}:N", title=x_field.replace("_", " "), axis=alt.Axis(labelAngle=-30))
    keys = [k for k in _KEYS if k in data.columns and k != x_field]
    if "implementation" in data:
        data["implementation"] = data["implementation"].astype(str)
    long = data.melt(id_vars=[x_field] + keys, value_vars=numeric, var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    long = summarize(long, [x_field, "metric"] + keys, "value")
    if long.empty:
        return MissingChart(title, "no measured values to draw")
    enc = {"x": x, "y": alt.Y("value:Q", title=None),
           "tooltip": [alt.Tooltip(f"{x_field}"), "metric:N",
                       *[alt.Tooltip(k) for k in keys], alt.Tooltip("value:Q", format=".4~g", title="median"),
                       alt.Tooltip("n:Q", title="rows")]}
    if "implementation" in keys:
        enc["color"] = strategy_color(long)
    other = [k for k in keys if k != "implementation"]
    if other:
        enc["strokeDash"] = alt.StrokeDash(f"{other[0]}:O", title=other[0].replace("_", " "))
    base = alt.Chart()
    mark = (base.mark_line(point=alt.OverlayMarkDef(size=50, filled=True), strokeWidth=2)
            if x_field in ("msg_size", "threads") else base.mark_bar())
    chart = mark.encode(**enc).properties(width=300 if len(numeric) > 1 else WIDTH, height=HEIGHT)
    return (chart.facet(column=alt.Column("metric:N", title=None, sort=numeric,
                                          header=alt.Header(labelFontSize=13, labelFontWeight="bold")),
                        data=long)
            .resolve_scale(y="independent")
            .properties(title=_title(title, "median per point of the answer's chart data")))
