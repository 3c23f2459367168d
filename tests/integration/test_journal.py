"""The message journal: batched writes, bounded memory, pruning by age and row count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.journal import JournalBuffer, prune_journal, write_journal_entries
from gateway.models import JournalEntry


def test_buffer_keeps_the_newest_entries_and_counts_what_it_dropped():
    buffer = JournalBuffer(max_entries=3)
    for number in range(5):
        buffer.record("charger>csms", "CP1", 2, str(number), "Heartbeat", f"[2,\"{number}\",\"Heartbeat\",{{}}]")
    entries = buffer.take()
    assert [entry[4] for entry in entries] == ["2", "3", "4"]
    assert buffer.dropped == 2
    assert len(buffer) == 0


@pytest.mark.django_db
def test_entries_are_written_with_their_raw_text_including_binary_frames():
    buffer = JournalBuffer(max_entries=100)
    buffer.record("charger>csms", "CP1", 2, "a", "Heartbeat", '[2,"a","Heartbeat",{}]')
    buffer.record("csms>charger", "CP1", None, None, None, b"\xff\x00binary")
    write_journal_entries(buffer.take())
    rows = list(JournalEntry.objects.order_by("id").values_list("direction", "unique_id", "action", "raw"))
    assert rows[0] == ("charger>csms", "a", "Heartbeat", '[2,"a","Heartbeat",{}]')
    assert rows[1][0] == "csms>charger" and rows[1][3] == "\\xff\\x00binary"


@pytest.mark.django_db
def test_pruning_removes_old_entries_and_keeps_the_row_cap():
    now = datetime.now(UTC)
    old = [JournalEntry(at=now - timedelta(days=20), charge_box_id="CP1", direction="charger>csms", raw="old") for _ in range(3)]
    new = [JournalEntry(at=now - timedelta(minutes=n), charge_box_id="CP1", direction="charger>csms", raw=f"new-{n}") for n in range(5)]
    JournalEntry.objects.bulk_create(old + new)
    deleted = prune_journal(now, retention_days=14, max_rows=1000)
    assert deleted == 3
    assert not JournalEntry.objects.filter(raw="old").exists()
    newest_id = JournalEntry.objects.order_by("-id").values_list("id", flat=True).first()
    prune_journal(now, retention_days=14, max_rows=2)
    assert JournalEntry.objects.filter(id__gt=newest_id - 2).count() == JournalEntry.objects.count() == 2
