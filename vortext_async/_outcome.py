"""What a failed send means for the message: one rule for the client and for bulk."""

from __future__ import annotations

from ._errors import VortextError
from ._models import Outcome

__all__ = ["outcome_of"]


def outcome_of(error: BaseException) -> Outcome:
    """``FAILED`` when ``error`` certainly sent nothing, else ``UNCERTAIN``.

    Only our own errors can say that nothing went out
    (:attr:`~vortext_async.VortextError.certainly_not_sent`); anything else may have
    happened at any point of the exchange.
    """
    if isinstance(error, VortextError) and error.certainly_not_sent:
        return Outcome.FAILED
    return Outcome.UNCERTAIN
