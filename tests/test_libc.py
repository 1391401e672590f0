"""netobs.libc: each system call wrapper raises OSError with the call's own errno (no root
needed for most; as root nothing is changed: every call here is refused by the kernel)."""
from __future__ import annotations

import errno
import os

import pytest

from conftest import IS_ROOT
from netobs import libc


def test_setns_on_a_bad_descriptor_is_ebadf():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as e:
        libc.setns(r)
    assert e.value.errno == errno.EBADF and e.value.strerror.startswith("setns(CLONE_NEWNET): ")


def test_setns_on_something_that_is_not_a_namespace_is_einval(tmp_path):
    f = tmp_path / "not-a-namespace"
    f.write_text("")
    fd = os.open(f, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as e:
            libc.setns(fd)
        assert e.value.errno == errno.EINVAL
    finally:
        os.close(fd)


def test_unshare_with_flags_it_does_not_know_is_einval():
    with pytest.raises(OSError) as e:
        libc.unshare(1 << 0)     # CSIGNAL bits are not namespace flags
    assert e.value.errno == errno.EINVAL and "unshare(0x1)" in str(e.value)


def test_mount_errors_name_the_filesystem_and_the_target(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(OSError) as e:
        libc.mount("nodev", str(missing), "tracefs")
    # as root: the path does not exist; without root: EPERM, or ENOENT where the kernel looks
    # the path up before it checks the privilege (the order is the kernel's, not ours)
    assert e.value.errno in ((errno.ENOENT,) if IS_ROOT else (errno.EPERM, errno.ENOENT))
    assert e.value.strerror.startswith(f"mount(tracefs on {missing}): ")
    assert not missing.exists()


@pytest.mark.root
def test_mount_of_an_unknown_filesystem_is_enodev(root, tmp_path):
    # (mount(2) says EPERM to others before looking at the type)
    with pytest.raises(OSError) as e:
        libc.mount("nodev", str(tmp_path), "netobs-no-such-fs")
    assert e.value.errno == errno.ENODEV
    assert os.listdir(tmp_path) == []


def test_pidfd_getfd_errors():
    with pytest.raises(OSError) as e:
        libc.pidfd_getfd(2 ** 20, 0)              # not an open descriptor here
    assert e.value.errno == errno.EBADF and e.value.strerror.startswith("pidfd_getfd: ")
    pidfd = os.pidfd_open(os.getpid())
    try:
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        with pytest.raises(OSError) as e:
            libc.pidfd_getfd(pidfd, r)            # a descriptor the target does not have
        assert e.value.errno == errno.EBADF
    finally:
        os.close(pidfd)


def test_pidfd_getfd_duplicates_a_descriptor_of_this_process():
    r, w = os.pipe()
    pidfd = os.pidfd_open(os.getpid())
    try:
        dup = libc.pidfd_getfd(pidfd, w)
        os.write(dup, b"x")
        os.close(dup)
        assert os.read(r, 1) == b"x"
    finally:
        for fd in (pidfd, r, w):
            os.close(fd)
