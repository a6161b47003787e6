"""Task manifests for the federation's tests: one valid manifest a test changes in the field it is about, built and
signed through the real code (federation/tasks.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.tasks import DeclaredOutput, SignedTask, TaskManifest, key_id, new_manifest, sign

ISSUED = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)
NOTEBOOK_SHA256 = "0123456789abcdef" * 4


def make_manifest(**changes) -> TaskManifest:
    """A valid manifest for project `cardio-outcomes` at sites `site-a` and `site-b`, issued at ISSUED and valid for
    7 days, with `changes` (TaskManifest's fields) applied."""
    manifest = new_manifest(
        project="cardio-outcomes",
        purpose="DS-CVD",
        submitter="alice",
        coordinator="consortium-hub",
        notebook_sha256=NOTEBOOK_SHA256,
        outputs=[DeclaredOutput("tables/counts.csv", "counts"), DeclaredOutput("model/estimates.csv", "estimates")],
        sites=["site-a", "site-b"],
        parameters={"outcome": "mace", "min_age": 18, "alpha": 0.05, "adjust": True, "subgroup": None},
        valid_for=timedelta(days=7),
        now=ISSUED,
    )
    return dataclasses.replace(manifest, **changes) if changes else manifest


def signed(manifest: TaskManifest, key: Ed25519PrivateKey) -> SignedTask:
    """`manifest` signed by `key` under that key's own id."""
    return sign(manifest, key, key_id(key.public_key()))
