"""A one-machine SLURM for development and the tests: the slurm.conf of a single node that is also its own
controller, and the munge key and folders its daemons need, all inside one folder this module is given.

Memory is enforced without control groups (a container seldom delegates them): `jobacct_gather/linux` samples every
process of a job each `gather_seconds` and `OverMemoryKill` kills a job whose processes together use more than its
`--mem`. Processes are tracked by parentage (`proctrack/linuxproc`), which follows a worker into its bubblewrap
sandbox: `proctrack/pgid` would lose it, since bubblewrap starts a new session. A production cluster should prefer
`task/cgroup` with ConstrainRAMSpace=yes (cgroup.conf), which stops a job the moment it crosses its limit.

The node is this host's short name at 127.0.0.1, the controller too; state, spool, logs and pid files stay in the
folder; ports are given (free ones by default) and munge's socket is the folder's own, so none of it meets a system
slurmctld, slurmd or munged. The key is written 0400 for the munge account, which munged runs as; nothing secret is
put in slurm.conf or on a command line.
"""

from __future__ import annotations

import os
import pwd
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

MUNGE_ACCOUNT = "munge"  # Debian's munge package creates it
KEY_BYTES = 1024  # mungekey's default size


@dataclass(frozen=True)
class SingleNode:
    """One machine's SLURM: where everything lives, and what the node offers."""

    folder: Path
    node: str
    cpus: int
    memory_mib: int
    controller_port: int
    node_port: int
    partition: str = "enclave"
    gather_seconds: int = 1  # how often each job's memory is sampled (a job may overshoot its --mem this long)

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def munge_folder(self) -> Path:
        """munged's socket and pid file; every account may reach the socket (0755), as munge requires."""
        return self.folder / "munge"

    @property
    def munge_private(self) -> Path:
        """munged's key, seed and log: the munge account's alone (0700)."""
        return self.munge_folder / "private"

    @property
    def munge_socket(self) -> Path:
        return self.munge_folder / "munge.socket"

    @property
    def munge_key(self) -> Path:
        return self.munge_private / "munge.key"

    def pid_file(self, daemon: str) -> Path:
        if daemon == "munged":  # written by the munge account
            return self.munge_folder / "munged.pid"
        return self.folder / "run" / f"{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        return self.folder / "log" / f"{daemon}.log"

    def slurm_conf(self) -> str:
        settings = {
            "ClusterName": "enclave",
            "SlurmctldHost": f"{self.node}(127.0.0.1)",
            "SlurmctldPort": self.controller_port,
            "SlurmdPort": self.node_port,
            # Root runs both daemons: slurmd must (it starts jobs as their owners), and a one-machine controller
            # gains nothing from an account of its own here.
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "AuthInfo": f"socket={self.munge_socket}",
            "StateSaveLocation": self.folder / "state",
            "SlurmdSpoolDir": self.folder / "spool",
            "SlurmctldPidFile": self.pid_file("slurmctld"),
            "SlurmdPidFile": self.pid_file("slurmd"),
            "SlurmctldLogFile": self.log_file("slurmctld"),
            "SlurmdLogFile": self.log_file("slurmd"),
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/linux",
            "JobAcctGatherFrequency": f"task={self.gather_seconds}",
            "JobAcctGatherParams": "OverMemoryKill",
            "AccountingStorageType": "accounting_storage/none",
            "JobCompType": "jobcomp/none",
            # memory is a consumable: a job gets the --mem it asks for, and jobs never share more than the node has
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core_Memory",
            "SchedulerType": "sched/backfill",
            "JobRequeue": 0,  # a lost worker job is not run again behind the cluster's back
            "MinJobAge": 300,  # how long an ended job's state (e.g. killed for memory) stays visible to scontrol
            "ReturnToService": 2,
            "MpiDefault": "none",
            "SwitchType": "switch/none",
            "MailProg": "/bin/true",
        }
        lines = [f"{key}={value}" for key, value in settings.items()]
        lines.append(
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mib} State=UNKNOWN"
        )
        lines.append(f"PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP")
        return "# Written by clusters/slurm_conf.py: one machine, its own controller.\n" + "\n".join(lines) + "\n"


def this_host(folder: Path, *, controller_port: int, node_port: int, memory_mib: int | None = None) -> SingleNode:
    """This machine as a one-node cluster: its short host name, its CPUs, and `memory_mib` (default: most of its
    memory, leaving the rest to the daemons and the system)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return SingleNode(
        folder=folder,
        node=socket.gethostname().split(".")[0],
        cpus=os.cpu_count() or 1,
        memory_mib=memory_mib or max(256, total * 3 // 4),
        controller_port=controller_port,
        node_port=node_port,
    )


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now (bound and released together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def write(node: SingleNode) -> None:
    """slurm.conf, the folders the daemons use, and a new munge key (root only: the key goes to the munge account)."""
    munge = pwd.getpwnam(MUNGE_ACCOUNT)
    node.folder.mkdir(parents=True, exist_ok=True)
    node.folder.chmod(0o755)  # munged checks that every folder above its socket is reachable
    for name in ("state", "spool", "log", "run"):
        (node.folder / name).mkdir(mode=0o700, exist_ok=True)
    node.munge_folder.mkdir(mode=0o755, exist_ok=True)
    node.munge_private.mkdir(mode=0o700, exist_ok=True)
    for folder in (node.munge_folder, node.munge_private):
        os.chown(folder, munge.pw_uid, munge.pw_gid)
    fd = os.open(node.munge_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o400)
    with os.fdopen(fd, "wb") as key:
        os.fchown(key.fileno(), munge.pw_uid, munge.pw_gid)
        key.write(secrets.token_bytes(KEY_BYTES))
    node.conf.write_text(node.slurm_conf())
    node.conf.chmod(0o644)


def daemon_commands(node: SingleNode) -> dict[str, list[str]]:
    """How to start the node's daemons, in order (each forks into the background and writes its pid file):
    munged as the munge account, then the controller, then the node daemon, both as root."""
    private = node.munge_private
    return {
        "munged": ["runuser", "-u", MUNGE_ACCOUNT, "--", "munged", f"--socket={node.munge_socket}",
                   f"--key-file={node.munge_key}", f"--pid-file={node.pid_file('munged')}",
                   f"--log-file={private / 'munged.log'}", f"--seed-file={private / 'munged.seed'}"],
        "slurmctld": ["slurmctld", "-f", str(node.conf)],
        "slurmd": ["slurmd", "-f", str(node.conf)],
    }  # fmt: skip
