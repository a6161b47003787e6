"""The offline install of docs/how-to/install.md, run as written on a host with no network (issue 16): a copy of
the repository's install inputs, `make .venv/.installed hub/node_modules/.bin/configurable-http-proxy` with the
documented variables (PIP_NO_INDEX, PIP_FIND_LINKS and UV_FIND_LINKS at a wheelhouse, UV_OFFLINE, npm offline from
its cache), inside a network namespace of the test's own that holds nothing but a loopback that is down.

What this host can carry offline: the bootstrap's wheel (uv) from a wheelhouse (the one `make` keeps in
.venv/wheels), every other locked package from uv's cache and npm's tarballs from npm's cache, which `make` filled
when this checkout was set up; on a host that never had internet the same variables point at the wheelhouse built
by the documented `pip download` / `npm ci --cache` steps. The hashes in the locks are checked either way: a
wheelhouse whose wheel differs from the locked one is refused. Root only (unshare --net).

The Debian side likewise: the packages the Makefile installs, as .deb files of the versions this host runs (from apt's
own cache), made into a local mirror with dpkg-scanpackages, and fetched from it by apt with no network and only that
mirror as a source; a .deb changed after the mirror's index was made is refused by its checksum. (The fetch is
`--download-only`: reinstalling the host's own packages is left to the documented `apt-get install`.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / ".venv" / "wheels"
INPUTS = ["Makefile", "pyproject.toml", "README.md", "requirements.lock", "requirements-bootstrap.lock"]
# the top-level packages the enclave distribution installs (pyproject.toml's packages.find include patterns)
PACKAGES = [
    p.rstrip("*")
    for p in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
]
TARGETS = [".venv/.installed", "hub/node_modules/.bin/configurable-http-proxy"]
IMPORTS = ["jupyterhub", "presidio_analyzer", "pydicom", "pysam", "kernel.db"]


@pytest.fixture(scope="module")
def offline_host():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and util-linux's unshare (a network namespace of the test's own)")
    if not any(WHEELS.glob("uv-*.whl")):
        if os.environ.get("CI"):
            pytest.fail(f"{WHEELS} holds no uv wheel: `make .venv/.installed` keeps the bootstrap's wheels there")
        pytest.skip(f"{WHEELS} holds no uv wheel (a checkout set up before make kept them): rerun make")


def copy_inputs(target: Path) -> Path:
    """The repository's install inputs (no .venv, no node_modules), as a new host would have them."""
    target.mkdir()
    for name in INPUTS:
        shutil.copy2(ROOT / name, target / name)
    ignore = shutil.ignore_patterns("__pycache__", "node_modules", "*.pyc")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(ROOT / "hub" / name, target / "hub" / name)
    return target


def wheelhouse(target: Path, *, tamper: bool = False) -> Path:
    target.mkdir()
    for wheel in WHEELS.glob("*.whl"):
        data = bytearray(wheel.read_bytes())
        if tamper:
            data[len(data) // 2] ^= 0xFF  # one byte: the same name and size, another hash
        (target / wheel.name).write_bytes(bytes(data))
    return target


def offline_make(repo: Path, wheels: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "UV_OFFLINE": "1",
        "UV_FIND_LINKS": str(wheels),
        "npm_config_offline": "true",
        "ENCLAVE_HOME": str(repo / "var"),
        "ENCLAVE_WORKSPACE_ENV": str(repo / ".workspace"),
    }
    for name in ("VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    command = ["unshare", "--net", "--", "make", "-C", str(repo), *TARGETS]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)


def test_the_documented_offline_install_needs_no_network(offline_host, tmp_path):
    probe = subprocess.run(["unshare", "--net", "--", "ip", "-o", "link"], capture_output=True, text=True, check=True)
    assert [line.split(":")[1].strip() for line in probe.stdout.splitlines()] == ["lo"]  # nothing to reach out by

    repo = copy_inputs(tmp_path / "host")
    done = offline_make(repo, wheelhouse(tmp_path / "wheelhouse"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    python = repo / ".venv" / "bin" / "python"
    imported = subprocess.run(
        [str(python), "-c", f"import {', '.join(IMPORTS)}; print(kernel.db.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert Path(imported.stdout.strip()).is_relative_to(repo)  # this host's checkout, installed editable
    assert subprocess.run([str(repo / ".venv" / "bin" / "enclave"), "--help"], capture_output=True,
                          check=False).returncode == 0  # fmt: skip
    assert (repo / "hub" / "node_modules" / ".bin" / "configurable-http-proxy").exists()
    assert sorted(p.name for p in (repo / ".venv" / "wheels").glob("*.whl")) == sorted(
        p.name for p in WHEELS.glob("*.whl")
    )


def test_a_wheel_that_differs_from_the_lock_is_refused_offline(offline_host, tmp_path):
    repo = copy_inputs(tmp_path / "host")
    done = offline_make(repo, wheelhouse(tmp_path / "wheelhouse", tamper=True))
    assert done.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in done.stderr
    assert not (repo / ".venv" / ".installed").exists()


# ------------------------------------------------------------------------------------------------ Debian mirror

APT_CACHE = Path("/var/cache/apt/archives")


def debian_packages() -> list[str]:
    """The Makefile's DEBIAN_PACKAGES, as `make system-packages` installs them."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    return re.search(r"^DEBIAN_PACKAGES := (.+)$", text, re.M).group(1).split()


def cached_deb(package: str) -> Path | None:
    """apt's cached .deb of the version of `package` this host runs, if apt kept it."""
    shown = subprocess.run(["dpkg-query", "-W", "-f", "${Version} ${Architecture}", package],
                           capture_output=True, text=True, check=False)  # fmt: skip
    if shown.returncode != 0 or len(shown.stdout.split()) != 2:  # unknown, or known to apt but not installed
        return None
    version, arch = shown.stdout.split()
    path = APT_CACHE / f"{package}_{version.replace(':', '%3a')}_{arch}.deb"
    return path if path.is_file() else None


def apt(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """apt-get with only `folder`'s mirror as a source, and lists and archives of its own, with no network."""
    options = {
        "Dir::Etc::SourceList": folder / "sources.list", "Dir::Etc::SourceParts": folder / "parts",
        "Dir::State::Lists": folder / "lists", "Dir::Cache::Archives": folder / "archives",
        "Dir::Cache::pkgcache": "", "Dir::Cache::srcpkgcache": "", "APT::Sandbox::User": "root",
    }  # fmt: skip
    command = ["unshare", "--net", "--", "apt-get", "-q", *(f"-o{k}={v}" for k, v in options.items()), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def debian_mirror(offline_host, tmp_path):
    if not (shutil.which("dpkg-scanpackages") and shutil.which("apt-get")):
        pytest.skip("needs apt-get and dpkg-scanpackages (dpkg-dev)")
    found = {name: deb for name in debian_packages() if (deb := cached_deb(name)) is not None}
    if len(found) < 3:
        pytest.skip(f"apt's cache holds too few of the Makefile's packages ({sorted(found)}) to make a mirror of")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for deb in found.values():
        shutil.copy2(deb, mirror / deb.name)  # copies: the test changes one below, never apt's own
    index = subprocess.run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], cwd=mirror,
                           capture_output=True, text=True, check=True)  # fmt: skip
    (mirror / "Packages").write_text(index.stdout)
    for name in ("lists/partial", "archives/partial", "parts"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "sources.list").write_text(f"deb [trusted=yes] copy:{mirror} ./\n")
    return tmp_path, found


def test_the_debian_packages_come_from_a_local_mirror_with_no_network(debian_mirror):
    folder, found = debian_mirror
    updated = apt(folder, "update")
    assert updated.returncode == 0, updated.stdout[-2000:] + updated.stderr[-2000:]
    fetched = apt(folder, "install", "--reinstall", "--download-only", "-y", *sorted(found))
    assert fetched.returncode == 0, fetched.stdout[-2000:] + fetched.stderr[-2000:]
    got = {p.name: p.read_bytes() for p in (folder / "archives").glob("*.deb")}
    assert got == {deb.name: deb.read_bytes() for deb in found.values()}  # each the host's own version, unchanged


def test_a_deb_changed_after_the_mirror_was_indexed_is_refused(debian_mirror):
    folder, found = debian_mirror
    assert apt(folder, "update").returncode == 0
    name = sorted(found)[0]
    copy = folder / "mirror" / found[name].name
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    fetched = apt(folder, "install", "--reinstall", "--download-only", "-y", name)
    assert fetched.returncode != 0
    assert "Hash Sum mismatch" in fetched.stdout + fetched.stderr or "failed to download" in fetched.stderr
    assert not list((folder / "archives").glob("*.deb"))
