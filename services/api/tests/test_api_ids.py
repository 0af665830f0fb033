"""Job ids are ULIDs: 26 characters of Crockford's base32, sortable by creation time."""

from __future__ import annotations

import itertools
import time

import pytest

from conveyor_api.ids import is_job_id, new_job_id

pytestmark = pytest.mark.unit

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
VALID = "01JDQ5N3X8W4Y6Z7A9B2C3D4E5"
NOW_MS = 1_795_000_000_000  # 2026-11-18


def time_part(job_id: str) -> int:
    """The 48-bit millisecond timestamp in the first ten characters."""
    value = 0
    for char in job_id[:10]:
        value = value * 32 + CROCKFORD.index(char)
    return value


def test_a_new_id_is_26_crockford_characters() -> None:
    for job_id in [new_job_id() for _ in range(100)] + [new_job_id(NOW_MS)]:
        assert len(job_id) == 26
        assert set(job_id) <= set(CROCKFORD)
        assert is_job_id(job_id)


def test_new_ids_are_unique() -> None:
    ids = {new_job_id(NOW_MS) for _ in range(1000)}

    assert len(ids) == 1000


@pytest.mark.parametrize("now_ms", [0, 1, NOW_MS, 2**48 - 1])
def test_the_first_ten_characters_are_the_millisecond(now_ms: int) -> None:
    job_id = new_job_id(now_ms)

    assert time_part(job_id) == now_ms
    assert is_job_id(job_id)


def test_ids_of_later_milliseconds_sort_after_earlier_ones() -> None:
    times = [0, 1, 2, 31, 32, 1000, NOW_MS - 1, NOW_MS, NOW_MS + 1, 2**47, 2**48 - 1]
    for _ in range(20):
        ids = [new_job_id(ms) for ms in times]
        assert ids == sorted(ids)
        assert all(a < b for a, b in itertools.pairwise(ids))


def test_the_random_part_varies_within_one_millisecond() -> None:
    ids = [new_job_id(NOW_MS) for _ in range(50)]

    assert len({job_id[:10] for job_id in ids}) == 1
    assert len({job_id[10:] for job_id in ids}) == 50


def test_without_a_time_the_id_uses_the_clock() -> None:
    before = int(time.time() * 1000)
    job_id = new_job_id()
    after = int(time.time() * 1000)

    assert before <= time_part(job_id) <= after


def test_is_job_id_accepts_a_valid_id() -> None:
    assert is_job_id(VALID)
    assert is_job_id("0" * 26)
    assert is_job_id("Z" * 26)


@pytest.mark.parametrize(
    "text",
    [
        "",
        VALID.lower(),
        VALID[:-1] + "e",
        VALID[:25],
        VALID + "0",
        "I" + VALID[1:],
        VALID[:-1] + "L",
        VALID[:12] + "O" + VALID[13:],
        VALID[:5] + "U" + VALID[6:],
        VALID[:-1] + "-",
        " " + VALID[1:],
        VALID[:13] + "/" + VALID[14:],
        "conveyor.events." + VALID,
    ],
    ids=[
        "empty",
        "lowercase",
        "one-lowercase",
        "short",
        "long",
        "I",
        "L",
        "O",
        "U",
        "dash",
        "space",
        "slash",
        "subject",
    ],
)
def test_is_job_id_rejects(text: str) -> None:
    assert not is_job_id(text)


def test_is_job_id_rejects_a_trailing_newline() -> None:
    assert not is_job_id(VALID + "\n")
