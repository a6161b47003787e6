"""Who and what goes into a project's view: the patients of the project's datasets whose consent in force covers
the project's purpose, each under the project's pseudonym, dataset by dataset. A project of `datasets: ['*']` builds
from the datasets it accepted; those registered since wait for an admin and stay out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from fabric.consent import state_in_force
from fabric.models import ConsentEvent, Dataset, PatientRecord
from fabric.projects import get_open_project, project_datasets, project_spec
from fabric.pseudonyms import load_or_create_key, pseudonym
from kernel.config import Paths
from kernel.db import Registry


@dataclass(frozen=True)
class DatasetPlan:
    """What to copy from one dataset: its patients' local ids mapped to (enclave patient id, pseudonym)."""

    id: str
    site: str
    modality: str
    format: str
    location: Path
    checksum: str
    members: dict[str, tuple[str, str]]
    dialect: dict | None = None  # a csv-local clinical dataset's site dialect, as registered


@dataclass
class BuildPlan:
    project: str
    purpose: str
    commercial: bool
    compute: dict
    datasets: list[DatasetPlan]
    eligible: int
    excluded: int

    def pseudonyms(self) -> set[str]:
        return {pseudo for d in self.datasets for _pid, pseudo in d.members.values()}


def plan_build(registry: Registry, paths: Paths, name: str, *, on: datetime | None = None) -> BuildPlan:
    """Decide who and what goes into the view: patients in the project's datasets whose consent in force covers
    the project's purpose, each with the project's pseudonym."""
    with registry.session() as session:
        project = get_open_project(session, name)
        spec = project_spec(project)
        dataset_ids = project_datasets(session, project).accepted
        datasets = session.scalars(select(Dataset).where(Dataset.id.in_(dataset_ids)).order_by(Dataset.id)).all()
        records = session.execute(
            select(PatientRecord.dataset_id, PatientRecord.local_id, PatientRecord.patient_id).where(
                PatientRecord.dataset_id.in_(dataset_ids)
            )
        ).all()
        by_dataset: dict[str, list[tuple[str, str]]] = {}
        patient_ids: set[str] = set()
        for dataset_id, local_id, patient_id in records:
            by_dataset.setdefault(dataset_id, []).append((local_id, patient_id))
            patient_ids.add(patient_id)
        events: dict[str, list[ConsentEvent]] = {}
        for event in session.scalars(select(ConsentEvent).where(ConsentEvent.patient_id.in_(patient_ids))):
            events.setdefault(event.patient_id, []).append(event)
        day = (on or datetime.now(UTC)).date()
        eligible = {
            pid
            for pid in patient_ids
            if (state := state_in_force(events.get(pid, []), day)) is not None
            and state.covers(spec.purpose, commercial=spec.commercial)
        }
        key = load_or_create_key(paths.project_key(name))
        names = {pid: pseudonym(key, pid) for pid in eligible}
        plans = [
            DatasetPlan(
                id=d.id,
                site=d.site_id,
                modality=d.modality,
                format=d.format,
                location=Path(d.location),
                checksum=d.checksum,
                dialect=d.site.clinical_dialect if d.modality == "clinical" else None,
                members={
                    local: (pid, names[pid]) for local, pid in sorted(by_dataset.get(d.id, [])) if pid in eligible
                },
            )
            for d in datasets
        ]
        return BuildPlan(
            project=name,
            purpose=spec.purpose,
            commercial=spec.commercial,
            compute=spec.compute.for_view(),
            datasets=plans,
            eligible=len(eligible),
            excluded=len(patient_ids) - len(eligible),
        )
