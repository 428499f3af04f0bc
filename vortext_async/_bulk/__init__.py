"""Bulk sends: the job (:mod:`._job`) and its crash-safe journal (:mod:`._journal`)."""

from __future__ import annotations

from ._claims import DEFAULT_JOB
from ._job import BulkJob, BulkProgress, BulkSummary, Sender, send_bulk
from ._journal import (
    Claim,
    ClaimKind,
    Journal,
    JournalRun,
    JournalStatus,
    fingerprint,
    journal_jobs,
    journal_key,
    journal_status,
)

__all__ = [
    "DEFAULT_JOB",
    "BulkJob",
    "BulkProgress",
    "BulkSummary",
    "Claim",
    "ClaimKind",
    "Journal",
    "JournalRun",
    "JournalStatus",
    "Sender",
    "fingerprint",
    "journal_jobs",
    "journal_key",
    "journal_status",
    "send_bulk",
]
