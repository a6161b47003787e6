"""Synthetic multimodal cardiac cohort: per-site custodian-zone exports (clinical, DICOM, VCF/BAM, consent).

`generate_cohort` writes `out/<site_id>/` exactly as docs/reference/data-layout.md describes; output is a pure
function of its arguments (same seed → byte-identical files).
"""

from synthetic_sites.cohort import CohortSummary, generate_cohort

__all__ = ["CohortSummary", "generate_cohort"]
