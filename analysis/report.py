"""The HTML report and figure export, built only from a results directory.

`write_report(results_dir, out_path)` writes one self-contained HTML file: the Vega,
Vega-Lite and vega-embed libraries are inlined from vl-convert's bundle
(`vl_convert.javascript_bundle()`), every chart's spec and data are embedded as JSON, and the
CSS is inline, so the file opens offline and loads nothing from the network. The page's
skeleton and the script that draws the charts are `report.html`, its style `report.css`.

`export_figures(results_dir, out_dir, fmt)` renders each chart to PNG or SVG with vl-convert.
Nothing here prints; the CLI reports what was written.
"""
from __future__ import annotations

import html
import json
import string
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd

from netobs.figures import COLUMN_BY_EVENT, STUDY_FIELDS, TRACE_NAMES, event_column, shape_label
from netobs.files import atomic_write
from netobs.fmt import cell, gib

from . import compare as _compare
from . import compare_text, costcharts
from .charts import (QUESTION_CHARTS, Drawn, MissingChart, WithData, chart_spec, has_profile, question_chart, ratio_heatmap,
                     section_charts)
from .load import Results, load_results
from .questions import answer_all
from .stats import METHODS

FORMATS = ("png", "svg")
SECTIONS = (("summary", "Run summary"), ("questions", "The study's questions"), ("figures", "Figures"),
            ("profile", "Where the time goes"), ("runs", "Raw runs"))
COMPARISON_SECTION = ("comparison", "Compared with the baseline")   # with --baseline, after the summary
# A table shows at most this many rows (a 10,000-point sweep's evidence and raw runs would make a page
# of tens of MB that no browser scrolls); the rest is named with where to read it whole.
TABLE_ROWS = 500
RAW_FIRST = ["implementation", "msg_size", "threads", "repeat", "status", "throughput_gbps", "latency_us",
             "cpu_cycles", "l1_cache_misses", "llc_cache_misses", "context_switches", "bytes_sent",
             "cpu_user_s", "cpu_sys_s", "zc_completions", "zc_copied", "error"]
# ----------------------------------------------------------------------------- inputs

def _unchecked():
    """A context in which Altair builds charts without the schema check it runs on every object it
    constructs (a tenth of the report's time): the report takes its specs unvalidated
    (`chart_spec`); the tests validate every chart's spec."""
    from altair.utils.schemapi import debug_mode

    return debug_mode(False)


def _safe_chart(fn, *args, title: str):
    """A chart, or a MissingChart naming the error (so one broken chart never hides the report);
    for `question_chart`, (its registered name or None, the chart)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - shown in the report as a chart error
        missing = MissingChart(title, f"chart error: {type(exc).__name__}: {exc}")
        return (None, missing) if fn is question_chart else missing


def _draw(c, results: Results):
    """One registered chart from the results (the points' files too where it reads them)."""
    kw = {"results_dir": results.path} if c.reads_points else {}
    return _safe_chart(lambda: c(results.runs, **kw), title=c.title)


def figures(results: Results, section: str = "figures") -> dict[str, object]:
    """Every registered chart of `section` drawn from the results (chart or MissingChart)."""
    return {name: _draw(c, results) for name, c in section_charts(section).items()}


def profile_charts(results: Results) -> dict[str, object] | None:
    """The profile section's charts (chart or MissingChart), or None when the results have no
    profile at all (no prof_*/wait_* values and no folded stacks): then none is drawn."""
    if not has_profile(results.runs) and not any((results.path / "points").glob("*/*.folded")):
        return None
    return figures(results, "profile")


def _spec_key(chart) -> str | None:
    return None if isinstance(chart, MissingChart) else json.dumps(chart_spec(chart), sort_keys=True, default=str)


def chart_plan(results: Results, answers: list, drawn: dict | None = None) -> tuple[dict[str, object], dict[str, object]]:
    """(each question's chart by question, the figures no question already shows), every chart
    drawn once: a question whose chart is one of the registered figures shows it there, and the
    figures section leaves it out (by name: the question's may be drawn from the answer's rows).
    `drawn`: the figures already drawn (`drawn_sections`), else they are drawn here."""
    question_charts, shown = _question_charts(results, answers)
    return question_charts, _figures_left(results, shown, drawn)


def _question_charts(results: Results, answers: list) -> tuple[dict[str, object], set[str]]:
    """(each question's chart by question, the names of the registered figures they show)."""
    question_charts, shown = {}, set()
    for a in answers:
        name, chart = _safe_chart(question_chart, a, results.runs, title=a.title)
        question_charts[a.key] = chart
        if name and not isinstance(chart, MissingChart):
            shown.add(name)
    return question_charts, shown


def _figures_left(results: Results, shown: set[str], drawn: dict | None) -> dict[str, object]:
    """The figures no question shows: as `drawn` holds them, else drawn here."""
    drawn = drawn or {}
    return {name: (drawn[name] if name in drawn else _draw(c, results))
            for name, c in section_charts("figures").items() if name not in shown}


# the figures a question's section usually shows instead (its first preferred chart, drawn from the
# answer's rows): the worker leaves them to the report, which draws one only where no question shows it
USUALLY_SHOWN = frozenset(names[0] for names in QUESTION_CHARTS.values() if names)


def drawn_sections(results: Results, leave_out=frozenset()) -> dict:
    """Every figure (but those in `leave_out`) and the profile's charts (None: no profile), as
    Drawn specs, and the HTML of the run summary and the raw runs: what needs no answer, so it
    can be drawn in another process while the questions are answered."""
    with _unchecked():
        profile = profile_charts(results)
        return {"figures": {n: Drawn.of(_draw(c, results)) for n, c in section_charts("figures").items()
                            if n not in leave_out},
                "profile": None if profile is None else {n: Drawn.of(c) for n, c in profile.items()},
                "summary": _summary(results), "runs": _raw_table(results)}


def _alongside(fn, *args):
    """`fn(*args)` started in a forked worker process, where this host lets the process run on
    two CPUs or more; None where it does not (then the caller runs it itself). The worker
    inherits `args` as they are (nothing is pickled on the way in: the answers, the loaded
    results); only its result comes back, through a pipe (`_collect`)."""
    import multiprocessing
    import os

    try:
        if len(os.sched_getaffinity(0)) < 2 or "fork" not in multiprocessing.get_all_start_methods():
            return None
        ctx = multiprocessing.get_context("fork")
        receive, send = ctx.Pipe(duplex=False)

        def run():
            receive.close()
            try:
                out = fn(*args)
            except BaseException:  # noqa: BLE001 - the report draws it itself (None)
                out = None
            try:
                send.send(out)
            except Exception:  # noqa: BLE001 - a result that does not pickle: the same
                send.send(None)
            finally:
                send.close()

        worker = ctx.Process(target=run, daemon=True)
        worker.start()
        send.close()
        return worker, receive
    except (OSError, RuntimeError, ValueError):
        return None


def _collect(pending):
    """The worker's result, or None where it failed (the caller then draws in-process)."""
    if pending is None:
        return None
    worker, receive = pending
    try:
        return receive.recv()
    except (EOFError, OSError, ValueError):   # a worker that died (OOM, killed): draw here instead
        return None
    finally:
        receive.close()
        worker.join()


@lru_cache(maxsize=1)
def vega_bundle() -> str:
    """vega + vega-lite + vega-embed as one script (globals vega, vegaLite, vegaEmbed).

    vl-convert builds the bundle on every call (seconds); it is kept in the user's cache
    directory under the libraries' versions, so a report after the first only reads it."""
    import vl_convert

    versions = library_versions()
    cache = _cache_dir() / ("vega-bundle-" + "-".join(f"{k}{v}" for k, v in sorted(versions.items())) + ".js")
    try:
        bundle = cache.read_text(encoding="utf-8")
        if "vegaEmbed" in bundle:
            return bundle
    except OSError:
        pass
    bundle = vl_convert.javascript_bundle()
    if "</script" in bundle.lower():  # never end the inline <script> early
        bundle = bundle.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, bundle)
    except OSError:
        pass   # a read-only home: built again next time, nothing lost
    return bundle


def _cache_dir() -> Path:
    import os

    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "netobs"


@lru_cache(maxsize=None)
def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    import vl_convert

    return {"vega": vl_convert.get_vega_version(), "vega-lite": vl_convert.get_vegalite_versions()[-1],
            "vega-embed": vl_convert.get_vega_embed_version()}


# ----------------------------------------------------------------------------- formatting

def _e(text) -> str:
    return html.escape("" if text is None else str(text))


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def table(df: pd.DataFrame, cls: str = "", max_rows: int | None = None, wrap: str = "table-wrap",
          rest: str = "") -> str:
    """An HTML table of `df`'s rows (the first `max_rows`; `rest`: where the others can be read)."""
    if df is None or df.empty:
        return '<p class="muted">(no rows)</p>'
    shown = df if max_rows is None else df.head(max_rows)
    head = "".join(f"<th>{_e(c)}</th>" for c in shown.columns)
    body = []
    for row in shown.itertuples(index=False):
        cells = []
        for c, v in zip(shown.columns, row):
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            miss = _missing(v)
            klass = "num" if num and not miss else ("na" if miss else "")
            title = ' title="not measured"' if miss else ""
            cells.append(f'<td class="{klass}"{title}>{_e(cell(c, v))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = "" if max_rows is None or len(df) <= max_rows else \
        f'<p class="muted">{len(df) - max_rows} more rows not shown{rest}.</p>'
    return (f'<div class="{wrap}"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>{more}')


def _kv(pairs: list[tuple[str, object]]) -> str:
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(cell(None, v)) if not isinstance(v, Raw) else v.html}</dd>"
                   for k, v in pairs if not _missing(v) and v != "")
    return f'<dl class="facts">{rows}</dl>'


@dataclass
class Raw:
    html: str


def _paragraphs(text: str) -> str:
    parts = [p.strip() for p in str(text or "").split("\n\n") if p.strip()]
    return "".join(f"<p>{_e(p)}</p>" for p in parts)


# ----------------------------------------------------------------------------- charts in HTML

class _ChartSlots:
    """Collects chart specs; each becomes a container + a JSON script tag vega-embed reads.

    The specs' data live once in the page (`datasets()`): a spec's top-level `datasets` are taken
    out of it, kept by name (Altair names a data set by its content's hash, so two charts of the
    same rows share one), and the page script puts them back before drawing; the container's
    `data-datasets` names those the spec needs."""

    def __init__(self):
        self.count = 0
        self.data: dict[str, list] = {}

    def render(self, chart, name: str) -> str:
        if isinstance(chart, MissingChart):
            klass = "chart-missing error" if chart.reason.startswith("chart error:") else "chart-missing"
            return (f'<div class="{klass}" data-chart="{_e(name)}"><strong>{_e(chart.title)}</strong> — '
                    f'not drawn: {_e(chart.reason)}</div>')
        self.count += 1
        sid = f"spec-{self.count}"
        if isinstance(chart, (WithData, Drawn)):
            spec, datasets = chart.bare(), dict(chart.frames)
            datasets.update(spec.pop("datasets", None) or {})
        else:
            spec = dict(chart_spec(chart))
            datasets = spec.pop("datasets", None) or {}
        for k, v in datasets.items():
            self.data.setdefault(k, v)
        names = list(datasets)
        body = _script_json(spec)
        return (f'<figure class="chart-box"><div class="chart" id="chart-{self.count}" data-chart="{_e(name)}" '
                f'data-vl-spec="{sid}" data-datasets="{_e(" ".join(names))}"></div></figure>'
                f'<script type="application/json" id="{sid}">{body}</script>')

    def datasets(self) -> str:
        """The page's data sets, column-wise (`columnar`), as the JSON of one script tag."""
        return _script_json({k: columnar(v) for k, v in self.data.items()})


def _script_json(obj) -> str:
    return json.dumps(obj, default=str, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")


def columnar(rows) -> dict:
    """A data set's rows (dicts) column by column: {"n": rows, "c": {field: [values]}, "d": {field:
    [distinct values]}, "r": {field: [value, count, value, count, ...]}}, a field in "d" holding
    indexes into its distinct values (strings that repeat), None where a row lacks the field; a
    field whose values come in long runs (a flame graph's panel, kind or class) is in "r"
    instead of "c", run by run (lossless: the page is smaller, the rows the same). The page
    script turns it back into rows (`rows()` in report.html); `rows_of` here does the same."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(rows)
    cols, dicts, runs = {}, {}, {}
    for f in df.columns:
        col = df[f]
        known = col.notna()
        if pd.api.types.infer_dtype(col, skipna=True) == "string" and col[known].nunique() < known.sum():
            codes, names = pd.factorize(col)
            dicts[f] = names.tolist()
            values = [None if c < 0 else c for c in codes.tolist()]
        else:
            values = col.astype(object).where(known, None).tolist()
        encoded = _runs(values)
        if encoded is not None:
            runs[f] = encoded
        else:
            cols[f] = values
    return {"n": len(df), "c": cols, **({"d": dicts} if dicts else {}), **({"r": runs} if runs else {})}


def _runs(values: list) -> list | None:
    """`values` as [value, count, ...] where that is at most a quarter as long, else None."""
    out: list = []
    for v in values:
        if out and out[-2] == v and type(out[-2]) is type(v):
            out[-1] += 1
        else:
            if len(out) >= len(values) // 2:
                return None
            out += [v, 1]
    return out if len(out) <= len(values) // 2 else None


def rows_of(data: dict) -> list[dict]:
    """`columnar`'s inverse: the rows, fields that were None left out."""
    out = [{} for _ in range(data["n"])]
    columns = dict(data["c"])
    for f, encoded in (data.get("r") or {}).items():
        columns[f] = [v for i in range(0, len(encoded), 2) for v in [encoded[i]] * encoded[i + 1]]
    for f, values in columns.items():
        names = (data.get("d") or {}).get(f)
        for row, v in zip(out, values):
            if v is not None:
                row[f] = names[v] if names is not None else v
    return out


def specs_in(page: str) -> list[tuple[str, dict]]:
    """Every drawn chart of a report page as (its name, its whole Vega-Lite spec, data sets put
    back as the page script does): what the browser draws, for tests and for inspection."""
    import re

    store = re.search(r'<script type="application/json" id="netobs-data">(.*?)</script>', page, re.S)
    data = json.loads(store.group(1)) if store else {}
    out = []
    for name, sid, names in re.findall(r'class="chart" id="chart-\d+" data-chart="([^"]+)" data-vl-spec="([^"]+)" '
                                       r'data-datasets="([^"]*)"', page):
        spec = json.loads(re.search(rf'<script type="application/json" id="{sid}">(.*?)</script>', page, re.S).group(1))
        if names:
            spec["datasets"] = {n: rows_of(data[n]) for n in names.split()}
        out.append((html.unescape(name), spec))
    return out


# ----------------------------------------------------------------------------- sections

def _perf_rows(results: Results) -> pd.DataFrame:
    m = results.manifest
    perf = m.get("perf") or {}
    events = list(m.get("perf_events") or COLUMN_BY_EVENT)
    unsupported = perf.get("unsupported") or {}
    runs, n = results.runs, len(results.runs)
    rows = []
    for ev in events:
        stem = event_column(ev)
        col = COLUMN_BY_EVENT.get(ev) if COLUMN_BY_EVENT.get(ev) in runs else stem
        counted = int(runs[col].notna().sum()) if col in runs else 0
        statuses = sorted({str(s) for s in runs[f"{stem}_status"].dropna()}) if f"{stem}_status" in runs else []
        if counted == n and n:
            status = "counted"
        elif counted:
            status = "partly counted"
        else:  # the one status perf gave every point ("not supported"), else "not counted"
            missing = [x for x in statuses if x != "counted"]
            status = missing[0] if len(missing) == 1 else "not counted"
        reason = unsupported.get(ev) or ", ".join(s for s in statuses if s != "counted") or \
            ("" if counted == n else "no reason recorded")
        rows.append({"event": ev, "status": status, "points counted": f"{counted} of {n}", "reason": reason})
    return pd.DataFrame(rows)


def _badge(status: str) -> str:
    klass = {"counted": "ok", "traced": "ok", "partly counted": "part", "partly traced": "part"}.get(status, "no")
    return f'<span class="badge {klass}">{_e(status)}</span>'


def _probe_rows(results: Results) -> pd.DataFrame | None:
    plan = results.manifest.get("probe_plan")
    runs, n = results.runs, len(results.runs)
    if not plan:
        return None
    rows = []
    figures_ = list(plan) if isinstance(plan, dict) else TRACE_NAMES
    for fig in figures_:
        entry = plan.get(fig) if isinstance(plan, dict) else None
        if isinstance(entry, dict):
            probe = entry.get("probe") or entry.get("name") or entry.get("attach")
            reason = entry.get("reason") or ""
        else:
            probe, reason = entry, ("" if entry else "no probe attached")
        cols = [c for c in (f"trace_client_{fig}", f"trace_server_{fig}") if c in runs]
        traced = int(runs[cols].notna().any(axis=1).sum()) if cols else 0
        rows.append({"figure": fig, "probe": probe if probe else "—", "points traced": f"{traced} of {n}",
                     "note": reason})
    return pd.DataFrame(rows)


def _scalar(v) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _topology_details(topo) -> dict:
    """The topology facts worth a line: scalars and small flat maps (names, addresses, MTU)."""
    if not isinstance(topo, dict):
        return {}
    skip = {"kind", "run_id", "closed", "cleanup_errors", "leftovers_removed", "sysctls", "children"}
    out = {}
    for k, v in topo.items():
        if k in skip or v in (None, "", [], {}):
            continue
        if _scalar(v):
            out[k] = v
        elif isinstance(v, dict) and len(v) <= 4 and all(_scalar(x) for x in v.values()):
            out[k] = "/".join(str(x) for x in v.values())
    return out


def _sysctl_rows(m: dict) -> pd.DataFrame | None:
    """The sysctls the run touched, as the topology recorded them (before, set, after, restored)."""
    sysctls = (m.get("topology") or {}).get("sysctls")
    if not sysctls:
        return None
    return pd.DataFrame([{"sysctl": name, **{k: (cell(None, v[k]) if k in v else "—")
                                             for k in ("scope", "before", "set", "after", "restored")}}
                         for name, v in sysctls.items()])


def _summary(results: Results) -> str:
    m = results.manifest
    host = m.get("host") or {}
    topo = m.get("topology")
    matrix = m.get("matrix") or {}
    tools = m.get("tools") or {}
    runs = results.runs
    command = m.get("command")
    if isinstance(command, list) and command:
        argv0 = str(command[0])
        argv0 = "netobs" if argv0.endswith(("__main__.py", "/netobs")) or argv0 == "-m" else Path(argv0).name
        command = " ".join([argv0] + [str(c) for c in command[1:]])
    cores = host.get("cores")
    if host.get("cores_usable") and host.get("cores_usable") != cores:
        cores = f"{cores} ({host['cores_usable']} usable)"
    mem = host.get("memory_bytes")
    topo_txt = topo.get("kind") if isinstance(topo, dict) else topo
    topo_extra = _topology_details(topo)
    left = _kv([
        ("host", host.get("hostname")), ("kernel", host.get("kernel")), ("CPU", host.get("cpu_model")),
        ("cores", cores), ("memory", gib(mem) if isinstance(mem, (int, float)) else None),
        ("virtualised", host.get("virtualized")), ("topology", topo_txt or results.topology),
        ("topology details", ", ".join(f"{k}={cell(None, v)}" for k, v in topo_extra.items()) or None),
        ("perf / BCC", " / ".join(str(tools.get(k) or host.get(f"{k}_version") or "—") for k in ("perf", "bcc"))),
    ])
    right = _kv([
        ("source", "imported CSV (host facts unknown)" if results.imported else "netobs sweep"),
        ("started", m.get("started")), ("finished", m.get("finished")),
        ("command", Raw(f"<code>{_e(command)}</code>") if command else None),
        ("netobs", m.get("netobs_version")),
        ("strategies", results.impls), ("message sizes", sorted(runs["msg_size"].unique().tolist())),
        ("threads", sorted(runs["threads"].unique().tolist())),
        ("message shapes", ", ".join(shape_label(*s) for s in results.shapes())
         if results.shapes() != [(STUDY_FIELDS, 0)] else None),
        ("repeats", f"{results.min_repeats()}–{results.max_repeats()}" if results.min_repeats() != results.max_repeats()
         else results.max_repeats()),
        ("duration / warm-up", f"{cell(None, matrix.get('duration'))} s / {cell(None, matrix.get('warmup'))} s"
         if matrix else None),
        ("points", f"{len(runs)} ok, {len(results.failed)} failed"),
    ])
    perf = _perf_rows(results)
    perf_html = table(perf).replace("<td class=\"\">counted</td>", f"<td>{_badge('counted')}</td>")
    for st in ("partly counted", "not counted"):
        perf_html = perf_html.replace(f'<td class="">{st}</td>', f"<td>{_badge(st)}</td>")
    probes = _probe_rows(results)
    if probes is None:
        probe_html = ('<p class="chart-missing">No kernel tracing in these results (sweep without '
                      '<code>--trace</code>, or imported results): copies per byte, syscall time and off-CPU '
                      'share are not measured, so their charts are replaced by notes.</p>')
    else:
        probe_html = table(probes)
    changed = _sysctl_rows(m)
    notes = list(results.notes) + [str(n) for n in (m.get("notes") or [])]
    parts = [f'<div class="grid2">{left}{right}</div>',
             "<h3>Hardware counters (perf stat)</h3>", perf_html,
             "<h3>Kernel tracing: probe plan</h3>", probe_html]
    if changed is not None and not changed.empty:
        parts += ["<h3>sysctls set for the run</h3>", table(changed)]
    if len(results.failed):
        cols = [c for c in ("implementation", "msg_size", "threads", "repeat", "error") if c in results.failed]
        parts += [f"<h3>Failed points ({len(results.failed)})</h3>", table(results.failed[cols])]
    if notes:
        parts += ["<h3>Notes from loading</h3>", "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"]
    return "".join(parts)


PROFILE_TEXT = {
    "flame": "One icicle per point and role, from the folded stacks stored under points/&lt;point&gt;/ "
             "(<code>profile-&lt;role&gt;.folded</code> and <code>offcpu-&lt;role&gt;.folded</code>, which "
             "<code>flamegraph.pl</code> and speedscope open too): the menu picks the point and role, the toggle "
             "on-CPU samples or off-CPU time; a frame is as wide as its share of the point's samples (or off-CPU "
             "time) and coloured by the cost class (or wait reason) of the stacks beneath it.",
    "cpu_by_class": "The CPU-seconds each role spent per GB it moved, stacked by cost class, per strategy: "
                    "where a strategy's CPU goes, and which class a copy-avoiding strategy saves or adds.",
    "wait_by_reason": "The seconds each role's threads spent off the CPU, stacked by why they slept "
                      "(a full send buffer, waiting for data, polling for completions, preemption, ...).",
    "bottleneck": "What limited each point, from its working threads' time: a side preempted (oversubscribed), "
                  "a side on the CPU nearly all the time (CPU-bound), or both waiting. With a threads answer this "
                  "map is drawn beside it instead.",
}


def _point_profile(results: Results) -> dict:
    """result["profile"] of the first point that has one ({} where none does)."""
    for f in sorted((results.path / "points").glob("*/result.json")):
        try:
            profile = json.loads(f.read_text(encoding="utf-8")).get("profile")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(profile, dict) and profile:
            return profile
    return {}


def _sampling_sentence(results: Results) -> str:
    """What was sampled and how: event and frequency per role (from runs.csv), the stack modes,
    the events tried before it, the off-CPU probe (the manifest's plan, else a point's), and
    why a role was not sampled (its result.json)."""
    runs, n = results.runs, len(results.runs)
    point = _point_profile(results)
    manifest_profile = results.manifest.get("profile")
    plan = (manifest_profile.get("plan") if isinstance(manifest_profile, dict) else None) or point.get("plan") or {}
    on, off = plan.get("on_cpu") or {}, plan.get("off_cpu") or {}

    def col(name: str) -> pd.Series:
        return runs[name].dropna() if name in runs else pd.Series(dtype=object)

    roles = []
    for role in ("client", "server"):
        sampled = int(pd.to_numeric(col(f"prof_{role}_samples"), errors="coerce").notna().sum())
        if not sampled:
            why = (((point.get(role) or {}).get("on_cpu") or {}).get("missing")
                   if isinstance(point.get(role), dict) else None)
            roles.append(f"{role}: not sampled" + (f" ({why})" if why else ""))
            continue
        events = sorted({str(e) for e in col(f"prof_{role}_event")})
        hz = sorted({int(h) for h in pd.to_numeric(col(f"prof_{role}_hz"), errors="coerce").dropna()})
        roles.append(f"{role}: {'/'.join(events) or 'event not recorded'}"
                     f"{' at ' + '/'.join(map(str, hz)) + ' Hz' if hz else ''}, {sampled} of {n} points")
    stacks = " + ".join(on.get("stacks") or [])
    refused = [f"{t.get('event')} ({t.get('reason') or 'refused'})" for t in (on.get("tried") or [])
               if isinstance(t, dict) and not t.get("ok")]
    modes = f" ({_e(stacks)} stacks)" if stacks else ""
    text = f"On-CPU: stack samples{modes} — " + _e("; ".join(roles)) + "."
    if refused:
        text += " Tried first and refused: " + _e(", ".join(refused)) + "."
    if off.get("probe"):
        text += f" Off-CPU: the time from each switch-out ({_e(off['probe'])}) until the thread ran again."
    return f'<p class="profile-plan">{text}</p>'


def _profile(results: Results, slots: _ChartSlots, charts_="draw") -> str:
    """The profile section: its charts (`charts_`; "draw": drawn here), or the note that there is none."""
    if charts_ == "draw":
        charts_ = profile_charts(results)
    if charts_ is None:
        return ('<p class="muted profile-absent">No profiles in these results (a sweep without '
                '<code>--profile</code>, an import, or results from before profiles): where the CPU time and the '
                'waits go was not measured.</p>')
    parts = [_sampling_sentence(results)]
    for name, c in charts_.items():
        if name in PROFILE_TEXT:
            parts.append(f'<p class="chart-note">{PROFILE_TEXT[name]}</p>')
        parts.append(slots.render(c, name))
    return "".join(parts)


def _question(answer, chart, slots: _ChartSlots, extra=()) -> str:
    """The headline and the chart that carries it first; then the charts of the comparison it
    makes (`extra`: the cost waterfall, the differential flame graph, the bottleneck map), the
    reasons as a ranked list, the hypotheses as judged, the answer's own caveats (the run's are
    said once, above); the evidence folded."""
    caveats = "".join(f"<li>{_e(c)}</li>" for c in answer.own_caveats)
    reasons = "".join(f"<li>{_e(r)}</li>" for r in (answer.reasons or []))
    hyps = "".join(f"<li>{_e(h)}</li>" for h in (answer.hypotheses or []))
    lead = (f'<div class="verdict"><p><strong>{_e(answer.headline)}</strong></p></div>' if answer.headline else
            f'<div class="verdict">{_paragraphs(answer.verdict)}</div>')
    why = ((f'<h4>Why</h4><ol class="reasons">{reasons}</ol>' if reasons else "")
           + (f'<h4>Hypotheses, as judged</h4><ul class="hypotheses">{hyps}</ul>' if hyps else "")) \
        if answer.headline else ""
    return (f'<div class="question" id="q-{_e(answer.key)}">'
            f'<h3>{_e(answer.title)}<span class="qname">{_e(answer.question)}</span></h3>'
            + lead
            + slots.render(chart, f"q-{answer.key}")
            + "".join(slots.render(c, name) for name, c in extra)
            + why
            + (f'<ul class="caveats">{caveats}</ul>' if caveats else "")
            + f"<details><summary>Evidence</summary>{_evidence(answer)}</details>"
            + "</div>")


BOTTLENECK_NEAR = "threads"   # the question beside which the bottleneck map is drawn (else: Where the time goes)


def answer_views(results: Results, answers: list, profile: dict | None, frames=None) -> tuple[dict, dict | None]:
    """(answer key -> the extra charts it shows, the profile section's charts less those): each
    accounted comparison's waterfall and differential flame graph, and the bottleneck map beside
    the threads answer where there is one. `frames`: as costcharts.comparison_views takes it."""
    return _with_bottleneck(_comparison_views(results, answers, frames), answers, profile)


def _comparison_views(results: Results, answers: list, frames=None) -> dict:
    try:
        return costcharts.comparison_views(results, answers, frames)
    except Exception as exc:  # noqa: BLE001 - shown in the report as a chart error
        return {a.key: [(f"waterfall-{a.key}", MissingChart(f"Cost waterfall ({a.key})",
                                                             f"chart error: {type(exc).__name__}: {exc}"))]
                for a in answers if getattr(a.facts, "accounting_scope", None)}


def _with_bottleneck(views: dict, answers: list, profile: dict | None) -> tuple[dict, dict | None]:
    """The bottleneck map moved from the profile's charts beside the threads answer, where there is one."""
    near = [a.key for a in answers if a.question == BOTTLENECK_NEAR]
    if profile and near and "bottleneck" in profile and not isinstance(profile["bottleneck"], MissingChart):
        profile = dict(profile)
        views.setdefault(near[0], []).append(("bottleneck", profile.pop("bottleneck")))
    return views, profile


def _run_caveats(answers) -> str:
    """The caveats that hold for the whole run, once, above the questions."""
    from netobs.analysis.questions import run_caveats

    items = "".join(f"<li>{_e(c['text'])}</li>" for c in run_caveats(answers))
    return f'<ul class="caveats run-caveats">{items}</ul>' if items else ""


def _evidence(answer) -> str:
    ev = answer.evidence
    if ev is None or ev.empty:
        return '<p class="muted">No evidence rows: nothing could be compared.</p>'
    key = [c for c in (getattr(answer, "key_columns", None) or []) if c in ev.columns]
    rest = f" (every row: <code>netobs explain DIR --question {_e(answer.question)} --json</code>)"
    out = f'<h4>Evidence ({len(ev)} rows)</h4>' + table(ev[key] if key else ev, wrap="table-wrap tall",
                                                        max_rows=TABLE_ROWS, rest=rest)
    if key and len(key) < len(ev.columns):
        out += f"<details><summary>All {len(ev.columns)} evidence columns</summary>" + \
            table(ev, wrap="table-wrap tall", max_rows=TABLE_ROWS, rest=rest) + "</details>"
    return out


def _raw_table(results: Results) -> str:
    runs = pd.concat([results.runs, results.failed], ignore_index=True) if len(results.failed) else results.runs
    cols = [c for c in RAW_FIRST if c in runs and (runs[c].notna().any())]
    every = [c for c in runs.columns if runs[c].notna().any()]
    return (f'<p class="muted">{len(runs)} points. The study\'s columns and the main extended ones; '
            f'missing values (not measured) show as —.</p>'
            + table(runs[cols], wrap="table-wrap tall", max_rows=TABLE_ROWS, rest=" (every row: runs.csv)")
            + f"<details><summary>All {len(every)} measured and derived columns</summary>"
            + table(runs[every], wrap="table-wrap tall", max_rows=TABLE_ROWS, rest=" (every row: runs.csv)")
            + "</details>")


def _method() -> str:
    """The statistics behind every number and band, in the words the answers' facts carry."""
    return (f'<p class="muted">Each verdict is computed from the measured numbers below it; counters are '
            f'normalised per byte before strategies are compared. A configuration\'s value is the '
            f'{_e(METHODS["center"])}; its interval, in the answers and as every chart\'s band or error bars, is '
            f'the {_e(METHODS["ci"])}; a difference is tested with the {_e(METHODS["test"])}.</p>')


@dataclass
class Baseline:
    """What the report's comparison section shows: the comparison of these results with a
    baseline's, and the questions whose verdict changed."""

    comparison: _compare.Comparison
    verdict_changes: list[dict]


def baseline(base: Results, new: Results, new_answers: list) -> Baseline:
    return Baseline(_compare.compare(base, new, [_compare.RANKED_BY]),
                    _compare.verdict_changes(answer_all(base), new_answers))


def _comparison(b: Baseline, slots: _ChartSlots) -> str:
    c = b.comparison
    counts = c.counts.get(_compare.RANKED_BY, {})
    parts = [f'<p>Baseline: {_e(c.base.path)} ({_e(c.base.source)}). Throughput at the {c.grid["compared"]} '
             f'configurations both runs measured: ' + ", ".join(f"{n} {_e(compare_text.WORDS[v])}"
                                                                for v, n in counts.items())
             + f' (significant: Welch p &lt; {c.alpha:g} and at least {c.threshold_pct:g}%).</p>']
    if not c.grid["same"]:
        parts.append(f'<p class="muted">The grids differ: {len(c.grid["only_base"])} configuration(s) only in the '
                     f'baseline, {len(c.grid["only_new"])} only here; <code>netobs compare</code> lists them.</p>')
    if c.manifest_differences:
        rows = pd.DataFrame([{"what": d["what"], "baseline": compare_text.value(d["base"]),
                              "these results": compare_text.value(d["new"])} for d in c.manifest_differences])
        parts += ["<h3>What differs between the runs</h3>", table(rows)]
    parts.append(slots.render(ratio_heatmap(c.points), "comparison"))
    parts.append("<h3>Answers whose verdict changed</h3>")
    if b.verdict_changes:
        rows = pd.DataFrame([{"question": v["question"], "baseline verdict": v["base_verdict"],
                              "verdict here": v["new_verdict"]} for v in b.verdict_changes])
        parts.append(table(rows, cls="verdict-changes"))
    else:
        parts.append('<p class="verdict-changes muted">Every question has the verdict it had in the baseline.</p>')
    return "".join(parts)


def render_report(results: Results, answers: list | None = None, base: Baseline | None = None,
                  drawn: dict | None = None, frames=None) -> str:
    """The whole report as one HTML string (pure: results in, text out); with `base`, a section
    comparing the results with a baseline's; `drawn`: `drawn_sections(results)` where it was
    drawn already; `frames`: a function giving costcharts.diff_frames(results, answers) where
    they are computed elsewhere (None: could not be; the same page either way)."""
    if answers is None:
        answers = answer_all(results)
    with _unchecked():
        return _render(results, answers, base, lambda: drawn, frames)


def _render(results: Results, answers: list, base: Baseline | None, pending, frames) -> str:
    """render_report's page; `pending()` gives drawn_sections' result (None: drawn here), asked
    for once the answers' own charts are drawn (a worker may be drawing it meanwhile)."""
    question_charts, shown = _question_charts(results, answers)
    views = _comparison_views(results, answers, frames)
    drawn = pending()
    figs = _figures_left(results, shown, drawn and drawn["figures"])
    views, profile = _with_bottleneck(views, answers, drawn["profile"] if drawn is not None else profile_charts(results))
    slots = _ChartSlots()
    host = (results.manifest.get("host") or {}).get("hostname") or "unknown host"
    when = results.manifest.get("started") or ""
    content = {
        "summary": drawn["summary"] if drawn else _summary(results),
        "questions": _method() + _run_caveats(answers)
                     + "".join(_question(a, question_charts[a.key], slots, views.get(a.key, ())) for a in answers),
        "figures": ('<p class="muted">Lines are the median over repeats; bands are the 95% Student-t interval for '
                    'the mean of the repeats, as in the answers (none with one repeat). Colors are the same strategy '
                    'in every chart. A figure whose data was not measured is replaced by a note saying why; figures '
                    'a question above already shows are not repeated.</p><div class="figures">'
                    + "".join(f"<div>{slots.render(c, name)}</div>" for name, c in figs.items()) + "</div>"),
        "profile": _profile(results, slots, profile),
        "runs": drawn["runs"] if drawn else _raw_table(results),
    }
    sections_shown = SECTIONS
    if base is not None:
        content[COMPARISON_SECTION[0]] = _comparison(base, slots)
        sections_shown = SECTIONS[:1] + (COMPARISON_SECTION,) + SECTIONS[1:]
    versions = library_versions()
    toc = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title in sections_shown)
    sections = "".join(f'<section id="{sid}"><h2>{_e(title)}</h2>{content[sid]}</section>'
                       for sid, title in sections_shown)
    body = f"""
<header class="top"><h1>netobs report</h1>
<p>What each way of sending bytes costs on {_e(host)} · {_e(when)} · {_e(results.topology)} topology ·
{len(results.runs)} points</p></header>
<nav class="toc">{toc}</nav>
<main>{sections}
<footer>netobs {_e(results.manifest.get("netobs_version") or "")} · charts: Vega {versions["vega"]},
Vega-Lite {versions["vega-lite"]}, vega-embed {versions["vega-embed"]} (inlined; this file needs no network)</footer>
</main>"""
    page = string.Template(_asset("report.html"))
    body += f'<script type="application/json" id="netobs-data">{slots.datasets()}</script>'
    return page.substitute(host=_e(host), css=_asset("report.css"), bundle=vega_bundle(), body=body)


def write_report(results_dir, out_path, baseline_dir=None) -> Path:
    """Load `results_dir`, answer every question, write the self-contained HTML to `out_path`;
    with `baseline_dir`, compared with that results directory too."""
    results = load_results(results_dir)
    # the figures and profile need no answer: drawn alongside the answers where a second CPU is free;
    # then the differential flame graphs' folded profiles, alongside the other charts of the answers
    pending = _alongside(drawn_sections, results, USUALLY_SHOWN)
    answers = answer_all(results)
    flames = _alongside(costcharts.diff_frames, results, answers)
    base = baseline(load_results(baseline_dir), results, answers) if baseline_dir is not None else None
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _unchecked():
        page = _render(results, answers, base, lambda: _collect(pending),
                       None if flames is None else lambda: _collect(flames))
    atomic_write(out, page)
    return out


def export_plan(results_dir) -> dict[str, object]:
    """Every distinct chart `export_figures` would write, by file stem: all figures, then
    `question-<name>` for each question whose chart is not one of them."""
    results = load_results(results_dir)
    plan = figures(results)
    plan.update({n: c for n, c in (profile_charts(results) or {}).items() if not isinstance(c, MissingChart)})
    drawn = {_spec_key(c) for c in plan.values()} - {None}
    for a in answer_all(results):
        chart = _safe_chart(question_chart, a, results.runs, title=a.title)[1]
        if _spec_key(chart) not in drawn:
            plan[f"question-{a.key}"] = chart
    return plan


def export_figures(charts: dict[str, object], out_dir, fmt: str = "png", scale: float = 2.0) -> tuple[list[Path], list[MissingChart]]:
    """Write each drawable chart of `charts` (see export_plan) as `<name>.<fmt>` into `out_dir`.

    Returns (files written, charts not drawn with their reasons)."""
    import vl_convert

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, missing = [], []
    for name, chart in charts.items():
        if isinstance(chart, MissingChart):
            missing.append(chart)
            continue
        spec = chart.to_dict()
        data = (vl_convert.vegalite_to_png(spec, scale=scale) if fmt == "png"
                else vl_convert.vegalite_to_svg(spec).encode("utf-8"))
        path = out / f"{name}.{fmt}"
        atomic_write(path, data)
        written.append(path)
    return written, missing


__all__ = ["write_report", "render_report", "export_plan", "export_figures", "figures", "profile_charts",
           "chart_plan", "vega_bundle", "FORMATS"]
