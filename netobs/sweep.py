"""The sweep: every point of the matrix in one topology, each stored the moment it finishes.

A failing point is recorded with its error and the sweep goes on; Ctrl-C/SIGTERM end it with
cleanup and keep every finished point; `resume` runs only the points not yet stored.
Progress goes to a callback (the CLI draws it); nothing here prints.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from netobs.errors import Interrupted, UsageError
from netobs.runner import failed_result, open_rig, run_point
from netobs.spec import SweepSpec, stored_sweep
from netobs.store import STORAGE_ERRNOS, ResultsDir, StoreError, now_iso, storage_error, store_health

Progress = Callable[..., None]


@dataclass
class SweepSummary:
    path: Path
    planned: int
    skipped: int = 0  # already stored (resume)
    done: int = 0
    failed: int = 0
    wall_s: float = 0.0
    window_s: float = 0.0  # sum of the measured windows
    interrupted: bool = False
    recovered: list[str] = field(default_factory=list)   # stored from points/<id>/result.json, not re-measured
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def overhead_s(self) -> float:
        return max(0.0, self.wall_s - self.window_s)

    @property
    def overhead_pct(self) -> float | None:
        return 100.0 * self.overhead_s / self.window_s if self.window_s else None


def reopen(path: Path, refused: str, no_sweep_fix: str, foreign_fix: str) -> ResultsDir:
    """A directory a sweep of this host wrote, reopened to write more into it (`--resume`,
    `netobs refine`) under its one-writer lock; `refused` the error's first words, the fixes for
    a directory with no sweep and for one that an import or another source wrote."""
    if not (path / "manifest.json").exists():
        raise UsageError(refused, "it holds no sweep (no manifest.json)", no_sweep_fix)
    store = ResultsDir.open_for_resume(path)
    try:
        check_swept(store.manifest, refused, foreign_fix)
    except UsageError:
        store.close()
        raise
    return store


def check_swept(manifest: dict, refused: str, foreign_fix: str) -> None:
    """The manifest is a sweep's of this host (not an import's): else UsageError(refused, ...)."""
    source = manifest.get("source")
    if source not in (None, "netobs"):
        raise UsageError(refused, f"its results come from `netobs {source}`, not a sweep on this host", foreign_fix)


def open_store(sweep: SweepSpec, out: str, resume: bool, force: bool) -> ResultsDir:
    """Create the results directory, or reopen it for --resume after checking that every
    parameter of the sweep is what the directory was started with. Either way this process
    is then its one writer (`store.DirLock`) until `store.close()` or its end."""
    path = Path(out)
    events = sweep.perf_events
    if resume:
        store = reopen(path, f"nothing to resume in {path}",
                       f"the -o path of an earlier sweep, or without --resume to start one in {path}",
                       "a new -o directory for the sweep")
        try:
            before, now = stored_sweep(store.manifest).to_dict(), sweep.to_dict()
            differs = [name for name, value in now.items() if before.get(name) != value]
            if differs:
                raise UsageError(f"--resume with other settings than {path} was started with ({', '.join(differs)})",
                                 fix="the same options as the first run (or none: --resume reuses them), or a new -o directory")
            store.update_manifest(state="running",
                                  resumed=(store.manifest.get("resumed") or []) + [{"at": now_iso(), "command": sys.argv}])
        except BaseException:
            store.close()
            raise
        return store
    manifest = {
        "source": "netobs", "finished": None, "state": "running", "matrix": sweep.to_dict(),
    }
    server_events = events if sweep.perf_server else []
    return ResultsDir.create(path, manifest, events, force=force, server_events=server_events)


def _storage_fault(store: ResultsDir, exc: BaseException) -> StoreError | None:
    """A point's failure that is the results directory's (full, read-only, removed), not the
    point's: the sweep ends there instead of recording failed points it did not measure."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        return storage_error(store.path, exc)
    return store_health(store.path)


def run_sweep(sweep: SweepSpec, store: ResultsDir, progress: Progress = lambda *a, **k: None,
              points: list | None = None) -> SweepSummary:
    """Run every point not yet in `store`, counted and traced as `sweep` says. A storage
    fault ends the sweep with a StoreError; the manifest then says `failed` and why.
    `points`: these RunSpecs instead of the matrix's (`netobs refine`'s planned points, run into
    the directory the sweep made, in their order)."""
    from netobs import hostinfo, topology
    from netobs.interrupt import raise_if_interrupted, signals_as_interrupt

    points = sweep.points() if points is None else list(points)
    recovered = store.recover_points({p.key for p in points})
    done = store.done_keys()
    todo = [p for p in points if p.key not in done]
    summary = SweepSummary(path=store.path, planned=len(points), skipped=len(points) - len(todo),
                           recovered=recovered)
    started = time.monotonic()
    progress("begin", total=len(todo), skipped=summary.skipped, recovered=recovered)
    unsupported: dict[str, str] = dict((store.manifest.get("perf") or {}).get("unsupported") or {})
    fault: StoreError | None = None
    try:
        host = hostinfo.host_facts()
        store.update_manifest(host=host, tools={"perf": host["perf_version"], "bcc": host["bcc_version"]})
        with contextlib.ExitStack() as stack:
            stack.enter_context(signals_as_interrupt())
            # (opening a topology first removes what killed netobs runs left behind)
            topo = stack.enter_context(topology.open_topology(sweep.topology, **topology.options_of(sweep)))
            if topo.leftovers_removed:
                progress("cleaned", removed=list(topo.leftovers_removed))
            if topo.peer_host is not None:   # the second host: the server's, over ssh
                store.update_manifest(remote=topo.peer_host)
            rig = open_rig(stack, sweep, topo)
            store.update_manifest(topology=topo.facts(), probe_plan=rig.plan("trace"), profile_plan=rig.plan("profile"))
            if sweep.trace and not sweep.profile:   # the bench's per-event figure stands in for the profile's
                from netobs import observer_cost
                store.update_manifest(observer_cost=observer_cost.entry(sweep.topology))
            for index, spec in enumerate(todo):
                raise_if_interrupted()   # one lost in a fork of the last point (pyroute2, subprocess)
                progress("point", index=index, spec=spec)
                files = store.point(spec.point_id)
                try:
                    result = run_point(spec, rig, files)
                except (Interrupted, KeyboardInterrupt):
                    raise
                except Exception as exc:  # noqa: BLE001 - a failed point (or a bug in one) must not lose the sweep
                    fault = _storage_fault(store, exc)
                    if fault is not None:
                        raise fault from None
                    result = failed_result(spec, topo.kind, exc)
                store.add_point(result)
                if result["status"] == "ok":
                    summary.done += 1
                    summary.window_s += result.get("window_s") or 0.0
                    for ev, rec in ((result.get("perf") or {}).get("events") or {}).items():
                        if rec.get("value") is None and rec.get("reason"):
                            unsupported.setdefault(ev, rec["reason"])
                else:
                    summary.failed += 1
                    summary.failures.append((spec.point_id, result["error"]))
                progress("done", index=index, spec=spec, result=result)
        # the topology is torn down here: record what the sysctls are after restoring them
        store.update_manifest(topology=topo.facts())
    except StoreError as exc:
        fault = exc
        raise
    except (Interrupted, KeyboardInterrupt):
        summary.interrupted = True
        raise
    finally:
        summary.wall_s = time.monotonic() - started
        final = dict(
            finished=now_iso(),
            perf={"enabled": sweep.perf, "unsupported": unsupported},
            summary={"points": summary.planned, "done_now": summary.done, "failed_now": summary.failed,
                     "skipped_already_stored": summary.skipped, "recovered_from_points": recovered,
                     "wall_s": round(summary.wall_s, 3), "measured_windows_s": round(summary.window_s, 3),
                     "overhead_pct": None if summary.overhead_pct is None else round(summary.overhead_pct, 2)},
        )
        if fault is not None:
            unwritten = store.record_fault(fault, **final)
            if unwritten:
                fault.cause = f"{fault.cause}; manifest.json not updated either ({unwritten}), it still says running"
        else:
            try:
                store.update_manifest(state="interrupted" if summary.interrupted else "complete", **final)
            except StoreError as exc:
                if not summary.interrupted:
                    unwritten = store.record_fault(exc, **final)
                    if unwritten:
                        exc.cause = f"{exc.cause}; manifest.json says running"
                    progress("end", summary=summary)
                    raise exc from None
        progress("end", summary=summary)
    return summary
