"""The one error the pooling raises: a refusal with a short reason code and a clear sentence that names a site, a
row or a column, never a value of the table (a released count is still data)."""

from __future__ import annotations


class PoolingError(ValueError):
    """What was refused (`reason`: malformed-table, bad-count, bad-estimate, bad-value, malformed-request, too-large,
    coverage) and why (`detail`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
