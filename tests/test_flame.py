"""Folded stacks -> icicle rectangles (analysis.flame): parsing, widths, trimming, order, classes."""
from __future__ import annotations

import json
import random

import pytest

from netobs.analysis import flame
from netobs.analysis.flame import Rect, folded_files, icicle, read_folded

FOLDED = """\
client;[kernel_copy];python3;send_loop;entry_SYSCALL_64_[k];tcp_sendmsg_[k];rep_movs_alternative_[k] 37
client;[user_copy];python3;send_loop;__memmove_avx_unaligned_erms 50

client;[kernel_copy];python3;send_loop;entry_SYSCALL_64_[k];tcp_sendmsg_[k] 3
client;[tcp_tx];python3;send_loop;entry_SYSCALL_64_[k];tcp_sendmsg_[k];ip_output_[k] 10
"""


def _stacks(text=FOLDED, tmp_path=None):
    p = tmp_path / "profile-client.folded"
    p.write_text(text)
    return read_folded(p)


def test_read_folded_parses_frames_and_weights(tmp_path):
    stacks = _stacks(tmp_path=tmp_path)
    assert len(stacks) == 4   # the blank line skipped
    frames, weight = stacks[0]
    assert frames[:3] == ("client", "[kernel_copy]", "python3") and frames[-1] == "rep_movs_alternative_[k]"
    assert weight == 37 and isinstance(weight, int)
    # a frame with spaces (a C++ signature): the weight is after the last space
    (frames, weight), = _stacks("server;[other];operator new(unsigned long) 2.5\n", tmp_path)
    assert frames[-1] == "operator new(unsigned long)" and weight == 2.5


@pytest.mark.parametrize("line", ["client;[other];f", "client;[other];f x", "client;[other];f -3", " 5"])
def test_read_folded_names_a_bad_line(tmp_path, line):
    with pytest.raises(ValueError, match="line 2"):
        _stacks("client;[other];ok 1\n" + line + "\n", tmp_path)


def test_widths_partition_the_root(tmp_path):
    rects = icicle(_stacks(tmp_path=tmp_path))
    total = 37 + 50 + 3 + 10
    (root,) = [r for r in rects if r.depth == 0]
    assert (root.name, root.x0, root.x1, root.weight, root.klass) == ("client", 0.0, 1.0, total, None)
    # each depth's rectangles never overlap and lie inside their parent; children sum to the
    # parent less its own weight (the stacks that end in it)
    for r in rects:
        assert 0.0 <= r.x0 < r.x1 <= 1.0 + 1e-12 and r.share == pytest.approx(r.x1 - r.x0)
        assert r.share == pytest.approx(r.weight / total)
    by_depth = {}
    for r in rects:
        by_depth.setdefault(r.depth, []).append(r)
    for row in by_depth.values():
        row = sorted(row, key=lambda r: r.x0)
        assert all(a.x1 <= b.x0 + 1e-12 for a, b in zip(row, row[1:]))
    assert sum(r.share for r in by_depth[1]) == pytest.approx(1.0)
    tcp = [r for r in rects if r.name == "tcp_sendmsg"]
    kids = [r for r in rects if r.depth == tcp[0].depth + 1 and tcp[0].x0 <= r.x0 < tcp[0].x1]
    assert tcp[0].weight == 40 and [k.weight for k in kids] == [37]   # 3 samples end in tcp_sendmsg itself


def test_kernel_suffix_and_class_frame(tmp_path):
    rects = icicle(_stacks(tmp_path=tmp_path))
    names = {(r.name, r.klass): r for r in rects}
    assert names[("rep_movs_alternative", "kernel_copy")].kernel
    assert not names[("python3", "user_copy")].kernel
    assert names[("__memmove_avx_unaligned_erms", "user_copy")].klass == "user_copy"
    assert names[("[tcp_tx]", "tcp_tx")].depth == 1
    assert not any(r.name.endswith("_[k]") for r in rects)
    # every frame below a class frame carries its class; the same function under two classes is two rectangles
    assert {r.klass for r in rects if r.name == "tcp_sendmsg"} == {"kernel_copy", "tcp_tx"}
    assert flame.frame_class("[zc_pin]") == "zc_pin" and flame.frame_class("zc_pin") is None
    assert flame.split_kernel("tcp_v4_rcv_[k]") == ("tcp_v4_rcv", True)


def test_order_is_by_name_and_stable(tmp_path):
    stacks = _stacks(tmp_path=tmp_path)
    rects = icicle(stacks)
    depth1 = [r.name for r in sorted((r for r in rects if r.depth == 1), key=lambda r: r.x0)]
    assert depth1 == ["[kernel_copy]", "[tcp_tx]", "[user_copy]"]
    shuffled = stacks[:]
    random.Random(7).shuffle(shuffled)
    assert icicle(shuffled) == rects
    # the same stacks split over several lines add up
    doubled = [(f, w / 2) for f, w in stacks] * 2
    assert [(r.name, r.depth, r.x0, r.x1) for r in icicle(doubled)] == [(r.name, r.depth, r.x0, r.x1) for r in rects]


def test_narrow_frames_merge_into_their_parent_s_other():
    stacks = [(("client", "[kernel_copy]", "w", "copy_[k]"), 1000)]
    stacks += [(("client", "[other]", "w", f"noise_{i:02d}_[k]"), 1) for i in range(40)]   # 0.1% each
    stacks += [(("client", "[other]", "w", "big_[k]"), 60)]
    rects = icicle(stacks)
    merged = [r for r in rects if r.merged]
    assert len(merged) == 1
    (m,) = merged
    assert (m.name, m.merged, m.weight, m.klass, m.kernel) == ("other (40 frames)", 40, 40, "other", True)
    assert not any(r.name.startswith("noise_") for r in rects)
    big = next(r for r in rects if r.name == "big")
    assert m.x0 == pytest.approx(big.x1)   # after the wide siblings, inside the parent
    parent = next(r for r in rects if r.name == "w" and r.klass == "other")
    assert m.x1 == pytest.approx(parent.x1)
    # nothing merged with the threshold off
    assert not any(r.merged for r in icicle(stacks, min_share=0.0))


def test_rectangle_cap_raises_the_threshold():
    rng = random.Random(3)
    stacks = [(("client", f"[c{i % 5}]", f"f{i}", f"g{i}", f"h{i}"), rng.randint(1, 40)) for i in range(400)]
    full = icicle(stacks, min_share=0.0, max_rects=10 ** 6)
    assert len(full) == 1 + 5 + 400 * 3
    capped = icicle(stacks, max_rects=120)
    assert len(capped) <= 120 and any(r.merged for r in capped)
    # still a partition of the whole root
    assert sum(r.share for r in capped if r.depth == 1) == pytest.approx(1.0)
    assert icicle(stacks, max_rects=120) == capped


def test_empty_or_weightless_input_has_no_rectangles():
    assert icicle([]) == [] and icicle([(("client", "[other]"), 0)]) == []


def test_folded_files_default_names_and_result_json(tmp_path):
    point = tmp_path / "two_copy-4096-1-r0"
    point.mkdir()
    assert folded_files(point) == {}
    (point / "profile-client.folded").write_text("client;[other];f 1\n")
    (point / "stacks-srv.txt").write_text("server;[other];f 1\n")
    assert folded_files(point) == {("client", "on_cpu"): point / "profile-client.folded"}
    (point / "result.json").write_text(json.dumps(
        {"profile": {"files": {"server": {"on_cpu": "stacks-srv.txt", "off_cpu": "../../escape.folded"}}}}))
    (tmp_path / "escape.folded").write_text("x 1\n")
    assert folded_files(point) == {("client", "on_cpu"): point / "profile-client.folded",
                                   ("server", "on_cpu"): point / "stacks-srv.txt"}


def test_rect_is_a_plain_value():
    r = Rect(1, 0.0, 0.5, "f", 5, 0.5, False, "other")
    assert r.merged == 0 and r == Rect(1, 0.0, 0.5, "f", 5, 0.5, False, "other")
