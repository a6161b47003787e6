"""The workspace's seccomp filter (hub/seccomp.py), compiled by libseccomp: every refused call of the policy table is
in the program, namespace-making clone flags are refused while plain clone is not, and the filter reaches bwrap
through a file descriptor. That each refusal holds inside a real workspace is tests/security/test_sandbox_syscalls.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from hub import seccomp

BINDINGS = Path("/usr/lib/python3/dist-packages").glob("seccomp*.so")
pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(
        not Path(seccomp.DEBIAN_PYTHON).exists() or not any(BINDINGS),
        reason="needs Debian's python3 and python3-seccomp (make system-packages) to compile the filter",
    ),
]


@pytest.fixture(scope="module")
def pfc() -> str:
    return seccomp.readable_filter()


def test_every_refused_call_of_the_table_is_in_the_compiled_filter(pfc):
    in_filter = set(re.findall(r'filter for syscall "(\w+)"', pfc))
    for name, why in seccomp.REFUSED:
        assert name in in_filter, name
        assert why  # every refusal says why
    for name in seccomp.NOT_IMPLEMENTED:
        assert name in in_filter


def test_refusals_answer_eperm_and_clone3_enosys(pfc):
    numbers = seccomp.syscall_numbers()
    block = pfc.split(f'filter for syscall "clone3" ({numbers["clone3"]})')[1].split("filter for syscall")[0]
    assert "ERRNO(38)" in block  # ENOSYS: the C library falls back to clone(), whose flags are checked
    ptrace = pfc.split(f'filter for syscall "ptrace" ({numbers["ptrace"]})')[1].split("filter for syscall")[0]
    assert "ERRNO(1)" in ptrace


def test_clone_is_refused_only_with_namespace_flags(pfc):
    clone = pfc.split('filter for syscall "clone"')[1].split("# default action")[0]
    for flag in seccomp.CLONE_NAMESPACE_FLAGS.values():
        assert f"== {flag})" in clone or f"== {flag}\n" in clone
    assert "action ALLOW" not in clone  # any other clone falls through to the default: allowed
    assert "# default action\n  action ALLOW;" in pfc  # threads and processes still work
    assert "# invalid architecture action\naction KILL;" in pfc  # no 32-bit entry point around the filter


def test_the_policy_names_no_call_twice_and_keeps_what_python_needs():
    names = [name for name, _ in seccomp.REFUSED]
    assert len(names) == len(set(names))
    for needed in ("clone", "execve", "socket", "bind", "setresuid", "prctl", "capset", "mmap"):
        assert needed not in names  # setpriv and the Jupyter server need these


def test_the_filter_reaches_bwrap_through_a_file_descriptor():
    fd = seccomp.filter_fd()
    try:
        assert os.read(fd, 1 << 20) == seccomp.compile_filter()
        assert len(seccomp.compile_filter()) % 8 == 0  # struct sock_filter: 8 bytes an instruction
    finally:
        os.close(fd)
