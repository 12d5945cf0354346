"""What a batch wrote into its OUTPUT_DIR, kept in ``OUTPUT_DIR/.upres/``.

``manifest.json`` maps each output (its path under OUTPUT_DIR) to the run that
writes or wrote it: ``pending`` from before its work starts (so the output is
upres's to replace, and a remote task's upload and Idempotency-Key survive a
crash), ``done`` once the output is in place, with the source's size and
modification time and the settings used. A file is redone when any of those
changed. The manifest is rewritten whole (temp file + rename) at each change,
so a crash leaves the old or the new one, never half of one.

Work in progress lives in ``.upres/partial/`` and reaches its real name by one
rename on the same file system: the output folder never shows a partial file
under a real name. A run removes what a crashed run left there when it starts,
and holds ``.upres/lock`` (an advisory lock) so that two runs never share one
OUTPUT_DIR. The finished chunks of a long file run in chunks are kept in
``.upres/chunks/`` until the file is done, so a run after a crash makes only
the chunks that were missing (with the same source and settings; other
settings start the file's chunks over).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from upres.errors import InvalidRequest

STATE_DIR = ".upres"
MANIFEST_FILE = "manifest.json"
_VERSION = 1
PENDING, DONE = "pending", "done"
_IDENTITY_FILE = "identity.json"


class Manifest:
    """The manifest of one OUTPUT_DIR, held by this run (see ``opened``)."""

    def __init__(self, output_dir: Path) -> None:
        self._dir = output_dir
        self._state = output_dir / STATE_DIR
        self._path = self._state / MANIFEST_FILE
        self._entries: dict[str, dict[str, Any]] = self._load()

    @property
    def partial(self) -> Path:
        """Where outputs are written before they are renamed into place."""
        return self._state / "partial"

    def entry(self, output: Path) -> dict[str, Any] | None:
        """What the manifest says of ``output`` (a path under OUTPUT_DIR)."""
        return self._entries.get(self._key(output))

    def is_done(self, output: Path, identity: dict[str, Any]) -> bool:
        """Whether ``output`` is finished from this source with these settings, and is
        still the file upres wrote (same size)."""
        entry = self.entry(output)
        return (
            entry is not None
            and entry.get("state") == DONE
            and entry.get("identity") == identity
            and output.is_file()
            and output.stat().st_size == entry.get("bytes")
        )

    def wrote(self, output: Path) -> bool:
        """Whether a file at ``output`` is upres's to replace: one it finished and nobody
        changed since, or one a run of upres was writing."""
        entry = self.entry(output)
        if entry is None:
            return False
        if entry.get("state") == PENDING:
            return True
        return output.is_file() and output.stat().st_size == entry.get("bytes")

    def chunk_parts(self, output: Path, identity: dict[str, Any]) -> Path:
        """The folder that keeps the finished chunks of ``output`` made with ``identity``
        (emptied when it holds another identity's chunks)."""
        folder = self._chunks_of(output)
        stamp = folder / _IDENTITY_FILE
        wanted = json.dumps(identity, sort_keys=True)
        if folder.exists() and (not stamp.is_file() or stamp.read_text("utf-8") != wanted):
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stamp.write_text(wanted, encoding="utf-8")
        return folder

    def start(self, output: Path, identity: dict[str, Any], **extra: Any) -> None:
        """Record that this run is writing ``output``; ``extra`` are kept with it (a
        remote task's upload and key) and updated by later calls."""
        old = self.entry(output) or {}
        kept = old.get("extra", {}) if old.get("identity") == identity else {}
        entry = {"state": PENDING, "identity": identity, "extra": {**kept, **extra}}
        self._entries[self._key(output)] = entry
        self._save()

    def finish(self, output: Path, identity: dict[str, Any]) -> None:
        """Record that ``output`` is in place, made from this source with these settings."""
        entry = {"state": DONE, "identity": identity, "bytes": output.stat().st_size}
        self._entries[self._key(output)] = entry
        self._save()
        shutil.rmtree(self._chunks_of(output), ignore_errors=True)

    def forget_extra(self, output: Path) -> None:
        """Drop what ``start`` kept for ``output`` (a remote task that cannot be resumed)."""
        entry = self.entry(output)
        if entry is not None:
            entry["extra"] = {}
            self._save()

    def _key(self, output: Path) -> str:
        return output.relative_to(self._dir).as_posix()

    def _chunks_of(self, output: Path) -> Path:
        name = hashlib.sha256(self._key(output).encode()).hexdigest()[:16]
        return self._state / "chunks" / name

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise InvalidRequest(
                f"Cannot read {self._path} ({exc}); move it away to start over.",
                param="output",
            ) from exc
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            raise InvalidRequest(
                f"{self._path} is not a manifest this upres writes; move it away to start over.",
                param="output",
            )
        entries = data.get("outputs", {})
        return entries if isinstance(entries, dict) else {}

    def _save(self) -> None:
        text = json.dumps({"version": _VERSION, "outputs": self._entries}, indent=1)
        handle, temp = tempfile.mkstemp(dir=self._state, prefix=".manifest-", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, self._path)


@contextmanager
def opened(output_dir: Path) -> Iterator[Manifest]:
    """The manifest of ``output_dir`` (created, with the folder, when missing), held by
    this run: partial files a crashed run left are removed first, this run's after.

    Raises InvalidRequest when OUTPUT_DIR cannot be made or written, another run holds
    it, or its manifest cannot be read.
    """
    state = output_dir / STATE_DIR
    try:
        state.mkdir(parents=True, exist_ok=True)
        lock = (state / "lock").open("a")
    except OSError as exc:
        raise InvalidRequest(f"Cannot write {output_dir}: {exc.strerror or exc}.") from exc
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise InvalidRequest(f"Another upres run is writing into {output_dir}.") from exc
        manifest = Manifest(output_dir)
        shutil.rmtree(manifest.partial, ignore_errors=True)
        try:
            yield manifest
        finally:
            shutil.rmtree(manifest.partial, ignore_errors=True)
