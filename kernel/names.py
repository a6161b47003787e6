"""A person's name in Enclave, one rule for every place a name is accepted: a hub user (local account or mapped from
an identity provider), a project spec's member, and a name the host's tools handle safely (lower-case letters,
digits, `_` and `-`, starting with a letter, 2 to 32 characters)."""

from __future__ import annotations

import re

USERNAME = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")
