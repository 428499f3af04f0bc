"""A blocking client, for code that is not asyncio: scripts, Django views, Celery tasks.

::

    from vortext_async import RateLimit
    from vortext_async.sync import VortextClient

    with VortextClient(rate_limit=RateLimit(per_minute=600)) as client:
        sent = client.send_sms("+33611272727", "Your code is 1234")

It has the asyncio client's constructor, calls, guarantees and errors; each client
runs an event loop in a background thread of its own, shared by every thread that
uses the client.  Inside ``async`` code, use :class:`vortext_async.VortextClient`.
"""

from ._sync import BulkJob, VortextClient

__all__ = ["BulkJob", "VortextClient"]
