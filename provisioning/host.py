"""The host side of a project: its Unix account (`enclave-PROJECT`), its own file system (the disk quota,
provisioning/storage.py), the owners and modes of its folders, and the nftables rule that denies the project accounts
any network egress. Each `ensure_*` step is idempotent and says what it did; all of them need root.

Who may do what on disk (the workspace sandbox mounts these into a workspace):

| path under the project | owner:group | mode | why |
| --- | --- | --- | --- |
| the Enclave home | root | 0711 | reachable, not listable; registry, sites, secrets, airlock, hub: root only |
| `projects/` | root:root | 0711 | nobody may list the projects; each account reaches only its own |
| `PROJECT/` | root:PROJECT | 0750 | only the project's account may enter |
| `PROJECT/views/` | root:PROJECT | 2750 | builds the materialiser writes later inherit the group |
| every build in views/ (`data` links to one) | root:PROJECT | 0550 dirs, 0440 files | read-only input |
| `PROJECT/store/` | root:PROJECT | 0750 | the root of the project's own file system (its quota) |
| `PROJECT/store/outputs/` | account:PROJECT | 2770 | release candidates; the airlock reads them as root |
| `PROJECT/store/homes/` | root:PROJECT | 0750 | |
| `PROJECT/store/homes/USER/` | account:PROJECT | 0700 | a researcher's workspace home |
| `PROJECT/store/mlflow/`, `mlflow/artifacts/` | account:PROJECT | 0700 | the project's MLflow store |

Folders the account owns are opened one component at a time with O_NOFOLLOW and changed through the open
descriptor, so a symlink the account plants (it may rename and link inside its own folders) can never make root
change the owner or mode of anything else; nothing inside outputs, homes or mlflow is ever walked.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

from fabric.models import Project
from fabric.projects import StorageLimits, project_account_name, project_spec
from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import EnclaveError, SpecError
from kernel.names import USERNAME
from output_checks.sandbox.runner import CHECKS_ACCOUNT
from provisioning.steps import StepResult
from provisioning.storage import ensure_project_storage
from workbench.view_contract import VIEW_DIR_MODE, VIEW_FILE_MODE, VIEWS

NOLOGIN = "/usr/sbin/nologin"
NO_HOME = "/nonexistent"
EGRESS_TABLE = "enclave_egress"
SBIN = ("/usr/sbin", "/sbin")


class HostError(EnclaveError):
    """A host provisioning step that cannot proceed (not root, a tool missing, a name that does not fit)."""


@dataclass(frozen=True)
class ProjectAccount:
    """A project's Unix account; its primary group (same name, same role) is the project's group."""

    project: str
    name: str
    uid: int
    gid: int


# ------------------------------------------------------------------------------------------------ accounts


def account_name(project: str) -> str:
    """`enclave-PROJECT` (fabric.projects.project_account_name), refused as a HostError when it cannot be an account."""
    try:
        return project_account_name(project)
    except SpecError as exc:
        raise HostError(str(exc)) from None


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise HostError(f"{what} needs root (run it with sudo)")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    if path is None:
        raise HostError(f"{name} not found; install Debian's {package} package (make system-packages)")
    return path


def _run(argv: list[str], *, input: str | None = None) -> None:
    done = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise HostError(f"{Path(argv[0]).name} failed: {message[-1] if message else f'exit {done.returncode}'}")


def _lookup(project: str) -> ProjectAccount | None:
    name = account_name(project)
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        return None
    try:
        group = grp.getgrgid(user.pw_gid)
    except KeyError:
        group = None
    # Never adopt an account someone else made: a person's login or a service would gain the project's data.
    if group is None or group.gr_name != name or user.pw_shell != NOLOGIN:
        raise HostError(
            f"a Unix account {name} exists but is not an Enclave project account (its primary group must be "
            f"{name} and its shell {NOLOGIN}); rename or remove it"
        )
    return ProjectAccount(project=project, name=name, uid=user.pw_uid, gid=user.pw_gid)


def project_account(project: str) -> ProjectAccount:
    """The existing account of `project`, or a HostError saying how to create it."""
    account = _lookup(project)
    if account is None:
        raise HostError(f"project {project} has no Unix account yet (run 'enclave host apply' as root)")
    return account


def ensure_project_account(project: str) -> tuple[ProjectAccount, StepResult]:
    """A system account with its own group, no home and no login shell: the identity a project's workspaces,
    and later its Dask workers, run as."""
    account = _lookup(project)
    if account is not None:
        return account, StepResult("account", f"{account.name} already there (uid {account.uid})")
    _require_root("creating a project account")
    name = account_name(project)
    argv = [_tool("useradd", "passwd"), "--system", "--no-create-home", "--home-dir", NO_HOME, "--shell", NOLOGIN]
    argv += ["--comment", f"Enclave project {project}"]
    try:
        leftover = grp.getgrnam(name)
    except KeyError:
        argv += ["--user-group"]
    else:
        if leftover.gr_mem:  # a group with members would hand them the project's data
            raise HostError(f"a group {name} exists with members; remove it before provisioning project {project}")
        argv += ["--gid", name]
    _run([*argv, name])
    account = _lookup(project)
    assert account is not None
    return account, StepResult("account", f"{account.name} created (uid {account.uid})")


def remove_project_account(project: str) -> StepResult:
    """Remove the account and its group. Files it owned keep its number, which a later account may be given:
    remove or re-own the project's folders before re-using the name space."""
    name = account_name(project)
    had_user, had_group = _exists(pwd.getpwnam, name), _exists(grp.getgrnam, name)
    if had_user or had_group:
        _require_root("removing a project account")
    if had_user:
        _run([_tool("userdel", "passwd"), name])  # removes the user's own group too (USERGROUPS_ENAB)
    if _exists(grp.getgrnam, name):
        _run([_tool("groupdel", "passwd"), name])
    removed = " and ".join(what for what, had in (("account", had_user), ("group", had_group)) if had)
    return StepResult("account", f"{name}: {removed + ' removed' if removed else 'not there'}")


def ensure_checks_account(name: str = CHECKS_ACCOUNT) -> tuple[ProjectAccount, StepResult]:
    """The airlock's checks account: a system account with its own group, no home and no login shell, that parses
    researchers' files in the checker sandbox (output_checks/sandbox) and can read nothing of Enclave's."""
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        _require_root("creating the airlock's checks account")
        argv = [_tool("useradd", "passwd"), "--system", "--no-create-home", "--home-dir", NO_HOME, "--shell", NOLOGIN]
        _run([*argv, "--comment", "Enclave airlock checks", "--user-group", name])
        user = pwd.getpwnam(name)
        made = "created"
    else:
        made = "already there"
    try:
        group = grp.getgrgid(user.pw_gid).gr_name
    except KeyError:
        group = None
    if group != name or user.pw_shell != NOLOGIN:  # never adopt a person's login or another service's account
        raise HostError(f"a Unix account {name} exists but is not Enclave's checks account; rename or remove it")
    account = ProjectAccount(project="", name=name, uid=user.pw_uid, gid=user.pw_gid)
    return account, StepResult("account", f"{name} {made} (uid {user.pw_uid}), the airlock's checks account")


def _exists(lookup: Callable[[str], object], name: str) -> bool:
    try:
        lookup(name)
    except KeyError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ folders


class _Tally:
    def __init__(self) -> None:
        self.changed = 0

    def fix(self, fd: int, st: os.stat_result, uid: int, gid: int, mode: int) -> None:
        """Owner first, then mode: a chown may clear the set-group-id bit that the mode then sets."""
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
            self.changed += 1
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
            self.changed += 1


def _open_dir(name: str | Path, dir_fd: int | None, *, create: bool) -> int:
    """Open a directory without following a symlink in its last component, creating it (0700, then fixed) if
    asked."""
    if create:
        with suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=dir_fd)
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise HostError(f"{name} is not a directory (a symlink or a file); refusing to change it") from None
        raise


def _ensure(stack: ExitStack, tally: _Tally, parent: int, name: str, uid: int, gid: int, mode: int) -> int:
    fd = _open_dir(name, parent, create=True)
    stack.callback(os.close, fd)
    tally.fix(fd, os.fstat(fd), uid, gid, mode)
    return fd


def _seal_build(tally: _Tally, build: Path, gid: int) -> None:
    """root:PROJECT with the build's read-only modes. A build's folders are root's alone (the account cannot
    write in views/), so walking by path is safe; symlinks are neither followed nor changed."""
    entries = [(str(build), VIEW_DIR_MODE)]
    for root, dirs, files in os.walk(build):
        entries += [(os.path.join(root, d), VIEW_DIR_MODE) for d in dirs]
        entries += [(os.path.join(root, f), VIEW_FILE_MODE) for f in files]
    for path, mode in entries:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            continue
        if (st.st_uid, st.st_gid) != (0, gid):
            os.chown(path, 0, gid, follow_symlinks=False)
            tally.changed += 1
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)
            tally.changed += 1


def _published_builds(paths: Paths, project: str) -> list[Path]:
    """Every finished build in the project's views/ (the one `data` links to among them); staging folders of a
    build in progress are left to the materialiser."""
    views = paths.project_dir(project) / VIEWS
    builds = {p for p in views.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")}
    data = paths.project_data(project)
    if data.is_symlink() or data.exists():
        current = data.resolve()
        if current.parent != views.resolve() or not current.is_dir():
            raise HostError(f"{data} does not point at a build in {views}; refusing to change its owner")
        builds.add(views / current.name)
    return sorted(builds)


def ensure_project_folders(paths: Paths, project: str, account: ProjectAccount, members: list[str]) -> StepResult:
    """Owners and modes of the project's folders as in the table above, for `members` (its researchers); only
    what differs is changed, so a rerun over thousands of published files is a walk of lstat calls."""
    _require_root("setting a project's folder owners")
    if account.project != project:
        raise HostError(f"account {account.name} belongs to project {account.project}, not {project}")
    for member in members:
        if not USERNAME.fullmatch(member):
            raise HostError(f"{member!r} is not a user name")
    uid, gid = account.uid, account.gid
    tally = _Tally()
    paths.home.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        home = os.open(paths.home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        stack.callback(os.close, home)
        projects = _ensure(stack, tally, home, paths.projects.name, 0, 0, 0o711)
        project_dir = _ensure(stack, tally, projects, project, 0, gid, 0o750)
        # set-group-id: a build the materialiser writes later inherits the project's group and is readable at once
        _ensure(stack, tally, project_dir, VIEWS, 0, gid, stat.S_ISGID | 0o750)
        for build in _published_builds(paths, project):
            _seal_build(tally, build, gid)
        # the project's own file system when mounted (provisioning/storage.py), else a plain folder
        store = _ensure(stack, tally, project_dir, paths.project_store(project).name, 0, gid, 0o750)
        _ensure(stack, tally, store, paths.project_outputs(project).name, uid, gid, stat.S_ISGID | 0o770)
        homes = _ensure(stack, tally, store, paths.project_homes(project).name, 0, gid, 0o750)
        for member in members:
            _ensure(stack, tally, homes, member, uid, gid, 0o700)
        mlflow = _ensure(stack, tally, store, paths.project_mlflow(project).name, uid, gid, 0o700)
        _ensure(stack, tally, mlflow, "artifacts", uid, gid, 0o700)
    detail = f"{tally.changed} owner/mode changes" if tally.changed else "owners and modes already right"
    return StepResult("folders", f"{project}: {detail}")


# ------------------------------------------------------------------------------------------------ egress


def egress_rules_script(accounts: Iterable[ProjectAccount], *, table: str = EGRESS_TABLE) -> str:
    """The nft script that replaces Enclave's table in one transaction: created if missing, deleted, defined
    again, so a rerun is idempotent, stale rules never survive, and there is no moment without the rule.

    Why a second layer: a workspace already runs in its own network namespace holding only loopback, so it has no
    route out. This rule follows the project accounts anywhere in the host's namespace (a process that escaped
    the sandbox, Dask workers started on the host or on SLURM nodes under the same rules): every packet a project
    account's socket sends out of an interface other than loopback is rejected at once (an immediate error, not a
    hang) and counted. Loopback stays open: the hub reaches workspaces over it and Dask talks to itself on it."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", table):
        raise HostError(f"{table!r} is not an nftables table name")
    uids = sorted({a.uid for a in accounts})
    lines = [
        f"table inet {table} {{}}",
        f"delete table inet {table}",
        f"table inet {table} {{",
        "\tchain output {",
        "\t\ttype filter hook output priority 0; policy accept;",
    ]
    if uids:
        lines.append(
            f'\t\tmeta skuid {{ {", ".join(map(str, uids))} }} oifname != "lo" '
            "counter reject with icmpx type admin-prohibited"
        )
    lines += ["\t}", "}", ""]
    return "\n".join(lines)


def _nft(script: str | None, *args: str) -> None:
    _require_root("changing nftables rules")
    nft = _tool("nft", "nftables")
    _run([nft, *(["-f", "-"] if script is not None else args)], input=script)


def ensure_egress_rules(accounts: list[ProjectAccount], *, table: str = EGRESS_TABLE) -> StepResult:
    """Deny network egress to every project account (`nft list table inet enclave_egress` shows the rule and its
    counter). The kernel does not keep rules across a reboot: `enclave host apply` (and `enclave up`) apply them."""
    _nft(egress_rules_script(accounts, table=table))
    return StepResult("egress", f"table inet {table}: egress denied to {len({a.uid for a in accounts})} accounts")


def remove_egress_rules(*, table: str = EGRESS_TABLE) -> StepResult:
    """Remove Enclave's table (nothing else); a no-op when it is not there."""
    egress_rules_script([], table=table)  # validates the name
    _nft(f"table inet {table} {{}}\ndelete table inet {table}\n")
    return StepResult("egress", f"table inet {table} removed")


# ------------------------------------------------------------------------------------------------ all of it


# Root-only parts of an installation: no local account (a project's included, should it run anything outside its
# sandbox) may read the registry, the sites' raw data, the secrets, the airlock's stores, the hub's state, the
# projects' file system images or the audit log's anchors.
PRIVATE = (
    "registry.sqlite", "registry.sqlite-wal", "registry.sqlite-shm", "sites", "secrets", "airlock", "hub", "storage",
    "audit", "federation",
)  # fmt: skip


def ensure_home_modes(paths: Paths) -> StepResult:
    """The home 0711 (reachable, not listable) and its private parts 0700/0600; links are left alone."""
    changed = 0
    paths.home.mkdir(parents=True, exist_ok=True)
    for path, mode in [(paths.home, 0o711)] + [(paths.home / name, None) for name in PRIVATE]:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            continue
        wanted = mode if mode is not None else (0o700 if stat.S_ISDIR(st.st_mode) else 0o600)
        if stat.S_IMODE(st.st_mode) != wanted:
            os.chmod(path, wanted, follow_symlinks=False)
            changed += 1
    return StepResult("home", f"{paths.home}: {changed} modes tightened" if changed else "modes already right")


# ------------------------------------------------------------------------------------------------ /proc

PROC_HIDDEN = ("invisible", "noaccess", "2", "1")  # hidepid values that keep other accounts' processes unreadable


def proc_hidepid(mountinfo: str) -> str | None:
    """The hidepid option of the host's /proc mount in /proc/self/mountinfo text (None when it has none)."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/proc" and " - proc " in line:
            for option in line.split(" - ", 1)[1].split()[-1].split(","):
                key, _, value = option.partition("=")
                if key == "hidepid":
                    return value
            return None
    return None


def ensure_proc_hidepid() -> StepResult:
    """The host's /proc mounted `hidepid=invisible`: an account sees only its own processes, so no command line or
    environment of Enclave's (the hub, its proxy, the workspaces' servers) is even listed to another account. The
    first layer is that no secret is ever on a command line; this is the second. Not in /etc/fstab: a host whose
    /proc should keep it across reboots adds `hidepid=invisible` there (docs/explanation/workspace-sandbox.md)."""
    before = proc_hidepid(Path("/proc/self/mountinfo").read_text())
    if before in PROC_HIDDEN:
        return StepResult("proc", f"/proc already mounted hidepid={before}")
    try:
        _run([_tool("mount", "mount"), "-o", "remount,hidepid=invisible", "/proc"])
    except HostError as exc:
        return StepResult("proc", f"WARNING: /proc could not be remounted hidepid=invisible ({exc})")
    return StepResult("proc", "/proc remounted hidepid=invisible: accounts see only their own processes")


def project_quotas(paths: Paths, projects: Iterable[str]) -> dict[str, int]:
    """Each project's disk quota in bytes, from its spec in the registry (the spec's default when it has none)."""

    default = StorageLimits().quota_bytes()
    url = paths.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return dict.fromkeys(projects, default)  # a host provisioned before its registry: nothing to read
    registry = Registry.of(paths)
    try:
        with registry.session() as session:
            found = {name: session.get(Project, name) for name in projects}
            return {name: project_spec(p).storage.quota_bytes() if p else default for name, p in found.items()}
    finally:
        registry.close()


def ensure_host(paths: Paths, projects: dict[str, list[str]], *, egress_table: str = EGRESS_TABLE) -> list[StepResult]:
    """Every project's account, file system (its quota, as its spec in the registry says) and folders, then one
    egress rule covering all their accounts; `projects` maps a project to its researchers."""

    _require_root("host provisioning")
    done, accounts = [ensure_home_modes(paths), ensure_proc_hidepid()], []
    quotas = project_quotas(paths, projects)
    for project, researchers in sorted(projects.items()):
        account, result = ensure_project_account(project)
        accounts.append(account)
        done += [result, ensure_project_storage(paths, project, quotas[project])]
        done.append(ensure_project_folders(paths, project, account, sorted(set(researchers))))
    done.append(ensure_checks_account()[1])
    done.append(ensure_egress_rules(accounts, table=egress_table))
    return done
