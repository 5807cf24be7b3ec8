# Copyright 2026 Roboflare developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""
The on-disk spool of unacknowledged upstream log batches, and the journal of what it held.

One file per batch, ``<seq>.batch``: a JSON header line (``id``, ``records``, ``keys``, the
sample keys of its records in hex) and the batch frame. A file is written (write + rename)
before its batch is sent and deleted when the batch is acknowledged, so a crash or SIGKILL
loses nothing that was batched; files are fsynced in groups (:meth:`Spool.sync`), so a
power cut can lose the last group.

``samples.0`` and ``samples.1`` journal the sample keys of every batch ever spooled (8 bytes
each), so that a restarted bridge can tell transient-local history it already forwarded
from new records. The newer segment is renamed over the older when it fills: the journal
covers the last 64k to 128k records on at most 1 MiB.

When the disk refuses a write (full, read-only, permissions, a directory that cannot be
created), batches are held in memory up to ``held_limit`` bytes, the oldest dropped and
counted beyond it, :attr:`Spool.error` says why, and every new batch and every sync period
tries the disk again; held batches are written as soon as it takes them.

Thread ownership: the forwarder's event loop owns a Spool; only :meth:`Spool.sync`, on the
paths that :meth:`Spool.take_unsynced` handed over, runs in the spool I/O thread. Other
threads read the integer counters only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import json
import logging
import os
from pathlib import Path
from typing import Deque, List, Optional

from .rosout import KEY_BYTES

_log = logging.getLogger(__name__)

HELD_BYTES_LIMIT = 16 << 20
JOURNAL_MAGIC = b'RFKEYS1\n'
JOURNAL_SEGMENT_KEYS = 1 << 16


@dataclass(eq=False)
class SpoolEntry:
    """One unacknowledged batch: on disk, or held in memory while the disk refuses it."""

    seq: int
    batch_id: str
    records: int
    path: Path
    size: int
    held: Optional[str] = None  # the file's text while it is not on disk

    def frame(self) -> str:
        text = self.held if self.held is not None else self.path.read_text(encoding='utf-8')
        return text.split('\n', 1)[1]


class SampleJournal:
    """Sample keys appended per batch, in two segments of ``segment_keys`` keys at most."""

    def __init__(self, directory: Path, segment_keys: int = JOURNAL_SEGMENT_KEYS) -> None:
        self.older = directory / 'samples.0'
        self.newer = directory / 'samples.1'
        self._segment_bytes = len(JOURNAL_MAGIC) + segment_keys * KEY_BYTES

    def load(self) -> bytes:
        """Return every journaled key; repair a torn tail, replace a foreign file."""
        keys = bytearray()
        for path in (self.older, self.newer):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            if not data.startswith(JOURNAL_MAGIC):
                _log.warning('spool journal %s is not one this bridge wrote; replaced', path)
                path.unlink()
                continue
            usable = len(data) - (len(data) - len(JOURNAL_MAGIC)) % KEY_BYTES
            if usable != len(data):  # a write that a crash interrupted
                os.truncate(path, usable)
            keys += data[len(JOURNAL_MAGIC):usable]
        return bytes(keys)

    def append(self, keys: bytes) -> None:
        """Append keys (raises OSError if the disk refuses)."""
        try:
            size = self.newer.stat().st_size
        except FileNotFoundError:
            size = 0
        if size >= self._segment_bytes:
            os.replace(self.newer, self.older)
            size = 0
        with open(self.newer, 'ab') as journal:
            journal.write(keys if size else JOURNAL_MAGIC + keys)

    def paths(self) -> List[Path]:
        return [self.older, self.newer]


class Spool:
    """Unacknowledged batches, oldest first, bounded in bytes on disk and in memory."""

    def __init__(self, directory: Path, max_bytes: int,
                 held_limit: int = HELD_BYTES_LIMIT) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.held_limit = min(held_limit, max_bytes)
        self.entries: Deque[SpoolEntry] = deque()
        self.size = 0
        self.records = 0
        self.held_bytes = 0
        self.dropped_records = 0
        self.write_failures = 0
        self.error = ''  # why the disk refuses writes; empty while it takes them
        self.journal = SampleJournal(directory)
        self.previous_keys = b''  # sample keys of everything spooled before this start
        self._held: Deque[SpoolEntry] = deque()
        self._unjournaled = bytearray()
        self._unsynced: List[Path] = []
        try:
            self._load()
        except OSError as exc:
            self.record_failure(exc)
        # Monotonic for the spool's life: the sender tells new batches by their seq.
        self._next_seq = self.entries[-1].seq + 1 if self.entries else 1

    def _load(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob('*.tmp'):
            stale.unlink()  # a write that a crash interrupted: never renamed, never sent
        old_state = self.directory / 'state.json'
        if old_state.exists():  # stamps per logger, from before samples had identities
            _log.info("spool %s: removed the previous version's state.json", self.directory)
            old_state.unlink()
        keys = bytearray(self.journal.load())
        for path in sorted(self.directory.glob('*.batch')):
            try:
                header = json.loads(path.read_text(encoding='utf-8').split('\n', 1)[0])
                entry = SpoolEntry(int(path.stem), str(header['id']), int(header['records']),
                                   path, path.stat().st_size)
                keys += bytes.fromhex(header.get('keys', ''))
            except (ValueError, KeyError, OSError, IndexError, TypeError, AttributeError):
                _log.warning('spool file %s is unreadable; removed', path.name)
                path.unlink(missing_ok=True)
                continue
            self.entries.append(entry)
            self.size += entry.size
            self.records += entry.records
        self.previous_keys = bytes(keys)

    def add(self, batch_id: str, frame: str, records: int, keys: bytes) -> List[SpoolEntry]:
        """Store a batch; return the entries dropped (oldest first) to stay within bounds."""
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        header = json.dumps({'id': batch_id, 'records': records, 'keys': keys.hex()})
        text = header + '\n' + frame
        entry = SpoolEntry(seq, batch_id, records, self.directory / f'{seq:012d}.batch',
                           len(text.encode('utf-8')), held=text)
        self.entries.append(entry)
        self.size += entry.size
        self.records += records
        self._held.append(entry)
        self.held_bytes += entry.size
        self._unjournaled += keys
        self.write_held()
        return self._enforce_bounds()

    def write_held(self) -> None:
        """Write held batches to disk, oldest first, then journal their keys."""
        try:
            if self.error:
                self.directory.mkdir(parents=True, exist_ok=True)
            while self._held:
                entry = self._held[0]
                _write_atomically(entry.path, entry.held or '')
                self._unsynced.append(entry.path)
                self._held.popleft()
                self.held_bytes -= entry.size
                entry.held = None
            # After the batches: a key journaled for a batch that never reached the disk
            # would make its replayed records look forwarded.
            if self._unjournaled:
                self.journal.append(bytes(self._unjournaled))
                self._unjournaled.clear()
        except OSError as exc:
            self.record_failure(exc)
            # Keys that wait for the journal are bounded like the journal itself.
            del self._unjournaled[:-2 * JOURNAL_SEGMENT_KEYS * KEY_BYTES]
            return
        if self.error:
            _log.warning('spool %s: the disk takes writes again; forwarding resumes',
                         self.directory)
            self.error = ''

    def _enforce_bounds(self) -> List[SpoolEntry]:
        dropped = []
        while self.size > self.max_bytes and len(self.entries) > 1:
            dropped.append(self._drop(self.entries[0]))
        while self.held_bytes > self.held_limit and len(self._held) > 1:
            dropped.append(self._drop(self._held[0]))
        return dropped

    def _drop(self, entry: SpoolEntry) -> SpoolEntry:
        self.remove(entry)
        self.dropped_records += entry.records
        return entry

    def remove(self, entry: SpoolEntry) -> None:
        """Forget an entry (acknowledged, rejected or dropped); no-op if already gone."""
        try:
            self.entries.remove(entry)
        except ValueError:
            return
        self.size -= entry.size
        self.records -= entry.records
        if entry.held is not None:
            self._held.remove(entry)
            self.held_bytes -= entry.size
            return
        try:
            entry.path.unlink(missing_ok=True)
        except OSError as exc:  # a read-only disk: resent after a restart, deduplicated
            self.record_failure(exc)

    def record_failure(self, exc: OSError) -> None:
        """Note a refused write or sync; the first of a run of failures is logged."""
        self.write_failures += 1
        reason = f'{exc.strerror or exc}: {exc.filename or self.directory}'
        if not self.error:
            _log.error('spool %s: cannot write (%s); holding up to %d bytes of batches in '
                       'memory and retrying with each batch', self.directory, reason,
                       self.held_limit)
        self.error = reason

    def take_unsynced(self) -> List[Path]:
        """Return the files written since the last call, for :meth:`sync` (event loop)."""
        paths, self._unsynced = self._unsynced, []
        return paths + self.journal.paths()

    def sync(self, paths: List[Path]) -> None:
        """Flush files and the directory to disk (fsync; in the spool I/O thread)."""
        for path in paths:
            try:
                with open(path, 'rb') as handle:
                    os.fsync(handle.fileno())
            except FileNotFoundError:
                pass  # acknowledged and deleted meanwhile
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix('.tmp')
    try:
        tmp.write_text(text, encoding='utf-8')
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a partial file would hold space the spool needs
        raise


__all__ = ['HELD_BYTES_LIMIT', 'SampleJournal', 'Spool', 'SpoolEntry']
