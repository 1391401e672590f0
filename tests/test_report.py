"""The HTML report and figure export: self-contained, opens offline in a real headless browser,
every chart drawn, no JavaScript errors; PNG/SVG export writes valid files; the CLI."""
from __future__ import annotations

import html
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from netobs.analysis import report
from netobs.analysis.charts import CHARTS, section_charts
from netobs.analysis.load import load_results
from netobs.analysis.stats import METHODS
from netobs.cli import main as cli_main
from netobs.errors import UsageError
from test_charts import STUDY, make_raw_runs

from conftest import fixture_answers, fixture_report, fixture_results, need

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUESTION_CHARTS = ["q-zerocopy", "q-cache", "q-threads", "q-one-copy-crossover", "q-zero-copy-crossover",
                   "q-anomalies"]
# the figures no question already shows: relative_throughput is the zerocopy answer's chart,
# threads_effect the threads answer's, throughput_grid the anomalies answer's (the cache answer's
# and the crossovers' are drawn for the questions only)
FIGURES = ["throughput", "latency", "cache_misses", "cycles_per_byte", "cpu_per_gb", "copies_per_byte",
           "zc_copied_fraction", "syscall_time", "offcpu_share"]


def make_results_dir(path: Path, traces=True, counters=True, failed=True, **kw) -> Path:
    """A results directory as the sweep writes it (DESIGN.md schema 1), from synthetic runs."""
    raw = make_raw_runs(traces=traces, counters=counters, **kw)
    if failed:
        bad = raw.iloc[[0]].copy()
        bad[["throughput_gbps", "latency_us", "bytes_sent"]] = np.nan
        bad["status"], bad["error"], bad["repeat"] = "failed", "server exited: connection reset", 99
        raw = pd.concat([raw, bad], ignore_index=True)
    rest = [c for c in raw.columns if c not in STUDY]
    path.mkdir(parents=True)
    raw[STUDY + rest].to_csv(path / "runs.csv", index=False)
    events = ["cpu-cycles", "L1-dcache-load-misses", "LLC-load-misses", "context-switches"]
    plan = ({"sendmsg_bytes": {"probe": "kprobe:tcp_sendmsg", "reason": None},
             "rx_copy_bytes": {"probe": "tracepoint:skb:skb_copy_datagram_iovec", "reason": None},
             "zc_deferred_copies": {"probe": None, "reason": "skb_copy_ubufs is not traceable on this kernel"},
             "send_syscall_ns": {"probe": "tracepoint:syscalls:sys_enter_sendmsg", "reason": None},
             "offcpu_ns": {"probe": "tracepoint:sched:sched_switch", "reason": None}} if traces else None)
    manifest = {
        "schema_version": 1, "netobs_version": "0.1.0", "source": "netobs",
        "command": ["netobs", "sweep", "--trace", "-o", "results/"],
        "started": "2024-05-01T10:00:00+0000", "finished": "2024-05-01T10:12:00+0000",
        "host": {"hostname": "testhost", "kernel": "6.1.0-test", "cpu_model": "Test CPU @ 3.0GHz", "cores": 4,
                 "cores_usable": 4, "memory_bytes": 8 * 2**30, "virtualized": True},
        "tools": {"perf": "6.1", "bcc": "0.26" if traces else None},
        "topology": {"kind": "netns", "client_ns": "netobs-c-1", "server_ns": "netobs-s-1",
                     "sysctls": {"net.core.wmem_max": {"scope": "global", "before": "4194304", "set": "16777216",
                                                       "after": "16777216", "restored": "4194304"}}},
        "perf": {"unsupported": {} if counters else
                 {e: "<not supported>: no PMU in this VM" for e in events[:3]}},
        "perf_events": events, "probe_plan": plan,
        "matrix": {"impls": ["two_copy", "one_copy", "zero_copy"], "sizes": [1024, 4096, 16384, 65536],
                   "threads": [1, 2, 4, 8], "repeats": 3, "duration": 1.0, "warmup": 0.2, "order": "interleaved"},
    }
    if not counters:
        for e in events[:3]:
            manifest["perf"]["unsupported"][e] = "<not supported>: no PMU in this VM"
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return path


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return make_results_dir(tmp_path_factory.mktemp("res") / "results")


@pytest.fixture(scope="module")
def html_path(results_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "report.html"
    report.write_report(results_dir, out)
    return out


# ----------------------------------------------------------------------------- the HTML itself

def test_report_is_self_contained(html_path):
    text = html_path.read_text(encoding="utf-8")
    # no external scripts, styles, images or fonts: nothing for the browser to fetch
    assert not re.search(r"<script[^>]+src=", text, re.I)
    assert not re.search(r"<link[^>]+href=", text, re.I)
    assert not re.search(r"<img[^>]+src=[\"']?https?:", text, re.I)
    assert not re.search(r"@import|url\(\s*[\"']?https?:", text, re.I)
    assert "cdn.jsdelivr" not in text and "unpkg.com" not in text
    # the libraries are inlined, whole
    assert "window.vegaEmbed=" in text and report.vega_bundle() in text
    assert str(Path(__file__).resolve().parents[1]) not in text  # no machine paths


def test_every_chart_is_drawn_once(html_path):
    text = html_path.read_text()
    specs = re.findall(r'<script type="application/json" id="spec-\d+">(.*?)</script>', text, re.S)
    assert re.findall(r'class="chart" id="chart-\d+" data-chart="([^"]+)"', text) == QUESTION_CHARTS + FIGURES
    assert len(specs) == len(QUESTION_CHARTS + FIGURES) == len(set(specs)), "a chart was drawn twice"
    assert 'class="chart-missing' not in text


def test_report_sections_and_content(html_path, results_dir):
    text = html_path.read_text(encoding="utf-8")
    assert re.findall(r'<section id="([a-z]+)"><h2>([^<]+)</h2>', text) == [
        ("summary", "Run summary"), ("questions", "The study&#x27;s questions"), ("figures", "Figures"),
        ("profile", "Where the time goes"), ("runs", "Raw runs")]
    assert re.findall(r'<div class="question" id="q-([a-z-]+)">', text) == [q[2:] for q in QUESTION_CHARTS]
    # the one interval, named: in the method note and under the figures
    assert html.escape(f"its interval, in the answers and as every chart's band or error bars, is the {METHODS['ci']}",
                       quote=False) in text
    assert "bands are the 95% Student-t interval for the mean of the repeats, as in the answers" in text
    for fact in ("testhost", "6.1.0-test", "Test CPU", "netns", "netobs sweep --trace",
                 "L1-dcache-load-misses", "kprobe:tcp_sendmsg", "skb_copy_ubufs is not traceable",
                 "server exited: connection reset", "net.core.wmem_max"):
        assert fact in text, fact


def test_report_without_counters_or_traces_says_why(tmp_path):
    res = make_results_dir(tmp_path / "r", traces=False, counters=False, failed=False)
    out = report.write_report(res, tmp_path / "r.html")
    text = out.read_text(encoding="utf-8")
    assert "no PMU in this VM" in text
    assert "No kernel tracing in these results" in text
    assert re.findall(r'class="chart-missing" data-chart="([^"]+)"', text) == [
        "cache_misses", "cycles_per_byte", "copies_per_byte", "syscall_time", "offcpu_share"]
    assert "chart error" not in text


def test_report_raises_usage_error_on_bad_dir(tmp_path):
    with pytest.raises(UsageError):
        report.write_report(tmp_path / "nope", tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


# ----------------------------------------------------------------------------- in a real browser

def _browser(offline: bool = True):
    need(shutil.which("chromedriver") is not None, "chromedriver")
    need(shutil.which("chromium") is not None, "chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--hide-scrollbars"):
        opts.add_argument(arg)
    if offline:  # every network request goes to a closed port: nothing can be fetched
        opts.add_argument("--proxy-server=http://127.0.0.1:9")
        opts.add_argument("--proxy-bypass-list=<-loopback>")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def _wait(driver, script: str, timeout: float = 60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {script}")


@pytest.mark.integration
def test_report_renders_offline_in_headless_chromium(html_path):
    driver = _browser(offline=True)
    try:
        driver.get(html_path.as_uri())
        done = _wait(driver, "return document.body.getAttribute('data-charts-done')")
        containers = driver.execute_script("""
            return Array.from(document.querySelectorAll('.chart')).map(function (el) {
              var svg = el.querySelector('svg');
              return {name: el.getAttribute('data-chart'), state: el.getAttribute('data-rendered'),
                      svg: !!svg, marks: svg ? svg.querySelectorAll('.role-mark > *').length : 0,
                      w: svg ? svg.getBoundingClientRect().width : 0};
            });""")
        assert int(done) == len(containers) == len(QUESTION_CHARTS + FIGURES)
        assert [c["name"] for c in containers] == QUESTION_CHARTS + FIGURES
        for c in containers:
            assert c["state"] == "ok", c
            assert c["svg"] and c["marks"] > 0 and c["w"] > 100, c
        logs = driver.get_log("browser")
        severe = [e for e in logs if e["level"] == "SEVERE"]
        assert not severe, severe
        # nothing tried to reach the network (it would have failed through the dead proxy)
        requested = driver.execute_script(
            "return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
        assert not [u for u in requested if u.startswith(("http:", "https:"))], requested
        ARTIFACTS.mkdir(exist_ok=True)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(int(height) + 50, 16000))
        time.sleep(0.5)
        assert driver.save_screenshot(str(ARTIFACTS / "report.png"))
        assert (ARTIFACTS / "report.png").read_bytes()[:8] == PNG_MAGIC
    finally:
        driver.quit()


# ----------------------------------------------------------------------------- figure export

@pytest.mark.integration
def test_svg_export_and_missing_charts(tmp_path):
    res = make_results_dir(tmp_path / "r", traces=False, failed=False, repeats=1)
    written, missing = report.export_figures(report.export_plan(res), tmp_path / "svg", fmt="svg")
    untraced = ["copies_per_byte", "syscall_time", "offcpu_share"]
    assert [p.stem for p in written] == [n for n in section_charts("figures") if n not in untraced] + [
        "question-cache", "question-one-copy-crossover", "question-zero-copy-crossover"]
    assert all(p.read_text().lstrip().startswith("<svg") for p in written)
    assert [m.title for m in missing] == [CHARTS[n].title for n in untraced]
    assert not (tmp_path / "svg" / "copies_per_byte.svg").exists()


# ----------------------------------------------------------------------------- the CLI

def test_cli_writes_report_and_refuses_to_overwrite(results_dir, html_path, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert cli_main(["report", str(results_dir), "-o", str(out)]) == 0
    # the page write_report makes of the same directory (one rendering fewer than render_report's)
    assert out.read_text(encoding="utf-8") == html_path.read_text(encoding="utf-8")
    assert str(out) in capsys.readouterr().out
    before = out.stat().st_mtime_ns
    assert cli_main(["report", str(results_dir), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert out.stat().st_mtime_ns == before
    assert cli_main(["report", str(results_dir), "-o", str(out), "--force"]) == 0


def test_cli_never_overwrites_results_files(results_dir, capsys):
    manifest = (results_dir / "manifest.json").read_text()
    for target in ("manifest.json", "runs.csv"):
        assert cli_main(["report", str(results_dir), "-o", str(results_dir / target), "--force"]) == 2
        assert "results" in capsys.readouterr().err
    assert (results_dir / "manifest.json").read_text() == manifest


@pytest.mark.integration
def test_cli_exports_figures_as_valid_pngs_then_svgs(results_dir, tmp_path, capsys):
    """One PNG export (the slow one) checked whole: the CLI's is export_figures' of the plan."""
    figs = tmp_path / "figs"
    assert cli_main(["report", str(results_dir), "--format", "png", "--out-dir", str(figs)]) == 0
    written = sorted(figs.glob("*.png"))
    # every registered chart, then the questions' charts that are none of them
    assert sorted(p.stem for p in written) == sorted(list(section_charts("figures")) + [
        "question-cache", "question-one-copy-crossover", "question-zero-copy-crossover", "question-anomalies"])
    for p in written:
        assert p.read_bytes()[:8] == PNG_MAGIC, p
    assert cli_main(["report", str(results_dir), "--format", "png", "--out-dir", str(figs)]) == 2
    assert cli_main(["report", str(results_dir), "--format", "svg", "--out-dir", str(figs)]) == 0


def test_cli_bad_input(tmp_path, capsys):
    assert cli_main(["report", str(tmp_path / "missing"), "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("netobs: error:") and len(err.strip().splitlines()) == 1
    assert cli_main(["report", str(tmp_path), "--format", "png"]) == 2  # no --out-dir
    assert cli_main(["report", str(tmp_path), "--format", "png", "--out-dir", str(tmp_path / "f"),
                     "-o", str(tmp_path / "x.html")]) == 2
    assert cli_main(["report", "--help"]) == 0
    assert "Examples:" in capsys.readouterr().out


# ----------------------------------------------------------------------------- where the time goes (--profile)

from profile_synth import write_profile_results  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"
PROFILE = ["flame", "cpu_by_class", "wait_by_reason"]
ABSENT = "No profiles in these results"


def _section(text: str, sid: str) -> str:
    return re.search(rf'<section id="{sid}">.*?</section>', text, re.S).group(0)


@pytest.fixture(scope="module")
def profile_html(tmp_path_factory):
    """The report of 12 profiled points (3 strategies x 2 sizes x 2 thread counts)."""
    res = write_profile_results(tmp_path_factory.mktemp("prof") / "results")
    out = tmp_path_factory.mktemp("prep") / "report.html"
    report.write_report(res, out)
    return out


def test_profile_section_draws_the_charts_and_says_how_it_sampled(profile_html):
    text = profile_html.read_text(encoding="utf-8")
    sec = _section(text, "profile")
    assert re.findall(r'data-chart="([^"]+)" data-vl-spec', sec) == PROFILE
    assert ABSENT not in text and 'class="chart-missing' not in sec and "chart error" not in text
    for fact in ("cpu-clock at 999 Hz", "12 of 12 points", "kernel + user stacks", "cycles (no PMU in this VM)",
                 "tracepoint sched:sched_switch", "profile-&lt;role&gt;.folded", "stacked by cost class",
                 "stacked by why they slept"):
        assert fact in sec, fact
    # one sentence per chart, before it
    assert len(re.findall(r'<p class="chart-note">', sec)) == len(PROFILE)
    # the profile charts are drawn there only, not among the figures
    assert not set(PROFILE) & set(re.findall(r'data-chart="([^"]+)"', _section(text, "figures")))


def test_report_without_profile_has_a_one_line_note(html_path):
    sec = _section(html_path.read_text(encoding="utf-8"), "profile")
    assert ABSENT in sec and sec.count("<p") == 1 and "data-chart" not in sec


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.iterdir() if p.is_dir() and p.name != "explain"))
def test_old_results_have_no_profile_charts_only_the_note(name):
    """Results from before profiles: the section is the note, no profile chart is drawn or exported
    (the rest of the report is byte-for-byte what it was: checked when this section was added)."""
    results = fixture_results(GOLDEN / name)
    assert report.profile_charts(results) is None
    assert ABSENT in report._profile(results, report._ChartSlots())
    assert list(report.figures(results)) == list(section_charts("figures"))


def test_export_includes_the_profile_charts_where_drawn(tmp_path):
    res = write_profile_results(tmp_path / "r", sizes=(4096,), threads=(1,), impls=("two_copy", "zero_copy"))
    plan = report.export_plan(res)
    assert [n for n in plan if n in PROFILE] == PROFILE
    written, missing = report.export_figures({n: plan[n] for n in PROFILE}, tmp_path / "svg", fmt="svg")
    assert [p.stem for p in written] == PROFILE and missing == []
    assert written[0].read_text().count("<path") > 10


@pytest.mark.integration
def test_flame_graph_renders_and_its_menus_switch_in_headless_chromium(profile_html):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = _browser(offline=True)
    state = """var el = document.querySelector('.chart[data-chart=flame]'); var svg = el.querySelector('svg');
      var texts = Array.from(svg.querySelectorAll('.mark-text text')).map(function (t) { return t.textContent; });
      return {state: el.getAttribute('data-rendered'), marks: svg.querySelectorAll('.role-mark > *').length,
              rects: svg.querySelectorAll('.mark-rect > path').length, texts: texts};"""
    try:
        driver.get(profile_html.as_uri())
        _wait(driver, "return document.body.getAttribute('data-charts-done')")
        charts_ = driver.execute_script("""return Array.from(document.querySelectorAll('#profile .chart')).map(
            function (el) { var svg = el.querySelector('svg');
              return [el.getAttribute('data-chart'), el.getAttribute('data-rendered'),
                      svg ? svg.querySelectorAll('.role-mark > *').length : 0]; });""")
        assert [c[0] for c in charts_] == PROFILE and all(c[1] == "ok" and c[2] > 0 for c in charts_), charts_
        first = driver.execute_script(state)
        assert first["state"] == "ok" and first["rects"] > 20, first
        assert "client" in first["texts"] and "[user_copy]" in first["texts"]   # two_copy's client
        menu = Select(driver.find_element(By.CSS_SELECTOR, ".chart[data-chart=flame] .vega-bindings select"))
        assert len(menu.options) == 24 and menu.first_selected_option.text.endswith("· client")
        showing = state.replace("return {", "var s = {") + " return s.texts.indexOf('%s') >= 0 && s;"
        menu.select_by_index(1)   # the same point's server
        server = _wait(driver, showing % "server")
        assert "client" not in server["texts"] and "[kernel_copy]" in server["texts"]
        menu.select_by_visible_text("zero_copy · 64 KiB · 2 thr · repeat 0 · client")
        zc = _wait(driver, showing % "[zc_pin]")
        assert "[user_copy]" not in zc["texts"]
        radios = driver.find_elements(By.CSS_SELECTOR, ".chart[data-chart=flame] .vega-bindings input[type=radio]")
        radios[1].click()   # off-CPU
        off = _wait(driver, showing % "[errqueue_poll]")
        assert off["rects"] > 3 and "[zc_pin]" not in off["texts"]
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
        ARTIFACTS.mkdir(exist_ok=True)
        el = driver.find_element(By.CSS_SELECTOR, ".chart[data-chart=flame]")
        driver.execute_script("arguments[0].scrollIntoView()", el)
        assert el.screenshot(str(ARTIFACTS / "report-flame.png"))
    finally:
        driver.quit()


def test_sampling_sentence_says_why_a_role_was_not_sampled(tmp_path):
    res = load_results(write_profile_results(tmp_path / "r", sizes=(4096,), threads=(1,), server_missing=True))
    text = report._sampling_sentence(res)
    assert "client: cpu-clock at 999 Hz, 3 of 3 points" in text
    assert "server: not sampled (perf_event_open(cpu-clock) refused: EACCES (simulated))" in text


# ----------------------------------------------------------------------------- rules every chart follows
# Checked on the Vega-Lite specs of whole reports (as the page draws them: report.specs_in puts
# the page's shared data sets back), of a real traced sweep and of synthetic runs with and
# without repeats, counters, traces and profiles.

from netobs.analysis import charts as _charts  # noqa: E402
from netobs.strategies import STRATEGIES  # noqa: E402

OKABE_ITO = {"#0072b2", "#e69f00", "#009e73", "#d55e00", "#56b4e9", "#cc79a7", "#f0e442", "#000000", "#5d5d5d",
             "#999999", "#882255", "#44aa99"}
RATIO_SCALE = {"type": "log", "scheme": "redblue", "domain": [0.25, 4.0], "domainMid": 1, "clamp": True}


def _walk(node, path=()):
    """Every (path, dict) inside a spec."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, path + (i,))


def _rows(spec) -> pd.DataFrame:
    sets = list((spec.get("datasets") or {}).values())
    return pd.DataFrame(sets[0]) if len(sets) == 1 else pd.DataFrame()


def _title(spec) -> tuple[str, str]:
    t = spec.get("title") or {}
    sub = t.get("subtitle", []) if isinstance(t, dict) else []
    return (t.get("text") if isinstance(t, dict) else t) or "", " ".join(sub if isinstance(sub, list) else [sub])


def _colour_encodings(spec):
    out = []
    for _, node in _walk(spec):
        c = node.get("color") if isinstance(node.get("color"), dict) else None
        if c is None:
            continue
        out.append(c.get("condition", c) if "condition" in c and "field" not in c else c)
        if "condition" in c and isinstance(c["condition"], dict) and "field" in c["condition"]:
            out.append(c["condition"])
    return [c for c in out if "field" in c]


def check_rules(page: str) -> list[tuple[str, dict]]:
    """The report's rules, asserted on every drawn chart of `page`; returns the specs."""
    specs = report.specs_in(page)
    names = [n for n, _ in specs]
    # no chart twice: by name, by spec, by title
    assert len(names) == len(set(names)), names
    assert len({json.dumps(s, sort_keys=True) for _, s in specs}) == len(specs)
    titles = [_title(s)[0] for _, s in specs]
    assert len(titles) == len(set(titles)), titles
    strategy_scales, ratio_scales, delta_scales = [], [], []
    for name, spec in specs:
        text, sub = _title(spec)
        data = _rows(spec)
        # every chart titled with what it compares, a subtitle with the aggregate
        assert text and sub, name
        assert "median" in sub or "repeat" in sub, (name, sub)
        # one colour domain per quantity; colour-blind-safe palettes
        for c in _colour_encodings(spec):
            if c["field"] == "implementation":
                strategy_scales.append(c["scale"])
                assert set(c["scale"]["range"]) <= OKABE_ITO, (name, c["scale"])
                # a legend entry only for a strategy the data has
                if not data.empty and "implementation" in data:
                    assert set(c["legend"]["values"]) == set(data["implementation"]), name
            elif c.get("type") == "quantitative" and c["field"] == "delta":
                # a cost difference A - B: diverging, centred at 0, symmetric; one domain per report
                delta_scales.append(c["scale"])
                assert c["scale"]["domainMid"] == 0 and c["scale"]["domain"][0] == -c["scale"]["domain"][1], name
                assert c["scale"]["scheme"] == "redblue" and c["scale"]["reverse"] is True, name
            elif c.get("type") == "quantitative":
                ratio_scales.append(c["scale"])
                assert c["scale"] == RATIO_SCALE, (name, c)
            elif c["field"] in ("part", "c") and "legend" in c and c["legend"].get("values") is not None:
                if not data.empty and c["field"] in data:
                    assert set(c["legend"]["values"]) <= set(data[c["field"]]), name
        # no significance marks, bands or error bars without repeats
        repeats = pd.to_numeric(data["n"], errors="coerce") if "n" in data else pd.Series(dtype=float)
        if repeats.notna().any() and repeats.max() < 2:
            marks_ = {(m["mark"]["type"] if isinstance(m["mark"], dict) else m["mark"])
                      for _, m in _walk(spec) if "mark" in m}
            assert not marks_ & {"area", "errorbar"}, name
            assert not re.search(r"Welch|t-interval|band|≈", sub), (name, sub)
            if "label" in data:
                assert not data["label"].astype(str).str.contains("≈").any(), name
        # axes spanning orders of magnitude: log, or independent per panel; the title says which
        for _, node in _walk(spec):
            y = node.get("y") if isinstance(node.get("y"), dict) else None
            if not y or y.get("type") != "quantitative" or "aggregate" in y or y.get("field") not in data:
                continue
            v = pd.to_numeric(data[y["field"]], errors="coerce").dropna()
            v = v[v > 0]
            if len(v) and v.max() / v.min() >= 10:
                log = (y.get("scale") or {}).get("type") == "log"
                independent = (spec.get("resolve") or {}).get("scale", {}).get("y") == "independent"
                assert log or independent, (name, y["field"])
                assert ("log" in text) if log else ("independent" in text), (name, text)
        # no empty facets: every panel the facet names has rows, every combination of row x column
        facet = spec.get("facet") or {}
        fields = [f["field"] for k, f in facet.items() if isinstance(f, dict) and "field" in f] \
            if "field" not in facet else [facet["field"]]
        for f in fields:
            assert f in data, (name, f)
            entry = facet.get("row") if facet.get("row", {}).get("field") == f else \
                facet.get("column") if facet.get("column", {}).get("field") == f else facet
            if isinstance(entry.get("sort"), list):
                assert set(entry["sort"]) == set(data[f].dropna()), (name, f)
        if len(fields) == 2:
            combos = data.groupby(fields).size()
            assert len(combos) == data[fields[0]].nunique() * data[fields[1]].nunique(), (name, "empty panel")
        # labels that cannot collide: text only inside heat map cells or icicle frames
        for _, node in _walk(spec):
            if isinstance(node.get("layer"), list):
                kinds = [(m.get("mark", {}).get("type") if isinstance(m.get("mark"), dict) else m.get("mark"))
                         for m in node["layer"]]
                if "text" in kinds:
                    assert "rect" in kinds, (name, kinds)
    assert all(s == strategy_scales[0] for s in strategy_scales)
    assert all(s == RATIO_SCALE for s in ratio_scales)
    assert all(s == delta_scales[0] for s in delta_scales)
    return specs


@pytest.mark.parametrize("name", ["sweep-netns", "synth-base", "synth-single", "synth-vm", "synth-anomaly",
                                  "import-study"])
def test_every_chart_of_a_report_follows_the_rules(name):
    page = fixture_report(GOLDEN / name)
    specs = check_rules(page)
    assert len(specs) >= 8


def test_the_rules_hold_for_a_profiled_report(profile_html):
    specs = dict(check_rules(profile_html.read_text(encoding="utf-8")))
    assert {"flame", "cpu_by_class", "wait_by_reason"} <= set(specs)


def test_the_rules_hold_for_a_comparison(tmp_path):
    from synth import write_pair

    base, new = write_pair(tmp_path)
    page = report.render_report(load_results(new), base=report.baseline(
        load_results(base), load_results(new), report.answer_all(load_results(new))))
    specs = dict(check_rules(page))
    assert "comparison" in specs


def test_the_cache_chart_shows_every_configuration_not_one_slice():
    """Defect 7: the cache answer's chart was the 4-thread slice; it is every size x thread count."""
    results = fixture_results(GOLDEN / "synth-base")
    specs = dict(report.specs_in(fixture_report(GOLDEN / "synth-base")))
    data = _rows(specs["q-cache"])
    configs = results.runs[["msg_size", "threads"]].drop_duplicates()
    assert set(map(tuple, data[["msg_size", "threads"]].drop_duplicates().values)) == \
        set(map(tuple, configs.values))
    assert set(data["metric"]) == {"L1 misses per KiB", "LLC misses per KiB"}


def test_a_question_leads_with_its_headline_and_chart():
    page = fixture_report(GOLDEN / "synth-base")
    for q in re.findall(r'<div class="question" id="q-[^"]+">.*?</details></div>', page, re.S):
        verdict, chart = q.index('class="verdict"'), q.index('class="chart')
        assert verdict < chart, q[:200]
        for later in ('class="reasons"', 'class="hypotheses"', 'class="caveats"', "<details>"):
            if later in q:
                assert chart < q.index(later), later


def test_page_data_sets_come_back_as_the_charts_rows(results_dir):
    """The specs' data live once in the page, column-wise: put back, they are Altair's rows."""
    results = load_results(results_dir)
    for name, spec in report.specs_in(report.render_report(results)):
        if name == "throughput":
            assert spec == _charts.chart_spec(CHARTS["throughput"](results.runs))
    rows = [{"a": 1, "s": "x"}, {"a": None, "s": "x"}, {"a": 2.5, "s": "y"}, {"s": None}]
    assert report.rows_of(report.columnar(rows)) == [{"a": 1, "s": "x"}, {"s": "x"}, {"a": 2.5, "s": "y"}, {}]


def test_strategy_colours_are_colour_blind_safe():
    assert {s.color for s in STRATEGIES} <= OKABE_ITO and len({s.color for s in STRATEGIES}) == len(STRATEGIES)


def test_a_failed_worker_leaves_the_drawing_to_the_report(results_dir, tmp_path, monkeypatch):
    """The figures are drawn in a worker process alongside the answers; where it fails the
    report draws them itself, and the page is the same."""
    def broken(results):
        raise RuntimeError("worker died")

    monkeypatch.setattr(report, "drawn_sections", broken)
    out = report.write_report(results_dir, tmp_path / "r.html")
    monkeypatch.undo()
    assert out.read_text(encoding="utf-8") == report.render_report(load_results(results_dir))
    assert report._collect(None) is None


# ----------------------------------------------------------------------------- a comparison's cost (issue 25)
PROFILED = Path(__file__).resolve().parent / "fixtures" / "profiled-sweep"
COMPARISON_CHARTS = ["waterfall-zerocopy", "diff-flame-zerocopy", "waterfall-threads", "diff-flame-threads",
                     "bottleneck"]


@pytest.fixture(scope="module")
def profiled_page(tmp_path_factory):
    """The report of a real profiled netns sweep with 2 repeats (tests/fixtures/profiled-sweep)."""
    out = tmp_path_factory.mktemp("profiled") / "report.html"
    report.write_report(PROFILED, out)
    return out


def test_comparison_charts_follow_the_rules_and_sit_in_their_answers(profiled_page):
    page = profiled_page.read_text(encoding="utf-8")
    specs = dict(check_rules(page))
    assert set(COMPARISON_CHARTS) <= set(specs) and "chart error" not in page
    q = {k: re.search(rf'<div class="question" id="q-{k}">.*?<details>', page, re.S).group(0)
         for k in ("zerocopy", "threads")}
    assert re.findall(r'data-chart="([^"]+)" data-vl-spec', q["zerocopy"]) == \
        ["q-zerocopy", "waterfall-zerocopy", "diff-flame-zerocopy"]
    assert re.findall(r'data-chart="([^"]+)" data-vl-spec', q["threads"])[1:] == \
        ["waterfall-threads", "diff-flame-threads", "bottleneck"]
    assert 'data-chart="bottleneck"' not in _section(page, "profile")   # drawn once, beside the threads answer
    assert len(page.encode()) < 2_500_000
    # one colour domain for every differential flame graph
    scales = [c["scale"] for n in ("diff-flame-zerocopy", "diff-flame-threads")
              for c in _colour_encodings(specs[n]) if c["field"] == "delta"]
    assert len(scales) == 2 and scales[0] == scales[1]


def _select(spec, name):
    return next(p for p in spec["params"] if p["name"] == name)["bind"]


def test_the_waterfall_is_the_accountings_gap_class_by_class(profiled_page):
    from netobs.analysis import accounting as acc
    from netobs.analysis.costcharts import comparisons

    specs = dict(report.specs_in(profiled_page.read_text(encoding="utf-8")))
    r = fixture_results(PROFILED)
    answers = {a.key: a for a in fixture_answers(PROFILED)}
    for key in ("zerocopy", "threads"):
        spec = specs[f"waterfall-{key}"]
        data = _rows(spec)
        comps = comparisons(answers[key])
        bind = _select(spec, "comparison")
        assert bind["input"] == "select" and bind["labels"] == [label for label, _ in comps]
        assert len(comps) == 1 + len(comps[0][1].at)   # the whole scope, then each configuration pair
        cls = data[data["kind"] == "class"]
        for (qi, role), g in cls.groupby(["q", "role"]):
            total = g[g["part"] == "total"]["end"].iloc[0]
            bars = g[g["part"] != "total"]
            assert abs(bars["gap"].sum() - total) < 1e-9 and abs(bars["end"].iloc[-1] - total) < 1e-9
            side = {"client": "client", "server": "server", "both ends": "both"}[role]
            a = acc.account(r, comps[int(qi)][1], side)
            assert abs(a.total - total) < 1e-12
            for row in bars.itertuples():
                assert row.gap == a.gaps[row.part]
                lo, hi = a.intervals[row.part]        # 2 repeats: every bar has the accounting's interval
                assert abs(row.lo - row.start - lo) < 1e-12 and abs(row.hi - row.start - hi) < 1e-12
            assert set(bars.loc[bars["residual"] == 1, "part"]) <= set(acc.RESIDUAL_CLASSES)
        waits = data[data["kind"] == "wait"]
        first = acc.account(r, comps[0][1], "both").waits
        got = waits[(waits["q"] == 0) & (waits["role"] == "both ends")]
        assert {(w.part, w.side): w.value for w in got.itertuples()} == \
            {(k, s): v[f] for k, v in first.items() for s, f in (("A", "at"), ("B", "ref"))}


def test_the_differential_flame_graph_is_difffolds_a_minus_b(profiled_page):
    from netobs.analysis import difffold
    from netobs.analysis.costcharts import comparisons

    specs = dict(report.specs_in(profiled_page.read_text(encoding="utf-8")))
    r = fixture_results(PROFILED)
    answer = next(a for a in fixture_answers(PROFILED) if a.key == "zerocopy")
    comps = comparisons(answer)
    spec = specs["diff-flame-zerocopy"]
    data = _rows(spec)
    labels = _select(spec, "diff_pick")["labels"]
    assert labels == [f"{label} · {role}" for label, _ in comps for role in ("client", "server")]
    colour = [c for c in _colour_encodings(spec) if c["field"] == "delta"][0]["scale"]
    assert colour["domain"][1] == pytest.approx(data.loc[data["d"] > 0, "delta"].abs().max(), rel=1e-3) or \
        colour["domain"][1] > data.loc[data["d"] > 0, "delta"].abs().max()   # the report's largest, maybe the other answer's
    for p, label in enumerate(labels):
        qi, role = divmod(p, 2)
        d = difffold.differential(r, comps[qi][1], ("client", "server")[role])
        g = data[data["p"] == p]
        root = g[g["d"] == 0].iloc[0]
        assert root["a"] == pytest.approx(sum(d.a.values()), rel=1e-3)
        assert root["delta"] == pytest.approx(sum(d.a.values()) - sum(d.b.values()), rel=1e-3, abs=1e-6)
        classes = d.classes()
        for row in g[(g["d"] == 1) & (g["o"] == 0)].itertuples():
            assert row.delta == pytest.approx(classes[row.c], rel=1e-3, abs=1e-5), (label, row.n)
        assert (g["x1"] <= 1.00001).all() and (g["x0"] >= 0).all()


def test_the_bottleneck_map_is_the_accountings_verdict(profiled_page):
    from netobs.analysis.accounting import bottleneck_frame
    from netobs.analysis.charts import BOTTLENECK_WORDS

    spec = dict(report.specs_in(profiled_page.read_text(encoding="utf-8")))["bottleneck"]
    data = _rows(spec)
    bn = bottleneck_frame(fixture_results(PROFILED))
    want = {(str(x.implementation), int(x.msg_size), int(x.threads)): BOTTLENECK_WORDS[x.bottleneck]
            for x in bn.itertuples()}
    assert {(x.implementation, x.msg_size, x.threads): x.verdict for x in data.itertuples()} == want
    legend = [c for c in _colour_encodings(spec) if c["field"] == "verdict"][0]["legend"]["values"]
    assert set(legend) == set(want.values())


@pytest.mark.integration
def test_comparison_charts_render_and_their_menus_switch_in_headless_chromium(profiled_page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = _browser(offline=True)
    try:
        driver.get(profiled_page.as_uri())
        _wait(driver, "return document.body.getAttribute('data-charts-done')", 120)
        got = driver.execute_script("""return Array.from(document.querySelectorAll('.chart')).map(function (el) {
            var svg = el.querySelector('svg'); return [el.getAttribute('data-chart'), el.getAttribute('data-rendered'),
            svg ? svg.querySelectorAll('.role-mark > *').length : 0]; });""")
        got = {n: (s, m) for n, s, m in got}
        assert all(got[n][0] == "ok" and got[n][1] > 0 for n in COMPARISON_CHARTS), got
        marks = "return document.querySelector('.chart[data-chart=\"%s\"] svg').querySelectorAll('.role-mark > *').length"
        for name in ("waterfall-zerocopy", "diff-flame-zerocopy"):
            menu = Select(driver.find_element(By.CSS_SELECTOR, f'.chart[data-chart="{name}"] .vega-bindings select'))
            before = driver.find_element(By.CSS_SELECTOR, f'.chart[data-chart="{name}"] svg').get_attribute("innerHTML")
            menu.select_by_index(len(menu.options) - 1)
            _wait(driver, f"""return document.querySelector('.chart[data-chart="{name}"] svg').innerHTML !== {json.dumps(before)}""")
            assert driver.execute_script(marks % name) > 0
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        ARTIFACTS.mkdir(exist_ok=True)
        for name in COMPARISON_CHARTS[:2] + ["bottleneck"]:
            el = driver.find_element(By.CSS_SELECTOR, f'.chart[data-chart="{name}"]')
            driver.execute_script("arguments[0].scrollIntoView()", el)
            assert el.screenshot(str(ARTIFACTS / f"report-{name}.png"))
    finally:
        driver.quit()


def test_an_unprofiled_sweep_has_no_comparison_charts_and_no_placeholders():
    """The golden netns sweep (traced, not profiled): no accounting, so no waterfall, differential
    flame graph or bottleneck map, and no empty chart in their place."""
    page = fixture_report(GOLDEN / "sweep-netns")
    names = [n for n, _ in check_rules(page)]
    assert not [n for n in names if n.startswith(("waterfall-", "diff-flame-")) or n == "bottleneck"]
    assert 'data-chart="waterfall-' not in page and 'data-chart="bottleneck"' not in page
