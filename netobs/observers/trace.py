"""The kernel tracer (netobs.tracer: BPF programs compiled once, counters per point) on the
workers' PIDs. Result key: "trace" (per role, plus the probe plan and lost events); also kept
as trace.json in the point's directory."""
from __future__ import annotations

from netobs.observers import Observer


class Trace(Observer):
    name = "trace"
    keys = ("trace",)
    needs_bpf = True
    section_file = "trace.json"

    @classmethod
    def wanted(cls, spec, role: str) -> bool:
        return bool(spec.trace)

    @classmethod
    def open(cls, spec, roles, place, given=None) -> Trace:
        from netobs.tracer import Tracer

        obs = super().open(spec, roles, place, given)
        obs.tracer = given if given is not None else Tracer()
        obs.plan = obs.tracer.plan
        return obs

    def attach(self, pids: dict[str, int], wrapped=()) -> None:
        self.trace = None
        self.tracer.start_point({r: p for r, p in pids.items() if r in self.roles})

    def end(self) -> None:
        self.trace = self.tracer.stop_point()

    def collect(self, reports: dict[str, dict], files) -> dict:
        return {"trace": self.trace}

    @classmethod
    def merge(cls, mine: dict, theirs: dict | None, why: str | None, files=None) -> dict:
        """The local trace (the client's) with the server's figures from the other end's tracer."""
        trace = mine.get("trace")
        if trace is None:
            return mine
        if theirs is None or theirs.get("trace") is None:   # not traced there: every server figure missing
            trace["server"] = {f: None for f in trace.get("client") or {}}
            trace["server_missing"] = why or "the remote side returned no trace"
            (trace.get("histograms") or {}).pop("server", None)
            return mine
        far = theirs["trace"]
        trace["server"] = far.get("server") or {}
        trace.setdefault("histograms", {})["server"] = (far.get("histograms") or {}).get("server")
        trace["lost_events"] = (trace.get("lost_events") or 0) + (far.get("lost_events") or 0)
        trace["server_plan"] = far.get("plan")
        return mine

    def close(self) -> None:
        if self.owned:
            self.tracer.close()
