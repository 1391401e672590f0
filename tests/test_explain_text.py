"""`netobs explain`'s text: items wrap under their first word, within the prose width."""
from __future__ import annotations

import re
from pathlib import Path

from conftest import cli

GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "sweep-netns"
ITEM = re.compile(r"^  (\d+\.|-|caveat:) ")


def test_wrapped_items_keep_their_hanging_indent(capsys):
    p = cli(capsys, "explain", GOLDEN)   # stdout a pipe, as `netobs explain | less` has it
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    items = wrapped = 0
    marker = None
    for line in out:
        m = ITEM.match(line)
        if m:
            items += 1
            marker = m.group(1)
            continue
        if marker and line.startswith(" " * (len(marker) + 3)) and line.strip():
            wrapped += 1     # a continuation: indented under the item's text
            continue
        marker = None
    assert items >= 10 and wrapped >= 10
    # no continuation of an item starts at the margin, no line ends in padding
    assert not any(line != line.rstrip() for line in out if ITEM.match(line) or line.startswith("     "))
    assert max(len(line) for line in out if not line.startswith(("zerocopy:", "cache:", "threads:", "one-copy",
                                                                   "zero-copy", "anomalies"))) <= 100
