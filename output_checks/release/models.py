"""The airlock's tables, in the registry database (same SQLAlchemy code on SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kernel.db import Base


class ReleaseRequest(Base):
    __tablename__ = "release_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(ForeignKey("projects.name"), index=True)
    author: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), index=True)
    round: Mapped[int] = mapped_column(Integer, default=1)  # a new round of reviews after each resubmission
    reviews_required: Mapped[int] = mapped_column(Integer)
    check_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, index=True)

    files: Mapped[list[RequestFile]] = relationship(back_populates="request", order_by="RequestFile.id")
    reviews: Mapped[list[Review]] = relationship(back_populates="request", order_by="Review.id")


class RequestFile(Base):
    """One file of a request at one version: its snapshot is immutable; a revision is a new version."""

    __tablename__ = "request_files"
    __table_args__ = (UniqueConstraint("request_id", "path", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), index=True)
    path: Mapped[str] = mapped_column(Text)  # relative to the project's outputs folder
    version: Mapped[int] = mapped_column(Integer, default=1)
    current: Mapped[bool] = mapped_column(Boolean, default=True)  # the latest version of this path
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[str] = mapped_column(Text)  # relative to the airlock's snapshot store
    justification: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(8), nullable=True)  # the checks' verdict
    findings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    released: Mapped[bool] = mapped_column(Boolean, default=False)

    request: Mapped[ReleaseRequest] = relationship(back_populates="files")


class Review(Base):
    """One reviewer's review of one round: votes are hidden from other reviewers until the round has all its
    reviews."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("request_id", "round", "reviewer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    reviewer: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    request: Mapped[ReleaseRequest] = relationship(back_populates="reviews")
    votes: Mapped[list[Vote]] = relationship(back_populates="review", order_by="Vote.id")


class Vote(Base):
    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("review_id", "file_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("request_files.id"))
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")
    override_reason: Mapped[str] = mapped_column(Text, default="")  # required to approve a file the checks blocked
    at: Mapped[datetime] = mapped_column(DateTime)

    review: Mapped[Review] = relationship(back_populates="votes")


class Release(Base):
    """Bytes that left the enclave: re-requesting the same bytes is visible to reviewers."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), index=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("request_files.id"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    egress: Mapped[str] = mapped_column(Text)
    released_by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime)


class LedgerCell(Base):
    """One released table cell (release/ledger.py): keyed hashes of its row and column labels, never the labels, and
    the value that was released."""

    __tablename__ = "release_ledger"
    __table_args__ = (Index("ix_release_ledger_keys", "project", "row_key", "column_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), index=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("request_files.id"))
    row_key: Mapped[str] = mapped_column(String(64))
    column_key: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
