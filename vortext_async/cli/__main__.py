"""``python -m vortext_async.cli``: the ``vortext`` command."""

from . import main

main()
