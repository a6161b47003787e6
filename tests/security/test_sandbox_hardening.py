"""Red team against the sandbox itself, with a real hub and a real workspace (tests/workspace_hub.py):

- finding 1 of issue 10: a workspace's hub token was on bubblewrap's command line, readable by every host account
  through /proc/PID/cmdline, and with it `nobody` ran code in alice's kernel. Now no command line or readable
  environment on the host shows a token, password or key of Enclave to another account, and /proc hides other
  accounts' processes;
- finding 7: nested user namespaces worked inside the sandbox (`unshare -Urm`, then a tmpfs over /project/data) and
  nothing filtered system calls. Now every call of the seccomp table (hub/seccomp.py) is refused inside a real
  workspace, as is making any namespace, while threads and processes still work.

Each attempt fails at once with an error, never by timing out.
"""

from __future__ import annotations

import json
import pwd
import re
import subprocess
from pathlib import Path

import pytest

from hub import seccomp
from provisioning.host import PROC_HIDDEN, proc_hidepid
from tests.workspace_hub import DEMO, needs_enclave

pytestmark = [pytest.mark.security, needs_enclave]

SECRET_NAMES = re.compile(rb"(?:^|\x00)([A-Z_]*(?:TOKEN|SECRET|PASSWORD|KEY)[A-Z_]*)=([^\x00]{8,})")


@pytest.fixture(scope="module")
def alice_in_demo(running_enclave):
    alice = running_enclave.person("alice")
    alice.spawn(DEMO)
    yield alice
    alice.stop(DEMO)


def enclave_secrets(but_of: str) -> set[bytes]:
    """Every token, secret, password or key value in the environment of a process on this host (read as root),
    except those of `but_of`'s own processes (other tests may run servers as `nobody`)."""
    found = set()
    own = pwd.getpwnam(but_of).pw_uid
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid == own:
                continue
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        found |= {value for _name, value in SECRET_NAMES.findall(environ)}
    return found


SCAN = r"""
import json, os
seen = {"owners": [], "cmdline": [], "environ": [], "uid": os.getuid()}
for name in os.listdir("/proc"):
    if not name.isdigit():
        continue
    try:
        seen["owners"].append(os.stat(f"/proc/{name}").st_uid)
    except OSError:
        continue
    for part in ("cmdline", "environ"):
        try:
            with open(f"/proc/{name}/{part}", "rb") as fh:
                seen[part].append(fh.read().decode("latin-1"))
        except OSError:
            pass
print(json.dumps(seen))
"""


def scan_as(user: str) -> dict:
    """What `user` (a host account with no privilege) reads of every process's command line and environment."""
    account = pwd.getpwnam(user)
    drop = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups", "--"]
    done = subprocess.run(
        [*drop, "/usr/bin/python3", "-I", "-c", SCAN],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},  # its own environment holds nothing of this test's
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_no_host_account_reads_a_workspace_token_from_proc(running_enclave, alice_in_demo):
    for account in ("nobody", "enclave-echo-study"):  # a bystander, and another project's account
        secrets = enclave_secrets(but_of=account)
        # the workspace's own token is among them: the scan would find it if it were anywhere readable
        assert any(len(value) >= 32 for value in secrets), "no Enclave token found in any environment on the host"
        seen = scan_as(account)
        readable = "\x00".join(seen["cmdline"] + seen["environ"]).encode("latin-1")
        leaked = [value[:4] + b"..." for value in secrets if value in readable]
        assert not leaked, f"{account} read Enclave secrets from /proc: {leaked}"


def test_proc_is_mounted_hidepid_so_other_accounts_processes_are_not_listed(running_enclave, alice_in_demo):
    hidepid = proc_hidepid(Path("/proc/self/mountinfo").read_text())
    assert hidepid in PROC_HIDDEN, "enclave host apply did not remount /proc with hidepid"
    seen = scan_as("nobody")
    assert seen["owners"] and set(seen["owners"]) == {seen["uid"]}  # its own probe, and no one else's process


SYSCALL_PROBE = r"""
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
numbers, clone_flags = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {}
def call(nr, *args):
    ctypes.set_errno(0)
    args = [ctypes.c_long(a) for a in args] + [ctypes.c_long(0)] * (6 - len(args))
    result = libc.syscall(ctypes.c_long(nr), *args)
    if result == 0 and os.getpid() != PID:  # a clone that went through: this is the child
        os._exit(0)
    return "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()]
PID = os.getpid()
for name, nr in numbers.items():
    if name not in ("clone", "ioctl"):
        out[name] = call(nr)
SIGCHLD = 17
for flag, value in clone_flags.items():
    out["clone " + flag] = call(numbers["clone"], value | SIGCHLD)
out["ioctl TIOCSTI"] = call(numbers["ioctl"], 0, 0x5412, 0)
pid = os.fork()  # plain processes still work
if pid == 0:
    os._exit(7)
out["fork"] = os.waitpid(pid, 0)[1] >> 8
import threading
t = threading.Thread(target=lambda: None); t.start(); t.join()
out["thread"] = "ok"
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
out["Seccomp"] = status["Seccomp"].strip()
print(json.dumps(out))
"""


def test_every_refused_system_call_is_refused_in_a_real_workspace(alice_in_demo):
    numbers = seccomp.syscall_numbers()
    code = (
        "import subprocess, sys\n"
        f"done = subprocess.run([sys.executable, '-c', {SYSCALL_PROBE!r}, {json.dumps(numbers)!r}, "
        f"{json.dumps(seccomp.CLONE_NAMESPACE_FLAGS)!r}], capture_output=True, text=True)\n"
        "print(done.stdout or done.stderr)"
    )
    seen = json.loads(alice_in_demo.execute(DEMO, code))
    assert seen["Seccomp"] == "2"  # filter mode
    for name, _why in seccomp.REFUSED:
        assert seen[name] == "EPERM", (name, seen[name])
    for name in seccomp.NOT_IMPLEMENTED:
        assert seen[name] == "ENOSYS", (name, seen[name])
    for flag in seccomp.CLONE_NAMESPACE_FLAGS:
        assert seen[f"clone {flag}"] == "EPERM", flag
    assert seen["ioctl TIOCSTI"] == "EPERM"
    assert seen["fork"] == 7 and seen["thread"] == "ok"


def test_no_nested_user_namespace_can_hide_the_projects_data(alice_in_demo):
    """The finding as it was found: `unshare -Urm`, then a tmpfs over /project/data."""
    code = (
        "import os, subprocess\n"
        "done = subprocess.run(['unshare', '-Urm', 'sh', '-c', 'mount -t tmpfs x /project/data && echo mounted'],"
        " capture_output=True, text=True)\n"
        "print(done.returncode, 'mounted' in done.stdout, bool(os.listdir('/project/data')))\n"
        "print(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else '')"
    )
    first, reason = alice_in_demo.execute(DEMO, code).splitlines()
    returncode, mounted, data_there = first.split()
    assert returncode != "0" and mounted == "False" and data_there == "True"
    assert "Operation not permitted" in reason, reason


def test_a_workspace_cannot_read_another_process_of_its_own(alice_in_demo):
    """The server holds the hub token: a kernel must not read its memory or environment through ptrace or /proc."""
    code = (
        "import ctypes, errno, json, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "server = os.getppid()\n"
        "PTRACE_ATTACH = 16\n"
        "r = libc.ptrace(PTRACE_ATTACH, server, 0, 0)\n"
        "out = {'ptrace': 'ok' if r == 0 else errno.errorcode[ctypes.get_errno()]}\n"
        "print(json.dumps(out))"
    )
    seen = json.loads(alice_in_demo.execute(DEMO, code))
    assert seen["ptrace"] == "EPERM"
