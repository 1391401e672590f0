"""`perf stat` around the workers (netobs.perf.PerfStat): the client's counts cover its measured
window (it opens and closes perf's counters through the fifos), the server's its whole life
(it cannot tell when the client's window opens). Result keys: "perf" (client), "server_perf"."""
from __future__ import annotations

from netobs.observers import Observer

KEYS = {"client": "perf", "server": "server_perf"}
PREFIX = {"client": "perf", "server": "perf-server"}


class Perf(Observer):
    name = "perf"
    keys = ("perf", "server_perf")

    @classmethod
    def wanted(cls, spec, role: str) -> bool:
        return bool(spec.perf and spec.events) and (role == "client" or spec.perf_server)

    def begin(self, files) -> None:
        from netobs.perf import PerfStat

        self.stats = {}
        for role in self.roles:
            self.stats[role] = PerfStat(list(self.spec.events), files.path, prefix=PREFIX[role], window=role == "client")

    def wrap(self, role: str, argv: list[str]) -> list[str]:
        return self.stats[role].argv(argv) if role in self.stats else argv

    def worker_values(self, role: str) -> dict:
        return self.stats[role].worker_values if role in self.stats else {}

    def collect(self, reports: dict[str, dict], files) -> dict:
        return {KEYS[role]: self.stats[role].result(window_s=(reports[role] or {}).get("window_s") if role == "client"
                                                     else None)
                for role in self.roles}

    def cleanup(self) -> None:
        for stat in getattr(self, "stats", {}).values():
            stat.cleanup()

    @classmethod
    def merge(cls, mine: dict, theirs: dict | None, why: str | None, files=None) -> dict:
        out = dict(mine)
        if theirs is None:
            out[KEYS["server"]] = {"events": {}, "skipped": why}
            return out
        for key, value in theirs.items():
            if isinstance(value, dict) and value.get("raw_path"):   # perf's own output came back with the point's files
                value = {**value, "raw_path": str(files.at(value["raw_path"].rsplit("/", 1)[-1]))}
            out[key] = value
        return out
