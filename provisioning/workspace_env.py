"""Builds the workspace environment on this host: what a researcher's sandboxed JupyterLab runs, from the same
inputs as the production image (images/Dockerfile): the hash-pinned lock, the researcher's library (workbench/) and
the workspace server's extension (images/, enclave_workspace) installed non-editable, and the hardened Jupyter
config of images/jupyter/. Nothing else of Enclave is installed there: no fabric, hub, airlock or admin command,
which would not work in a sandbox (no registry, no checks' models) and are no researcher's business.

`ensure_workspace_env` is idempotent: a stamp in the environment holds a SHA-256 over every input, and an
environment whose stamp matches is left alone. Otherwise a fresh, relocatable environment is built beside the
destination, checked, and renamed into place, so a failed build never replaces a working one and a running
workspace sees either the old environment or the new one, never half of one. Builders of one destination take turns
(a lock on its parent folder). Everything in it is world-readable: sandboxes run it as unprivileged project accounts.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from kernel.errors import EnclaveError
from provisioning.steps import StepResult

REPO = Path(__file__).resolve().parents[1]
STAMP = ".enclave-workspace.sha256"
STEP = "workspace env"
# The two projects a workspace installs, each built into a wheel from its own pyproject.toml.
PROJECTS = ("workbench", "images")
# Enclave's packages that stay on the admin side: the build checks that none is importable in the environment.
ADMIN_PACKAGES = ("fabric", "synthetic_sites", "output_checks", "hub", "provisioning")


def config_targets(repo: Path = REPO) -> dict[Path, PurePosixPath]:
    """Each file of images/jupyter/ and where it goes in the environment (images/Dockerfile copies the same):
    `lab/...` to `share/jupyter/lab/...` (JupyterLab's application folder), everything else to `etc/jupyter/...`."""
    source = repo / "images" / "jupyter"
    targets = {}
    for path in _files(source):
        relative = PurePosixPath(path.relative_to(source).as_posix())
        parent = "share/jupyter" if relative.parts[0] == "lab" else "etc/jupyter"
        targets[path] = PurePosixPath(parent) / relative
    return targets


def stamp_inputs(repo: Path = REPO) -> list[Path]:
    """Every file whose change makes a different environment."""
    images = repo / "images"
    inputs = [
        images / "requirements.lock",
        images / "pyproject.toml",
        repo / "provisioning" / "workspace_env.py",
        *_files(images / "jupyter"),
        *_files(images / "enclave_workspace"),
        *(p for p in _files(repo / "workbench") if p.suffix in (".py", ".yaml", ".toml")),
    ]
    missing = [str(p.relative_to(repo)) for p in inputs if not p.is_file()]
    if missing:
        raise EnclaveError(f"workspace environment inputs missing in {repo}: {', '.join(missing)}")
    return inputs


def input_digest(repo: Path = REPO, *, python: str = "/usr/bin/python3") -> str:
    """SHA-256 over the inputs' paths and contents and the interpreter: what the stamp holds."""
    digest = hashlib.sha256(f"python\0{python}\n".encode())
    for path in stamp_inputs(repo):
        content = hashlib.sha256(path.read_bytes()).hexdigest()
        digest.update(f"{path.relative_to(repo).as_posix()}\0{content}\n".encode())
    return digest.hexdigest()


def read_stamp(env: Path) -> str | None:
    try:
        return (env / STAMP).read_text().strip()
    except OSError:
        return None


def ensure_workspace_env(dest: Path, *, python: str = "/usr/bin/python3", force: bool = False) -> StepResult:
    """Build the workspace environment at `dest` unless its stamp says it is current (or `force`)."""
    dest = Path(dest).absolute()
    interpreter = _interpreter(python)  # first: a current stamp on an environment whose Python is gone is no use
    wanted = input_digest(REPO, python=python)
    if not force and read_stamp(dest) == wanted:
        return StepResult(STEP, f"{dest} up to date")
    uv = _uv()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _builders_take_turns(dest.parent):
        if not force and read_stamp(dest) == wanted:
            return StepResult(STEP, f"{dest} up to date (built meanwhile)")
        _refuse_to_replace_non_env(dest)
        for pattern in (f".{dest.name}.build-*", f".{dest.name}.old-*"):  # left by a build that was killed
            for leftover in dest.parent.glob(pattern):
                shutil.rmtree(leftover, ignore_errors=True)
        build = dest.parent / f".{dest.name}.build-{secrets.token_hex(4)}"
        try:
            packages = _build(build, uv=uv, python=interpreter, stamp=wanted)
            _swap_in(build, dest)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    return StepResult(STEP, f"built {dest} ({packages} packages, Python {python})")


def _build(build: Path, *, uv: str, python: str, stamp: str) -> int:
    lock = REPO / "images" / "requirements.lock"
    # Relocatable: scripts find their interpreter relative to themselves, so the folder can be renamed into place.
    _run("create the environment", [uv, "venv", "--quiet", "--relocatable", "--python", python, str(build)])
    env_python = str(build / "bin" / "python")
    _run(
        "install the locked packages",
        [uv, "pip", "sync", "--quiet", "--python", env_python, "--require-hashes", "--compile-bytecode", str(lock)],
    )
    # Non-editable, so the sandbox needs nothing from this checkout; built from staged copies, so a stale build/
    # folder in the checkout (or another build running there) cannot leak into the wheels.
    with tempfile.TemporaryDirectory(prefix="enclave-workspace-src-") as staging:
        sources = _stage_sources(Path(staging))
        refresh = [arg for name in sources for arg in ("--refresh-package", name)]
        _run(
            "install " + " and ".join(sources),
            [
                *(uv, "pip", "install", "--quiet", "--python", env_python, "--no-deps", "--compile-bytecode"),
                *refresh,
                *map(str, sources.values()),
            ],
        )
    for source, target in config_targets(REPO).items():
        (build / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, build / target)
    _world_readable(build)
    # Isolated mode, from /: the environment's own copies, never this checkout's.
    _run("check the environment", [env_python, "-I", "-c", CHECK], cwd="/")
    (build / STAMP).write_text(stamp + "\n")  # last: only a complete, checked environment carries a stamp
    os.chmod(build / STAMP, 0o644)
    return sum(1 for _ in build.glob("lib/python*/site-packages/*.dist-info"))


def _stage_sources(staging: Path) -> dict[str, Path]:
    """Copy what the two wheels are built from (each project's folder, without caches, build leftovers or
    node_modules); each distribution's name -> its staged folder."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules", "build", "*.egg-info")
    staged = {}
    for folder in PROJECTS:
        name = tomllib.loads((REPO / folder / "pyproject.toml").read_text())["project"]["name"]
        staged[name] = shutil.copytree(REPO / folder, staging / name, ignore=ignore)
    return staged


# Run by the environment's own Python, isolated, from /: what a workspace needs imports, the admin side does not.
CHECK = f"""
import importlib.util
import enclave_workspace, workbench.view, workbench.tracking, jupyterlab, jupyter_server_proxy, mlflow
found = [name for name in {ADMIN_PACKAGES!r} if importlib.util.find_spec(name) is not None]
if found:
    raise SystemExit("admin packages in the workspace environment: " + ", ".join(found))
"""


def _swap_in(build: Path, dest: Path) -> None:
    """Rename the new environment into place; the old one is renamed aside first and removed after."""
    old = None
    if dest.exists() or dest.is_symlink():
        old = dest.parent / f".{dest.name}.old-{secrets.token_hex(4)}"
        os.rename(dest, old)
    try:
        os.rename(build, dest)
    except OSError:
        if old is not None:
            os.rename(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _refuse_to_replace_non_env(dest: Path) -> None:
    """Only an environment (or an empty folder) is ever moved aside: --dest pointing elsewhere must not lose it."""
    if not (dest.exists() or dest.is_symlink()):
        return
    if dest.is_dir() and not dest.is_symlink() and ((dest / "pyvenv.cfg").is_file() or not any(dest.iterdir())):
        return
    raise EnclaveError(f"{dest} exists and is not a Python environment; choose another destination")


def _world_readable(root: Path) -> None:
    """Folders 0755, files 0755 when executable else 0644; links left alone (chmod would follow them)."""
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)  # noqa: S103 (world-readable on purpose: project accounts run it)
        for name in files:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                continue
            wanted = 0o755 if mode & 0o111 else 0o644
            if stat.S_IMODE(mode) != wanted:
                os.chmod(path, wanted)


@contextmanager
def _builders_take_turns(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _interpreter(python: str) -> str:
    found = shutil.which(python)
    if found is None:
        raise EnclaveError(f"Python interpreter {python} not found (the workspace environment needs Python 3.11)")
    return found


def _uv() -> str:
    """uv from the folder of the running interpreter (the admin venv), else from PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise EnclaveError("uv not found (beside this Python or on PATH); install it: pip install uv")
    return found


def _run(step: str, command: list[str], cwd: str | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise EnclaveError(f"workspace environment: could not {step}: " + " | ".join(detail))


def _files(folder: Path) -> list[Path]:
    """The files under `folder`, sorted, without Python caches."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc",)
    )
