"""Every run parameter, declared once (neper's define_all_flags.c is the model).

A `Param` says what a parameter is (kind, limits or choices, default, help), which commands
take it (`netobs run`; `netobs sweep`, and whether the sweep takes a list of it, a matrix
axis such as `--sizes 4K,64K`), whether it is part of a point (RunSpec) and how it reaches
the C workers: the worker process's flag (`python -m netobs.workerproc {send,serve}`) and the
`nob_client_config` / `nob_server_config` field it fills. From the one table, `PARAMS`:

- RunSpec, SweepSpec (netobs.spec), ClientConfig, ServerConfig (netobs.native): their fields,
  defaults and validation (`Table.dataclass`), and their dict form (`Declared.to_dict`): the
  manifest's matrix, what `--resume` must match and reads back, and the echo of every
  parameter in each point result (`netobs run --json`);
- the click options of `netobs run` and `netobs sweep` (netobs.cli._common.table_options) and
  the reading of their text (`Table.from_cli`);
- the runner's worker argv (`Table.worker_argv`) and the worker's argparse
  (`Table.worker_parser`): one round trip;
- the cffi config fill (`Table.fill`), a loop over the table.

To add a parameter: a `Param` here; where the workers take it, its field in
native/netobs_workers.h (tests/test_params.py checks the two agree); then its use (the C
code, or the runner). Every error names the parameter the way its command line does:
`<what> <value> is out of range; try <flag> between <lo> and <hi>`.
"""
from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import itertools
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from netobs import placement, strategies
from netobs.errors import UsageError
from netobs.figures import ROLES, STUDY_FIELDS
from netobs.jsonsafe import jsonable
from netobs.perf import DEFAULT_EVENTS, validate_events

# Limits the C workers check again (NOB_* in native/netobs_workers.h; a test holds them equal).
MIN_MSG, MAX_MSG = 8, 64 << 20
MAX_THREADS = 256
MAX_CONNECTIONS = 1024
ADDR_LEN = 64
MAX_DURATION = 3600.0
MAX_REPEATS = 100



@dataclass(frozen=True)
class TopologyKind:
    """A topology kind, declared once: everything that asks "which topology" reads this."""
    name: str
    cls: str                     # "module:Class" in netobs.topology (imported when opened)
    params: tuple[str, ...]      # its own parameters (open_topology's keywords, from the spec)
    needs_root: str | None       # what root is needed for (None: it runs unprivileged)
    shares_kernel: bool | None   # the receiver runs on this kernel (None: the run finds out)
    required: tuple[str, ...] = ()   # own parameters it cannot run without; giving one implies it


TOPOLOGY_KINDS: tuple[TopologyKind, ...] = (
    TopologyKind("netns", "netobs.topology.netns:NetnsTopology", ("subnet", "mtu"),
                 "network namespaces", True),
    TopologyKind("loopback", "netobs.topology.loopback:LoopbackTopology", (), None, True),
    TopologyKind("remote", "netobs.topology.remote:RemoteTopology",
                 ("remote", "remote_addr", "remote_netobs", "ssh_config"), None, None, required=("remote",)),
)
KIND_BY_NAME = {k.name: k for k in TOPOLOGY_KINDS}
TOPOLOGIES = tuple(k.name for k in TOPOLOGY_KINDS)
# The server's receive modes, in their C codes' order (NOB_RECV_* in native/netobs_workers.h):
# copy: recv() into one buffer (the kernel's receive copy); fields: that, then each message
# copied out into its fields (the receive-side mirror of two_copy; --recv-copy before);
# trunc: recv(MSG_TRUNC), TCP discards the bytes without copying them; zerocopy:
# TCP_ZEROCOPY_RECEIVE maps whole pages, the rest is copied (both counted); slow: a receiver
# that hardly reads (NOB_SLOW_READ bytes, then a NOB_SLOW_SLEEP_US sleep), so the sender blocks
# on a full send buffer (a planted cause).
RECV_MODES = ("copy", "fields", "trunc", "zerocopy", "slow")
MAX_FIELDS = 64
MAX_URING_DEPTH = 256
ORDERS = ("sequential", "interleaved", "random")
DEFAULT_SUBNET = "10.0.0.0/24"  # the study's: server 10.0.0.1, client 10.0.0.2

# The study's matrix.
STUDY_SIZES = (1024, 4096, 16384, 65536)
STUDY_THREADS = (1, 2, 4, 8)
STUDY_DURATION = 10.0
# Per point before the measured window. Short: on veth/loopback TCP reaches steady state in
# milliseconds, and 48 long warm-ups would dominate a sweep's overhead beyond its windows.
SWEEP_WARMUP = 0.25

# Each worker role's subcommand of `python -m netobs.workerproc`, and what it does.
WORKER_COMMANDS = {"client": "send", "server": "serve"}
WORKER_HELP = {"client": "send: N threads, one connection each, print stats",
               "server": "receive: accept N connections, count bytes, print stats"}


class _Unset:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


REQUIRED = _Unset("REQUIRED")   # a default that says: the command line must give it
INHERIT = _Unset("INHERIT")     # a role's or the sweep's default that is the parameter's own


# ---- kinds: how a value is read from text, checked, written back and handed to C ------------

class Kind:
    metavar = "VALUE"

    def parse(self, text: str, what: str, flag: str):
        """Command-line text -> a value (its type only; `check` holds the limits)."""
        return text

    def check(self, value, what: str, flag: str):
        """A value -> the value, normalised; UsageError naming `flag` when it is not allowed."""
        return value

    def text(self, value) -> str:
        """The value as command-line text: parse(text(v)) == v."""
        return str(value)

    def to_c(self, value):
        return value


@dataclass(frozen=True)
class Int(Kind):
    lo: int | None = None
    hi: int | None = None
    off: tuple[int, str] | None = None   # a value outside lo..hi that means something: (0, "auto")
    unit: str = ""
    metavar = "N"

    def span(self) -> str:
        u = f" {self.unit}" if self.unit else ""
        if self.lo is not None and self.hi is not None:
            text = f"between {self.lo} and {self.hi}{u}"
        elif self.lo is not None:
            text = f"of {self.lo}{u} or more"
        else:
            text = f"of at most {self.hi}{u}" if self.hi is not None else "a whole number"
        if self.hi is not None and self.hi >= 1 << 20 and self.hi % (1 << 20) == 0:
            text += f" ({self.hi >> 20} MiB)"
        return text + (f" ({self.off[0]}: {self.off[1]})" if self.off else "")

    def parse(self, text, what, flag):
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"bad {what} {text!r}", fix=f"{flag} as a whole number, {self.span()}") from None

    def check(self, value, what, flag):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{what} {value!r} is not a whole number", fix=f"{flag} {self.span()}")
        if self.off is not None and value == self.off[0]:
            return value
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise UsageError(f"{what} {value} is out of range", fix=f"{flag} {self.span()}")
        return value

    def to_c(self, value):
        return int(value)


_SUFFIX = {"k": 1 << 10, "m": 1 << 20}


def parse_size(text: str) -> int:
    """'65536', '64K', '64KiB', '1M' -> bytes (ValueError otherwise)."""
    t = str(text).strip().lower().removesuffix("b").removesuffix("i")
    mult = _SUFFIX.get(t[-1:], 1)
    return int(t[:-1] if mult != 1 else t) * mult


@dataclass(frozen=True)
class Size(Int):
    unit: str = "bytes"
    metavar = "BYTES"

    def parse(self, text, what, flag):
        try:
            return parse_size(text)
        except ValueError:
            raise UsageError(f"bad {what} {text!r}", fix=f"{flag} in bytes, e.g. 65536 or 64K") from None


@dataclass(frozen=True)
class Float(Kind):
    lo: float = 0.0
    hi: float = MAX_DURATION
    lo_open: bool = False   # lo itself is not allowed
    metavar = "SECONDS"

    def span(self) -> str:
        return (f"greater than {self.lo:g} and at most {self.hi:g} s" if self.lo_open
                else f"between {self.lo:g} and {self.hi:g} s")

    def parse(self, text, what, flag):
        try:
            return float(text)
        except ValueError:
            raise UsageError(f"bad {what} {text!r}", fix=f"{flag} in seconds, {self.span()}") from None

    def check(self, value, what, flag):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{what} {value!r} is not a number", fix=f"{flag} in seconds, {self.span()}")
        value = float(value)
        inside = (self.lo < value if self.lo_open else self.lo <= value) and value <= self.hi
        if not inside:   # (NaN is never inside)
            raise UsageError(f"{what} {value:g} s is out of range", fix=f"{flag} {self.span()}")
        return value

    def text(self, value) -> str:
        return repr(float(value))

    def to_c(self, value):
        return float(value)


@dataclass(frozen=True)
class Flag(Kind):
    """On or off; on the command line present or absent (`--perf/--no-perf` when on by default).
    As a sweep's axis its values are words: `--nodelay off,on` (also 0/1, no/yes, false/true)."""

    WORDS = {"off": False, "on": True, "0": False, "1": True, "no": False, "yes": True,
             "false": False, "true": True}
    metavar = "off|on"

    def parse(self, text, what, flag):
        word = str(text).strip().lower()
        if word not in self.WORDS:
            raise UsageError(f"bad {what} {text!r}", fix=f"{flag} as off or on (0/1 too), e.g. {flag} off,on")
        return self.WORDS[word]

    def text(self, value) -> str:
        return "on" if value else "off"

    def check(self, value, what, flag):
        if not isinstance(value, bool):
            raise UsageError(f"{what} must be on or off, not {value!r}", fix=f"{flag} given or left out")
        return value

    def to_c(self, value):
        return int(value)


@dataclass(frozen=True)
class Choice(Kind):
    names: tuple[str, ...] = ()
    metavar = "NAME"

    def check(self, value, what, flag):
        if not isinstance(value, str) or value not in self.names:
            raise UsageError(f"unknown {what} {value!r}", fix=f"{flag} one of {', '.join(self.names)}")
        return value


@dataclass(frozen=True)
class Text(Kind):
    metavar = "TEXT"

    def check(self, value, what, flag):
        if not isinstance(value, str) or not value:
            raise UsageError(f"bad {what} {value!r}", fix=f"{flag} with a value")
        return value


def parse_subnet(subnet: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str, str]:
    """A veth subnet -> (network, server address, client address): its first two hosts."""
    try:
        net = ipaddress.ip_network(subnet, strict=True)
    except ValueError as exc:
        raise UsageError(f"bad subnet {subnet!r}", str(exc), "a network address like 10.0.0.0/24") from None
    hosts = list(itertools.islice(net.hosts(), 2))
    if len(hosts) < 2:
        raise UsageError(f"subnet {subnet} is too small", "it needs two host addresses", "a /30 or larger")
    return net, str(hosts[0]), str(hosts[1])


@dataclass(frozen=True)
class Subnet(Text):
    """A veth subnet with room for the server and the client (checked before anything is made)."""

    metavar = "CIDR"

    def check(self, value, what, flag):
        parse_subnet(super().check(value, what, flag))
        return value


@dataclass(frozen=True)
class Host(Kind):
    """An address for C: numeric, so names are resolved here, once."""

    metavar = "ADDRESS"

    def check(self, value, what, flag):
        if not isinstance(value, str) or not value or len(value) >= ADDR_LEN:
            raise UsageError(f"bad {what} {value!r}", fix=f"{flag} with an IPv4/IPv6 address such as 127.0.0.1")
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(family, value)
                return value
            except OSError:
                pass
        try:
            infos = socket.getaddrinfo(value, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UsageError(f"cannot resolve {what} {value!r}", exc.strerror or str(exc),
                             f"{flag} with a numeric address such as 127.0.0.1") from None
        return infos[0][4][0]

    def to_c(self, value):
        return value.encode()


@dataclass(frozen=True)
class Events(Kind):
    """perf event names, comma-separated on the command line (checked by netobs.perf)."""

    metavar = "EVENTS"

    def parse(self, text, what, flag):
        return self.check(text, what, flag)

    def check(self, value, what, flag):
        return tuple(validate_events(value if isinstance(value, str) else list(value)))

    def text(self, value) -> str:
        return ",".join(value)


@dataclass(frozen=True)
class CpuList(Kind):
    """CPU ids as the kernel writes them (`0,2-3`): a tuple, in the order given (whether this
    host has them is the placement rule's to check, with the spec)."""

    metavar = "LIST"

    def parse(self, text, what, flag):
        try:
            return self.check(placement.parse_list(text), what, flag)
        except ValueError:
            raise UsageError(f"bad {what} {text!r}", fix=f"{flag} as CPU ids like 0,2-3") from None

    def check(self, value, what, flag):
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise UsageError(f"bad {what} {value!r}", fix=f"{flag} as CPU ids like 0,2-3")
        cpus = tuple(value)
        for c in cpus:
            if isinstance(c, bool) or not isinstance(c, int):
                raise UsageError(f"bad CPU list {cpus!r}",
                                 fix=f"{flag} as CPU ids like 0,2-3")
            if not 0 <= c < placement.MAX_CPUS:
                raise UsageError(f"CPU {c!r} in {what} is not an id between 0 and {placement.MAX_CPUS - 1}",
                                 fix=f"{flag} with CPU ids of this host (`nproc`, `lscpu`)")
        if len(set(cpus)) != len(cpus):
            raise UsageError(f"a CPU is named twice in {what} {placement.list_text(cpus)}", fix=f"{flag} with each CPU once")
        return cpus

    def text(self, value) -> str:
        return placement.list_text(value)


# ---- the declaration ------------------------------------------------------------------------

@dataclass(frozen=True)
class Sweep:
    """How `netobs sweep` takes a parameter: one value for every point, or a matrix axis."""

    axis: str | None = None   # the SweepSpec field and option of a list of values (`sizes`: --sizes)
    what: str = ""            # the axis in messages ("message sizes")
    default: object = INHERIT
    aliases: tuple[str, ...] = ()
    help: str | None = None
    every: str | None = None  # a word that means every choice (`--strategies all`)


@dataclass(frozen=True)
class Use:
    """How one worker role (client: `send`, server: `serve`) takes a parameter."""

    field: str | None          # its nob_<role>_config field; None: the worker process uses it itself
    default: object = INHERIT
    kind: Kind | None = None   # limits of the role's own (the client may not connect to port 0)
    help: str | None = None
    flag: bool = True          # a flag of the worker process (False: the process sets it: fds it opened)
    from_point: bool = True    # the runner passes the point's value as it is (for a point's parameter)
    to_c: Callable | None = None   # value -> its C field (default: the kind's)
    needs: str | None = None   # a parameter of the role that must be given when this one is on
    hidden: bool = False       # left out of the worker's --help (a test's knob)
    rule: Callable | None = None   # a check across the role's Config fields (raises UsageError)


@dataclass(frozen=True)
class Param:
    name: str                  # the Python name; its flag is --name-with-dashes
    kind: Kind
    default: object            # REQUIRED: no default, the command line must give it
    help: str
    what: str = ""             # how messages name it ("message size"); default: the name
    optional: bool = False     # None is a value ("not given", e.g. the kernel's MTU)
    aliases: tuple[str, ...] = ()   # older spellings that still parse, not shown in --help
    # flags that stand for one value, older spellings not shown in --help either:
    # (("--recv-copy", "fields"),) makes `--recv-copy` mean `--recv fields`
    shorthands: tuple[tuple[str, object], ...] = ()
    run: bool = False          # an option of `netobs run`
    sweep: Sweep | None = None  # how `netobs sweep` takes it (None: it does not)
    point: bool = False        # a field of RunSpec: one point's parameters
    client: Use | None = None
    server: Use | None = None
    # part of a point's identity (point=True): how a point's name says a value other than the
    # default ("-f{}": `-f1`; "-nd" for a flag that is on). The identity, the name, the store's
    # row key and the analysis' configuration all derive from these (`IDENTITY` below).
    ident: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        return self.what or self.name.replace("_", " ")

    def use(self, role: str) -> Use | None:
        return getattr(self, role)

    def check(self, value, flag: str | None = None, kind: Kind | None = None):
        if value is None and self.optional:
            return None
        return (kind or self.kind).check(value, self.label, flag or self.flag)

    def parse(self, text, flag: str | None = None, kind: Kind | None = None):
        return (kind or self.kind).parse(text, self.label, flag or self.flag)

    # the sweep's list of values (a matrix axis)
    @property
    def axis_flag(self) -> str:
        return "--" + self.sweep.axis.replace("_", "-")

    def check_axis(self, values) -> tuple:
        flag, what = self.axis_flag, self.sweep.what or self.sweep.axis
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise UsageError(f"bad {what} {values!r}", fix=f"{flag} as a comma-separated list")
        values = tuple(self.check(v, flag) for v in values)
        if not values:
            raise UsageError(f"no {what} given", fix=f"{flag} with at least one value")
        if len(set(values)) != len(values):
            raise UsageError(f"duplicate {what} in {','.join(map(str, values))}", fix=f"{flag} with each value once")
        return values

    def default_for(self, command: str):
        """The default `netobs <command>` (or the sweep's axis) starts from."""
        if command == "sweep" and self.sweep.default is not INHERIT:
            return self.sweep.default
        return self.default


@dataclass(frozen=True)
class Field:
    """One field of a declared class: its default and its check (which normalises)."""

    name: str
    default: object
    check: Callable[[object], object]


class Declared:
    """Base of the classes a table declares (RunSpec, SweepSpec, ClientConfig, ServerConfig):
    every field is checked (and normalised) when one is made, then each rule across fields."""

    FIELDS: tuple[Field, ...] = ()
    RULES: tuple[Callable[[object], None], ...] = ()

    def __post_init__(self):
        for f in self.FIELDS:
            object.__setattr__(self, f.name, f.check(getattr(self, f.name)))
        for rule in self.RULES:
            rule(self)

    def to_dict(self) -> dict:
        """Every field, as JSON (lists for tuples): the echo, the manifest's matrix."""
        return {f.name: jsonable(getattr(self, f.name)) for f in self.FIELDS}

    @classmethod
    def from_dict(cls, data: dict):
        """The fields `data` has (a dict form, maybe an older one missing newer fields)."""
        return cls(**{f.name: data[f.name] for f in cls.FIELDS if f.name in data})


class _Values:
    """Settings by attribute (a Config's fields, for its rules)."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (exit 2), like every netobs error."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}", fix=f"{self.prog} --help")


class Table:
    """The parameters, in the order commands list them, and everything derived from them."""

    def __init__(self, params: Iterable[Param]):
        self.params = tuple(params)
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"a parameter is declared twice: {sorted(n for n in names if names.count(n) > 1)}")
        self.by_name = {p.name: p for p in self.params}

    def __iter__(self):
        return iter(self.params)

    # -- which parameters go where ------------------------------------------------------
    def for_command(self, command: str) -> list[Param]:
        if command == "run":
            return [p for p in self.params if p.run]
        if command == "sweep":
            return [p for p in self.params if p.sweep is not None]
        raise ValueError(f"no command {command!r}")

    def for_role(self, role: str) -> list[tuple[Param, Use]]:
        return [(p, p.use(role)) for p in self.params if p.use(role) is not None]

    @staticmethod
    def is_axis(p: Param, command: str) -> bool:
        """Whether `netobs <command>` takes a list of the parameter's values (a matrix axis)."""
        return command == "sweep" and bool(p.sweep.axis)

    def option_name(self, p: Param, command: str) -> str:
        """The option's name in `netobs <command>` (and the field it fills)."""
        return p.sweep.axis if self.is_axis(p, command) else p.name

    # -- declared classes ---------------------------------------------------------------
    def point_fields(self) -> list[Field]:
        return [Field(p.name, p.default, p.check) for p in self.params if p.point]

    def sweep_fields(self) -> list[Field]:
        out = []
        for p in self.for_command("sweep"):
            if p.sweep.axis:
                out.append(Field(p.sweep.axis, tuple(p.default_for("sweep")), p.check_axis))
            else:
                out.append(Field(p.name, p.default_for("sweep"), p.check))
        return out

    def point_axes(self) -> list[Param]:
        """The sweep's axes of a point's parameters beyond strategy, size and thread count (the
        message shape's fields and nodelay, the placement, the socket buffers): each
        combination of their values is a point of its own."""
        return [p for p in self.for_command("sweep")
                if p.point and p.sweep.axis and p.name not in ("strategy", "msg_size", "threads")]

    def shared_names(self) -> list[str]:
        """Point parameters a sweep gives every point alike (not an axis)."""
        return [p.name for p in self.for_command("sweep") if p.point and not p.sweep.axis]

    def config_fields(self, role: str) -> list[Field]:
        def checker(p: Param, use: Use):
            return lambda value: p.check(value, kind=use.kind)

        return [Field(p.name, p.default if use.default is INHERIT else use.default, checker(p, use))
                for p, use in self.for_role(role) if use.field is not None]

    def point_rule(self) -> Callable[[object], None]:
        """The workers' rules across their settings, checked on a point before anything runs:
        each role's Config as the runner would fill it from the point (its defaults for the
        rest), so what a worker would refuse after the topology is up is refused first."""
        def check(point) -> None:
            for role in ROLES:
                values = {p.name: (p.default if use.default is INHERIT else use.default)
                          for p, use in self.for_role(role) if use.field is not None}
                values.update((k, v) for k, v in self.worker_values(role, point).items() if k in values)
                cfg = _Values(values)
                for rule in self.config_rules(role):
                    rule(cfg)
        return check

    def config_rules(self, role: str) -> list[Callable[[object], None]]:
        def rule(p: Param, needed: Param):
            def check(cfg) -> None:
                if getattr(cfg, p.name) and not getattr(cfg, needed.name):
                    raise UsageError(f"{p.flag} needs the {needed.label}", fix=f"{needed.flag} too")
            return check

        return ([rule(p, self.by_name[use.needs]) for p, use in self.for_role(role) if use.needs]
                + [use.rule for _, use in self.for_role(role) if use.rule])

    def dataclass(self, name: str, fields: list[Field], base: type = Declared, rules=(), doc: str = "",
                  module: str = __name__, **attrs) -> type:
        """A frozen dataclass with these fields (required ones first, as the table has them)."""
        specs = [(f.name, object) if f.default is REQUIRED else (f.name, object, dataclasses.field(default=f.default))
                 for f in fields]
        cls = dataclasses.make_dataclass(name, specs, bases=(base,), frozen=True,
                                         namespace={"FIELDS": tuple(fields), "RULES": tuple(rules),
                                                    "TABLE": self, "__doc__": doc or base.__doc__, **attrs})
        cls.__module__ = module
        return cls

    # -- the command line (the click options are netobs.cli._common's) ----------------
    def from_cli(self, command: str, options: dict) -> dict:
        """The options of `netobs <command>` as click gave them (text; flags as bools) -> values."""
        values = {}
        for p in self.for_command(command):
            key = self.option_name(p, command)
            raw = options[key]
            if (isinstance(p.kind, Flag) and not self.is_axis(p, command)) or raw is None:
                values[key] = raw
            elif self.is_axis(p, command) and p.sweep.every and raw.strip() == p.sweep.every:
                values[key] = tuple(p.kind.names)
            elif self.is_axis(p, command):   # a comma-separated list, each item read as the parameter
                values[key] = tuple(p.parse(item.strip(), p.axis_flag) for item in raw.split(",") if item.strip())
            else:
                values[key] = p.parse(raw)
        return values

    # -- the worker processes ------------------------------------------------------------
    def worker_values(self, role: str, point) -> dict:
        """What the runner passes a worker of `role` from the point (RunSpec) as it is."""
        return {p.name: getattr(point, p.name) for p, use in self.for_role(role)
                if p.point and use.flag and use.from_point}

    def worker_argv(self, role: str, values: dict) -> list[str]:
        """`values` (parameter -> value) as the command line of the worker's subcommand."""
        known = {p.name: p for p, use in self.for_role(role) if use.flag}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"the {role} worker takes no {', '.join(sorted(unknown))}")
        argv = [WORKER_COMMANDS[role]]
        for name, p in known.items():
            if name not in values or values[name] is None:
                continue
            value = values[name]
            if isinstance(p.kind, Flag):
                argv += [p.flag] if value else []
            else:
                argv += [p.flag, p.kind.text(value)]
        return argv

    def worker_parser(self, prog: str, description: str) -> argparse.ArgumentParser:
        """The worker's argparse: one subcommand per role, one flag per parameter it takes."""
        parser = _Parser(prog=prog, description=description)
        sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
        for role in ROLES:
            s = sub.add_parser(WORKER_COMMANDS[role], help=WORKER_HELP[role])
            for p, use in self.for_role(role):
                if not use.flag:
                    continue
                names = [p.flag, *p.aliases]
                text = argparse.SUPPRESS if use.hidden else (use.help or p.help).replace("%", "%%")
                if isinstance(p.kind, Flag):
                    s.add_argument(*names, dest=p.name, action="store_true", help=text)
                    continue
                kind = use.kind or p.kind
                s.add_argument(*names, dest=p.name, metavar=kind.metavar, help=text,
                               default=p.default if use.default is INHERIT else use.default,
                               type=lambda t, p=p, kind=kind: p.parse(t, kind=kind))
                for flag, value in p.shorthands:
                    s.add_argument(flag, dest=p.name, action="store_const", const=value, help=argparse.SUPPRESS)
        return parser

    def config_values(self, role: str, parsed: dict) -> dict:
        """From the worker's parsed command line: the values its Config takes."""
        return {p.name: parsed[p.name] for p, use in self.for_role(role) if use.field is not None and use.flag}

    # -- C ---------------------------------------------------------------------------------
    def fill(self, role: str, c, cfg) -> None:
        """Fill the cffi struct `c` (nob_<role>_config) from the Config `cfg`, field by field."""
        for p, use in self.for_role(role):
            if use.field is not None:
                value = getattr(cfg, p.name)
                setattr(c, use.field, use.to_c(value) if use.to_c else (use.kind or p.kind).to_c(value))


def _strategy_code(name: str) -> int:
    return strategies.BY_NAME[name].code


def _recv_rule(cfg) -> None:
    """The server's receive mode against its other settings (C checks the same again)."""
    mode = cfg.recv
    if mode == "fields" and not cfg.msg_size:
        raise UsageError("--recv fields needs the message size", fix="--msg-size too")
    if mode == "trunc" and cfg.verify:
        raise UsageError("--recv trunc discards the bytes: there is nothing to --verify",
                         fix="--recv copy (or zerocopy) with --verify")
    if (cfg.verify or mode == "fields") and cfg.msg_size and cfg.msg_size < cfg.fields:
        raise UsageError(f"a {cfg.msg_size}-byte message cannot have {cfg.fields} fields",
                         fix=f"--fields {cfg.msg_size} or fewer")


def _fields_rule(cfg) -> None:
    if cfg.msg_size < cfg.fields:
        raise UsageError(f"a {cfg.msg_size}-byte message cannot have {cfg.fields} fields",
                         fix=f"--fields {cfg.msg_size} or fewer, or a larger --msg-size")


def remote_rule(spec) -> None:
    """A point or sweep runs in a kind exactly when it gives what that kind requires (the
    remote: its host), and gives no optional parameter of another kind."""
    kind = KIND_BY_NAME[spec.topology]
    for name in kind.required:
        if not getattr(spec, name):
            raise UsageError(f"--topology {kind.name} needs the {PARAMS.by_name[name].what}",
                             fix=f"--{_flag(name)} {PARAMS.by_name[name].kind.metavar}")
    for other in TOPOLOGY_KINDS:
        if other is kind:
            continue
        for name in other.required:
            if getattr(spec, name):
                raise UsageError(f"--{_flag(name)} {getattr(spec, name)} runs in topology {other.name}, "
                                 f"not in topology {spec.topology}",
                                 fix=f"--{_flag(name)} without --topology (or --topology {other.name})")
        for name in other.params:
            if PARAMS.by_name[name].default is None and getattr(spec, name) is not None:
                need = " ".join(f"--{_flag(r)} {PARAMS.by_name[r].kind.metavar}" for r in other.required)
                raise UsageError(f"--{_flag(name)} is for topology {other.name}",
                                 fix=f"{need} too" if need else f"--topology {other.name}")


def _flag(name: str) -> str:
    return name.replace("_", "-")


def placement_rule(spec) -> None:
    """Every CPU a point (or each placement of a sweep) would pin to exists, is online and may
    be used here: refused in one line before anything on the system changes."""
    for asked in (spec.placement,) if isinstance(spec.placement, str) else spec.placement:
        placement.plan(asked, spec.client_cpus, spec.server_cpus, spec.topology)


@dataclass(frozen=True)
class SshHost(Text):
    """[USER@]HOST for ssh: never read as one of ssh's options, nothing a shell would split."""

    metavar = "[USER@]HOST"

    ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:%@")

    def check(self, value, what, flag):
        value = super().check(value, what, flag)
        odd = sorted({c for c in value if c not in self.ALLOWED})
        if value.startswith("-") or odd or value.count("@") > 1:
            why = (f"{''.join(odd)!r} would mean something to a shell or to ssh" if odd
                   else "it would be read as an option of ssh" if value.startswith("-") else "more than one @")
            raise UsageError(f"bad {what} {value!r}", why,
                             f"{flag} as [USER@]HOST (letters, digits and . _ - : % only, not starting with -)")
        return value


_ANY_PORT = Int(1, 65535, off=(0, "any free port"))
_BYTES_OR_DEFAULT = Size(1, 2**30, off=(0, "the kernel's default"))
_FD = Int(0, None)

PARAMS = Table([
    # ---- a point: what is measured --------------------------------------------------------
    Param("strategy", Choice(strategies.NAMES), REQUIRED,
          f"Copy strategy: {', '.join(strategies.NAMES)}.", aliases=("--impl",),
          run=True, point=True,
          sweep=Sweep("strategies", "strategies", strategies.STUDY, aliases=("--impls",), every="all",
                      help=f"Strategies, comma-separated (all: every one; {', '.join(strategies.NAMES)})."),
          client=Use("strategy", default="one_copy", to_c=_strategy_code)),
    Param("msg_size", Size(MIN_MSG, MAX_MSG), 65536, "Message size in bytes (64K, 1M accepted).",
          what="message size", run=True, point=True,
          sweep=Sweep("sizes", "message sizes", STUDY_SIZES, help="Message sizes in bytes, comma-separated."),
          client=Use("msg_size"),
          server=Use("msg_size", default=0, kind=Size(MIN_MSG, MAX_MSG, off=(0, "not given")),
                     help="Message size the client sends (needed by --verify and --recv fields).")),
    Param("threads", Int(1, MAX_THREADS), 1, "Client threads, one connection each.",
          what="thread count", run=True, point=True,
          sweep=Sweep("threads", "thread counts", STUDY_THREADS, help="Client thread counts, comma-separated."),
          client=Use("threads")),
    Param("duration", Float(0.0, MAX_DURATION, lo_open=True), 2.0, "Measured window, seconds (per point).",
          run=True, point=True, sweep=Sweep(default=STUDY_DURATION), client=Use("duration_s")),
    Param("warmup", Float(0.0, MAX_DURATION), 0.5, "Warm-up before the window, seconds.",
          what="warm-up", run=True, point=True, sweep=Sweep(default=SWEEP_WARMUP), client=Use("warmup_s")),
    Param("repeat", Int(0, MAX_REPEATS - 1), 0, "0-based repeat of the configuration.", point=True),
    # ---- the sweep's own ----------------------------------------------------------------
    Param("repeats", Int(1, MAX_REPEATS), 1, "Runs of each point (for medians and CIs).", sweep=Sweep()),
    Param("order", Choice(ORDERS), "sequential", "interleaved/random keep drift from biasing one strategy.",
          sweep=Sweep()),
    Param("seed", Int(), 0, "Seed for --order random.", sweep=Sweep()),
    # ---- where and how a point runs -----------------------------------------------------
    Param("topology", Choice(TOPOLOGIES), "netns",
          "netns: server and client in two namespaces joined by a veth pair; loopback: 127.0.0.1; "
          "remote: the server on --remote HOST over SSH.",
          run=True, point=True, sweep=Sweep()),
    Param("subnet", Subnet(), DEFAULT_SUBNET, "veth subnet (server .1, client .2).",
          run=True, point=True, sweep=Sweep()),
    Param("mtu", Int(68, 65535), None, "veth MTU (default: the kernel's).", what="MTU", optional=True,
          run=True, point=True, sweep=Sweep()),
    Param("remote", SshHost(), None,
          "Run the server on [USER@]HOST, through the system ssh (its config, agent, known_hosts); "
          "implies --topology remote.", what="remote host", optional=True, run=True, point=True, sweep=Sweep()),
    Param("remote_addr", Host(), None,
          "With --remote: the address the client sends to and the server listens on (default: HOST's).",
          what="remote data address", optional=True, run=True, point=True, sweep=Sweep()),
    Param("remote_netobs", Text(), "netobs", "With --remote: the netobs command on the remote host.",
          what="remote netobs command", run=True, point=True, sweep=Sweep()),
    Param("ssh_config", Text(), None, "With --remote: an ssh config file (ssh -F; default: ~/.ssh/config).",
          what="ssh config file", optional=True, run=True, point=True, sweep=Sweep()),
    Param("port", _ANY_PORT, 0, "Server port (default: a free one, which the client is told).",
          run=True, point=True,
          server=Use("port", help="Port to listen on (0: any free port)."),
          client=Use("port", default=5201, kind=Int(1, 65535), from_point=False, help="Server port to connect to.")),
    Param("verify", Flag(), False, "Stamp every field and check it on the server.",
          run=True, point=True, sweep=Sweep(), client=Use("verify"), server=Use("verify", needs="msg_size")),
    Param("fields", Int(1, MAX_FIELDS), STUDY_FIELDS,
          "Separately allocated fields per message (the iovec's entries; the study's: 8).",
          what="field count", run=True, point=True,
          sweep=Sweep("fields", "field counts", (STUDY_FIELDS,),
                      help="Fields per message, comma-separated (e.g. 1,8: one contiguous buffer and the "
                           "study's 8; each count is a message shape of its own)."),
          client=Use("fields", rule=_fields_rule), server=Use("fields"), ident="-f{}"),
    Param("nodelay", Flag(), False, "Set TCP_NODELAY on the client's sockets.", what="TCP_NODELAY",
          run=True, point=True, client=Use("nodelay"), ident="-nd",
          sweep=Sweep("nodelay", "TCP_NODELAY settings", (False,),
                      help="TCP_NODELAY on the client's sockets: off, on, or both as off,on (--nodelay alone: "
                           "on; each setting is a message shape of its own).")),
    Param("placement", Choice(placement.PLACEMENTS), placement.DEFAULT,
          "Where the working threads run: split (client and server on two sets of CPUs), same (both ends "
          "of a connection on one CPU), none (not pinned: the kernel's choice), explicit (--client-cpus, "
          "--server-cpus). Thread i on CPU list[i mod len].",
          what="placement", run=True, point=True,
          sweep=Sweep("placement", "placements", (placement.DEFAULT,),
                      help="Placements, comma-separated (e.g. same,split: each a point of its own; "
                           "split: client and server on two sets of CPUs, none: the kernel's choice)."),
          ident="-p{}"),
    Param("sndbuf", _BYTES_OR_DEFAULT, 0,
          "SO_SNDBUF of the client's sockets in bytes, like iperf3's -w (0: the kernel's default, autotuned); "
          "the kernel doubles it, and the point records the value it read back.",
          what="send buffer", run=True, point=True, client=Use("sndbuf"), ident="-sb{}",
          sweep=Sweep("sndbuf", "send buffer sizes", (0,),
                      help="SO_SNDBUF of the client's sockets, comma-separated (e.g. 0,4M: the kernel's default "
                           "and 4 MiB; each a point of its own).")),
    Param("rcvbuf", _BYTES_OR_DEFAULT, 0,
          "SO_RCVBUF of the server's sockets in bytes (0: the kernel's default, autotuned); the kernel doubles "
          "it, and the point records the value it read back.",
          what="receive buffer", run=True, point=True, server=Use("rcvbuf"), ident="-rb{}",
          sweep=Sweep("rcvbuf", "receive buffer sizes", (0,),
                      help="SO_RCVBUF of the server's sockets, comma-separated (e.g. 0,4M; each a point of its own).")),
    Param("recv", Choice(RECV_MODES), "copy",
          "Server receive mode: copy (recv), fields (recv, then copy each message into its fields), "
          "trunc (MSG_TRUNC: no receive copy), zerocopy (TCP_ZEROCOPY_RECEIVE: pages mapped), "
          "slow (reads 64 KiB, then sleeps 1 ms: the sender blocks on a full send buffer).",
          what="receive mode", run=True, point=True, sweep=Sweep(), shorthands=(("--recv-copy", "fields"),),
          server=Use("recv_mode", to_c=RECV_MODES.index, rule=_recv_rule), ident="-rx{}"),
    Param("client_cpus", CpuList(), None, "With --placement explicit: the client's CPUs (e.g. 0 or 0,2-3).",
          what="client CPUs", optional=True, run=True, point=True, sweep=Sweep()),
    Param("server_cpus", CpuList(), None, "With --placement explicit: the server's CPUs.",
          what="server CPUs", optional=True, run=True, point=True, sweep=Sweep()),
    Param("uring_depth", Int(1, MAX_URING_DEPTH), 1,
          "io_uring/io_uring_zc: sends in flight per thread, submitted as one linked chain.",
          what="io_uring queue depth", run=True, point=True, sweep=Sweep(), client=Use("uring_depth")),
    # ---- how a point is observed ----------------------------------------------------------
    Param("perf", Flag(), True, "Count perf events over the measured window (--no-perf: without perf stat).",
          run=True, point=True, sweep=Sweep()),
    Param("events", Events(), DEFAULT_EVENTS, "perf events, comma-separated (replaces the defaults).",
          what="perf events", run=True, point=True, sweep=Sweep()),
    Param("perf_server", Flag(), False, "Also run the server under perf stat (its whole life).",
          run=True, point=True, sweep=Sweep()),
    Param("trace", Flag(), False, "Trace the kernel's send/receive/copy paths with BCC.",
          run=True, point=True, sweep=Sweep()),
    Param("profile", Flag(), False, "Sample on- and off-CPU stacks of both sides, by cost class (BPF).",
          run=True, point=True, sweep=Sweep()),
    Param("profile_hz", Int(1, 20000), 999, "Stack samples per second per CPU with --profile.",
          what="profile frequency", run=True, point=True, sweep=Sweep()),
    # ---- the worker processes' own --------------------------------------------------------
    Param("host", Host(), "127.0.0.1", "Server address to connect to.", what="server address",
          client=Use("host")),
    Param("bind", Host(), "127.0.0.1", "Address to listen on.", what="bind address", server=Use("bind")),
    Param("cpus", CpuList(), (), "Pin: thread i runs only on CPU LIST[i mod len] (the server: the i-th accepted "
          "connection's thread); not given: not pinned. netobs's runner derives it from --placement "
          "(netobs.placement).", what="CPU list", client=Use("cpus"), server=Use("cpus")),
    Param("connections", Int(1, MAX_CONNECTIONS, off=(0, "until stopped")), 1,
          "End when this many connections have closed.", what="connection count", server=Use("connections")),
    Param("timeout", Float(0.0, 86400.0), 0.0, "End after this many seconds (0: no limit).",
          server=Use("timeout_s")),
    Param("count", Int(1, None, off=(0, "send for --duration")), 0,
          "Send exactly this many messages per thread, no warm-up (the known workload).",
          what="message count", client=Use("count")),
    Param("zc_pool", Int(1, 65536, off=(0, "auto, about 8 MiB worth")), 0, "zero_copy/io_uring_zc buffers per thread.",
          what="zero-copy pool", client=Use("zc_pool")),
    Param("connect_timeout", Float(0.0, 60.0, lo_open=True), 3.0, "Seconds to wait for each connection.",
          what="connect timeout", client=Use("connect_timeout_s")),
    Param("corrupt_seq", Int(0, None, off=(-1, "off")), -1, "Corrupt message K of every connection.",
          what="corrupted message", client=Use("corrupt_seq", hidden=True)),
    Param("unsafe_reuse", Flag(), False, "Rewrite buffers without waiting for the kernel (a test's knob: "
          "--verify must then fail).", client=Use("unsafe_reuse", hidden=True)),
    Param("perf_ctl", Text(), None, "perf --control fifo to write enable/disable to.", optional=True,
          what="perf control fifo", client=Use(None)),
    Param("perf_ack", Text(), None, "perf's ack fifo.", optional=True, what="perf ack fifo", client=Use(None)),
    Param("ctl_fd", Int(0, None, off=(-1, "none")), -1, "The --perf-ctl fifo, opened for writing.",
          client=Use("ctl_fd", flag=False)),
    Param("ack_fd", Int(0, None, off=(-1, "none")), -1, "The --perf-ack fifo, opened for reading.",
          client=Use("ack_fd", flag=False)),
    Param("start_fd", _FD, None, "Wait for `go [PORT]` on this fd before connecting (netobs's runner: the "
          "client starts while the server comes up, and its tracer is attached before the first byte).",
          optional=True, client=Use(None)),
    Param("ready_fd", _FD, None, "Write `ready <port>` here once listening.", optional=True, server=Use(None)),
])


# A point's identity, derived from the table: the configuration (strategy, size, threads), its
# repeat, then every point parameter with an `ident`, in the table's order (runs.csv columns of
# the same names; the strategy's is "implementation"). A row of a store from before one of them
# was a column has its default.
IDENTITY: tuple[Param, ...] = tuple(p for p in PARAMS if p.point and p.ident)
POINT_KEY: tuple[str, ...] = ("implementation", "msg_size", "threads", "repeat") + tuple(p.name for p in IDENTITY)


def ident_value(p: Param, value):
    """A point's value of an identity parameter as its key holds it (a flag: 0/1)."""
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        value = p.default
    if isinstance(p.kind, Choice):
        return str(value).strip()
    return int(float(value)) if not isinstance(value, bool) else int(value)


def ident_suffix(values) -> str:
    """What a point's name adds for its identity parameters' values (IDENTITY's order): nothing
    for a default, so `one_copy-65536-1-r0` is what it always was."""
    out = []
    for p, v in zip(IDENTITY, values):
        v = ident_value(p, v)
        if v == ident_value(p, p.default):
            continue
        out.append(p.ident.format(v) if "{}" in p.ident else p.ident if v else "")
    return "".join(out)
