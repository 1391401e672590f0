"""Folded stacks -> icicle rectangles: what the report's flame graph draws.

    stacks = read_folded(path)          # [(("client", "[kernel_copy]", "python3", ...), 37), ...]
    rects = icicle(stacks)              # [Rect(depth, x0, x1, name, weight, share, kernel, klass), ...]

A folded file (Brendan Gregg's format, netobs.profiler writes one per point, role and kind)
has one line per distinct stack: `frame;frame;...;leaf weight`, root first. netobs's root
frame is the role, the second the sample's cost class (on-CPU) or wait reason (off-CPU) in
brackets; kernel frames end in `_[k]` as bcc's `profile -f` writes them.

The layout is a partition of the root's width (0..1): each frame's children, sorted by name,
side by side under it, as wide as their share of the root's weight; a frame's own weight (the
stacks ending in it) is the space left at its right. Frames narrower than `min_share` of the
root are merged, per parent, into one "other" child (their subtrees dropped), and the
threshold is raised until the icicle has at most `max_rects` rectangles, so a point's
flame graph stays a few hundred marks whatever its stacks. Pure functions: same input,
same output, in the same order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

KERNEL_SUFFIX = "_[k]"
MIN_SHARE = 0.003
MAX_RECTS = 300
OTHER = "other"          # the merged node's name stem: "other (12 frames)"
_BRACKET = re.compile(r"\[([A-Za-z0-9_]+)\]")


@dataclass(frozen=True)
class Rect:
    """One frame's rectangle: depth 0 is the root (the role); x0..x1 its span in 0..1 of the
    root's weight; `share` = x1 - x0 as the root's share; `kernel` from the `_[k]` suffix (cut
    from `name`); `klass` the cost class or wait reason of the `[class]` frame it lies under
    (None for the root); `merged`: how many narrow frames this "other" rectangle stands for."""

    depth: int
    x0: float
    x1: float
    name: str
    weight: float
    share: float
    kernel: bool
    klass: str | None
    merged: int = 0


def read_folded(path) -> list[tuple[tuple[str, ...], float]]:
    """The stacks of a folded file as (frames root first, weight); blank lines skipped.

    A line without a numeric weight after its last space raises ValueError naming the line.
    Weights are ints where they are written as ints."""
    out = []
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    for n, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        try:
            weight = int(count) if count.lstrip("-").isdigit() else float(count)
        except ValueError:
            raise ValueError(f"{path}, line {n}: no weight after the last space") from None
        if not stack or weight < 0 or weight != weight:
            raise ValueError(f"{path}, line {n}: {'no frames' if not stack else 'a negative weight'}")
        out.append((tuple(stack.split(";")), weight))
    return out


def frame_class(frame: str) -> str | None:
    """`[kernel_copy]` -> 'kernel_copy'; any other frame -> None."""
    m = _BRACKET.fullmatch(frame)
    return m.group(1) if m else None


def split_kernel(frame: str) -> tuple[str, bool]:
    """`rep_movs_alternative_[k]` -> ('rep_movs_alternative', True)."""
    if frame.endswith(KERNEL_SUFFIX):
        return frame[: -len(KERNEL_SUFFIX)], True
    return frame, False


class Node:
    """One frame of the tree: its weight (the stacks through it) and its children by frame."""

    __slots__ = ("frame", "weight", "children")

    def __init__(self, frame: str, weight: float = 0):
        self.frame = frame
        self.weight = weight
        self.children: dict[str, Node] = {}


def tree(stacks, make=Node) -> Node:
    """The stacks as a tree of frames (children in the order first seen), each frame's weight
    the sum of the stacks through it; stacks without weight or frames left out. A stack may
    carry values beyond its weight, (frames, weight, *values): then `make` builds nodes with
    `add(values)` (called on each frame of the stack) and `add_own(values)` (on the frame it
    ends in), as the differential flame graph keeps each side's sum per frame."""
    root = make("")
    for frames, weight, *values in stacks:
        if weight <= 0 or not frames:
            continue
        root.weight += weight
        node = root
        for f in frames:
            kids = node.children
            child = kids.get(f)
            if child is None:
                child = kids[f] = make(f)
            child.weight += weight
            if values:
                child.add(values)
            node = child
        if values:
            node.add_own(values)
    return root


def _layout(root: Node, min_weight: float) -> list[Rect]:
    total = root.weight
    rects: list[Rect] = []

    def emit(depth, x0, weight, name, frame_kernel, klass, merged=0):
        x1 = x0 + weight / total
        rects.append(Rect(depth, x0, x1, name, weight, weight / total, frame_kernel, klass, merged))
        return x1

    def walk(node: Node, depth: int, x0: float, klass: str | None):
        x = x0
        wide = [c for c in node.children.values() if c.weight >= min_weight]
        narrow = [c for c in node.children.values() if c.weight < min_weight]
        for child in sorted(wide, key=lambda c: c.frame):
            name, kernel = split_kernel(child.frame)
            k = klass if klass is not None or depth != 1 else frame_class(child.frame)
            emit(depth, x, child.weight, name, kernel, k)
            walk(child, depth + 1, x, k)
            x += child.weight / total
        if narrow:
            weight = sum(c.weight for c in narrow)
            kernel = all(split_kernel(c.frame)[1] for c in narrow)
            k = klass if klass is not None or depth != 1 else None
            n = len(narrow)
            emit(depth, x, weight, f"{OTHER} ({n} frame{'s' if n > 1 else ''})", kernel, k, n)

    # the roots (the role frames) are depth 0; their children at depth 1 name the class
    x = 0.0
    for top in sorted(root.children.values(), key=lambda c: c.frame):
        name, kernel = split_kernel(top.frame)
        emit(0, x, top.weight, name, kernel, None)
        walk(top, 1, x, None)
        x += top.weight / total
    return rects


def icicle(stacks, min_share: float = MIN_SHARE, max_rects: int = MAX_RECTS) -> list[Rect]:
    """The icicle of `stacks` (read_folded's list), in depth-first order, children by name.

    Frames narrower than `min_share` of the root are merged into their parent's "other"
    rectangle; while more than `max_rects` rectangles remain the threshold is raised by half.
    An empty or weightless input gives []."""
    return layout(tree(stacks), min_share, max_rects)


def layout(root: Node, min_share: float = MIN_SHARE, max_rects: int = MAX_RECTS) -> list[Rect]:
    """`icicle` of a tree already built (`tree`'s, or a caller's that keeps more per frame than
    its weight: the differential flame graph's A and B)."""
    if root.weight <= 0:
        return []
    share = max(min_share, 0.0)
    count = _counter(root, share * root.weight)
    while count(share * root.weight) > max_rects and share < 1.0:
        share = min(1.0, max(share, 1e-6) * 1.5)
    return _layout(root, share * root.weight)


def _counter(root: Node, floor: float):
    """How many rectangles `_layout(root, w)` emits for any w >= floor, without laying them out:
    the roots, every deeper frame of weight >= w (a child never outweighs its parent, so its
    ancestors are drawn too), and one "other" per drawn frame with a child lighter than w.
    Frames lighter than `floor` are never drawn, so the walk stops at them."""
    import numpy as np

    tops = list(root.children.values())
    deeper, drawn, lightest = [], [], []
    stack = [(t, True) for t in tops]
    while stack:
        node, top = stack.pop()
        if not top:
            deeper.append(node.weight)
        drawn.append(float("inf") if top else node.weight)
        lightest.append(min((c.weight for c in node.children.values()), default=float("inf")))
        stack.extend((c, False) for c in node.children.values() if c.weight >= floor)
    deeper, drawn, lightest = np.array(deeper), np.array(drawn), np.array(lightest)
    return lambda w: len(tops) + int((deeper >= w).sum()) + int(((drawn >= w) & (lightest < w)).sum())



KINDS = {"on_cpu": "profile-{role}.folded", "off_cpu": "offcpu-{role}.folded"}
"""Each kind of folded file and its default name under points/<id>/ (result.json's
profile.files names them where it says otherwise)."""


def folded_files(point_dir, roles=("client", "server")) -> dict[tuple[str, str], Path]:
    """The folded files a point has, by (role, kind): result.json's profile.files where it
    names them, else the default names; only files that exist."""
    import json

    point_dir = Path(point_dir)
    named = {}
    try:
        result = json.loads((point_dir / "result.json").read_text(encoding="utf-8"))
        named = ((result.get("profile") or {}).get("files") or {}) if isinstance(result, dict) else {}
    except (OSError, ValueError):
        pass
    out = {}
    for role in roles:
        for kind, default in KINDS.items():
            name = (named.get(role) or {}).get(kind) if isinstance(named.get(role), dict) else None
            path = point_dir / Path(name or default.format(role=role)).name   # never outside the point
            if path.is_file():
                out[(role, kind)] = path
    return out
