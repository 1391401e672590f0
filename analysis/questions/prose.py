"""What the questions share on the prose side: words for lists, thread counts and outcomes,
each caveat code's sentence, and the method descriptions the JSON carries. Everything here
reads facts only."""
from __future__ import annotations

import re

import pandas as pd

from netobs.fmt import num, pct, share

from .. import accounting as acc
from ..answer import Prose
from ..labels import label
from ..stats import METHODS
from .common import LOST, NA, NOT_SIGNIFICANT, TIE, WON, Caveat, Facts

OUTCOME_WORDS = {WON: "won", LOST: "lost", TIE: "tie", NOT_SIGNIFICANT: "no significant difference", NA: "n/a"}


# a number as a reader counts it in a sentence: sizes, counts, thread counts, percentages, ratios
NUMBER = re.compile(r"(?<![\w.])[-+x]?\d[\d,]*(?:\.\d+)?%?")
MAX_NUMBERS = 6   # a reason holds at most this many; the rest is in --evidence and --json
SOURCE = re.compile(r"\s*\[[a-z, ]+\]\.?$")


def numbers(text: str) -> list[str]:
    """The numbers a sentence states, as written (signs, 'x' and '%' stripped)."""
    return [m.group(0).lstrip("+-x").rstrip("%").replace(",", "") for m in NUMBER.finditer(text)]


def _split(text: str, sep: str) -> list[str]:
    """`text` split at `sep` outside parentheses."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and text.startswith(sep, i):
            out.append(text[start:i])
            start = i + len(sep)
            i = start
            continue
        i += 1
    return out + [text[start:]]


def fit(reason: str, limit: int = MAX_NUMBERS) -> str:
    """A reason cut to at most `limit` numbers: its sentences in order, each whole where it fits,
    else those of its clauses (at '; ' outside parentheses) that fit, the first always kept;
    its source tag kept. What is left out is in the facts (--json) and the evidence (--evidence)."""
    if len(numbers(reason)) <= limit:
        return reason
    m = SOURCE.search(reason)
    tag = m.group(0).strip().rstrip(".") if m else ""
    body = (reason[:m.start()] if m else reason).strip()
    kept, used = [], 0
    for s in (s for s in re.split(r"(?<=\.)\s+(?=[A-Z])", body) if s):
        n = len(numbers(s))
        if used + n <= limit:
            kept.append(s)
            used += n
            continue
        part = []
        for c in _split(s.rstrip("."), "; "):
            k = len(numbers(c))
            if used + k <= limit or not (kept or part):
                part.append(c)
                used += k
        if part:
            kept.append("; ".join(part) + ".")
    text = " ".join(k if k.endswith(".") else k + "." for k in kept)
    return f"{text.rstrip('.')} {tag}." if tag else text


def join(items) -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def sizes(values) -> str:
    return join([f"{int(s)} B" for s in values])


def threads(counts) -> str:
    counts = [int(t) for t in counts]
    return f"{join(counts)} thread{'s' if len(counts) > 1 or counts[0] != 1 else ''}"


def method_text(**extra) -> dict:
    """The methods in words, at the JSON facts' "method" key."""
    return {"method": {**METHODS, **extra}}


def caveat(c: Caveat, f: Facts) -> str:
    d, p = c.data, f.parameters
    if c.code == "observer_cost":
        parts = [f"{share(v['median'], 1)} of the {role}'s samples (median over points; up to {share(v['max'], 1)} at "
                 f"{v['at']['implementation']} {point(v['at']['msg_size'], v['at']['threads'])}"
                 + (f", {_n(v['cpu_s_per_gb'])} CPU-s/GB" if v.get("cpu_s_per_gb") is not None else "") + ")"
                 for role, v in d["roles"].items()]
        return ("netobs's own BPF programs (tracing and profiling) took " + " and ".join(parts)
                + ": the CPU figures of these points include that observer cost [profile].")
    if c.code == "retransmits":
        parts = [f"{impl} {share(v['min'], 1)}" + (f"-{share(v['max'], 1)}" if v["max"] > v["min"] else "")
                 + f" at {v['points']} of its points" for impl, v in d["strategies"].items()]
        return ("The client retransmitted " + share(d["threshold"]) + " or more of its segments (median of repeats): "
                + "; ".join(parts) + ". Their throughput includes TCP's loss recovery [netstat].")
    if c.code == "observer_cost_assumed":
        if not d["known"]:
            return (f"The tracer's own cost is not known for these results (no --profile, and {d['reason']}); "
                    "traced CPU figures include it [manifest].")
        lo, hi = (d["ci"] or [None, None])[:2]
        s = (f"The tracer's own cost was not measured here (no --profile); assumed from the bench "
             f"({d.get('measured_at') or 'date unknown'}"
             + ("" if d.get("same_host") else ", another host or kernel") + f", {d.get('topology')}): ")
        noise = lo is not None and hi is not None and lo <= 0 <= hi
        if noise:   # no point estimate worth saying: only the bound its interval sets
            s += (f"it could not tell that cost from its noise (95% interval {_n(lo)} to {_n(hi)} CPU-ns per "
                  "traced syscall)")
            if d.get("share_ci"):
                s += f", which bounds it at {share(max(d['share_ci'][1], 0.0), 1)} of both ends' CPU time at the median point"
            return s + " [manifest]."
        s += f"{_n(d['ns_per_event'])} CPU-ns per traced syscall"
        if lo is not None and hi is not None:
            s += f" [95% interval {_n(lo)} to {_n(hi)}]"
        if d.get("share") is not None:
            s += f", about {share(d['share'], 1)} of both ends' CPU time at the median point"
            if d.get("share_ci"):
                s += f" ({share(d['share_ci'][0], 1)} to {share(d['share_ci'][1], 1)})"
        return s + " [manifest]."
    if c.code == "single_repeat":
        return (f"Each configuration was measured once ({d['runs']} runs): no confidence interval and no "
                "significance can be claimed; a difference smaller than run-to-run noise would look the same.")
    if c.code == "some_single_repeats":
        return (f"Some configurations have a single repeat (repeats per configuration range {d['min_repeats']}-"
                f"{d['max_repeats']}): no significance is claimed for them.")
    if c.code == "not_measured":
        name = d["column"] if d.get("named") else label(d["column"])
        return f"{name}{' (zero_copy)' if d['implementation'] else ''} not measured: {d['reason']}."
    if c.code == "failed_points":
        shown = [f"{x['implementation']}/{x['msg_size']} B/{x['threads']}t r{x['repeat']}: {x['error']}"
                 for x in d["shown"]]
        more = f" (+{d['count'] - len(shown)} more)" if d["count"] > len(shown) else ""
        return f"{d['count']} point(s) failed and are left out: " + "; ".join(shown) + more + "."
    if c.code == "imported":
        duration = "per row" if d["duration_s"] is None else f"{num(d['duration_s'])} s"
        return ("Imported from a CSV in the study's format: bytes are derived from throughput x duration ("
                + duration + "); no traces, CPU times, zero-copy completion codes or host facts exist for these "
                "results.")
    if c.code == "high_variation":
        return (f"{d['count']} configuration(s) vary by more than {share(p.high_cv)} between repeats (worst: "
                f"{d['implementation']}/{d['msg_size']} B/{d['threads']}t, CV {share(d['cv'])}).")
    if c.code == "multiplexed":
        return (f"perf multiplexed {d['event']} in {d['runs']} run(s) (counted {d['min_running_pct']:.0f}% of the "
                "time at worst); those counts are scaled estimates.")
    if c.code == "lost_events":
        return (f"The tracer lost events in {d['runs']} run(s) (up to {d['max']}); traced figures there are "
                "lower bounds.")
    if c.code == "cores_unknown":
        return ("The host's core count is unknown (" + ("imported results" if d["imported"] else "not in the manifest")
                + "), so oversubscription (client + server threads above the cores) cannot be judged.")
    if c.code == "oversubscribed":
        return (f"Oversubscribed: at {threads(d['threads'])} the client's threads plus the server's receiving "
                f"threads ({join([2 * t for t in d['threads']])} threads, assumed busy) exceed the host's {d['cores']} cores; "
                "those points say more about scheduling than about caches.")
    if c.code == "oversubscribed_measured":
        from ..accounting import PREEMPTED
        return (f"Oversubscribed (measured): in {d['configurations']} of {d['of']} configurations a side's working "
                f"threads sat runnable but not running {share(PREEMPTED)} or more of their time (up to "
                f"{share(d['max_preempted'])}); those points say more about scheduling than about caches.")
    if c.code == "no_completions":
        return "zero_copy recorded no completions at all: SO_ZEROCOPY may not have been in effect."
    if c.code == "assumed_noise":
        return (f"Without repeats the run-to-run noise is assumed to be {share(p.single_run_noise)} of each value "
                "(not measured), so only large trend breaks are reported and none is tested for significance.")
    raise ValueError(f"no sentence for caveat {c.code!r}")


def caveats(f: Facts) -> list[str]:
    return [caveat(c, f) for c in f.caveats]


def point(size, t) -> str:
    """A configuration, always with both coordinates: "16384 B x 4 threads"."""
    return f"{int(size)} B x {threads([t])}"


SOURCE_WORDS = {"worker": "worker", "perf": "perf", "trace": "trace", "profile": "profile", "netstat": "netstat",
                "manifest": "manifest", "import": "import"}


def _n(x, digits=3):
    return "-" if x is None or x != x else num(x, digits)


def _vs(d: dict, fmt=_n) -> str:
    ref = d.get("ref")
    return fmt(d.get("value")) + ("" if ref is None else f" vs {fmt(ref)}")


def _pct1(x):
    return "-" if x is None or x != x else share(x, 1)


def _judged_share(x) -> str:
    """A share judged against the accounting's thresholds, to one decimal, or to as many as keep
    it on its side of each threshold as printed (1.96% is "1.96%", not the floor's "2.0%")."""
    if x is None or x != x:
        return "-"
    for digits in (1, 2, 3):
        shown = round(x * 100, digits) / 100
        if all((x < t) == (shown < t) for t in (acc.SUPPORTED_SHARE, acc.CONTRADICTED_SHARE)):
            break
    return share(x, digits)


def _mech(d: dict) -> str:
    """A mechanism's numbers: its class gap and signed share of the side's gap (2 numbers)."""
    if "share" not in d:
        return "not profiled"
    side = {"both": "both ends'", "client": "the client's", "server": "the server's"}[d["role"]]
    if d.get("negligible"):
        return f"{side} total changed {pct(100 * d['relative'])}, no cost difference to account for"
    return f"{d['gap_cpu_s_per_gb']:+.3g} CPU-s/GB, {_judged_share(d['share'])} of {side} gap"


def _placed(d: dict) -> str:
    """The measured shared-CPU share beside a cause placement moves (2 numbers), where recorded."""
    if d.get("shared_cpu") is None:
        return ""
    return f"; client and server shared a CPU {_pct1(d['shared_cpu'])} of the window vs {_pct1(d['shared_cpu_ref'])}"


def _thread_time(d: dict) -> str:
    if "value" not in d:
        return "not profiled"
    what = {"preempted": "preempted (runnable, not running)"}.get(d["reason"], f"off-CPU in {d['reason']}")
    return f"{d['role']} working threads {what} {_pct1(d['value'])} vs {_pct1(d['ref'])} of their time"


def _oversub(d: dict) -> str:
    if d.get("measured"):
        return _thread_time(d)
    return (f"{d['busy_threads']} threads (assumed busy) on {d['cores']} cores"
            + (", but the other strategies held their trend" if d.get("others_held") else "")
            if "cores" in d else "core count unknown")


def _deferred(d: dict) -> str:
    if "share" in d:
        return _mech(d)
    return ((f"{share(d['copied_fraction'])} of completions flagged copied" if d.get("copied_fraction") is not None
             else (f"deferred_copy {_n(d['deferred_copy_cpu_s_per_gb'])} CPU-s/GB"
                   if d.get("deferred_copy_cpu_s_per_gb") is not None else "no completion codes or profile"))
            + f"; topology {d.get('topology')}")


# hypothesis name -> (what it claims, how its numbers read)
HYPOTHESIS_WORDS = {
    "oversubscription": ("oversubscription", _oversub),
    "system_wide": ("a property of the configuration (every strategy changed at this step)",
                    lambda d: ", ".join(f"{k} {pct(v)}" for k, v in d.get("changes", {}).items()) or "-"),
    "weak_baseline": ("a weak baseline point", lambda d: "; ".join(
        f"{x['implementation']} at {point(x['msg_size'], x['threads'])} {share(-x['shortfall_pct'] / 100, 1)} below "
        "what its neighbours predict relative to the others" for x in d.get("points", [])) or "baseline on its trend"),
    "sndbuf_full": ("blocking on a full send buffer", _thread_time),
    "waiting_for_data": ("the receiver waiting for data (sender-limited)", _thread_time),
    "lock_contention": ("lock contention", _thread_time),
    "deferred_copy_local": ("deferred copy on local delivery (the kernel copied the zero-copy pages)", _deferred),
    "page_pinning": ("page pinning", _mech),
    "notification_cost": ("completion-notification cost", _mech),
    "user_copy": ("the user-space copy", _mech),
    "kernel_copy": ("the kernel's copy", _mech),
    "syscall_entry": ("syscall entry/exit", _mech),
    "tcp_send": ("the TCP send path", _mech),
    "tcp_receive": ("the TCP receive path", _mech),
    "softirq_receive": ("softirq receive processing", _mech),
    "skb_memory": ("socket-buffer memory", _mech),
    "softirq_on_sender": ("softirq work charged to the sender", lambda d: _mech(d) + _placed(d)),
    "scheduling": ("scheduling",
                   lambda d: (_mech(d) if "share" in d else "switches per MiB " + _vs(d)) + _placed(d)),
    "retransmissions": ("retransmissions", lambda d: "Tcp.RetransSegs per MiB " + _vs(d)),
    "link_packets": ("more, smaller packets on the link", lambda d: "link packets per MiB " + _vs(d)),
    "memory_pressure": ("TCP memory pressure", lambda d: "memory-pressure events " + _vs(d)),
    "cache_working_set": ("cache / working set (LLC misses per KiB)", lambda d: "LLC misses per KiB " + _vs(d)),
    "break_even_10kb": ("zero-copy pays off only above about 10 KB (the kernel's documentation)", lambda d: (
        f"against {d['baseline']}: below 10 KB won {d['below']['won']} of {d['below']['configurations']}, "
        f"from 10 KB on {d['above']['won']} of {d['above']['configurations']}")),
    "deferred_copy_remote": ("pages copied despite a remote receiver (the kernel copied the zero-copy pages "
                             "although the receiver is another host)",
                             lambda d: (f"{share(d['copied_fraction'])} of completions flagged copied"
                                        if d.get("copied_fraction") is not None else "no completion codes")),
}
# what would decide a hypothesis that was not measured
WOULD_DECIDE = {
    "oversubscription": "the host's core count or the working threads' preempted share (--profile)",
    "sndbuf_full": "the working threads' off-CPU wait reasons (--profile)",
    "waiting_for_data": "the working threads' off-CPU wait reasons (--profile)",
    "lock_contention": "the working threads' off-CPU wait reasons (--profile)",
    "deferred_copy_local": "zero-copy completion codes (a netobs run) or the profile's deferred_copy class",
    "page_pinning": "on-CPU cost classes (--profile)", "notification_cost": "on-CPU cost classes (--profile)",
    "softirq_on_sender": "on-CPU cost classes (--profile)", "retransmissions": "TCP MIB counters (a netobs run)",
    "memory_pressure": "tracing (--trace) or TCP MIB counters",
    "scheduling": "on-CPU cost classes (--profile) or perf context-switches", "link_packets": "the link's counters",
    **{n: "on-CPU cost classes (--profile)" for n in ("user_copy", "kernel_copy", "syscall_entry", "tcp_send",
                                                      "tcp_receive", "softirq_receive", "skb_memory")},
    "break_even_10kb": "message sizes on both sides of 10 KB, with the pages not copied on the way",
    "deferred_copy_remote": "zero-copy completion codes (a netobs run)",
    "cache_working_set": "an LLC miss counter", "system_wide": "the other strategies at the same step",
    "weak_baseline": ("a tested size or thread count either side of the baseline's point (each compared point "
                      "is at the end of its axes, so no trend can be computed)"),
}
# quoted verbatim (Documentation/networking/msg_zerocopy.rst); never paraphrased
BREAK_EVEN_QUOTE = ('the kernel\'s MSG_ZEROCOPY documentation says "MSG_ZEROCOPY is generally only effective at '
                    'writes over around 10 KB"')
STATUS_WORDS = {"supported": "supported", "inconclusive": "inconclusive", "contradicted": "contradicted",
                "not_measured": "not measured"}


# an intervention's verdict: what the experiment said of the hypothesis
BY_EXPERIMENT = {"supported": "confirmed by experiment", "contradicted": "refuted by experiment",
                 "inconclusive": "not decided by experiment", "not_measured": "not measured by experiment"}
MEASURE_WORDS = {"preempted": "the working threads' preempted time", "sndbuf_full": "the time blocked on a full "
                 "send buffer", "link_packets_per_mib": "the link packets per MiB"}


def intervention(j) -> str:
    """An intervention's judgement (netobs.refine.interventions): the change, what it removed of the
    mechanism's measure (or did to throughput where the measure was not recorded), the verdict."""
    from netobs.refine.interventions import words_of

    d = {**j.numbers, "words": words_of(j.numbers["intervention"])}
    what = HYPOTHESIS_WORDS[j.name][0]
    tput = "" if d.get("throughput_change") is None else f", throughput {pct(d['throughput_change'] * 100)}"
    where = f" at {d['base_point']}"
    if d.get("measure") is None:
        did = f"{d['words']}{where} changed throughput by {pct(d['throughput_change'] * 100)}" \
            if d.get("throughput_change") is not None else f"{d['words']}{where}: throughput not measured"
        return f"{did}: {what} {BY_EXPERIMENT[j.status]} (no profile: throughput alone; {j.source})"
    m = d["measure"]
    measure = MEASURE_WORDS.get(m, f"the {m.replace('_', ' ')} cost")
    if d.get("absent"):
        did = f"{d['words']}{where}: {measure} was almost none to begin with ({_n(d['value'])})"
    elif d.get("removed") is not None and d["removed"] >= 0.005:
        did = f"{d['words']}{where} removed {share(d['removed'])} of {measure} ({_n(d['value'])} -> {_n(d['changed'])})"
    else:
        did = f"{d['words']}{where} did not lower {measure} ({_n(d['value'])} -> {_n(d['changed'])})"
    return f"{did}{tput}: {what} {BY_EXPERIMENT[j.status]} ({d.get('role')}; {j.source})"


def hypothesis(j) -> str:
    if j.source == "intervention":
        return intervention(j)
    what, how = HYPOTHESIS_WORDS[j.name]
    if j.status == "not_measured":
        return (f"{what}: not measured ({j.source}); {WOULD_DECIDE.get(j.name, 'a measurement of it')} would decide"
                + _placed(j.numbers))   # (where placement was recorded, its share still said)
    gain = j.numbers.get("direction") == "gain" and j.status == "contradicted" and "share" not in j.numbers
    return f"{what}: {STATUS_WORDS[j.status]} ({how(j.numbers)}{'; a gain: only a fall explains it' if gain else ''}; {j.source})"


def hypotheses(judgements) -> list[str]:
    return [hypothesis(j) for j in judgements]


def named(judgements, status="supported") -> list[str]:
    return [HYPOTHESIS_WORDS[j.name][0] for j in judgements if j.status == status]


def answer(f: Facts, headline: str, reasons: list[str], table, key=None, chart_note=None, text=None,
           judgements=None) -> Prose:
    """The prose of an answer: headline first, reasons (one per facts reason, same order),
    the tested hypotheses, the answer's own caveats."""
    hyps = hypotheses(f.hypotheses if judgements is None else judgements)
    reasons = [fit(t) for t in reasons]
    if any(x.source == "import" for x in f.reasons):
        reasons = [re.sub(r"\[(worker|perf|trace|profile|netstat|manifest)(, [a-z]+)*\]", "[import]", t) for t in reasons]
    return Prose(verdict=" ".join([headline] + reasons), caveats=caveats(f), table=table, key_columns=key or [],
                 chart_note=chart_note, text=text if text is not None else method_text(), headline=headline,
                 reasons=reasons, hypotheses=hyps,
                 own_caveats=[caveat(c, f) for c in f.own_caveats])


def unanswerable(f: Facts, verdict: str) -> Prose:
    """An answer the data cannot give: the verdict says why; it is the chart's note too."""
    return Prose(verdict=verdict, caveats=caveats(f), table=pd.DataFrame(), chart_note=verdict, text=method_text(),
                 headline=verdict, own_caveats=[caveat(c, f) for c in f.own_caveats])
