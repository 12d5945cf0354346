"""What a container says about itself and its streams, carried from the input to the output.

Kept: the container's tags (title, comment, artist, ...) and chapters, and
for every kept stream its tags (language, title, ...) and disposition flags
(default, forced, comment, hearing impaired, ...). Tags a muxer writes for
itself (encoder, mp4 brands and handler names, Matroska's per-track DURATION)
are left to the output's muxer. The mp4 demuxer reads a track title back as ``name``; it is
written as ``title``, the key every muxer reads.
"""

from __future__ import annotations

from collections.abc import Mapping

from av.container import InputContainer, OutputContainer
from av.stream import Disposition, Stream

# Lower-cased: Matroska spells its tags in capitals.
_WRITTEN_BY_THE_MUXER = frozenset(
    {"encoder", "major_brand", "minor_version", "compatible_brands", "duration", "handler_name"}
)
_TITLE_ALIASES = ("name",)


def kept_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """``tags`` without the ones the output's muxer writes itself, the title under ``title``."""
    kept = {k: v for k, v in tags.items() if k.lower() not in _WRITTEN_BY_THE_MUXER}
    for alias in _TITLE_ALIASES:
        if alias in kept:
            kept.setdefault("title", kept.pop(alias))
    return kept


def copy_stream_metadata(source: Stream, target: Stream) -> None:
    """Give ``target`` the tags and disposition of ``source`` (before the header is written)."""
    target.metadata.update(kept_tags(source.metadata))
    target.disposition = Disposition(int(source.disposition) & ~Disposition.attached_pic)


def copy_container_metadata(
    source: InputContainer, target: OutputContainer, *, stretch: int = 1
) -> None:
    """Give ``target`` the tags and chapters of ``source`` (before the header is written);
    ``stretch`` times later and longer for a slowed-down video."""
    target.metadata.update(kept_tags(source.metadata))
    chapters = source.chapters()
    if chapters:
        target.set_chapters(
            [{**c, "start": c["start"] * stretch, "end": c["end"] * stretch} for c in chapters]
        )


def is_chapter_track(stream: Stream) -> bool:
    """The text track that carries an mp4's chapters (the demuxer reads it as chapters)."""
    return stream.type == "data" and stream.discard == stream.discard.all
