"""Test helper for federation: the consortium's names as the tests use them (a coordinator and its sites are set up
by federation/local_consortium.py), `enclave` as its own process, and `InProcessLink`, a site's link to a
coordinator in the same process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from federation.local_consortium import ConsortiumPlan

ENCLAVE = Path(sys.executable).with_name("enclave")
PLAN = ConsortiumPlan()
PROJECT, PURPOSE, COORDINATOR, CHECKERS = PLAN.project, PLAN.purpose, PLAN.coordinator, PLAN.checkers
RESEARCHER = PLAN.researchers[0]


def enclave(home: Path, *args: str, check: bool = True, timeout: float = 900,
            user: str = RESEARCHER) -> subprocess.CompletedProcess:  # fmt: skip
    """`enclave --home HOME ARGS` as its own process, acting for `user` (SUDO_USER, as under sudo)."""
    env = {**os.environ, "ENCLAVE_HOME": str(home), "SUDO_USER": user}
    env.pop("SUDO_UID", None)
    done = subprocess.run([str(ENCLAVE), "--home", str(home), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"enclave {' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done


class InProcessLink:
    """A site's link to a coordinator in the same process (federation/agent.py's CoordinatorLink): the coordinator's
    business layer called directly, its refusals turned into what the HTTPS client raises. `only` limits the offers
    to some tasks; `offline_after_offers` makes every report fail as an unreachable coordinator would."""

    def __init__(self, coordinator, site: str) -> None:
        self.coordinator, self.site = coordinator, site
        self.only: set[str] | None = None
        self.offline_after_offers = False

    def _call(self, fn, *args, **kwargs):
        from federation.agent import CoordinatorRefused, CoordinatorUnreachable
        from federation.coordinator import FederationError

        if self.offline_after_offers:
            raise CoordinatorUnreachable("the coordinator could not be reached (offline)")
        try:
            return fn(*args, **kwargs)
        except FederationError as exc:
            raise CoordinatorRefused(exc.status, str(exc)) from None

    def offers(self) -> list[dict[str, str]]:
        offered = self.coordinator.offers(self.site)
        return [
            {"signed": o.signed, "project_key": o.project_key}
            for o in offered
            if self.only is None or json.loads(json.loads(o.signed)["manifest"])["task_id"] in self.only
        ]

    def notebook(self, task_id: str) -> bytes:
        from federation.agent import CoordinatorRefused
        from federation.coordinator import FederationError

        try:  # fetched with the offer, before any report: never offline here
            return self.coordinator.notebook(self.site, task_id)
        except FederationError as exc:
            raise CoordinatorRefused(exc.status, str(exc)) from None

    def report(self, task_id: str, state: str, reason: str, reference: str) -> None:
        self._call(self.coordinator.report, self.site, task_id, state, reason=reason, reference=reference)

    def result(self, task_id: str, blob: bytes, reference: str) -> None:
        self._call(self.coordinator.receive_result, self.site, task_id, blob, reference=reference)

    def send_tokens(self, task_id: str, tokens: list[str]) -> None:
        self._call(self.coordinator.receive_tokens, self.site, task_id, "".join(f"{t}\n" for t in tokens).encode())

    def exclusions(self, task_id: str) -> list[str] | None:
        return self._call(self.coordinator.exclusions, self.site, task_id)
