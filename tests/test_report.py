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

from conftest import need

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUESTION_CHARTS = ["q-zerocopy", "q-cache", "q-threads", "q-one-copy-crossover", "q-zero-copy-crossover",
                   "q-anomalies"]
# the figures no question already shows: relative_throughput is the zerocopy answer's chart,
# cache_misses the cache answer's, threads_effect the threads answer's
FIGURES = ["throughput", "latency", "cycles_per_byte", "cpu_per_gb", "copies_per_byte", "zc_copied_fraction",
           "syscall_time", "offcpu_share", "throughput_grid"]


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

def test_png_export_writes_valid_pngs(results_dir, tmp_path):
    written, missing = report.export_figures(report.export_plan(results_dir), tmp_path / "figs", fmt="png")
    # every registered chart, then the questions' charts that are none of them
    assert [p.stem for p in written] == list(section_charts("figures")) + [
        "question-one-copy-crossover", "question-zero-copy-crossover", "question-anomalies"]
    for p in written:
        assert p.read_bytes()[:8] == PNG_MAGIC, p
    assert missing == []


def test_svg_export_and_missing_charts(tmp_path):
    res = make_results_dir(tmp_path / "r", traces=False, failed=False, repeats=1)
    written, missing = report.export_figures(report.export_plan(res), tmp_path / "svg", fmt="svg")
    untraced = ["copies_per_byte", "syscall_time", "offcpu_share"]
    assert [p.stem for p in written] == [n for n in section_charts("figures") if n not in untraced] + [
        "question-one-copy-crossover", "question-zero-copy-crossover"]
    assert all(p.read_text().lstrip().startswith("<svg") for p in written)
    assert [m.title for m in missing] == [CHARTS[n].title for n in untraced]
    assert not (tmp_path / "svg" / "copies_per_byte.svg").exists()


# ----------------------------------------------------------------------------- the CLI

def test_cli_writes_report_and_refuses_to_overwrite(results_dir, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert cli_main(["report", str(results_dir), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == report.render_report(load_results(results_dir))
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


def test_cli_exports_figures(results_dir, tmp_path, capsys):
    figs = tmp_path / "figs"
    assert cli_main(["report", str(results_dir), "--format", "png", "--out-dir", str(figs)]) == 0
    assert (figs / "throughput.png").read_bytes()[:8] == PNG_MAGIC
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
    results = load_results(GOLDEN / name)
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
