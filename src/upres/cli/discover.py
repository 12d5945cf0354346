"""The videos a batch's SOURCEs name: files, folders (searched recursively) and globs.

A file is a video by its content, not its name: PyAV must open it and find a
moving picture (``probe``). A folder's other files (notes, pictures, subtitles)
are listed as not videos and skipped; one whose name says video but that does
not open is a failure the user should see. Hidden files and folders (a leading
dot), ``upres.toml`` and everything under OUTPUT_DIR are left out.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from upres.cli.folder_settings import SETTINGS_FILE
from upres.domain.media import MediaLimits, frame_total
from upres.errors import MediaError, NotAVideo, NoVideoStream
from upres.inputs.probe import probe

# Names that say "video": such a file that will not open is broken, not "something else".
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".ts", ".mts", ".m2ts"}
    | {".mpg", ".mpeg", ".vob", ".3gp", ".ogv"}
)
# Demuxers of still pictures: PyAV opens a JPEG or PNG as a one-frame "video".
_PICTURE_FORMATS = ("image2",)
_PICTURE_SUFFIX = "_pipe"
_GLOB_CHARACTERS = frozenset("*?[")


class Verdict(StrEnum):
    VIDEO = "video"
    NOT_A_VIDEO = "not a video"
    BROKEN = "broken"


@dataclass(frozen=True, kw_only=True)
class Found:
    """One file a SOURCE named: where it is, where its output goes (``relative``,
    under OUTPUT_DIR, before the container's suffix), the folder whose
    ``upres.toml`` files apply (``root`` and below), and what it is."""

    source: Path
    relative: Path
    root: Path
    verdict: Verdict
    reason: str = ""
    frames: int | None = None


def discover(sources: Sequence[str], output_dir: Path, limits: MediaLimits) -> list[Found]:
    """Every file the ``sources`` name, in order, each probed once."""
    skip = output_dir.resolve()
    found: list[Found] = []
    for source in sources:
        named = list(_files_of(source, skip))
        if not named:
            named.append(_nothing_in(source))
        found.extend(_judged(item, limits) for item in named)
    return found


def _files_of(source: str, skip: Path) -> Iterator[Found]:
    path = Path(source)
    if not path.exists() and _GLOB_CHARACTERS & set(source):
        for match in sorted(glob.glob(source, recursive=True)):
            yield from _files_of(match, skip)
        return
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.is_file() and _wanted(file.relative_to(path), file, skip):
                yield _unjudged(file, file.relative_to(path), path)
        return
    if path.is_file():
        yield _unjudged(path, Path(path.name), path.parent)


def _wanted(relative: Path, file: Path, skip: Path) -> bool:
    hidden = any(part.startswith(".") for part in relative.parts)
    return not hidden and file.name != SETTINGS_FILE and not file.resolve().is_relative_to(skip)


def _unjudged(file: Path, relative: Path, root: Path) -> Found:
    return Found(source=file, relative=relative, root=root, verdict=Verdict.VIDEO)


def _nothing_in(source: str) -> Found:
    path = Path(source)
    reason = "no such file or folder" if not path.exists() else "no video found"
    if _GLOB_CHARACTERS & set(source) and not path.exists():
        reason = "no file matches"
    return Found(
        source=path, relative=Path(path.name), root=path, verdict=Verdict.BROKEN, reason=reason
    )


def _judged(item: Found, limits: MediaLimits) -> Found:
    """``item`` with its verdict (a Found already judged broken stays so)."""
    if item.verdict is Verdict.BROKEN:
        return item
    try:
        info = probe(item.source, limits=limits)
    except (NotAVideo, NoVideoStream) as exc:
        if item.source.suffix.lower() in VIDEO_SUFFIXES:
            return _with(item, Verdict.BROKEN, str(exc))
        return _with(item, Verdict.NOT_A_VIDEO, str(exc))
    except MediaError as exc:
        return _with(item, Verdict.BROKEN, str(exc))
    if info.container in _PICTURE_FORMATS or info.container.endswith(_PICTURE_SUFFIX):
        return _with(item, Verdict.NOT_A_VIDEO, "a still picture, not a video")
    frames = frame_total(info.frame_count, info.duration_s, info.average_fps)
    return Found(
        source=item.source,
        relative=item.relative,
        root=item.root,
        verdict=Verdict.VIDEO,
        frames=frames,
    )


def _with(item: Found, verdict: Verdict, reason: str) -> Found:
    return Found(
        source=item.source, relative=item.relative, root=item.root, verdict=verdict, reason=reason
    )
