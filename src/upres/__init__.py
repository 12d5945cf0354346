"""upres: self-hosted AI video upscaling, as a CLI and as an HTTP task API.

The package is organised along the data flow: ``api`` (HTTP edge) ->
``services`` (use cases) -> ``jobs`` (queue, workers) -> ``worker`` (the
pipeline: fetch, probe, decode, upscale, encode) -> ``storage`` and
``callbacks``; ``models`` holds the model registry, ``domain`` pure types and
``errors`` the one exception tree, re-exported here.
"""

from __future__ import annotations

from upres.errors import UpresError

__version__ = "0.1.0"
__all__ = ["UpresError", "__version__"]
