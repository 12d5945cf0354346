"""The output file: its container follows its name, and it is checked before any work.

``.mp4``, ``.m4v`` and ``.mov`` get ISO-BMFF (mp4/QuickTime); ``.mkv`` gets
Matroska, which also keeps subrip/ASS subtitles and attachments (fonts) that
mp4 cannot carry. Any other name is refused rather than given mp4 bytes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from upres.errors import InvalidRequest

# File name suffix -> FFmpeg muxer.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def output_container(path: Path) -> str:
    """The muxer for ``path``'s name. Raises InvalidRequest for a name upres does not write."""
    container = CONTAINERS.get(path.suffix.lower())
    if container is None:
        names = ", ".join(CONTAINERS)
        raise InvalidRequest(
            f"Cannot write {path}: the output name must end in one of {names}.", param="output"
        )
    return container


def check_destination(path: Path) -> str:
    """Check that ``path`` can be written, and return its container.

    Raises InvalidRequest naming ``path`` when it is a directory, its directory
    is missing, its name has no known container, or its directory is not
    writable. Leaves no file.
    """
    if path.is_dir():
        raise InvalidRequest(f"Cannot write {path}: it is a directory.", param="output")
    folder = path.parent
    if not folder.is_dir():
        raise InvalidRequest(
            f"Cannot write {path}: the directory {folder} does not exist.", param="output"
        )
    container = output_container(path)
    try:
        # The output is first written beside its final name (see upres.pipeline.engine).
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InvalidRequest(
            f"Cannot write {path}: {folder} is not writable ({exc.strerror or exc}).",
            param="output",
        ) from exc
    return container
