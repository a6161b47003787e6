"""Local accounts (the embedded default's identity provider), in the registry database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fabric.db import Base


class Account(Base):
    __tablename__ = "accounts"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id, with its parameters and salt
    totp_secret: Mapped[str] = mapped_column(String(64))  # base32; shown once at set-up, never logged
    last_totp_step: Mapped[int] = mapped_column(Integer, default=0)  # a code is accepted once (no replay)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
