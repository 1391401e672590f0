"""The profiler (netobs.profiler: on-CPU samples by cost class, off-CPU time by reason; BPF
programs compiled once) on the workers' PIDs. Result key: "profile"; its folded stacks are
files of the point (profile-<role>.folded, offcpu-<role>.folded)."""
from __future__ import annotations

from netobs.observers import Observer

# the bytes each role moved over the life the profile covers (per-GB figures divide by them)
MOVED = {"client": "bytes_sent_total", "server": "bytes_received"}


class Profile(Observer):
    name = "profile"
    keys = ("profile",)
    needs_bpf = True

    @classmethod
    def wanted(cls, spec, role: str) -> bool:
        return bool(spec.profile)

    @classmethod
    def open(cls, spec, roles, place, given=None) -> Profile:
        from netobs.profiler import Profiler

        obs = super().open(spec, roles, place, given)
        obs.profiler = given if given is not None else Profiler(hz=spec.profile_hz)
        obs.plan = obs.profiler.plan
        return obs

    def attach(self, pids: dict[str, int], wrapped=()) -> None:
        mine = {r: p for r, p in pids.items() if r in self.roles}
        self.profiler.start_point(mine, wrappers=tuple(r for r in wrapped if r in mine))

    def end(self) -> None:
        self.profiler.freeze()

    def cleanup(self) -> None:
        """A failed point never reached `end`: its recording and its maps poller stop here."""
        if not self.profiler.closed:
            self.profiler.freeze()

    def collect(self, reports: dict[str, dict], files) -> dict:
        moved = {role: (reports.get(role) or {}).get(key) for role, key in MOVED.items()}
        return {"profile": self.profiler.stop_point(files, moved)}

    @classmethod
    def merge(cls, mine: dict, theirs: dict | None, why: str | None, files=None) -> dict:
        """The server's role of the profile from the other end's profiler (its folded stacks
        came back with the point's files)."""
        profile = mine.get("profile")
        if profile is None:
            return mine
        if theirs is None or theirs.get("profile") is None:
            why = why or "the remote side returned no profile"
            profile["server"] = {"on_cpu": {"samples": None, "missing": why}, "off_cpu": {"switches": None, "missing": why}}
            profile.setdefault("files", {})["server"] = {}
            return mine
        far = theirs["profile"]
        profile["server"] = far.get("server") or {}
        profile["server_plan"] = far.get("plan")
        profile.setdefault("files", {})["server"] = (far.get("files") or {}).get("server") or {}
        return mine

    def close(self) -> None:
        if self.owned:
            self.profiler.close()
