"""The hub's pure parts: SignalR JSON framing, id ordering across commits, narrowing."""

from __future__ import annotations

import json

import pytest

from b2c_monitoring.hub import protocol
from b2c_monitoring.hub.ordering import Sequencer
from b2c_monitoring.hub.subscriptions import Subscriptions
from b2c_monitoring.live_events import HubEvent
from b2c_monitoring.storage.hub_events import Snapshot, StoredEvent


def test_a_frame_holds_whole_messages_each_ended_by_the_record_separator() -> None:
    frame = '{"type":6}\x1e{"type":1,"target":"SubscribeJob","arguments":["j"]}\x1e'
    assert [protocol.parse(m) for m in protocol.split(frame)] == [
        protocol.Ping(),
        protocol.Invocation("SubscribeJob", ("j",), None),
    ]
    with pytest.raises(protocol.ProtocolError):
        protocol.split('{"type":6}')


def test_the_handshake_accepts_json_version_1_only() -> None:
    assert protocol.parse_handshake('{"protocol":"json","version":1}') is None
    assert "messagepack" in (
        protocol.parse_handshake('{"protocol":"messagepack","version":1}') or ""
    )
    assert protocol.parse_handshake('{"protocol":"json","version":2}') is not None


def test_server_messages_are_what_the_client_expects() -> None:
    assert json.loads(protocol.invocation("JobStatusChanged", ["j", "running", 5, 9])[:-1]) == {
        "type": 1,
        "target": "JobStatusChanged",
        "arguments": ["j", "running", 5, 9],
    }
    assert json.loads(protocol.completion("3", {"replayed": 0})[:-1]) == {
        "type": 3,
        "invocationId": "3",
        "result": {"replayed": 0},
    }
    assert json.loads(protocol.close("reload", allow_reconnect=True)[:-1]) == {
        "type": 7,
        "error": "reload",
        "allowReconnect": True,
    }


def test_stream_invocations_are_refused_with_their_id() -> None:
    message = protocol.parse('{"type":4,"invocationId":"1","target":"X","arguments":[]}')
    assert message == protocol.Unsupported(4, "1")


def _event(id_: int) -> StoredEvent:
    return StoredEvent(id_, HubEvent("t", "HealthStatusChanged", ("c", "healthy")))


def test_rows_after_a_gap_wait_until_the_writers_in_progress_have_ended() -> None:
    sequencer = Sequencer(watermark=5)
    busy = Snapshot(xmax=100, in_progress=frozenset({90, 95}))
    assert [e.id for e in sequencer.advance([_event(6), _event(8)], busy, now=0)] == [6]
    # 90 still runs: 7 may still commit
    assert sequencer.advance([_event(8)], Snapshot(101, frozenset({90})), now=1) == []
    # it committed 7
    done = Snapshot(102, frozenset())
    assert [e.id for e in sequencer.advance([_event(7), _event(8)], done, now=2)] == [7, 8]
    assert sequencer.watermark == 8
    assert not sequencer.waiting


def test_a_gap_whose_writers_ended_is_final_and_a_stuck_one_is_given_up() -> None:
    sequencer = Sequencer(watermark=0, give_up_s=10)
    assert sequencer.advance([_event(2)], Snapshot(50, frozenset({40})), now=0) == []
    # 40 ended without writing 1 (rolled back)
    assert [e.id for e in sequencer.advance([_event(2)], Snapshot(60, frozenset()), 1)] == [2]
    assert sequencer.advance([_event(4)], Snapshot(70, frozenset({65})), now=2) == []
    assert sequencer.advance([_event(4)], Snapshot(70, frozenset({65})), now=5) == []
    assert [e.id for e in sequencer.advance([_event(4)], Snapshot(70, frozenset({65})), 13)] == [4]
    assert sequencer.given_up == 1


def test_narrowing_keeps_the_events_of_the_keys_and_the_tenant_scope_always() -> None:
    subs = Subscriptions(frozenset({"a"}))
    job = HubEvent("a", "JobStatusChanged", ("j1", "running", 1), job_id="j1", job_type="ERP")
    health = HubEvent("a", "HealthStatusChanged", ("db", "healthy"))
    assert subs.wants(job)
    assert subs.wants(health)
    assert not subs.wants(HubEvent("b", "HealthStatusChanged", ("db", "healthy")))
    subs.change("jobType", "ERP", subscribe=True)
    assert subs.wants(job)
    assert not subs.wants(health)
    subs.change("jobType", "ERP", subscribe=False)
    subs.change("job", "j2", subscribe=True)
    assert not subs.wants(job)
