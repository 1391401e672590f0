"""Why zero-copy lost where it lost: the zerocopy answer's reasons and tested hypotheses.

Kept apart from `zerocopy` (its comparisons and mechanism figures) so each stays small:
`profile_costs` is where each zero-copy sender's client time went by cost class (CPU-s per GB,
profile) against its copy baseline; `judged` tests the catalogue's explanations at the
configurations it lost (and a weak baseline at those it won); `reasons` ranks what the answer
says; `headline` and `reason_words` are the words, from the facts alone.
"""
from __future__ import annotations

from netobs import strategies
from netobs.fmt import num, pct, share

from .. import hypotheses as hyp
from ..load import Results
from . import accounted, prose
from .common import LOST, WON, Reason, cost_of, ranked

# the profile's classes that say where zero-copy's time went (CPU-s per GB), and the wait reasons
CLASSES = ("zc_pin", "zc_notify", "deferred_copy", "kernel_copy", "user_copy", "softirq_rx", "tcp_tx", "syscall")
WAITS = ("errqueue_poll", "sndbuf_full")
# "MSG_ZEROCOPY is generally only effective at writes over around 10 KB"
# (Documentation/networking/msg_zerocopy.rst): tested where the receiver is another host
BREAK_EVEN_B = 10 * 1024
LOSS_HYPOTHESES = hyp.MECHANISM_NAMES + ("sndbuf_full", "retransmissions", "link_packets", "memory_pressure",
                                         "oversubscription")


def profile_costs(r: Results, impl: str, base: str) -> dict | None:
    """class -> {impl: CPU-s/GB, base: CPU-s/GB} (client, accounting.COST_AGGREGATE), waits too."""
    cols = {c: f"prof_client_{c}_cpu_s_per_gb" for c in CLASSES}
    if not any(r.measured(col) for col in cols.values()):
        return None
    out = {c: {impl: cost_of(r, impl, col), base: cost_of(r, base, col)} for c, col in cols.items()
           if r.measured(col)}
    waits = {}
    for w in WAITS:
        share_of = hyp.wait_share("client", w)
        pts = lambda i: tuple(k for k in map(tuple, r.runs[r.runs.implementation == i][["implementation", "msg_size",  # noqa: E731
                                                                                          "threads"]]
                                                 .drop_duplicates().itertuples(index=False)))
        a, b = hyp.value(r, share_of, pts(impl)), hyp.value(r, share_of, pts(base))
        if a == a or b == b:
            waits[w] = {impl: a, base: b}
    return {"cpu_s_per_gb": out, "wait_share": waits}


def _points(c, outcome, impl):
    return tuple((impl, int(x.msg_size), int(x.threads)) for x in c[c.outcome == outcome].itertuples())


def cost_scope(c, main: str, sender: str = "zero_copy") -> hyp.Scope | None:
    """What the accounting explains: the configurations the sender lost against `main`, or all
    of them where it lost none (the same scope its loss hypotheses are judged at)."""
    lost = _points(c, LOST, sender)
    at = lost or tuple((sender, int(x.msg_size), int(x.threads)) for x in c.itertuples())
    return hyp.Scope(at, tuple((main,) + p[1:] for p in at), "baseline") if at else None


def judged(r: Results, c, main: str, sender: str = "zero_copy") -> list:
    """The catalogue's explanations at the sender's losses against `main`, and whether its wins
    rest on a weak baseline point."""
    lost, won = _points(c, LOST, sender), _points(c, WON, sender)
    out = []
    if lost:
        out += hyp.judge(r, hyp.Scope(lost, tuple((main,) + p[1:] for p in lost), "baseline"), LOSS_HYPOTHESES)
    elif len(c):
        everywhere = tuple((sender, int(x.msg_size), int(x.threads)) for x in c.itertuples())
        out += hyp.judge(r, hyp.Scope(everywhere, tuple((main,) + p[1:] for p in everywhere), "baseline"),
                         hyp.MECHANISM_NAMES)
    if won:
        out += hyp.judge(r, hyp.Scope(won, tuple((main,) + p[1:] for p in won), "baseline"), ["weak_baseline"])
    return sorted(out, key=lambda j: hyp.STATUS_ORDER[j.status])


def break_even(c, main: str, copied_fraction: float | None = None) -> hyp.Judgement:
    """The documented break-even against the data: below BREAK_EVEN_B the sender should not beat
    `main`, from it on it should (in at least half of those configurations). Not measured
    when the sizes do not lie on both sides of it."""
    below, above = c[c.msg_size < BREAK_EVEN_B], c[c.msg_size >= BREAK_EVEN_B]
    side = lambda d: {"won": int((d.outcome == WON).sum()), "configurations": int(len(d))}  # noqa: E731
    wins = c[c.outcome == WON].msg_size
    nums = {"baseline": main, "below": side(below), "above": side(above), "at_bytes": BREAK_EVEN_B,
            "first_win_size": int(wins.min()) if len(wins) else None,
            "copied_fraction": None if copied_fraction is None or copied_fraction != copied_fraction
            else float(copied_fraction)}
    if below.empty or above.empty:
        return hyp.Judgement("break_even_10kb", hyp.NOT_MEASURED, "worker", nums)
    if nums["copied_fraction"] is not None and nums["copied_fraction"] >= hyp.COPIED_MOSTLY:
        # the pages were copied anyway: the condition the documentation speaks of never held
        return hyp.Judgement("break_even_10kb", hyp.NOT_MEASURED, "worker", nums)
    ok = nums["below"]["won"] == 0 and 2 * nums["above"]["won"] >= nums["above"]["configurations"]
    return hyp.Judgement("break_even_10kb", hyp.SUPPORTED if ok else hyp.CONTRADICTED, "worker", nums)


def reasons(r: Results, versus: dict, main: str, mech: dict, costs: dict | None, judgements: list,
            pairs: dict, sender: str = "zero_copy", accounting: dict | None = None) -> list[Reason]:
    out = [Reason("comparison", 10.0, {"baseline": main}, "worker")]
    if "one_copy" in versus and main != "one_copy":
        out.append(Reason("vs_one_copy", 6.0, {"baseline": "one_copy"}, "worker"))
    if accounting:
        out.append(Reason("accounting", 9.0, {"baseline": main, "sender": sender}, "profile"))
        if accounted.where_words(accounting):
            out.append(Reason("where", 8.95, {}, "profile"))
        out.append(Reason("accounting_roles", 8.9, {}, "profile"))
        if accounted.network_words(accounting):
            out.append(Reason("network", 8.8, {}, "netstat"))
    elif costs:
        out.append(Reason("profile_costs", 9.0, {"baseline": main, "sender": sender, **costs}, "profile"))
    out.append(Reason("mechanism", 8.0, {}, "worker"))
    weak = [p for j in judgements if j.name == "weak_baseline" and j.status == hyp.SUPPORTED
            for p in j.numbers.get("points", [])]
    if weak:
        out.append(Reason("weak_baseline", 9.5, {"points": weak}, "worker"))
    if any(name != sender for name in (pairs or {})):
        out.append(Reason("pairs", 5.0, {}, "worker"))
    tested = next((j for j in judgements if j.name == "break_even_10kb"), None)
    if tested is not None:   # where the receiver is another host the documented break-even is tested
        out.append(Reason("break_even", 7.0, tested.to_dict(), "worker"))
    else:
        out.append(Reason("context", 1.0, {}, "import" if r.imported else "worker"))
    return ranked(out)


def headline(f) -> str:
    main, zc = f.baselines[0], f.sender
    v = f.vs[main]
    if f.code == "no_difference":
        s = f"{zc} and {main} did not differ significantly in any of {v.configurations} configurations"
    elif f.code == "never_won":
        s = f"{zc} never beat {main} (lost {v.lost} of {v.configurations})"
    elif f.code == "always_won":
        s = f"{zc} beat {main} in all {v.won} of {v.configurations} configurations"
    else:
        s = f"{zc} beat {main} in {v.won} and lost {v.lost} of {v.configurations}"
    weak = [j for j in f.hypotheses if j.name == "weak_baseline" and j.status == hyp.SUPPORTED]
    if weak:
        s += f" (some wins rest on a weak {main} point)"
    if f.accounting:
        where = " where it lost" if v.lost and f.code != "never_won" else ""
        return accounted.headline_gap(s + f";{where} ", f.accounting, None, main)
    causes = [n.split(" (")[0] for n in prose.named([j for j in f.hypotheses
                                                      if j.name not in ("weak_baseline", "break_even_10kb")])]
    if causes and f.code != "always_won":
        s += f"; where it lost, supported: {prose.join(causes)}"
    elif f.code != "always_won":
        s += "; no measured cause of its losses is supported"
    tested = next((j for j in f.hypotheses if j.name == "break_even_10kb"), None)
    if tested is not None and tested.status != hyp.NOT_MEASURED:
        s += f"; the documented 10 KB break-even: {prose.STATUS_WORDS[tested.status]}"
    return s + "."


COST_CLASS_WORDS = accounted.acc.CLASS_WORDS


def profile_words(numbers: dict) -> str:
    base, zc_name = numbers["baseline"], numbers.get("sender", "zero_copy")
    parts = []
    for c, v in numbers["cpu_s_per_gb"].items():
        zc, ref = v.get(zc_name), v.get(base)
        if zc is None or zc != zc:
            continue
        if zc < 0.005 and (ref is None or ref != ref or ref < 0.005):
            continue
        parts.append(f"{COST_CLASS_WORDS[c]} {num(zc)} vs {num(ref) if ref == ref else '-'}")
    waits = [f"{w} {share(v[zc_name], 1)} vs {share(v[base], 1)}" for w, v in numbers["wait_share"].items()
             if v.get(zc_name) == v.get(zc_name) and v.get(base) == v.get(base)]
    s = (f"Where {zc_name}'s client time went, CPU-s per GB by profile class against {base} (medians over "
         "configurations): " + (", ".join(parts) or "no class above 0.005"))
    if waits:
        s += "; share of thread time off-CPU: " + ", ".join(waits)
    return s + " [profile]."


def weak_words(points) -> str:
    return ("Some wins rest on a weak baseline: " + "; ".join(
        f"{p['implementation']} at {prose.point(p['msg_size'], p['threads'])} is "
        f"{share(-p['shortfall_pct'] / 100, 1)} below its own trend while the other strategies held theirs"
        for p in points) + " [worker].")


def hypotheses_words(f) -> str | None:
    """The tested explanations in one sentence: supported and contradicted, with numbers."""
    loss = [j for j in f.hypotheses if j.name not in ("weak_baseline", "break_even_10kb")]
    sup, con = prose.named(loss), prose.named(loss, "contradicted")
    if not sup and not con:
        return None
    return (f"Tested where {f.sender} lost: " + (f"supported: {prose.join(sup)}" if sup else "none supported")
            + (f"; contradicted: {prose.join(con)}" if con else "") + ".")


def break_even_words(d: dict) -> str:
    """The break-even test as a reason: the kernel's words, then what these results did."""
    b, a = d["below"], d["above"]
    verdict = {hyp.SUPPORTED: "supported", hyp.CONTRADICTED: "contradicted"}.get(d["status"])
    cf = d.get("copied_fraction")
    if verdict:
        v = verdict
    elif cf is not None and cf >= hyp.COPIED_MOSTLY:
        v = f"not testable, the kernel copied {share(cf)} of the zero-copy pages anyway, so there was no copy to save"
    else:
        v = "not tested, the sizes measured do not lie on both sides of 10 KB"
    # the verdict first; the counts after it (a reason's 6 numbers: the first win is in --json where it does not fit)
    s = (f"Tested on another host: {prose.BREAK_EVEN_QUOTE}: {v}. Against {d['baseline']}, below that it won "
         f"{b['won']} of {b['configurations']} configurations, from it on {a['won']} of {a['configurations']}")
    s += (f"; first win at {d['first_win_size']} B" if d.get("first_win_size") else "; no win at any size")
    return s + " [worker]."


def pct_or_dash(x) -> str:
    return "-" if x is None or x != x else pct(x)


__all__ = ["profile_costs", "judged", "reasons", "headline", "profile_words", "weak_words", "strategies"]
