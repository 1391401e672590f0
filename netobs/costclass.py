"""Cost classes and wait reasons by function-name patterns (the data file netobs/costclasses.toml).

    cls = classify(kernel_frames, user_frames)     # -> Sample(klass, context, skid, unknown)
    reason = wait_reason(kernel_frames, runnable)  # -> (reason, unknown function or None)

Frames are symbol names, innermost first. The rules are the data file's; this module only
reads them and applies the one rule it states: the first class (in file order) that any
frame of the sample's space matches takes the sample.
"""
from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

DATA_FILE = "costclasses.toml"
SPACES = ("kernel", "user")
CONTEXTS = ("task", "softirq", "irq")


@dataclass(frozen=True)
class Rule:
    name: str
    help: str
    pattern: re.Pattern | None      # None: matches nothing (a fallback)
    space: str = "kernel"
    fallback: bool = False
    state: str | None = None        # off-CPU: "runnable" decides by the task's state
    leaf: bool = False              # matches the innermost non-skid frame only
    roles: tuple[str, ...] = ()     # off-CPU: applies to these roles only (empty: all)


def _regex(globs: list[str]) -> re.Pattern | None:
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


def base_name(sym: str) -> str:
    """A GCC clone's base name: 'tcp_sendmsg_locked.isra.0' -> 'tcp_sendmsg_locked'."""
    return sym.split(".", 1)[0] if "." in sym and not sym.startswith(".") else sym


@dataclass(frozen=True)
class Table:
    classes: tuple[Rule, ...]
    reasons: tuple[Rule, ...]
    skid: re.Pattern | None
    softirq: re.Pattern | None
    irq: re.Pattern | None
    user_skid: re.Pattern | None = None
    user_skid_class: str | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def reason_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.reasons)


def parse(text: str) -> Table:
    """The table from the data file's text; a malformed file raises ValueError saying where."""
    data = tomllib.loads(text)
    on, off = data.get("on_cpu") or {}, data.get("off_cpu") or {}

    def rules(entries: list[dict], what: str) -> tuple[Rule, ...]:
        out, seen = [], set()
        for e in entries:
            name = e.get("name")
            if not name or not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in seen:
                raise ValueError(f"{DATA_FILE}: {what} {name!r}: a new lower_case name is needed")
            seen.add(name)
            space = e.get("space", "kernel")
            if space not in SPACES:
                raise ValueError(f"{DATA_FILE}: {what} {name}: space must be one of {SPACES}")
            out.append(Rule(name, e.get("help", ""), _regex(list(e.get("functions") or [])), space,
                            bool(e.get("fallback")), e.get("state"), e.get("match", "any") == "leaf",
                            tuple(e.get("roles") or ())))
            if e.get("match", "any") not in ("any", "leaf"):
                raise ValueError(f"{DATA_FILE}: {what} {name}: match must be any or leaf")
        return tuple(out)

    classes = rules(on.get("class") or [], "class")
    reasons = rules(off.get("reason") or [], "reason")
    for space in SPACES:
        if sum(1 for c in classes if c.space == space and c.fallback) != 1:
            raise ValueError(f"{DATA_FILE}: exactly one fallback class is needed for {space} space")
    if sum(1 for r in reasons if r.fallback) != 1:
        raise ValueError(f"{DATA_FILE}: exactly one fallback reason is needed")
    user_skid_class = on.get("user_skid_class")
    if user_skid_class is not None and user_skid_class not in {c.name for c in classes}:
        raise ValueError(f"{DATA_FILE}: user_skid_class {user_skid_class!r} is not a class")
    return Table(classes, reasons, _regex(on.get("skid") or []), _regex(on.get("softirq") or []),
                 _regex(on.get("irq") or []), _regex(on.get("user_skid") or []), user_skid_class)


@lru_cache(maxsize=1)
def table() -> Table:
    return parse((resources.files("netobs") / DATA_FILE).read_text())


def _match(p: re.Pattern | None, sym: str) -> bool:
    return p is not None and (p.fullmatch(sym) is not None or p.fullmatch(base_name(sym)) is not None)


@dataclass(frozen=True)
class Sample:
    klass: str
    context: str                    # task | softirq | irq
    skid: bool                      # the innermost kernel frame is a skid frame
    unknown: str | None             # a fallback's innermost non-skid function


def classify(kernel: list[str], user: list[str], t: Table | None = None) -> Sample:
    """Class one stack sample; frames innermost first. In-kernel samples are classed by their
    kernel frames, user-space ones (no kernel frames) by their user frames."""
    t = t or table()
    space, frames = ("kernel", kernel) if kernel else ("user", user)
    skid = bool(kernel) and _match(t.skid, kernel[0])
    context = "task"
    for f in kernel:
        if _match(t.irq, f):
            context = "irq"
            break
        if _match(t.softirq, f):
            context = "softirq"
            break
    if not kernel and user and t.user_skid_class and _match(t.user_skid, user[0]):
        return Sample(t.user_skid_class, context, True, None)
    leaf = next((f for f in frames if not _match(t.skid, f)), frames[0] if frames else None)
    fallback = None
    for rule in t.classes:
        if rule.space != space:
            continue
        if rule.fallback:
            fallback = fallback or rule
            continue
        if (_match(rule.pattern, leaf) if rule.leaf and leaf else any(_match(rule.pattern, f) for f in frames)):
            return Sample(rule.name, context, skid, None)
    return Sample(fallback.name, context, skid, leaf)


def wait_reason(kernel: list[str], runnable: bool, role: str | None = None,
                t: Table | None = None) -> tuple[str, str | None]:
    """The reason a switch-out of a `role` thread slept: (reason, the innermost function if no
    pattern named it)."""
    t = t or table()
    fallback = None
    for rule in t.reasons:
        if rule.fallback:
            fallback = rule
            continue
        if rule.roles and role not in rule.roles:
            continue
        if rule.state == "runnable":
            if runnable:
                return rule.name, None
            continue
        if any(_match(rule.pattern, f) for f in kernel):
            return rule.name, None
    sched = t.classes[t.class_names.index("sched")].pattern if "sched" in t.class_names else None
    unknown = next((f for f in kernel if not _match(sched, f) and not _match(t.skid, f)), None)
    return fallback.name, unknown


def help_of(name: str) -> str:
    for r in table().classes + table().reasons:
        if r.name == name:
            return r.help
    return ""
