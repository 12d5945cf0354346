"""``upres.toml``: the choices for the videos of a source folder and the folders below it.

    # season-1/upres.toml
    factor = 4
    model = "realesrgan-x4plus"
    codec = "h265"
    crf = 20
    preset = "slow"
    temporal = true
    double_rate = true     # the frame rate: one frame per field for interlaced sources

Each key comes from the nearest ``upres.toml`` that sets it, from the video's
own folder up to the SOURCE folder named on the command line (never above it).
Precedence: a command-line option > the nearest upres.toml > UPRES_* > default.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from upres.cli.choices import Options, video_codec
from upres.errors import InvalidRequest

SETTINGS_FILE = "upres.toml"
_KINDS: dict[str, type] = {
    "factor": int,
    "model": str,
    "codec": str,
    "crf": int,
    "preset": str,
    "temporal": bool,
    "double_rate": bool,
}


class FolderSettings:
    """The ``upres.toml`` files of one run, each read once."""

    def __init__(self) -> None:
        self._read: dict[Path, Options] = {}

    def options_for(self, file: Path, root: Path) -> Options:
        """The options the ``upres.toml`` files from ``file``'s folder up to ``root`` set.

        Raises InvalidRequest naming the file when one is not valid TOML or has a
        key or value upres does not take.
        """
        options = Options()
        folder = file.parent.resolve()
        top = root.resolve()
        while True:
            options = options.over(self._options_in(folder))
            if folder == top or not folder.is_relative_to(top) or folder.parent == folder:
                return options
            folder = folder.parent

    def _options_in(self, folder: Path) -> Options:
        if folder not in self._read:
            self._read[folder] = _read(folder / SETTINGS_FILE)
        return self._read[folder]


def _read(path: Path) -> Options:
    """One file's options (none when it does not exist)."""
    if not path.is_file():
        return Options()
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidRequest(f"{path}: {exc}", param="upres.toml") from exc
    return Options(**{key: _value(path, key, value) for key, value in table.items()})


def _value(path: Path, key: str, value: Any) -> Any:
    kind = _KINDS.get(key)
    if kind is None:
        known = ", ".join(_KINDS)
        raise InvalidRequest(f"{path}: unknown key {key!r}; use {known}", param="upres.toml")
    # bool is an int in Python: a factor of true is refused like any other wrong type.
    if type(value) is not kind:
        raise InvalidRequest(
            f"{path}: {key} must be a {kind.__name__}, got {value!r}", param="upres.toml"
        )
    if key == "factor" and value not in (1, 2, 4):
        raise InvalidRequest(f"{path}: factor must be 1, 2 or 4, got {value}", param="upres.toml")
    if key == "codec":
        try:
            return video_codec(str(value))
        except InvalidRequest as exc:
            raise InvalidRequest(f"{path}: {exc}", param="upres.toml") from exc
    return value
