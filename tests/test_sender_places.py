"""Adding a sender touches the places DESIGN.md lists, and no more: every sender of the
strategies table lives in its family's file plus at most three places, the C worker has no
dispatch on the strategy outside its SENDERS table, and the worker's counters reach Python by
the header's names, not by hand. (No root: reads the sources, and the built extension.)"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from netobs import strategies

REPO = Path(__file__).resolve().parents[1]
NATIVE = REPO / "native"
MAX_PLACES = 3


def _design_bullet() -> str:
    text = (REPO / "docs" / "DESIGN.md").read_text()
    m = re.search(r"^- \*\*a strategy\*\*.*?(?=^- \*\*)", text, re.S | re.M)
    assert m, "DESIGN.md's 'How to add' has no '- **a strategy**' entry"
    return m.group(0)


def _places() -> list[str]:
    """The numbered places outside the sender's own file, each a path of this repository."""
    places = re.findall(r"^\s+\d+\. .*?`((?:netobs|native)/[\w./]+)`", _design_bullet(), re.M)
    return places


def _c_sources() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(NATIVE.glob("*.[ch]"))}


def _strip_comments(c: str) -> str:
    return re.sub(r"/\*.*?\*/", " ", c, flags=re.S)


def test_design_lists_at_most_three_places_outside_the_family_file():
    places = _places()
    assert 0 < len(places) <= MAX_PLACES, places
    for path in places:
        assert (REPO / path).is_file(), path
    assert "native/send_<family>.c" in _design_bullet()


def test_every_sender_lives_in_its_family_file_and_the_listed_places():
    """Where a strategy's C names occur (NOB_<NAME>, nob_<name>) is exactly its family file
    and the places DESIGN.md lists; in Python its name is the strategies table's alone
    among the worker's modules (native, workerproc, runner derive everything)."""
    sources = {name: _strip_comments(text) for name, text in _c_sources().items()}
    places = {Path(p).name for p in _places() if p.startswith("native/")}
    families = {name for name in sources if name.startswith("send_") and name.endswith(".c")}
    assert len(families) >= 4, families   # copy, MSG_ZEROCOPY, io_uring, page references
    for s in strategies.STRATEGIES:
        pattern = re.compile(rf"\b(NOB_{s.name.upper()}|nob_{s.name})\b")
        where = {name for name, text in sources.items() if pattern.search(text)}
        defined = {name for name in families
                   if re.search(rf"const struct nob_sender nob_{s.name}\s*=", sources[name])}
        assert len(defined) == 1, (s.name, defined)
        assert where <= places | defined, (s.name, sorted(where - places - defined))
    names = set(strategies.NAMES)
    for module in ("native.py", "workerproc.py", "runner.py"):
        tree = ast.parse((REPO / "netobs" / module).read_text())
        named = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names]
        assert not named, (module, named)


def test_no_dispatch_on_the_strategy_outside_the_table():
    for name, text in _c_sources().items():
        code = _strip_comments(text)
        assert not re.search(r"strategy\s*[!=]=", code), name
        assert not re.search(r"case\s+NOB_(?!RECV)", code), name
    driver = _strip_comments(_c_sources()["netobs_workers.c"])
    table = re.search(r"SENDERS\[NOB_STRATEGIES\]\s*=\s*\{(.*?)\};", driver, re.S)
    assert table, "netobs_workers.c has no SENDERS table"
    rows = dict(re.findall(r"\[NOB_(\w+)\]\s*=\s*&nob_(\w+)", table.group(1)))
    assert rows == {s.name.upper(): s.name for s in strategies.STRATEGIES}


def test_the_counters_reach_python_by_their_header_names():
    _workers = pytest.importorskip("netobs._workers")
    from netobs import native

    header = (NATIVE / "netobs_workers.h").read_text()
    declared = dict(re.findall(r"#define NOB_CTR_(\w+) (\d+)", header))
    layout = native.counter_layout()
    assert [idx for _, _, idx in layout] == list(range(_workers.lib.NOB_NCTR)) == sorted(map(int, declared.values()))
    # every counter lands in the stats under its name, grouped as the header says
    st = _workers.ffi.new("struct nob_client_stats *")
    for _, _, idx in layout:
        st.counters[idx] = 1000 + idx
    st.groups = _workers.lib.NOB_GROUPS_ALWAYS | _workers.lib.NOB_GROUP_PAGES
    stats = native.client_stats(native.ClientConfig(), st)
    for group, key, idx in layout:
        if group is None:
            assert stats[key] == 1000 + idx
        elif group in ("zerocopy", "pages"):   # reported: always, and named by the strategy
            assert stats[group][key] == 1000 + idx
        else:
            assert stats[group] is None          # a group the strategy does not name
    assert set(native.counter_groups()) == {g for g, _, _ in layout if g}


def test_the_server_counters_reach_python_by_their_header_names():
    _workers = pytest.importorskip("netobs._workers")
    from netobs import native

    lib = _workers.lib
    header = (NATIVE / "netobs_workers.h").read_text()
    declared = dict(re.findall(r"#define NOB_SERVER_CTR_(\w+) (\d+)", header))
    layout = native.counter_layout("server")
    assert [idx for _, _, idx in layout] == list(range(lib.NOB_SERVER_NCTR)) == sorted(map(int, declared.values()))
    # the names the server's report has always had (the runner, the point result, the tests read them)
    assert {key if obj is None else f"{obj}.{key}" for obj, key, _ in layout} == {
        "recv_calls", "conn_errors", "verify_messages", "verify_errors", "verify_partial_bytes", "messages_copied",
        "rx_zerocopy.mapped_bytes", "rx_zerocopy.copied_bytes", "rx_zerocopy.calls"}
    st = _workers.ffi.new("struct nob_server_stats *")
    for _, _, idx in layout:
        st.counters[idx] = 1000 + idx
    st.recv_mode = lib.NOB_RECV_ZEROCOPY
    st.groups = lib.NOB_SERVER_GROUPS_ALWAYS | lib.NOB_SERVER_GROUP_RX_ZEROCOPY   # as C sets it: mode zerocopy, no verify
    stats = native.server_stats(native.ServerConfig(), st)
    for obj, key, idx in layout:
        if obj is not None:
            assert stats[obj][key] == 1000 + idx
        elif key in ("recv_calls", "conn_errors"):   # always reported
            assert stats[key] == 1000 + idx
        else:
            assert stats[key] is None                # a group this run did not use: not measured, not 0
    assert stats["rx_zerocopy"]["fallback"] is False and stats["rx_zerocopy"]["fallback_reason"] is None
    st.groups = lib.NOB_SERVER_GROUPS_ALWAYS | lib.NOB_SERVER_GROUP_VERIFY
    st.recv_mode = lib.NOB_RECV_COPY
    stats = native.server_stats(native.ServerConfig(), st)
    assert stats["rx_zerocopy"] is None and stats["messages_copied"] is None
    assert stats["verify_errors"] == 1000 + lib.NOB_SERVER_CTR_VERIFY_ERRORS
