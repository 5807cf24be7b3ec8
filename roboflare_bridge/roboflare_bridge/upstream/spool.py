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

A full spool drops by level (pressure.py): its oldest batch holding records of the lowest
level spooled is rewritten, under the same id, with markers in their place. The server
stores a batch id once, so whichever version of a batch reaches it, its records and its
markers add up. Two batches never sent may merge, so that markers of one kind merge too.
Batches without a layout (written by an older bridge) are dropped whole, oldest first.

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
from dataclasses import dataclass, field
import json
import logging
import os
from pathlib import Path
from typing import Deque, List, Optional

from .pressure import (
    Batch, BatchLayout, evict_level, LEVEL_ORDER, Loss, MEMORY_FULL, merge_batches, SPOOL_FULL,
)
from .rosout import KEY_BYTES
from ..transport.wire import encode_batch, MAX_BATCH_BYTES, MAX_BATCH_RECORDS

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
    layout: Optional[BatchLayout] = None  # None: a batch an older bridge wrote
    sent: bool = True  # ever handed to a stream (or maybe, by a previous run)
    written: bool = True  # a version of it is on disk

    def text(self) -> str:
        return self.held if self.held is not None else self.path.read_text(encoding='utf-8')

    def frame(self) -> str:
        return self.text().split('\n', 1)[1]

    def represents(self) -> int:
        """Return how many logged records this batch stands for (markers, repeats)."""
        layout = self.layout
        if layout is None:
            return self.records
        return (len(layout.levels) - len(layout.losses) - len(layout.weights)
                + sum(layout.weights.values())
                + sum(loss.count for loss in layout.losses.values()))


@dataclass
class Eviction:
    """What making room cost: the losses markers now say, and the entries removed."""

    losses: List[Loss] = field(default_factory=list)
    removed: List[SpoolEntry] = field(default_factory=list)
    lost_records: int = 0  # in entries dropped whole: no marker says them


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
                                   path, path.stat().st_size,
                                   layout=BatchLayout.from_header(header))
                keys += bytes.fromhex(header.get('keys', ''))
            except (ValueError, KeyError, OSError, IndexError, TypeError, AttributeError):
                _log.warning('spool file %s is unreadable; removed', path.name)
                path.unlink(missing_ok=True)
                continue
            self.entries.append(entry)
            self.size += entry.size
            self.records += entry.records
        self.previous_keys = bytes(keys)

    def add(self, batch_id: str, frame: str, records: int, keys: bytes,
            layout: Optional[BatchLayout] = None) -> Eviction:
        """Store a batch; return what made room for it (lowest level, oldest first)."""
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        entry = SpoolEntry(seq, batch_id, 0, self.directory / f'{seq:012d}.batch', 0,
                           layout=layout, sent=False, written=False)
        self.entries.append(entry)
        self._set_text(entry, records, _header(batch_id, records, keys, layout) + '\n' + frame)
        self._unjournaled += keys
        self.write_held()
        return self._enforce_bounds()

    def _set_text(self, entry: SpoolEntry, records: int, text: str) -> None:
        """Give an entry, new or rewritten, its text: held until write_held writes it."""
        size = len(text.encode('utf-8'))
        if entry.held is None:
            if entry.written:  # rewritten: its file is replaced when write_held writes it
                self._held = deque(sorted([*self._held, entry], key=lambda e: e.seq))
            else:
                self._held.append(entry)
            self.held_bytes += size
        else:
            self.held_bytes += size - entry.size
        self.size += size - entry.size
        self.records += records - entry.records
        entry.held, entry.size, entry.records = text, size, records

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
                entry.held, entry.written = None, True
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

    def _enforce_bounds(self) -> Eviction:
        eviction = Eviction()
        while self.size > self.max_bytes and len(self.entries) > 1:
            self._evict(self.entries, SPOOL_FULL, eviction)
        while self.held_bytes > self.held_limit and len(self._held) > 1:
            self._evict(self._held, MEMORY_FULL, eviction)
        self.dropped_records += eviction.lost_records + sum(
            loss.count for loss in eviction.losses)
        return eviction

    def _evict(self, candidates: Deque[SpoolEntry], reason: str, eviction: Eviction) -> None:
        """Make room once: the lowest level's oldest records become markers, else a drop."""
        for level in LEVEL_ORDER:
            entry = next((e for e in candidates
                          if e.layout is not None and level in e.layout.levels), None)
            if entry is None:
                continue
            layout = entry.layout
            assert layout is not None
            try:
                batch, losses = evict_level(Batch.parse(entry.frame(), layout), level, reason)
                self._replace(entry, batch)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                _log.warning('spool file %s is unreadable (%s); dropped', entry.path.name, exc)
                break
            eviction.losses += losses
            self._merge_with_older(entry, eviction)
            return
        else:
            entry = candidates[0]  # markers only, or batches an older bridge wrote
        eviction.lost_records += entry.represents()
        eviction.removed.append(entry)
        self.remove(entry)

    def _merge_with_older(self, entry: SpoolEntry, eviction: Eviction) -> None:
        """Fold a batch never sent into the one before it, if that was never sent either."""
        index = self.entries.index(entry)
        older = self.entries[index - 1] if index else None
        if (older is None or older.sent or entry.sent or older.layout is None
                or entry.layout is None or older.records + entry.records > MAX_BATCH_RECORDS
                or older.size + entry.size > MAX_BATCH_BYTES):
            return
        try:
            batch = merge_batches(Batch.parse(older.frame(), older.layout),
                                  Batch.parse(entry.frame(), entry.layout))
        except (OSError, ValueError, KeyError, TypeError):
            return  # each stays as it is
        eviction.removed.append(entry)
        self.remove(entry)
        self._replace(older, batch)

    def _replace(self, entry: SpoolEntry, batch: Batch) -> None:
        # Without its sample keys: the journal has them since the batch was first written
        # (or holds them in memory until the disk takes writes), and a marker that stands
        # for a million records must not carry a million keys.
        entry.layout = batch.layout
        records = len(batch.records)
        frame = encode_batch(entry.batch_id, batch.record_texts())
        self._set_text(entry, records,
                       _header(entry.batch_id, records, b'', batch.layout) + '\n' + frame)
        self.write_held()

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
            if not entry.written:
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


def _header(batch_id: str, records: int, keys: bytes, layout: Optional[BatchLayout]) -> str:
    header = {'id': batch_id, 'records': records, 'keys': keys.hex()}
    if layout is not None:
        header.update(layout.to_header())
    return json.dumps(header)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix('.tmp')
    try:
        tmp.write_text(text, encoding='utf-8')
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a partial file would hold space the spool needs
        raise


__all__ = ['Eviction', 'HELD_BYTES_LIMIT', 'SampleJournal', 'Spool', 'SpoolEntry']
