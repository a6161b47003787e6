"""Patients with records at several sites counted once, without the coordinator learning who they are.

How it goes. Every site of a federated project holds the same *linkage key* (32 random bytes). A site normalises
each patient's national identifier with the scheme's own normaliser (`normalise_identifier`, fabric's
fabric/identifiers/: check digits verified, spaces and dashes gone) and sends the coordinator only the *tokens*
HMAC-SHA256(key, "scheme:identifier") in hex (`linkage_tokens`); the site keeps its own token -> patient map. The
coordinator, which never holds the key, finds the tokens present at more than one site and tells each site which of
its tokens to leave out (`overlap`): a patient present at several sites is kept at the first of them in the
consortium's fixed order and left out at every later one, so each patient is counted once. `overlap_size` is how many
patients that is.

What the coordinator learns. Tokens are outputs of a keyed pseudo-random function: without the key, a token cannot be
inverted and cannot be computed for a guessed identifier, so the tokens tell the coordinator nothing about who the
patients are. It does see which tokens repeat across sites, hence each site's number of patients, the overlap's size
between every pair of sites, and the same patients' tokens again in a later task of the same key (so a consortium
uses one key per federated project, and tokens from two projects never join). That is the most it learns. `overlap`
refuses anything that is not a token (64 lower-case hex characters), so a site that sent raw identifiers by mistake
is stopped at the coordinator's door.

Why the key never goes to the coordinator. National identifiers are short and structured (an NHS number is 9 digits
and a check digit; a personnummer is a birth date and four digits): whoever holds the key can hash every valid
identifier of a scheme (10^9 NHS numbers take minutes) and so reverse every token: a dictionary attack. The key's
secrecy is the whole protection, so it is held only by the sites, which already hold the identifiers. It never passes
through the coordinator, not even sealed (the coordinator relays and stores sealed bundles).

Distributing the key. One site's admin (or the consortium's data-protection officer) makes it once for the project
(`LinkageKey.generate().write(path)`) and hands it to each site's admin out of band (in person, or encrypted to
each admin's own key), never through the coordinator, the consortium's task channel, e-mail in clear or a ticket.
Each site stores it root-only, mode 0600 (`kernel/secret_files.py`; `LinkageKey.load` refuses a file others can
read), and the admins compare `fingerprint()` (a one-way digest that reveals nothing about the key) to check they
hold the same one. A site leaving the consortium, or a key that may have leaked, means a new key for the project.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from fabric.identifiers.schemes import LOCAL_MRN, SCHEMES
from kernel.secret_files import SecretFileError, read_secret, write_secret

KEY_BYTES = 32
KEY_FILE_PREFIX = "enclave-linkage-key:v1:"
TOKEN = re.compile(r"[0-9a-f]{64}")
_KEY_LINE = re.compile(re.escape(KEY_FILE_PREFIX) + r"([0-9a-f]{64})")


class LinkageError(ValueError):
    """A refusal with a short reason code (`reason`: bad-key, bad-identifier, unknown-scheme, not-a-token,
    malformed-request); the message never carries an identifier, a token or the key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class LinkageKey:
    """The consortium's linkage key for one federated project: shared by its sites, never the coordinator's."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != KEY_BYTES:
            raise LinkageError("bad-key", f"a linkage key is {KEY_BYTES} bytes")
        self._secret = secret

    @classmethod
    def generate(cls) -> LinkageKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def load(cls, path: Path) -> LinkageKey:
        """The key from its file, refused unless the file is this user's own, mode 0600, and not a link."""
        try:
            text = read_secret(Path(path), max_bytes=256)
        except SecretFileError as exc:
            raise LinkageError("bad-key", str(exc)) from None
        match = _KEY_LINE.fullmatch(text.strip())
        if match is None:
            raise LinkageError("bad-key", f"{path}: not a linkage key file ({KEY_FILE_PREFIX}<64 hex>)")
        return cls(bytes.fromhex(match.group(1)))

    def write(self, path: Path) -> None:
        """Write the key file whole, 0600 in a 0700 folder when it makes one (kernel/secret_files.py)."""
        write_secret(Path(path), f"{KEY_FILE_PREFIX}{self._secret.hex()}\n")

    def fingerprint(self) -> str:
        """A one-way digest the sites' admins compare to check they hold the same key; it reveals nothing of it."""
        return hmac.new(self._secret, b"enclave linkage key fingerprint v1", hashlib.sha256).hexdigest()[:16]

    def token(self, normalised: str) -> str:
        return hmac.new(self._secret, normalised.encode("utf-8"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"LinkageKey(fingerprint={self.fingerprint()})"

    def __reduce__(self) -> NoReturn:  # never pickled into a task, a log or a Dask graph
        raise TypeError("a linkage key is not pickled")


def normalise_identifier(kind: str, value: str) -> str:
    """`value` in its scheme's compact form ("943 476 5919" -> "9434765919"), check digits verified. `kind` is a
    national scheme of fabric/identifiers/schemes.py; a site's local MRNs do not link across sites (fabric/linkage.py
    maps those through a linkage table)."""
    if kind == LOCAL_MRN:
        raise LinkageError("unknown-scheme", "local MRNs are the site's own: link them through a linkage table")
    scheme = SCHEMES.get(kind)
    if scheme is None:
        raise LinkageError("unknown-scheme", f"the scheme is one of {', '.join(SCHEMES)}")
    if not isinstance(value, str):
        raise LinkageError("bad-identifier", f"an identifier is text, not a valid {scheme.name}")
    normalised = scheme.normalise(value)
    if normalised is None:
        raise LinkageError("bad-identifier", f"not a valid {scheme.name}")
    return normalised


def linkage_token(kind: str, value: str, key: LinkageKey) -> str:
    """One patient's token: HMAC-SHA256 of "scheme:normalised identifier" (the scheme in it so that equal digits in
    two schemes never link), hex."""
    return key.token(f"{kind}:{normalise_identifier(kind, value)}")


def linkage_tokens(identifiers: Iterable[tuple[str, str]], key: LinkageKey) -> set[str]:
    """The tokens of a site's (scheme, identifier) pairs; LinkageError counting the invalid ones, naming none."""
    tokens: set[str] = set()
    invalid = 0
    for kind, value in identifiers:
        try:
            tokens.add(linkage_token(kind, value, key))
        except LinkageError as exc:
            if exc.reason == "unknown-scheme":
                raise
            invalid += 1
    if invalid:
        raise LinkageError("bad-identifier", f"{invalid} identifier(s) fail their scheme's check: fix them first")
    return tokens


def _checked(tokens_by_site: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    checked: dict[str, set[str]] = {}
    for site, tokens in tokens_by_site.items():
        if isinstance(tokens, str | bytes):
            raise LinkageError("malformed-request", f"site {site}: a set of tokens, not one string")
        held = set(tokens)
        if not all(isinstance(t, str) and TOKEN.fullmatch(t) for t in held):
            raise LinkageError("not-a-token", f"site {site}: only linkage tokens (64 lower-case hex) are accepted")
        checked[site] = held
    return checked


def overlap(tokens_by_site: Mapping[str, Iterable[str]], order: Sequence[str]) -> dict[str, set[str]]:
    """The coordinator's step: for each site, the tokens it must leave out, those already present at a site earlier
    in `order` (the consortium's fixed order, naming every site given). Needs no key."""
    checked = _checked(tokens_by_site)
    order = list(order)
    if len(set(order)) != len(order):
        raise LinkageError("malformed-request", "the order names each site once")
    unordered = sorted(set(checked) - set(order))
    if unordered:
        raise LinkageError("malformed-request", f"sites not in the consortium's order: {', '.join(unordered)}")
    seen: set[str] = set()
    leave_out: dict[str, set[str]] = {}
    for site in order:
        if site not in checked:
            continue
        leave_out[site] = checked[site] & seen
        seen |= checked[site]
    return leave_out


def overlap_size(tokens_by_site: Mapping[str, Iterable[str]]) -> int:
    """How many patients are present at more than one site."""
    counts: dict[str, int] = {}
    for tokens in _checked(tokens_by_site).values():
        for token in tokens:
            counts[token] = counts.get(token, 0) + 1
    return sum(1 for n in counts.values() if n > 1)
