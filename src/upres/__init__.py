"""upres: self-hosted AI video upscaling, as a CLI and as an HTTP task API.

The package is organised along the data flow: ``api`` (HTTP edge) ->
``services`` (use cases) -> ``jobs`` (the queue, workers) -> ``pipeline``
(decode, upscale, encode) -> ``storage`` and ``callbacks``; ``inputs``
(fetch, probe, URL policy) serves both sides, ``models`` holds the model
registry, ``domain`` pure types and ``errors`` the one exception tree,
re-exported here. ``wiring`` builds it all from the settings; see
docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from upres.errors import UpresError

__version__ = "0.1.0"
__all__ = ["UpresError", "__version__"]
