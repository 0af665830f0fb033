"""``Worker._backoff``: exponential backoff with equal jitter. The ceiling doubles with each
attempt from ``retry_base_s`` up to ``retry_cap_s``; the delay lies in [ceiling/2, ceiling]."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import conveyor_worker.worker as worker_module
from conveyor_worker.settings import Settings
from conveyor_worker.worker import Worker

pytestmark = pytest.mark.unit

# attempt -> ceiling, for retry_base_s=1 and retry_cap_s=10
CEILINGS = {1: 1.0, 2: 2.0, 3: 4.0, 4: 8.0, 5: 10.0, 6: 10.0, 20: 10.0, 100: 10.0, 1000: 10.0}


def worker(base: float = 1, cap: float = 10) -> Worker:
    w = Worker.__new__(Worker)
    w.settings = Settings(worker_id="w-test", retry_base_s=base, retry_cap_s=cap)
    return w


@pytest.mark.parametrize(("attempt", "ceiling"), CEILINGS.items())
@pytest.mark.parametrize("end", ["low", "high"])
def test_the_jitter_spans_half_the_ceiling_to_the_ceiling(
    monkeypatch: pytest.MonkeyPatch, attempt: int, ceiling: float, end: str
) -> None:
    pick = SimpleNamespace(uniform=lambda lo, hi: lo if end == "low" else hi)
    monkeypatch.setattr(worker_module, "random", pick)

    delay = worker()._backoff(attempt)

    assert delay == (ceiling / 2 if end == "low" else ceiling)


@pytest.mark.parametrize(("attempt", "ceiling"), CEILINGS.items())
def test_delays_stay_within_bounds(attempt: int, ceiling: float) -> None:
    w = worker()
    delays = [w._backoff(attempt) for _ in range(200)]

    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert all(isinstance(d, float) for d in delays)
    assert len(set(delays)) > 1  # jittered


def test_the_ceiling_doubles_per_attempt_until_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "random", SimpleNamespace(uniform=lambda lo, hi: hi))
    w = worker(base=0.5, cap=30)

    ceilings = [w._backoff(attempt) for attempt in range(1, 10)]

    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_zero_base_means_no_delay() -> None:
    assert worker(base=0)._backoff(5) == 0.0


def test_a_very_late_attempt_is_capped_not_an_overflow() -> None:
    assert 5.0 <= worker()._backoff(1025) <= 10.0
