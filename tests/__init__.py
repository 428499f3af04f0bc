"""The test suite, laid out like the package: one folder per area (``client/``, ``http/``,
``limiters/``, ``retry/``, ``bulk/``, ``webhooks/``, ``emulator/``, ``cli/``,
``integrations/``, ``models/``), cross-cutting tests at the top, helpers in ``support/``.

Everything is imported as ``tests.<area>...``: never put ``tests/`` itself on ``sys.path``
(``tests/http`` would shadow the standard library's ``http``).  No module in ``support/``
is named after a real package (``redis_server``, not ``redis``): run as a script, its
folder comes first on ``sys.path``.
"""
