"""Bulk sends: the job (:mod:`._job`) and its crash-safe journal (:mod:`._journal`)."""

from __future__ import annotations

from ._job import BulkJob, BulkProgress, BulkSummary, Sender, send_bulk
from ._journal import Claim, ClaimKind, Journal, fingerprint, journal_key

__all__ = [
    "BulkJob",
    "BulkProgress",
    "BulkSummary",
    "Claim",
    "ClaimKind",
    "Journal",
    "Sender",
    "fingerprint",
    "journal_key",
    "send_bulk",
]
