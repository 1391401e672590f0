"""Interventions that test a cause (issue 26): change the one parameter that should remove a
hypothesis' mechanism, and see whether it goes.

The table is data (`interventions.toml` beside this module): hypothesis -> parameter, the change,
the measure that should fall, whose. Two entry points (the contract with `netobs refine`):

    plan(r)  -> [{"hypothesis", "scope", "base", "change", "expect", "decides", "repeats"}, ...]
                the pairs that would test an open or supported correlation-level judgement of the
                answers and that the results do not hold yet ("base": a complete point of r,
                netobs.params' point parameters; the planned point is base | change)
    judge(r) -> [Judgement, ...]
                every intervention pair the results hold (two configurations that differ in exactly
                one intervention parameter, the change the table names), judged: source
                "intervention", one judgement per (hypothesis, pair, role), computed once per
                loaded results. The answers rank them above the correlation-level judgements
                (analysis.questions.answer_all).

Judging a pair, base -> changed (each configuration's mean over its repeats, COST_AGGREGATE):
the share of the measure the change removed, (base - changed) / base, is the evidence.
supported ("confirmed by experiment") when it removed at least REMOVED (half) and, where both
sides have repeats, the fall is significant (Welch, analysis.stats.ALPHA); contradicted when it
removed less than KEPT (10%) or the measure rose; inconclusive between, or when the base had
almost none of it to remove (below the accounting's CONTRADICTED_SHARE of the base's thread time,
of its CPU-s/GB, or the network figure's floor). Where the measure was not recorded (no
--profile), throughput decides: a gain of at least GAIN supported, below MIN_GAP (or a loss)
contradicted.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from netobs.analysis import accounting as acc
from netobs.analysis import stats
from netobs.analysis.hypotheses import CONTRADICTED, INCONCLUSIVE, SUPPORTED, Judgement, scope_points
from netobs.analysis.load import CONFIG, KEY, Results
from netobs.figures import PROFILE_CLASSES, ROLES, WAIT_REASONS, point_id
from netobs.params import IDENTITY, PARAMS, ident_value

TABLE_PATH = Path(__file__).with_name("interventions.toml")
SOURCE = "intervention"
REMOVED = 0.5      # the change removed at least half of the measure: the mechanism was it
KEPT = 0.10        # it removed less than a tenth (or the measure rose): the mechanism was not it
GAIN = 0.10        # without the measure: a throughput gain of 10% or more supports it
MIN_PLANNED_BUFFER = 4 << 20
RULES = ("fewer", "larger")
# the configuration's columns and the parameter each is (the strategy's column is "implementation")
COLUMN_PARAM = {"implementation": "strategy", **{c: c for c in CONFIG if c != "implementation"}}
PARAM_COLUMN = {p: c for c, p in COLUMN_PARAM.items()}


@dataclass(frozen=True)
class Intervention:
    """One row of the table."""
    hypothesis: str
    param: str
    to: object          # a value of the parameter, or one of RULES
    expect: str         # "less_<measure>"
    role: str           # client, server, both
    words: str
    only_where: str = ""    # "oversubscribed": judged only where the base configuration is
    fallback: bool = True   # judged on throughput where the measure was not recorded

    @property
    def measure(self) -> str:
        return self.expect.removeprefix("less_")

    @property
    def column(self) -> str:
        return PARAM_COLUMN[self.param]

    def value(self, v):
        """A configuration's value of the parameter as its key holds it (a flag: 0/1)."""
        p = PARAMS.by_name[self.param]
        return ident_value(p, v) if p in IDENTITY else int(v)

    def target(self):
        return self.to if self.to in RULES else self.value(self.to)

    @property
    def rule(self) -> str:
        """The change as the facts name it (the words are the table's: `words_of`)."""
        return f"{self.param}:{self.to if self.to in RULES else self.target()}"


def load_table(path: Path = TABLE_PATH) -> tuple[Intervention, ...]:
    with open(path, "rb") as f:
        rows = tomllib.load(f).get("intervention", [])
    return tuple(Intervention(**row) for row in rows)


TABLE: tuple[Intervention, ...] = load_table()
PARAMETERS = tuple(dict.fromkeys(i.param for i in TABLE))   # the intervention parameters


def words_of(rule: str) -> str:
    """How an answer names an intervention's change (its row's words)."""
    return next((iv.words for iv in TABLE if iv.rule == rule), rule)


# ---- the measure ----------------------------------------------------------------------------
def measure_series(runs: pd.DataFrame, measure: str, role: str) -> pd.Series:
    """Per run row: the measure for one role (a cost class: CPU-s/GB; a wait reason or
    "preempted": a share of the working threads' time; a network figure)."""
    if measure in PROFILE_CLASSES:
        return acc.class_frame(runs, role)[measure]
    if measure in WAIT_REASONS or measure == "utilisation":
        return acc.thread_share(runs, role, measure)
    if measure in acc.NETWORK:
        return acc.network_series(runs, measure, role)
    raise ValueError(f"no measure {measure!r}")


def _floor(runs: pd.DataFrame, measure: str, role: str, rows: np.ndarray) -> float:
    """Below this the base has nothing of the mechanism to remove."""
    if measure in PROFILE_CLASSES:
        total = acc.class_frame(runs.iloc[rows], role).sum(axis=1, min_count=1).mean()
        return acc.CONTRADICTED_SHARE * total if total == total else math.nan
    if measure in acc.NETWORK:
        return acc.NETWORK[measure][1]
    return acc.CONTRADICTED_SHARE


# ---- pairs ------------------------------------------------------------------------------------
def _configs(r: Results) -> pd.DataFrame:
    return r.runs[CONFIG].drop_duplicates().reset_index(drop=True)


def _granted(r: Results, cfg: dict) -> float:
    """The send buffer the kernel granted a configuration (what it asked where not recorded)."""
    if "sndbuf_bytes" in r.runs:
        granted = r.runs["sndbuf_bytes"].iloc[_rows(r, cfg)]
        if granted.notna().any():
            return float(granted.median())
    return float(cfg["sndbuf"])


def _rows(r: Results, cfg: dict) -> np.ndarray:
    """The positions of a configuration's rows in r.runs (one index per loaded results)."""
    index = r.memo("intervention_rows", lambda: r.runs.groupby(CONFIG, sort=False).indices)
    return index.get(tuple(_plain(cfg[c]) for c in CONFIG), np.array([], dtype=int))


def _series(r: Results, measure: str, role: str) -> pd.Series:
    return r.memo(("intervention_measure", measure, role), lambda: measure_series(r.runs, measure, role))


def pairs(r: Results, rows: tuple[Intervention, ...] = TABLE) -> list[tuple[Intervention, dict, dict]]:
    """Every (intervention, base configuration, changed configuration) the results hold: the two
    differ in the intervention's parameter only, the change its row names ("fewer", "larger": the
    nearest measured)."""
    configs = _configs(r)
    out = []
    for iv in rows:
        col = iv.column
        if col not in configs or configs[col].nunique() < 2:   # (nothing changed it: no pair)
            continue
        rest = [c for c in CONFIG if c != col]
        for _, group in configs.groupby(rest, sort=True):
            if len(group) < 2:
                continue
            cfgs = [dict(row) for _, row in group.iterrows()]
            for base in cfgs:
                b = iv.value(base[col])
                if iv.to == "fewer":
                    below = [c for c in cfgs if iv.value(c[col]) < b]
                    found = [max(below, key=lambda c: c[col])] if below else []
                elif iv.to == "larger":
                    mine = _granted(r, base)
                    above = [c for c in cfgs if _granted(r, c) > mine and iv.value(c[col]) != b]
                    found = [min(above, key=lambda c: _granted(r, c))] if above else []
                else:
                    target = iv.target()
                    found = [c for c in cfgs if b != target and iv.value(c[col]) == target]
                out += [(iv, base, c) for c in found]
    return out


def name_of(cfg: dict) -> str:
    """A configuration named as its repeat 0 point is (its directory without the repeat)."""
    return point_id(cfg["implementation"], cfg["msg_size"], cfg["threads"], 0,
                    *(cfg.get(p.name, p.default) for p in IDENTITY)).removesuffix("-r0")


def _triple(cfg: dict) -> list:
    """(strategy, size, threads) of a configuration: how a judgement's scope names its points."""
    return [cfg["implementation"], int(cfg["msg_size"]), int(cfg["threads"])]


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


# ---- judging ----------------------------------------------------------------------------------
def _side_values(runs: pd.DataFrame, series: pd.Series, rows) -> np.ndarray:
    return series.iloc[rows].dropna().to_numpy(dtype=float)


def oversubscribed(r: Results, cfg: dict) -> bool:
    """Whether a configuration is oversubscribed: its working threads' preempted share (either
    side) is at least the accounting's PREEMPTED where a profile measured it, else (no profile)
    its busy threads (client and server, one each per connection) outnumber the host's cores."""
    measured = _preempted(r, cfg)
    if measured == measured:
        return measured >= acc.PREEMPTED
    cores = r.host_cores
    return bool(cores) and 2 * int(cfg["threads"]) > cores


def _preempted(r: Results, cfg: dict) -> float:
    """The configuration's working threads' preempted share, the larger side's, mean over its
    repeats (NaN where no profile measured it); every configuration's at once, per results."""
    def per_config():
        runs = r.runs
        shares = pd.concat([acc.thread_share(runs, role, "preempted") for role in ROLES], axis=1).max(axis=1)
        return shares.groupby([runs[c] for c in CONFIG], sort=False).mean().to_dict()

    return r.memo("intervention_preempted", per_config).get(tuple(_plain(cfg[c]) for c in CONFIG), math.nan)


def judge_pair(r: Results, iv: Intervention, base: dict, changed: dict) -> Judgement | None:
    """The pair judged; None where its row does not apply (a base that is not oversubscribed,
    no measure and no throughput fallback)."""
    if iv.only_where == "oversubscribed" and not oversubscribed(r, base):
        return None
    runs = r.runs
    at_b, at_c = _rows(r, base), _rows(r, changed)
    roles = ROLES if iv.role == "both" else (iv.role,)
    tput = runs["throughput_gbps"]
    tb, tc = float(tput.iloc[at_b].median()), float(tput.iloc[at_c].median())
    nums = {"param": iv.param, "from": _plain(base[iv.column]), "to": _plain(changed[iv.column]),
            "intervention": iv.rule, "measure": iv.measure, "base_point": name_of(base), "changed_point": name_of(changed),
            "configurations": [_triple(base), _triple(changed)],
            "repeats": [len(at_b), len(at_c)],
            "throughput_change": (tc / tb - 1) if tb > 0 else None}
    if iv.param == "sndbuf":
        nums["granted"] = [_granted(r, base), _granted(r, changed)]
    # the measure, for the role where the base has more of it
    measured = []
    for role in roles:
        s = _series(r, iv.measure, role)
        vb, vc = _side_values(runs, s, at_b), _side_values(runs, s, at_c)
        if len(vb) and len(vc):
            measured.append((float(vb.mean()), role, vb, vc))
    if not measured:
        return _by_throughput(iv, nums, runs, at_b, at_c) if iv.fallback else None
    mb, role, vb, vc = max(measured, key=lambda m: m[0])
    mc = float(vc.mean())
    floor = _floor(runs, iv.measure, role, at_b)
    removed = (mb - mc) / mb if mb > 0 else None
    _, p = stats.welch(vb, vc)
    nums.update({"role": role, "value": mb, "changed": mc, "removed": removed,
                 "p_value": None if p != p else p, "floor": None if floor != floor else floor})
    if floor == floor and mb < floor:
        status, nums["absent"] = INCONCLUSIVE, True   # nothing of it to remove: the pair cannot tell
    elif removed is None or removed < KEPT:
        status = CONTRADICTED
    elif removed >= REMOVED and (p != p or p < stats.ALPHA):
        status = SUPPORTED
    else:
        status = INCONCLUSIVE
    return Judgement(iv.hypothesis, status, SOURCE, nums)


def _by_throughput(iv: Intervention, nums: dict, runs: pd.DataFrame, at_b, at_c) -> Judgement:
    """No measure recorded (no --profile): the throughput change decides."""
    change = nums["throughput_change"]
    _, p = stats.welch(runs["throughput_gbps"].iloc[at_b], runs["throughput_gbps"].iloc[at_c])
    nums.update({"measure": None, "wanted_measure": nums["measure"], "p_value": None if p != p else p})
    if change is None:
        return Judgement(iv.hypothesis, INCONCLUSIVE, SOURCE, nums)
    if change >= GAIN and (p != p or p < stats.ALPHA):
        status = SUPPORTED
    elif change < acc.MIN_GAP:
        status = CONTRADICTED
    else:
        status = INCONCLUSIVE
    return Judgement(iv.hypothesis, status, SOURCE, nums)


def judge(r: Results) -> list[Judgement]:
    """Every intervention pair in the results, judged (once per loaded results: the same objects
    for every answer that shows them). Supported first."""
    cache = acc._cache(r)
    if "interventions" not in cache:
        out = []
        for iv, base, changed in pairs(r):
            j = judge_pair(r, iv, base, changed)
            if j is None:
                continue
            j.scope = f"intervention:{name_of(base)}->{iv.param}={_plain(changed[iv.column])}@{j.numbers.get('role') or iv.role}"
            out.append(j)
        order = {SUPPORTED: 0, INCONCLUSIVE: 1, CONTRADICTED: 2}
        cache["interventions"] = sorted(out, key=lambda j: order.get(j.status, 3))
    return cache["interventions"]


def base_config(j: Judgement) -> str:
    """The configuration (named as its points are, without the repeat) a judgement's pair starts from."""
    return j.numbers["base_point"]


def changed_config(j: Judgement) -> str:
    """The configuration a judgement's pair changed to (named as base_config)."""
    return j.numbers["changed_point"]


# ---- planning ---------------------------------------------------------------------------------
def _planned_value(r: Results, iv: Intervention, base: dict):
    if iv.to == "fewer":
        b = int(base[iv.column])
        cores = r.host_cores
        target = max(1, cores // 2) if cores else max(1, b // 2)
        return target if target < b else max(1, b // 2)
    if iv.to == "larger":
        return int(min(max(MIN_PLANNED_BUFFER, _granted(r, base)), PARAMS.by_name[iv.param].kind.hi))
    p = PARAMS.by_name[iv.param]
    return bool(iv.to) if hasattr(p.kind, "WORDS") else iv.to


def _point(r: Results, cfg: dict) -> dict:
    """A complete point (netobs.params' point parameters) of a configuration: its own values, the
    rest as the run's matrix gave every point."""
    from netobs.spec import stored_sweep

    sweep = stored_sweep(r.manifest).to_dict()
    out = {}
    for p in PARAMS:
        if not p.point or p.name == "repeat":
            continue
        col = PARAM_COLUMN.get(p.name)
        if col is not None and col in cfg:
            v = _plain(cfg[col])
            out[p.name] = bool(v) if hasattr(p.kind, "WORDS") else v
        elif p.name in sweep:
            out[p.name] = sweep[p.name]
    return out


def measured_oversubscribed(r: Results, cfg: dict) -> bool:
    """Whether a profile measured the configuration oversubscribed (its working threads, either
    side, preempted at least the accounting's PREEMPTED of their time): the answers' bottleneck
    per configuration says so, whatever a step's correlation said."""
    share = _preempted(r, cfg)
    return share == share and share >= acc.PREEMPTED


def _tests(iv: Intervention, j: Judgement, r: Results, cfg: dict) -> bool:
    """Whether the pair from `cfg` would test an answer's judgement `j`: one the correlation left
    open or supported; or, for a row judged only where the base is oversubscribed, one it
    contradicted where the base is measured oversubscribed all the same (a step's correlation
    says the oversubscription did not explain that step's change, a fall, not whether it costs
    at the configuration: the experiment decides that)."""
    if j.status in (SUPPORTED, INCONCLUSIVE):
        return True
    return (j.status == CONTRADICTED and iv.only_where == "oversubscribed"
            and measured_oversubscribed(r, cfg))


def plan(r: Results) -> list[dict]:
    """The intervention pairs that would test the answers' open or supported correlation-level
    judgements (and, `_tests`, a contradicted oversubscription at a configuration measured
    oversubscribed) and that `r` does not hold: one per (hypothesis, scope, intervention), from
    the scope's first configuration that the intervention can change."""
    from netobs.analysis.questions import answer_all

    held = {(iv, name_of(b)) for iv, b, _ in pairs(r)}
    configs = [dict(row) for _, row in _configs(r).iterrows()]
    out, seen = [], set()
    for a in answer_all(r):
        part = {k: _plain(v) for k, v in a.part.items()}
        for j in a.facts.hypotheses:
            if j.source == SOURCE or j.status not in (SUPPORTED, INCONCLUSIVE, CONTRADICTED):
                continue
            at = set(scope_points(j.scope)[0])
            for iv in (iv for iv in TABLE if iv.hypothesis == j.name):
                for cfg in configs:
                    if tuple(cfg[k] for k in KEY) not in at or any(cfg.get(k) != v for k, v in part.items()):
                        continue
                    if not _tests(iv, j, r, cfg):
                        continue
                    if iv.to not in RULES and iv.value(cfg[iv.column]) == iv.target():
                        continue   # already without the mechanism's cause
                    if iv.to == "fewer" and int(cfg[iv.column]) <= 1:
                        continue
                    if (iv, name_of(cfg)) in held:
                        continue
                    key = (j.name, j.scope, iv)
                    if key in seen:
                        break
                    seen.add(key)
                    value = _planned_value(r, iv, cfg)
                    out.append({"hypothesis": j.name, "scope": {"judgement": j.scope, "part": part,
                                                                 "status": j.status},
                                "base": _point(r, cfg), "change": {iv.param: value}, "expect": iv.expect,
                                "repeats": len(_rows(r, cfg)),
                                "decides": f"{iv.words} should remove {iv.measure.replace('_', ' ')} "
                                           f"({iv.role}) at {name_of(cfg)} if {j.name} is the cause"})
                    break
    return out
