"""Helpers shared by the tests, imported as ``from tests.support.faults import ...``.

- ``faults``: the one raw HTTP/1.1 server (``FaultServer``, ``Fault``, ``refused_url``),
  and ``EdgeServer``, the same in a thread of its own, answering by path (dripping,
  huge, gzip-bomb, redirect answers) to clients of any event loop or process.
- ``window_server``: the fault server enforcing rolling windows, as a strict Vortext.
- ``clock``: ``RecordingClock``, virtual time that records the waits.
- ``library``: which HTTP library the suite runs over; ``requires_httpx``.
- ``redis_server``: a real redis-server on a free port (and a worker script).
- ``uvicorn_server``: ASGI apps under uvicorn, in process or as a subprocess.
- ``bulk_child``: a bulk job in its own process, for the crash test to kill.
- ``served``: the emulator served from a thread of its own, for blocking code.
- ``transports``: ``open_client`` over each transport; ``rss_child``: one send in a
  child process, printing its peak RSS growth.
- ``postgres_server``: a throwaway PostgreSQL (initdb, start, stop) for the journal.
- ``journal_child``: one host of a bulk campaign, for the PostgreSQL journal tests.
"""
