"""Local accounts (the embedded default's identity provider) and the failed logins the login throttle counts
(hub/throttle.py), in the registry database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import Base


class Account(Base):
    __tablename__ = "accounts"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id, with its parameters and salt
    totp_secret: Mapped[str] = mapped_column(String(64))  # base32; shown once at set-up, never logged
    last_totp_step: Mapped[int] = mapped_column(Integer, default=0)  # a code is accepted once (no replay)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # Where the airlock's notices of waiting requests go (output checkers); none: no e-mail, the hub page only.
    email: Mapped[str | None] = mapped_column(String(254), nullable=True, default=None)


class LoginFailure(Base):
    """One failed login, kept for the throttle's longest window: which account was tried, from where, when. No
    account-wide state: failures are only ever counted per source (hub/throttle.py)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(64), index=True)  # a client address (IPv6 by /64) or `unix:UID`
    username: Mapped[str] = mapped_column(String(64))  # as typed when it is a valid name, else ""
    at: Mapped[datetime] = mapped_column(DateTime, index=True)  # UTC
