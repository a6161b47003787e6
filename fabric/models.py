"""The registry's tables: sites, datasets, the patient index, consent history, projects and their builds, and
the audit log. Identifiers (NHS numbers, MRNs, sample IDs) live only here and in the custodian zone."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kernel.db import Base


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    clinical_format: Mapped[str] = mapped_column(String(32))
    # the national identifier its patients carry (fabric/identifiers/schemes.py); they link across sites by it
    identifier_scheme: Mapped[str] = mapped_column(String(32), default="nhs", server_default="nhs")
    # a csv-local site's CSV dialect as site.yaml declared it (fabric/clinical/dialect.py); None: the default layout
    clinical_dialect: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    root: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(DateTime)

    datasets: Mapped[list[Dataset]] = relationship(back_populates="site", order_by="Dataset.id")


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    modality: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    files: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)
    registered_at: Mapped[datetime] = mapped_column(DateTime)

    site: Mapped[Site] = relationship(back_populates="datasets")


class Patient(Base):
    """One person across every site and modality, linked by NHS number, or by another national identifier
    (PatientIdentifier) for patients of sites that declare another scheme."""

    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    nhs_number: Mapped[str | None] = mapped_column(String(10), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    records: Mapped[list[PatientRecord]] = relationship(back_populates="patient")
    consent_events: Mapped[list[ConsentEvent]] = relationship(
        back_populates="patient", order_by="(ConsentEvent.date, ConsentEvent.id)"
    )


class PatientIdentifier(Base):
    """A patient's national identifier in a scheme other than the NHS's, in its normalised form."""

    __tablename__ = "patient_identifiers"
    __table_args__ = (UniqueConstraint("scheme", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    scheme: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(32))


class SiteMrn(Base):
    """A patient's MRN at a site that identifies its patients by MRN alone (identifier_scheme local-mrn): scoped to
    the site, so equal MRNs at two sites are two people unless the site's linkage table (fabric/linkage.py) names
    the patient elsewhere."""

    __tablename__ = "site_mrns"
    __table_args__ = (UniqueConstraint("site_id", "mrn"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    mrn: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)


class PatientRecord(Base):
    """A patient's local identifier in one dataset: an MRN (clinical, imaging) or a lab sample ID (genomics)."""

    __tablename__ = "patient_records"
    __table_args__ = (UniqueConstraint("dataset_id", "local_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    local_id: Mapped[str] = mapped_column(String(64))

    patient: Mapped[Patient] = relationship(back_populates="records")


class ConsentEvent(Base):
    """One consent decision, append-only; the latest by date is in force."""

    __tablename__ = "consent_events"
    __table_args__ = (UniqueConstraint("patient_id", "date", "action", "source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    date: Mapped[date] = mapped_column(Date)
    action: Mapped[str] = mapped_column(String(16))
    purposes: Mapped[list[str]] = mapped_column(JSON)
    modifiers: Mapped[list[str]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)

    patient: Mapped[Patient] = relationship(back_populates="consent_events")


class Project(Base):
    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(32))
    commercial: Mapped[bool] = mapped_column(Boolean)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # With `datasets: ['*']`: the datasets an admin accepted (those registered when the project was created or
    # replaced, and those accepted since); a dataset registered later waits for a decision (fabric/projects.py).
    datasets_accepted: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # Set once by `enclave project close`: its researchers' access ended, its view removed; kept for the record.
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    members: Mapped[list[ProjectMember]] = relationship(
        back_populates="project", cascade="all, delete-orphan", order_by="ProjectMember.username"
    )
    builds: Mapped[list[ProjectBuild]] = relationship(back_populates="project", order_by="ProjectBuild.built_at")


class ProjectMember(Base):
    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_name", "username", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_name: Mapped[str] = mapped_column(ForeignKey("projects.name"), index=True)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))

    project: Mapped[Project] = relationship(back_populates="members")


class ProjectBuild(Base):
    """One published materialisation of a project's view."""

    __tablename__ = "project_builds"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_name: Mapped[str] = mapped_column(ForeignKey("projects.name"), index=True)
    built_at: Mapped[datetime] = mapped_column(DateTime)
    patients: Mapped[int] = mapped_column(Integer)
    files: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)
    manifest_sha256: Mapped[str] = mapped_column(String(64))

    project: Mapped[Project] = relationship(back_populates="builds")
