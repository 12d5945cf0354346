"""Real, tiny media files made with PyAV for the tests (good clips and bad inputs).

``make_clip`` writes a moving gradient plus noise (never flat, so codecs and
models see real detail) with an AAC tone by default. The ``write_*`` helpers
produce the broken inputs the error tests need.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import av
import numpy as np
from av.stream import Disposition
from av.video.reformatter import ColorRange, Colorspace
from testkit.media import write_tone

from upres.domain.media import ColorInfo, VideoInfo

if TYPE_CHECKING:
    from av.container.core import Chapter

AUDIO_RATE = 48_000
VFR_TIME_BASE = Fraction(1, 1000)
SUBTITLE_TIME_BASE = Fraction(1, 1000)
# AVCOL_* values for BT.709 tags (primaries, transfer, matrix) and limited ("tv") range.
BT709 = 1
MPEG_RANGE = 1


def frame_pixels(index: int, width: int, height: int, *, seed: int = 0) -> np.ndarray:
    """The RGB24 (H, W, 3) picture of frame ``index``: a moving gradient with noise."""
    rng = np.random.default_rng(seed * 100_003 + index)
    y, x = np.mgrid[0:height, 0:width]
    shift = index * 3
    r = (x * 255 // max(width - 1, 1) + shift) % 256
    g = (y * 255 // max(height - 1, 1) + 2 * shift) % 256
    b = ((x + y) * 4 + 5 * shift) % 256
    img = np.stack([r, g, b], axis=-1).astype(np.int16)
    img += rng.integers(-12, 13, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def vfr_pts(frames: int, fps: int) -> list[int]:
    """Irregular presentation times in milliseconds: alternately 1x and 2x the nominal gap."""
    gap = 1000 // fps
    pts, t = [], 0
    for i in range(frames):
        pts.append(t)
        t += gap if i % 2 == 0 else 2 * gap
    return pts


def _clip_seconds(times: list[int], fps: int, *, vfr: bool) -> float:
    """When the last frame of a clip ends (its pts in ms for VFR, in frames otherwise)."""
    if vfr:
        return (times[-1] + 1000 // fps) / 1000
    return len(times) / fps


def make_clip(
    path: Path,
    *,
    width: int = 64,
    height: int = 48,
    frames: int = 12,
    fps: int = 12,
    audio: bool = True,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    vfr: bool = False,
    rotation: int = 0,
    color: Literal["bt709"] | None = None,
    container: str = "mp4",
    seed: int = 0,
    sar: Fraction | None = None,
    subtitles: tuple[str, ...] = (),
    encoder_options: dict[str, str] | None = None,
) -> Path:
    """Write a real clip to ``path`` and return it.

    ``vfr`` gives irregular frame times (1 ms time base); ``rotation`` stores a
    display-matrix rotation in degrees; ``color="bt709"`` converts with the
    BT.709 matrix, limited range, and writes BT.709 tags (otherwise untagged,
    PyAV's BT.601 conversion). ``pix_fmt`` may be a 10-bit format such as
    ``yuv420p10le`` with an encoder that supports it (libx265, libsvtav1).
    ``sar`` sets a pixel aspect ratio; ``subtitles`` adds a mov_text stream
    with one cue per text (cue ``i`` from 0.5*i s, 0.4 s long).
    ``encoder_options`` are added to the video encoder's (GOP size, B-frames, ...).
    """
    with av.open(str(path), mode="w", format=container) as out:
        video = _add_video(out, codec, width, height, fps, pix_fmt, vfr=vfr, color=color)
        video.options = {**video.options, **(encoder_options or {})}
        if rotation:
            video.set_display_rotation(rotation)
        if sar is not None:
            video.codec_context.sample_aspect_ratio = sar
        sound = _add_audio(out) if audio else None
        cues = _subtitle_packets(out, subtitles) if subtitles else []
        times = vfr_pts(frames, fps) if vfr else list(range(frames))
        for i, pts in enumerate(times):
            frame = _video_frame(frame_pixels(i, width, height, seed=seed), pix_fmt, color)
            frame.pts = pts
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            write_tone(out, sound, _clip_seconds(times, fps, vfr=vfr), amplitude=0.3)
        out.mux(cues)
    return path


def _add_video(
    out: av.container.OutputContainer,
    codec: str,
    width: int,
    height: int,
    fps: int,
    pix_fmt: str,
    *,
    vfr: bool,
    color: str | None,
) -> av.video.stream.VideoStream:
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.time_base = VFR_TIME_BASE if vfr else Fraction(1, fps)
    stream.codec_context.time_base = stream.time_base
    if codec in ("libx264", "libx265"):
        stream.options = {"crf": "16", "preset": "ultrafast"}
    if codec == "libx265":
        stream.options = {**stream.options, "x265-params": "log-level=error"}
    if color == "bt709":
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_primaries, ctx.color_trc = BT709, BT709, BT709
        ctx.color_range = MPEG_RANGE
    return stream


def _video_frame(rgb: np.ndarray, pix_fmt: str, color: str | None) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    if color == "bt709":
        frame = frame.reformat(
            format=pix_fmt,
            src_colorspace=Colorspace.ITU709,
            dst_colorspace=Colorspace.ITU709,
            src_color_range=ColorRange.JPEG,
            dst_color_range=ColorRange.MPEG,
        )
        frame.colorspace, frame.color_range = BT709, MPEG_RANGE
        frame.color_primaries, frame.color_trc = BT709, BT709
        return frame
    return frame.reformat(format=pix_fmt)


def _subtitle_packets(out: av.container.OutputContainer, texts: tuple[str, ...]) -> list[av.Packet]:
    """mov_text cues as raw packets (the stream is muxed without an encoder)."""
    stream = out.add_mux_stream("mov_text")
    stream.time_base = SUBTITLE_TIME_BASE
    packets = []
    for i, text in enumerate(texts):
        payload = text.encode()
        packet = av.Packet(struct.pack(">H", len(payload)) + payload)
        packet.pts = packet.dts = i * 500
        packet.duration = 400
        packet.time_base = SUBTITLE_TIME_BASE
        packet.stream = stream
        packets.append(packet)
    return packets


def _add_audio(out: av.container.OutputContainer) -> av.audio.stream.AudioStream:
    stream = out.add_stream("aac", rate=AUDIO_RATE)
    stream.layout = "mono"
    return stream


@dataclass(frozen=True, kw_only=True)
class Track:
    """A side stream of a tagged clip: its metadata and disposition flags."""

    language: str
    title: str
    disposition: int = 0


TAGGED_AUDIO = (
    Track(language="eng", title="English", disposition=Disposition.default),
    Track(language="fra", title="Français (commentaire)", disposition=Disposition.comment),
)
TAGGED_SUBTITLES = (
    Track(language="deu", title="Deutsch", disposition=Disposition.forced),
    Track(language="spa", title="Español"),
)
TAGGED_CONTAINER = {"title": "A tagged clip", "comment": "made by the tests", "artist": "upres"}
TAGGED_CHAPTERS = (("Opening", 0, 1000), ("Ending", 1000, 2000))
FONT = b"\x00\x01\x00\x00 not really a font, but bytes to keep"


def make_tagged_clip(
    path: Path,
    *,
    container: str = "mp4",
    fps: int = 12,
    encoder_options: dict[str, str] | None = None,
) -> Path:
    """A 2 s clip with everything a container can say about its streams.

    Two AAC tracks and two subtitle tracks (mov_text in mp4, subrip in
    Matroska) with languages, titles and dispositions (``TAGGED_*``), a
    titled video stream, container tags, two chapters, and in Matroska a font
    attachment. ``encoder_options`` as ``make_clip``'s.
    """
    subtitle_codec = "mov_text" if container == "mp4" else "subrip"
    with av.open(str(path), mode="w", format=container) as out:
        video = _add_video(out, "libx264", 64, 48, fps, "yuv420p", vfr=False, color=None)
        video.options = {**video.options, **(encoder_options or {})}
        video.metadata["title"] = "Picture"
        sounds = [_tagged(_add_audio(out), track) for track in TAGGED_AUDIO]
        cues = [_tagged(out.add_mux_stream(subtitle_codec), track) for track in TAGGED_SUBTITLES]
        out.metadata.update(TAGGED_CONTAINER)
        out.set_chapters([_chapter(i, *c) for i, c in enumerate(TAGGED_CHAPTERS)])
        if container == "matroska":
            out.add_attachment("font.ttf", "font/ttf", FONT)
        for i in range(2 * fps):
            frame = _video_frame(frame_pixels(i, 64, 48), "yuv420p", None)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for sound in sounds:
            write_tone(out, sound, 2.0, amplitude=0.3)
        for n, stream in enumerate(cues):
            out.mux(_cue_packets(stream, (f"cue {n} one", f"cue {n} two"), subtitle_codec))
    return path


def _tagged(stream: av.stream.Stream, track: Track) -> av.stream.Stream:
    stream.metadata["language"] = track.language
    stream.metadata["title"] = track.title
    stream.disposition = Disposition(track.disposition)
    return stream


def _chapter(index: int, title: str, start_ms: int, end_ms: int) -> Chapter:
    return {
        "id": index + 1,
        "start": start_ms,
        "end": end_ms,
        "time_base": Fraction(1, 1000),
        "metadata": {"title": title},
    }


def _cue_packets(stream: av.stream.Stream, texts: tuple[str, ...], codec: str) -> list[av.Packet]:
    """One cue per text, from 0.5*i s and 0.4 s long; mov_text payloads carry a length prefix."""
    packets = []
    for i, text in enumerate(texts):
        payload = text.encode()
        if codec == "mov_text":
            payload = struct.pack(">H", len(payload)) + payload
        packet = av.Packet(payload)
        packet.pts = packet.dts = i * 500
        packet.duration = 400
        packet.time_base = SUBTITLE_TIME_BASE
        packet.stream = stream
        packets.append(packet)
    return packets


def make_ass_clip(path: Path) -> Path:
    """A Matroska clip with one ASS subtitle cue (German, titled "Deutsch")."""
    with av.open(str(path), mode="w", format="matroska") as out:
        video = _add_video(out, "libx264", 64, 48, 12, "yuv420p", vfr=False, color=None)
        cues = _tagged(out.add_mux_stream("ass"), Track(language="deu", title="Deutsch"))
        for i in range(12):
            frame = _video_frame(frame_pixels(i, 64, 48), "yuv420p", None)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        out.mux(_cue_packets(cues, ("0,0,Default,,0,0,0,,hallo",), "ass"))
    return path


def write_not_a_video(path: Path) -> Path:
    """Bytes that no demuxer recognises."""
    rng = np.random.default_rng(7)
    path.write_bytes(b"this is not a video\n" + rng.integers(0, 256, 4096, np.uint8).tobytes())
    return path


def write_text_file(path: Path) -> Path:
    """A plain text file with an .mp4 name."""
    path.write_text("hello, I am a text file pretending to be a video\n" * 20)
    return path


def write_truncated(source: Path, path: Path, *, keep: float = 0.5) -> Path:
    """The first ``keep`` fraction of ``source``: for a non-faststart mp4 the moov is lost."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_faststart(source: Path, path: Path) -> Path:
    """``source`` remuxed with its index (the moov box) at the front, as sites serve mp4."""
    with (
        av.open(str(source)) as src,
        av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return path


def write_audio_only(path: Path, *, seconds: float = 1.0) -> Path:
    """An .m4a-style mp4 holding only an AAC stream."""
    with av.open(str(path), mode="w", format="mp4") as out:
        write_tone(out, _add_audio(out), seconds, amplitude=0.3)
    return path


def write_unknown_codec(source: Path, path: Path) -> Path:
    """``source`` (an H.264 mp4) with its sample entry renamed, so no decoder matches."""
    data = source.read_bytes()
    if b"avc1" not in data:
        raise ValueError("source must be an H.264 mp4")
    path.write_bytes(data.replace(b"avc1", b"zzz9"))
    return path


def write_no_frames(path: Path) -> Path:
    """A Matroska file declaring an H.264 video stream that holds no frame (plus audio)."""
    with av.open(str(path), mode="w", format="matroska") as out:
        video = out.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        write_tone(out, _add_audio(out), 0.5, amplitude=0.3)
    return path


def video_packet_spans(path: Path) -> list[tuple[int, int]]:
    """(byte offset, size) of every video packet of ``path``, in decode order."""
    with av.open(str(path)) as src:
        stream = src.streams.video[0]
        return [(p.pos, p.size) for p in src.demux(stream) if p.size and p.pos is not None]


def write_corrupt_packets(source: Path, path: Path, *, packets: tuple[int, ...]) -> Path:
    """``source`` with the video packets at the given decode-order indices overwritten by noise.

    The container index stays intact, so demuxing works but those packets do not decode.
    """
    data = bytearray(source.read_bytes())
    spans = video_packet_spans(source)
    rng = np.random.default_rng(11)
    for index in packets:
        pos, size = spans[index]
        data[pos : pos + size] = rng.integers(0, 256, size, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def probed_info(
    *,
    width: int = 640,
    height: int = 360,
    duration_s: float = 9.2,
    frames: int | None = 276,
    fps: int = 30,
    has_audio: bool = True,
) -> VideoInfo:
    """What ``probe`` reports for a plain H.264 mp4 of this size and length."""
    return VideoInfo(
        width=width,
        height=height,
        duration_s=duration_s,
        frame_count=frames,
        average_fps=Fraction(fps),
        codec="h264",
        pix_fmt="yuv420p",
        bit_depth=8,
        rotation=0,
        sample_aspect_ratio=None,
        color=ColorInfo(color_range=1, primaries=2, transfer=2, matrix=2),
        has_audio=has_audio,
        container="mp4",
    )
