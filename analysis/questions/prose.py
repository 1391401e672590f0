"""What the questions share on the prose side: words for lists, thread counts and outcomes,
each caveat code's sentence, and the method descriptions the JSON carries. Everything here
reads facts only."""
from __future__ import annotations

import pandas as pd

from netobs.fmt import num, share

from ..answer import Prose
from ..labels import label
from ..stats import METHODS
from .common import LOST, NA, NOT_SIGNIFICANT, TIE, WON, Caveat, Facts

OUTCOME_WORDS = {WON: "won", LOST: "lost", TIE: "tie", NOT_SIGNIFICANT: "no significant difference", NA: "n/a"}


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
    if c.code == "single_repeat":
        return (f"Each configuration was measured once ({d['runs']} runs): no confidence interval and no "
                "significance can be claimed; a difference smaller than run-to-run noise would look the same.")
    if c.code == "some_single_repeats":
        return (f"Some configurations have a single repeat (repeats per configuration range {d['min_repeats']}-"
                f"{d['max_repeats']}): no significance is claimed for them.")
    if c.code == "not_measured":
        return f"{label(d['column'])}{' (zero_copy)' if d['implementation'] else ''} not measured: {d['reason']}."
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
                f"threads ({join([2 * t for t in d['threads']])} busy threads) exceed the host's {d['cores']} cores; "
                "those points say more about scheduling than about caches.")
    if c.code == "no_completions":
        return "zero_copy recorded no completions at all: SO_ZEROCOPY may not have been in effect."
    if c.code == "assumed_noise":
        return (f"Without repeats the run-to-run noise is assumed to be {share(p.single_run_noise)} of each value, "
                "so only large trend breaks are reported and none is tested for significance.")
    raise ValueError(f"no sentence for caveat {c.code!r}")


def caveats(f: Facts) -> list[str]:
    return [caveat(c, f) for c in f.caveats]


def unanswerable(f: Facts, verdict: str) -> Prose:
    """An answer the data cannot give: the verdict says why; it is the chart's note too."""
    return Prose(verdict=verdict, caveats=caveats(f), table=pd.DataFrame(), chart_note=verdict, text=method_text())
