"""Federation's tables in the registry database: a coordinator's federated projects, their members, tasks and each
site's state of each task; a site node's own record of the tasks it pulled and the nonces it has seen."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import Base


class FederatedProject(Base):
    """At the coordinator: a project whose analysis runs at its sites."""

    __tablename__ = "federated_projects"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(16))
    sites: Mapped[list[str]] = mapped_column(JSON)  # in the consortium's fixed order
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class FederatedMember(Base):
    __tablename__ = "federated_members"

    project: Mapped[str] = mapped_column(ForeignKey("federated_projects.name"), primary_key=True)
    user: Mapped[str] = mapped_column(String(64), primary_key=True)


class FederatedTask(Base):
    """At the coordinator: one signed task (its manifest as signed, byte for byte) and who submitted it."""

    __tablename__ = "federated_tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project: Mapped[str] = mapped_column(ForeignKey("federated_projects.name"), index=True)
    submitter: Mapped[str] = mapped_column(String(64), index=True)
    signed: Mapped[str] = mapped_column(Text)  # SignedTask.to_json()
    notebook_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class TaskSite(Base):
    """At the coordinator: where one task stands at one site, as the site last reported it (federation/states.py)."""

    __tablename__ = "federated_task_sites"

    task_id: Mapped[str] = mapped_column(ForeignKey("federated_tasks.id"), primary_key=True)
    site: Mapped[str] = mapped_column(String(63), primary_key=True)
    state: Mapped[str] = mapped_column(String(24), index=True)
    reason: Mapped[str] = mapped_column(String(64), default="")  # a reason code, never free text from the site
    reference: Mapped[str] = mapped_column(String(64), default="")  # the site's own reference for its staff
    result_sha256: Mapped[str] = mapped_column(String(64), default="")
    result_size: Mapped[int] = mapped_column(Integer, default=0)
    tokens_sha256: Mapped[str] = mapped_column(String(64), default="")  # a count-once task: the site's tokens
    tokens_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class SiteTask(Base):
    """At a site: a task this site pulled, verified and is working on (or refused)."""

    __tablename__ = "site_tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    submitter: Mapped[str] = mapped_column(String(64))
    signed: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(24), index=True)
    reason: Mapped[str] = mapped_column(String(64), default="")
    reference: Mapped[str] = mapped_column(String(64))  # shown to the coordinator; the site's staff look it up
    approved_by: Mapped[str] = mapped_column(String(64), default="")
    request_id: Mapped[str] = mapped_column(String(32), default="")  # the site airlock's request
    linkage: Mapped[str] = mapped_column(String(16), default="")  # a count-once task: "", "sent", "ready"
    reported: Mapped[str] = mapped_column(String(24), default="")  # the last state the coordinator acknowledged
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class SeenNonce(Base):
    """At a site: every manifest nonce accepted, kept past its manifest's expiry so no manifest is run twice."""

    __tablename__ = "site_seen_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(36))
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
