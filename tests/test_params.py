"""The parameter table (netobs.params) and everything derived from it: a parameter added to a
copy of the table reaches every place; the C structs and the table agree; the worker's
command line round-trips; `netobs run --json` echoes every parameter it was given."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner

from netobs import native, params, strategies
from netobs.cli._common import table_options
from netobs.errors import UsageError
from netobs.params import PARAMS, Flag, Float, Int, Param, Sweep, Table, Use
from netobs.spec import spec_classes, stored_sweep

KNOB = Param("probe_knob", Int(1, 9), 3, "A throwaway knob.", what="probe knob", run=True, point=True,
             sweep=Sweep(), client=Use("probe_knob_c"), server=Use("probe_knob_c", default=4))
COPY = Table([*PARAMS, KNOB])
RunSpec2, SweepSpec2 = spec_classes(COPY)


def _cli(command: str, args: list[str]) -> dict:
    """Parse `args` with the click options `netobs <command>` gets from COPY; the values."""
    got = {}

    @click.command()
    @table_options(command, COPY)
    def cmd(**options):
        got.update(COPY.from_cli(command, options))

    result = CliRunner().invoke(cmd, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return got


def test_a_new_parameter_reaches_every_derived_place():
    # the command lines: an option of `netobs run` and of `netobs sweep`, read as the kind says
    run_values = _cli("run", ["--strategy", "one_copy", "--probe-knob", "7"])
    assert run_values["probe_knob"] == 7
    sweep_values = _cli("sweep", ["--sizes", "4K", "--threads", "1", "--probe-knob", "8"])
    assert sweep_values["probe_knob"] == 8
    assert _cli("run", ["--strategy", "one_copy"])["probe_knob"] == 3      # its default
    # the spec: a field, checked with the one message style
    spec = RunSpec2(**run_values)
    assert spec.probe_knob == 7
    with pytest.raises(UsageError) as exc:
        RunSpec2("one_copy", probe_knob=10)
    assert exc.value.message == "probe knob 10 is out of range; try --probe-knob between 1 and 9"
    with pytest.raises(UsageError, match="bad probe knob 'x'; try --probe-knob as a whole number"):
        COPY.from_cli("run", {**{k: None for k in run_values}, "strategy": "one_copy", "probe_knob": "x"})
    # every point of a sweep gets it; the manifest's matrix holds it and reads it back
    sweep = SweepSpec2(**sweep_values)
    assert {p.probe_knob for p in sweep.points()} == {8}
    assert sweep.to_dict()["probe_knob"] == 8
    assert stored_sweep({"matrix": json.loads(json.dumps(sweep.to_dict()))}, SweepSpec2) == sweep
    # the point's dict form (each result's "params", the --json echo) and back
    echo = json.loads(json.dumps(spec.to_dict()))
    assert echo["probe_knob"] == 7 and RunSpec2.from_dict(echo) == spec
    # the worker command lines: from the point, through argv, into the worker's argparse
    parser = COPY.worker_parser("worker", "test")
    for role, values in (("client", {"host": "127.0.0.1"}), ("server", {"bind": "127.0.0.1"})):
        given = {**COPY.worker_values(role, spec), **values}
        assert given["probe_knob"] == 7
        argv = COPY.worker_argv(role, given)
        assert argv[argv.index("--probe-knob") + 1] == "7"
        parsed = vars(parser.parse_args(argv))
        assert parsed["probe_knob"] == 7
        # the worker's Config: a field with the role's default, filled into the C struct
        config = COPY.dataclass(f"{role}Config", COPY.config_fields(role), rules=COPY.config_rules(role))
        cfg = config(**COPY.config_values(role, parsed))
        assert cfg.probe_knob == 7 and config().probe_knob == (3 if role == "client" else 4)
        c = SimpleNamespace()
        COPY.fill(role, c, cfg)
        assert c.probe_knob_c == 7
    # the real table does not have it
    assert "probe_knob" not in PARAMS.by_name


def test_every_c_config_field_is_declared_and_exists():
    _workers = pytest.importorskip("netobs._workers")
    for role in params.ROLES:
        struct = {name for name, _ in _workers.ffi.typeof(f"struct nob_{role}_config").fields}
        declared = [use.field for _, use in PARAMS.for_role(role) if use.field is not None]
        assert len(declared) == len(set(declared)), declared
        # the pinning list and its length are netobs.native's to fill (whether declared or not)
        assert set(declared) | set(native.FILLED_HERE) == struct, (role, (set(declared) | set(native.FILLED_HERE)) ^ struct)


def test_the_limits_are_the_c_workers():
    _workers = pytest.importorskip("netobs._workers")
    lib = _workers.lib
    assert (params.MIN_MSG, params.MAX_MSG, params.MAX_THREADS, params.MAX_CONNECTIONS, params.ADDR_LEN) == \
        (lib.NOB_MIN_MSG, lib.NOB_MAX_MSG, lib.NOB_MAX_THREADS, lib.NOB_MAX_CONNS, lib.NOB_ADDR_LEN)
    assert {s.name: s.code for s in strategies.STRATEGIES} == \
        {s.name: getattr(lib, f"NOB_{s.name.upper()}") for s in strategies.STRATEGIES}


def _other_value(p: Param, use: Use):
    """A value of the role's parameter that is not its default."""
    kind = use.kind or p.kind
    if isinstance(kind, Flag):
        return True
    if isinstance(kind, Float):
        return kind.hi / 3
    if isinstance(kind, Int):
        return (kind.hi if kind.hi is not None else (kind.lo or 0) + 5)
    return {"strategy": "zero_copy", "host": "127.0.0.2", "bind": "::1", "cpus": (1, 0)}.get(p.name, "/tmp/some-fifo")


@pytest.mark.parametrize("role", params.ROLES)
def test_worker_command_line_round_trips_every_parameter(role):
    values = {p.name: _other_value(p, use) for p, use in PARAMS.for_role(role) if use.flag}
    argv = PARAMS.worker_argv(role, values)
    assert argv[0] == params.WORKER_COMMANDS[role]
    parsed = vars(PARAMS.worker_parser("worker", "test").parse_args(argv))
    assert {k: parsed[k] for k in values} == values
    with pytest.raises(ValueError, match="takes no"):
        PARAMS.worker_argv(role, {"no_such_parameter": 1})


def test_old_spellings_still_parse_and_are_not_shown():
    got = _cli("run", ["--impl", "zero_copy"])
    assert got["strategy"] == "zero_copy"
    assert _cli("sweep", ["--impls", "one_copy"])["strategies"] == ("one_copy",)
    parsed = vars(PARAMS.worker_parser("worker", "test").parse_args(["send", "--impl", "two_copy"]))
    assert parsed["strategy"] == "two_copy"
    from netobs.cli.run import command as run_command
    from netobs.cli.sweep import command as sweep_command
    assert "--impl" not in CliRunner().invoke(run_command, ["--help"]).output
    help_text = CliRunner().invoke(sweep_command, ["--help"]).output
    assert "--impls" not in help_text and "--strategies" in help_text


def test_the_commands_options_are_the_tables():
    from netobs.cli.run import command as run_command
    from netobs.cli.sweep import command as sweep_command
    for name, command, own in (("run", run_command, {"keep", "as_json"}),
                               ("sweep", sweep_command, {"out", "resume", "force"})):
        names = [p.name for p in command.params if p.name not in own | {"help"} and not p.hidden]
        table = [PARAMS.option_name(p, name) for p in PARAMS.for_command(name)]
        assert names == table
        # a shorthand (--recv-copy) fills its parameter's own option, hidden from --help
        hidden = [(p.opts, p.name, p.flag_value) for p in command.params if p.hidden]
        assert hidden == [(["--recv-copy"], "recv", "fields")]
        assert "--recv-copy" not in CliRunner().invoke(command, ["--help"]).output


def test_recv_copy_is_a_spelling_of_recv_fields_on_run_sweep_and_the_worker():
    assert "recv_copy" not in PARAMS.by_name
    assert _cli("run", ["--strategy", "one_copy", "--recv-copy"])["recv"] == "fields"
    assert _cli("sweep", ["--recv-copy"])["recv"] == "fields"
    assert _cli("sweep", [])["recv"] == "copy"
    parsed = vars(PARAMS.worker_parser("worker", "test").parse_args(["serve", "--recv-copy", "--msg-size", "1K"]))
    assert parsed["recv"] == "fields" and "recv_copy" not in parsed


def test_sweep_takes_lists_of_fields_and_nodelay():
    got = _cli("sweep", ["--fields", "1,8", "--nodelay", "off,on"])
    assert got["fields"] == (1, 8) and got["nodelay"] == (False, True)
    assert _cli("sweep", [])["fields"] == (8,) and _cli("sweep", [])["nodelay"] == (False,)
    assert _cli("sweep", ["--nodelay"])["nodelay"] == (True,)          # the flag alone, as before: on
    assert _cli("sweep", ["--nodelay", "0,1", "--fields", "3"])["nodelay"] == (False, True)
    with pytest.raises(UsageError, match="bad TCP_NODELAY 'sometimes'; try --nodelay as off or on"):
        _cli("sweep", ["--nodelay", "sometimes"])
    with pytest.raises(UsageError, match="field count 65 is out of range; try --fields between 1 and 64"):
        SweepSpec2(**_cli("sweep", ["--fields", "1,65"]))
    with pytest.raises(UsageError, match="duplicate TCP_NODELAY settings"):
        SweepSpec2(nodelay=(True, True))
    assert _cli("run", ["--strategy", "one_copy", "--nodelay", "--fields", "1"])["nodelay"] is True


@pytest.mark.parametrize("p", [p for p in PARAMS if isinstance(p.kind, (Int, Float)) and p.kind.hi is not None],
                         ids=lambda p: p.name)
def test_out_of_range_says_what_and_the_flag(p):
    bad = p.kind.hi + 1
    with pytest.raises(UsageError) as exc:
        p.check(bad)
    assert exc.value.message.startswith(f"{p.label} ") and f"; try {p.flag} " in exc.value.message
    assert exc.value.exit_code == 2


def test_server_verify_needs_the_message_size():
    from netobs.native import ServerConfig
    with pytest.raises(UsageError, match="--recv fields needs the message size; try --msg-size too"):
        ServerConfig(recv="fields")
    assert ServerConfig(verify=True, msg_size=1024).verify


@pytest.mark.integration
def test_run_json_echoes_every_parameter_it_was_given(tmp_path):
    """For real, unprivileged: loopback, no perf (root and perf are test_sweep's)."""
    pytest.importorskip("netobs._workers")
    given = {"strategy": "one_copy", "msg_size": 4096, "threads": 2, "duration": 0.3, "warmup": 0.1,
             "topology": "loopback", "recv": "fields", "verify": True, "perf": False}
    args = ["--strategy", "one_copy", "--msg-size", "4K", "--threads", "2", "--duration", "0.3",
            "--warmup", "0.1", "--topology", "loopback", "--recv-copy", "--verify", "--no-perf", "--json"]
    proc = subprocess.run([sys.executable, "-m", "netobs", "run", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert set(r["params"]) == {p.name for p in PARAMS if p.point}
    assert {k: r["params"][k] for k in given} == given
    assert r["params"]["events"] == list(params.DEFAULT_EVENTS) and r["params"]["mtu"] is None
    assert r["strategy"] == "one_copy" and "impl" not in r
    assert r["bytes_sent_total"] == r["bytes_received"] > 0
