"""What a container says survives the upscale: tags, chapters, every stream's language,
title and disposition, subtitles cue for cue, attachments in Matroska; what cannot go
into the output container is named when it is dropped."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.stream import Disposition

from tests.clips import (
    FONT,
    TAGGED_AUDIO,
    TAGGED_CHAPTERS,
    TAGGED_CONTAINER,
    TAGGED_SUBTITLES,
    make_ass_clip,
    make_tagged_clip,
)
from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.tasks import Factor
from upres.pipeline.engine import upscale_video
from upres.pipeline.upscale import InterpolationUpscaler
from upres.pipeline.video_run import VideoOptions, VideoResult

SUFFIX = {"mp4": ".mp4", "matroska": ".mkv"}
# The flags both mp4 and Matroska store (mp4 also marks its first subtitle track default).
PORTABLE_FLAGS = Disposition.comment | Disposition.forced


def _upscale(source: Path, destination: Path) -> VideoResult:
    return upscale_video(
        source=source,
        destination=destination,
        upscaler=InterpolationUpscaler(Factor.ENHANCE),
        options=VideoOptions(encode=EncodeSettings(preset="ultrafast"), limits=MediaLimits()),
    )


@pytest.fixture(scope="module", params=["mp4", "matroska"])
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tagged")
    return make_tagged_clip(folder / f"in{SUFFIX[request.param]}", container=request.param)


def _tags(tags: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in tags.items()}


def _streams(path: Path) -> list[tuple[str, str | None, str | None, int]]:
    """(type, language, title, portable flags) of the audio and subtitle streams."""
    with av.open(str(path)) as container:
        return [
            (
                s.type,
                s.metadata.get("language"),
                s.metadata.get("title") or s.metadata.get("name"),
                int(s.disposition & PORTABLE_FLAGS),
            )
            for s in container.streams
            if s.type in ("audio", "subtitle")
        ]


def _chapters(path: Path) -> list[tuple[str, float, float]]:
    with av.open(str(path)) as container:
        return [
            (
                c["metadata"]["title"],
                float(c["start"] * c["time_base"]),
                float(c["end"] * c["time_base"]),
            )
            for c in container.chapters()
        ]


def _cues(path: Path) -> list[list[tuple[str, float, float]]]:
    """Each subtitle stream's cues: (text, start s, duration s), empty gap cues left out."""
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == "subtitle"]
        cues: dict[int, list[tuple[str, float, float]]] = {s.index: [] for s in streams}
        for packet in container.demux(*streams):
            payload = bytes(packet)
            text = payload[2:] if streams[0].codec_context.name == "mov_text" else payload
            if text and packet.pts is not None:
                start = round(float(packet.pts * packet.time_base), 3)
                span = round(float(packet.duration * packet.time_base), 3)
                cues[packet.stream.index].append((text.decode(), start, span))
        return list(cues.values())


def _audio_packets(path: Path) -> list[list[bytes]]:
    with av.open(str(path)) as container:
        return [[bytes(p) for p in container.demux(s) if p.size] for s in container.streams.audio]


@pytest.mark.parametrize("output", ["mp4", "matroska"])
def test_tags_chapters_and_stream_facts_survive(tmp_path: Path, source: Path, output: str) -> None:
    destination = tmp_path / f"out{SUFFIX[output]}"
    _upscale(source, destination)
    with av.open(str(destination)) as container:
        assert output in container.format.name.split(",")
        assert TAGGED_CONTAINER.items() <= _tags(container.metadata).items()
        video = container.streams.video[0]
        assert (video.metadata.get("title") or video.metadata.get("name")) == "Picture"
    expected = [
        ("audio", t.language, t.title, t.disposition & PORTABLE_FLAGS) for t in TAGGED_AUDIO
    ]
    expected += [
        ("subtitle", t.language, t.title, t.disposition & PORTABLE_FLAGS) for t in TAGGED_SUBTITLES
    ]
    assert _streams(destination) == expected
    assert _chapters(destination) == [(t, s / 1000, e / 1000) for t, s, e in TAGGED_CHAPTERS]


@pytest.mark.parametrize("output", ["mp4", "matroska"])
def test_audio_bit_for_bit_and_subtitles_cue_for_cue(
    tmp_path: Path, source: Path, output: str
) -> None:
    destination = tmp_path / f"out{SUFFIX[output]}"
    _upscale(source, destination)
    assert _audio_packets(destination) == _audio_packets(source)
    shift = _first_video_time(destination) - _first_video_time(source)
    moved = [
        [(text, round(start - shift, 3), span) for text, start, span in stream]
        for stream in _cues(destination)
    ]
    assert moved == _cues(source)


def _first_video_time(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float((stream.start_time or 0) * (stream.time_base or Fraction(0)))


def test_same_container_keeps_every_disposition(tmp_path: Path, source: Path) -> None:
    destination = tmp_path / f"out{source.suffix}"
    _upscale(source, destination)

    def flags(path: Path) -> list[int]:
        with av.open(str(path)) as container:
            return [
                int(s.disposition) for s in container.streams if s.type in ("audio", "subtitle")
            ]

    assert flags(destination) == flags(source)


def test_the_mp4_chapter_track_is_kept_as_chapters_not_reported_dropped(tmp_path: Path) -> None:
    source = make_tagged_clip(tmp_path / "in.mp4")
    result = _upscale(source, tmp_path / "out.mp4")
    assert result.dropped_streams == ()


def test_attachments_are_kept_in_matroska_and_named_when_mp4_drops_them(tmp_path: Path) -> None:
    source = make_tagged_clip(tmp_path / "in.mkv", container="matroska")
    kept = _upscale(source, tmp_path / "out.mkv")
    assert kept.dropped_streams == ()
    with av.open(str(tmp_path / "out.mkv")) as container:
        (font,) = container.streams.attachments
        assert (font.name, font.mimetype, font.data) == ("font.ttf", "font/ttf", FONT)
    dropped = _upscale(source, tmp_path / "out.mp4")
    assert dropped.dropped_streams == (
        "attachment stream #5 (font.ttf, font/ttf): mp4 cannot carry it",
    )


def test_ass_subtitles_are_kept_in_matroska_and_named_when_mp4_drops_them(tmp_path: Path) -> None:
    source = make_ass_clip(tmp_path / "in.mkv")
    assert _upscale(source, tmp_path / "out.mkv").dropped_streams == ()
    assert _cues(tmp_path / "out.mkv") == _cues(source)
    dropped = _upscale(source, tmp_path / "out.mp4")
    assert dropped.dropped_streams == (
        'subtitle stream #1 (ass, deu, "Deutsch"): mp4 cannot carry it',
    )
