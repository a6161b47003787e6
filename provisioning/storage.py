"""A project's own file system, which is its disk quota: a sparse ext4 image (`storage/PROJECT.img`, root only)
loop-mounted `nosuid,nodev` at `projects/PROJECT/store/`, which holds the project's outputs/, homes/ and mlflow/.

A project's writes stop at the size of its image (the kernel answers ENOSPC) and never reach the file system that
holds the registry, the hub's state and the airlock's stores. Each `ensure_*` step is idempotent: the image is made
when absent and grown when the spec asks for more (never shrunk), an existing loop device of the image is reused,
and the store is mounted when it is not. Mounts do not survive a reboot: `enclave host apply` and `enclave up`
bring them back. Without root nothing can be mounted: the step says loudly that the project has no quota.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from contextlib import suppress
from pathlib import Path

from kernel.config import Paths
from kernel.errors import EnclaveError
from provisioning.steps import StepResult

MOUNT_OPTIONS = "nosuid,nodev,discard"  # discard: what a project deletes is given back to the host's disk
FSTYPE = "ext4"
SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


class StorageError(EnclaveError):
    """A project's storage that cannot be made, grown or mounted (a tool missing, no loop device, files in the way)."""


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    if path is None:
        raise StorageError(f"{name} not found; install Debian's e2fsprogs, mount and util-linux packages")
    return path


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise StorageError(f"{Path(argv[0]).name} failed: {message[-1] if message else f'exit {done.returncode}'}")
    return done.stdout


def _unescape(field: str) -> str:
    """A path as /proc/self/mountinfo writes it (space, tab, newline and backslash as octal escapes)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounts(mountinfo: str | None = None) -> dict[Path, str]:
    """Mount point -> source device of every mount this process sees (the last mount on a point wins)."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    found: dict[Path, str] = {}
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) > 4 and len(tail) > 1:
            found[Path(_unescape(fields[4]))] = _unescape(tail[1])
    return found


def loop_devices(image: Path) -> list[str]:
    """The loop devices attached to `image` (losetup matches the file itself, not its name)."""
    if not image.exists():
        return []
    out = _run([_tool("losetup"), "--associated", str(image)])
    return [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]


def mounted(paths: Paths, project: str) -> str | None:
    """The device mounted on the project's store, or None."""
    return mounts().get(paths.project_store(project))


def _make_image(image: Path, size: int) -> None:
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size)  # sparse: the host's disk is used as the project writes
    finally:
        os.close(fd)
    try:
        # no blocks reserved for root (the quota is what the project gets); inode tables zeroed lazily after mount
        _run([_tool("mkfs.ext4"), "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,nodiscard", str(image)])
    except StorageError:
        image.unlink()
        raise


def _mounted_elsewhere(device: str) -> bool:
    """Whether a mount namespace other than this one (a running workspace's sandbox) has `device` mounted."""
    rdev = os.stat(device).st_rdev
    wanted = f"{os.major(rdev)}:{os.minor(rdev)}"
    own = os.readlink("/proc/self/ns/mnt")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with suppress(OSError):
            if os.readlink(f"/proc/{pid}/ns/mnt") == own:
                continue
            if any(line.split()[2] == wanted for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()):
                return True
    return False


def _grow(paths: Paths, project: str, size: int, devices: list[str]) -> list[str]:
    """A larger image and its file system grown to fill it: online where the kernel lets this process (it needs
    CAP_SYS_RESOURCE), else offline, which means unmounting the store: refused while a workspace has it mounted."""
    image, point = paths.project_image(project), paths.project_store(project)
    if os.stat(image).st_size < size:
        fd = os.open(image, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
    if devices:
        _run([_tool("losetup"), "--set-capacity", devices[0]])
        with suppress(StorageError):
            _run([_tool("resize2fs"), devices[0]])
            return devices
        if any(_mounted_elsewhere(device) for device in devices):
            raise StorageError(
                f"project {project}'s file system cannot be grown while it is in use: stop the project's "
                "workspaces (or `enclave down`) and run `enclave host apply` again"
            )
        release_project_storage(paths, project)
    if point in mounts():
        raise StorageError(f"{point} is still mounted; cannot grow project {project}'s file system")
    _run([_tool("e2fsck"), "-f", "-p", str(image)])
    _run([_tool("resize2fs"), str(image)])
    return []


def filesystem_bytes(image: Path) -> int:
    """The size of the file system in `image`, from its superblock (the image may be larger while it grows)."""
    fields = {}
    for line in _run([_tool("dumpe2fs"), "-h", str(image)]).splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return int(fields["Block count"]) * int(fields["Block size"])


def _storage_dir(paths: Paths) -> None:
    paths.storage.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(paths.storage)
    if not stat.S_ISDIR(st.st_mode):
        raise StorageError(f"{paths.storage} is not a folder; refusing to keep project images there")
    os.chown(paths.storage, 0, 0, follow_symlinks=False)
    os.chmod(paths.storage, 0o700, follow_symlinks=False)


def _mount_point(paths: Paths, project: str) -> Path:
    """`projects/P/store`, root's alone until the folders step sets its owner; never a link."""
    point = paths.project_store(project)
    for folder in (paths.projects, paths.project_dir(project), point):
        with suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise StorageError(f"{folder} is not a folder (a link or a file); refusing to mount there")
    return point


def _size_text(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def ensure_project_storage(paths: Paths, project: str, size: int) -> StepResult:
    """The project's image (made or grown to `size` bytes), attached to one loop device and mounted on its store."""
    if os.geteuid() != 0:
        paths.project_store(project).mkdir(parents=True, exist_ok=True)
        return StepResult(
            "storage",
            f"WARNING: {project} has NO disk quota (not root: nothing can be mounted); its outputs, homes and "
            "MLflow store share the file system of the registry. Development only.",
        )
    _storage_dir(paths)
    image = paths.project_image(project)
    point = _mount_point(paths, project)
    did = []
    if not image.exists():
        _make_image(image, size)
        did.append(f"image of {_size_text(size)} made")
    elif not stat.S_ISREG(os.lstat(image).st_mode):
        raise StorageError(f"{image} is not a plain file; refusing to use it as project {project}'s storage")
    devices = loop_devices(image)
    current = filesystem_bytes(image)
    if size > current:
        devices = _grow(paths, project, size, devices)
        did.append(f"grown from {_size_text(current)} to {_size_text(size)}")
    elif size < current:
        did.append(
            f"WARNING: kept at {_size_text(current)}; the spec asks for {_size_text(size)} but a project's storage "
            "is never shrunk (move files out, or remove and re-create the project's storage)"
        )
    if not devices:
        devices = [_run([_tool("losetup"), "--find", "--show", str(image)]).strip()]
        did.append(f"attached to {devices[0]}")
    source = mounted(paths, project)
    if source is None:
        if any(point.iterdir()):
            raise StorageError(
                f"{point} holds files outside project {project}'s storage; move them into the mounted store "
                "(or away) before mounting it there"
            )
        _run([_tool("mount"), "-t", FSTYPE, "-o", MOUNT_OPTIONS, devices[0], str(point)])
        did.append(f"mounted at {point}")
    elif source not in devices:
        raise StorageError(f"{point} has another file system mounted ({source}); unmount it first")
    total = _size_text(max(size, current))
    return StepResult("storage", f"{project}: {'; '.join(did) if did else 'mounted'} ({total})")


def release_project_storage(paths: Paths, project: str, *, delete: bool = False) -> StepResult:
    """Unmount the project's store and detach its loop devices (what a reboot does); `delete` removes the image,
    and so every file of the project's outputs, homes and MLflow store."""
    image, point = paths.project_image(project), paths.project_store(project)
    did = []
    if point in mounts():
        _run([_tool("umount"), str(point)])
        did.append("unmounted")
    for device in loop_devices(image):
        _run([_tool("losetup"), "--detach", device])
        did.append(f"{device} detached")
    if delete and image.exists():
        image.unlink()
        did.append("image deleted")
    return StepResult("storage", f"{project}: {', '.join(did) if did else 'not mounted'}")


def release_all_under(root: Path) -> list[str]:
    """Unmount every mount below `root` (deepest first) and detach the loop devices of images below it: the
    teardown of a test's Enclave home, so no temporary folder is ever left with a mount in it."""
    root = root.resolve()
    released = []
    for point in sorted((p for p in mounts() if p.is_relative_to(root)), key=lambda p: len(p.parts), reverse=True):
        subprocess.run([_tool("umount"), "--lazy", str(point)], capture_output=True, check=False)
        released.append(str(point))
    listing = subprocess.run([_tool("losetup"), "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                             capture_output=True, text=True, check=False).stdout  # fmt: skip
    for line in listing.splitlines():
        device, _, backing = line.strip().partition(" ")
        backing = backing.strip().removesuffix(" (deleted)")
        if backing and Path(backing).is_relative_to(root):
            subprocess.run([_tool("losetup"), "--detach", device], capture_output=True, check=False)
            released.append(device)
    return released
