"""The one background loop (``b2c_monitoring/periodic.py``): a failing round never ends
it, a stop ends it after the round in progress, rounds keep their phase."""

from __future__ import annotations

import logging
import threading

import pytest

from b2c_monitoring.errors import StorageUnavailable
from b2c_monitoring.periodic import Periodic
from tests.polling import eventually

log = logging.getLogger("test-periodic")


def test_a_round_that_raises_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def round_() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise StorageUnavailable("Postgres is down")
        if len(calls) == 2:
            raise KeyError("a bug")

    loop = Periodic("flaky", 0.01, round_, log=log)
    with caplog.at_level(logging.WARNING, logger="test-periodic"):
        loop.start()
        eventually(lambda: len(calls) >= 4 or None, what="rounds after two failures")
        loop.stop()
    expected, bug = (r for r in caplog.records if r.name == "test-periodic")
    assert "round failed" in expected.getMessage()
    assert "Postgres is down" in expected.getMessage()
    assert expected.exc_info is None
    assert "round crashed" in bug.getMessage()
    assert bug.exc_info is not None
    assert not loop.running


def test_stop_waits_for_the_round_in_progress_and_then_calls_on_stop() -> None:
    inside = threading.Event()
    release = threading.Event()
    stopped: list[bool] = []

    def round_() -> None:
        inside.set()
        release.wait(5)

    loop = Periodic("slow", 60, round_, log=log, on_stop=lambda: stopped.append(True))
    loop.start()
    assert inside.wait(5)
    loop.request_stop()
    assert stopped == [True]
    release.set()
    loop.stop(wait_s=5)
    assert not loop.running
    loop.stop()
    assert stopped == [True], "on_stop runs once"


def test_every_s_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Periodic("never", 0, lambda: None, log=log)
