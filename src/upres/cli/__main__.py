"""``python -m upres.cli``: the same as the ``upres`` command."""

from __future__ import annotations

from upres.cli import main

main()
