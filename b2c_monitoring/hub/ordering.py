"""Delivering outbox rows in id order without skipping one that commits late (pure).

Ids are drawn when a row is inserted, but transactions commit in any order: a
reader may see id 7 while id 6 is still uncommitted. ``Sequencer`` delivers rows in
id order and holds back at a gap until the gap is final. A gap is final when every
transaction in progress at the read that first saw it has ended (a later read's
snapshot no longer lists any of them): the row's writer took its transaction id
before the id (``storage/hub_events.py``), so it was one of them, and a row it
committed is visible to that later read. A gap left open longer than ``give_up_s``
(a writer stuck mid-transaction) is given up, so one stuck writer cannot stop the hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from b2c_monitoring.storage.hub_events import Snapshot


class _Row(Protocol):
    @property
    def id(self) -> int: ...


R = TypeVar("R", bound=_Row)


@dataclass(frozen=True, slots=True)
class _Gap:
    waiting_for: frozenset[int]
    seen_at: float


@dataclass(slots=True)
class Sequencer:
    watermark: int  # every id up to here is delivered or known never to come
    give_up_s: float = 10.0
    _gaps: dict[int, _Gap] = field(default_factory=dict)
    given_up: int = 0

    @property
    def waiting(self) -> bool:
        return bool(self._gaps)

    def advance(self, rows: list[R], snapshot: Snapshot, now: float) -> list[R]:
        """Rows of one read (``id > watermark``, ascending) -> those to deliver now."""
        deliver: list[R] = []
        for row in rows:
            if row.id <= self.watermark:
                continue
            while self.watermark + 1 < row.id:
                if not self._final(self.watermark + 1, snapshot, now):
                    self._forget_gaps_below()
                    return deliver
                self.watermark += 1
            deliver.append(row)
            self.watermark = row.id
        self._forget_gaps_below()
        return deliver

    def _final(self, gap_id: int, snapshot: Snapshot, now: float) -> bool:
        gap = self._gaps.get(gap_id)
        if gap is None:
            self._gaps[gap_id] = _Gap(snapshot.in_progress, now)
            return not snapshot.in_progress
        if not (gap.waiting_for & snapshot.in_progress):
            return True
        if now - gap.seen_at > self.give_up_s:
            self.given_up += 1
            return True
        return False

    def _forget_gaps_below(self) -> None:
        for gap_id in [g for g in self._gaps if g <= self.watermark]:
            del self._gaps[gap_id]
