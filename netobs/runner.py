"""One point end to end (DESIGN.md): the server side of the topology (`server_side()`: a local
process, or a remote end over ssh) and the client here, the observers of the registry
(netobs.observers) on the processes here -> one result dict, its files in the point's
directory (the store's netobs.store.PointFiles).

What the point counts comes from its RunSpec; the workers' command lines are the parameter
table's (`PARAMS.worker_argv`). The runner raises on what makes the point meaningless (a worker
that failed or hung) with the worker's own message; the sweep records that as a failed point
and goes on.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
from dataclasses import dataclass

from netobs import native
from netobs import observers as observers_mod
from netobs.errors import NetobsError
from netobs.figures import POINT_REPORTS, POINT_SPEC, ROLES
from netobs.interrupt import raise_if_interrupted
from netobs.params import PARAMS
from netobs.serverside import WORKER, PointFailed, budget_s, tail_of
from netobs.spec import RunSpec

__all__ = ["Rig", "open_rig", "run_point", "point_result", "failed_result", "PointFailed", "WORKER"]


@dataclass
class Rig:
    """What every point of a run shares: the topology, its server side, the observers here."""
    topology: object
    server: object
    observers: list

    def plan(self, name: str) -> dict | None:
        """The plan of the observer `name` (the tracer's probes, the profiler's event), if open."""
        return next((getattr(o, "plan", None) for o in self.observers if o.name == name), None)


def open_rig(stack: contextlib.ExitStack, spec, topology, given: dict | None = None) -> Rig:
    """The server side and the observers a run's points need, opened once for all of them on
    `stack` (the tracer and profiler compile their BPF programs here; `given`: {observer
    name: its instrument already open}, e.g. the bench's tracer on a plan of its own)."""
    server = topology.server_side()
    stack.callback(server.close)
    roles = ROLES if server.local else ("client",)
    return Rig(topology, server, observers_mod.open_all(stack, spec, roles, topology, given=given))


def run_point(spec: RunSpec, rig: Rig, files) -> dict:
    """Measure one point on `rig`; its files in `files` (netobs.store.PointFiles)."""
    server, observers = rig.server, rig.observers
    client = None
    start_r, start_w = os.pipe()   # the client's `go`
    try:
        for obs in observers:
            obs.point = spec
            obs.begin(files)
        server.spawn(spec, rig.topology.server_addr, files, observers)
        # The client starts (Python, perf) while the server comes up, then waits for `go`:
        # start-up overlaps, and the observers are on both PIDs before the first byte is sent.
        client, wrapped = _spawn_client(spec, rig, files, start_r)
        os.close(start_r)
        start_r = None
        port = server.ready()   # (the port comes with `go`: with --port 0 only the server knows it)
        for obs in observers:
            obs.attach({"client": client.pid, **server.pids()}, wrapped + server.wrapped)
        with contextlib.suppress(BrokenPipeError):   # a client already dead: its exit status tells why
            os.write(start_w, f"go {port}\n".encode())
        raise_if_interrupted()   # a Ctrl-C lost while the workers were forked ends the point now
        client_out = _finish(client, budget_s(spec))
        reports = {"server": server.finish(client_failed=client.returncode != 0)}
        if client.returncode != 0:
            raise PointFailed("the client failed", cause=tail_of(files.read(files.stderr("client")))
                              or f"exit status {client.returncode}")
        for obs in observers:
            obs.end()
    finally:
        for fd in (start_r, start_w):   # a client still waiting for `go` gives up
            if fd is not None:
                os.close(fd)
        for part in (server, *observers):
            part.cleanup()
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
    reports["client"] = _report(client_out, files)
    for role in ROLES:
        files.write_json(files.report(role), reports[role])
    return _observed(spec, point_result(spec, rig.topology.kind, reports), rig, reports, files)


def _spawn_client(spec, rig: Rig, files, start_r: int) -> tuple[subprocess.Popen, tuple[str, ...]]:
    values = {**PARAMS.worker_values("client", spec), "host": rig.topology.server_addr, "start_fd": start_r}
    for obs in rig.observers:
        values.update(obs.worker_values("client"))
    argv = bare = WORKER + PARAMS.worker_argv("client", values)
    for obs in rig.observers:
        argv = obs.wrap("client", argv)
    with files.create(files.stderr("client")) as err:
        proc = rig.topology.spawn("client", argv, stdout=subprocess.PIPE, stderr=err, pass_fds=(start_r,))
    return proc, (("client",) if argv != bare else ())


def _finish(proc: subprocess.Popen, timeout: float) -> bytes:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise PointFailed("the client did not finish", cause=f"still running {timeout:g} s after it should have ended") from None
    return out


def _report(out: bytes, files) -> dict:
    text = out.decode(errors="replace").strip()
    try:
        return json.loads(text.splitlines()[-1]) if text else {}
    except ValueError:
        raise PointFailed("the client printed no result",
                          cause=tail_of(files.read(files.stderr("client"))) or text[-200:]) from None


def _observed(spec: RunSpec, result: dict, rig: Rig, reports: dict, files) -> dict:
    """The observers' figures (the far end's folded in), kept in the result and the files."""
    far = rig.server.figures()
    for obs in rig.observers:
        section = obs.collect(reports, files)
        if far is not None and obs.wanted(spec, "server"):
            section = obs.merge(section, far["observed"].get(obs.name), far["skipped"].get(obs.name), files)
        result.update(section)
        if obs.section_file and section.get(obs.name) is not None:
            files.write_json(obs.section_file, section[obs.name])
    result.update((far or {}).get("result") or {})
    if result["verify_errors"]:
        raise PointFailed("verification failed", cause=f"{result['verify_errors']} corrupted messages")
    files.write_json(files.RESULT, result)
    return result


def point_result(spec: RunSpec, kind: str, reports: dict[str, dict]) -> dict:
    """The point result's own part: the spec's fields and the workers' reports, where
    netobs.figures declares them (POINT_SPEC, POINT_REPORTS)."""
    result = {key: getattr(spec, field) for key, field in POINT_SPEC}
    result.update(status="ok", topology=kind)
    for key, role, field in POINT_REPORTS:
        result[key] = (reports[role] or {}).get(field)
    for group in native.counter_groups():   # the client's counter objects, named by the C header
        result[group] = (reports["client"] or {}).get(group)
    result["verify_errors"] = sum((reports[r] or {}).get("verify_errors") or 0 for r in ROLES)
    result["pids"] = {r: (reports[r] or {}).get("pid") for r in ROLES}
    result["params"] = spec.to_dict()   # every parameter of the point (iperf3 -J echoes its test's)
    return result


def failed_result(spec: RunSpec, topology_kind: str, error: Exception) -> dict:
    """The row a failed point leaves in the store."""
    msg = error.message if isinstance(error, NetobsError) else f"{type(error).__name__}: {error}"
    return {"strategy": spec.strategy, "msg_size": spec.msg_size, "threads": spec.threads, "repeat": spec.repeat,
            "status": "failed", "error": msg, "topology": topology_kind,
            "duration_s": spec.duration, "warmup_s": spec.warmup, "params": spec.to_dict()}   # (its shape: the key)
