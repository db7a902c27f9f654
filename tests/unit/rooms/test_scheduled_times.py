"""'Send later' times: the person's local time plus their browser's offset is the UTC moment, and
times in the past, too far ahead or unreadable are refused with a reason."""

from datetime import UTC, datetime, timedelta

import pytest

from rooms.scheduled import ScheduleRejected, parse_send_at

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def test_local_time_with_offset_becomes_utc():
    # Tokyo is UTC+9: getTimezoneOffset() says -540, and 10:30 there is 01:30 UTC.
    assert parse_send_at("2026-12-02T10:30", "-540", now=NOW) == datetime(
        2026, 12, 2, 1, 30, tzinfo=UTC
    )
    # New York in winter is UTC-5 (offset 300): 20:30 on the 1st is 01:30 UTC on the 2nd.
    assert parse_send_at("2026-12-01T20:30", "300", now=NOW) == datetime(
        2026, 12, 2, 1, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("value", "offset", "reason"),
    [
        ("2026-12-02T00:59", "0", "That time has passed"),
        ("2026-12-02T01:00", "0", "That time has passed"),
        ("2027-12-03T01:00", "0", "more than a year ahead"),
        ("", "0", "Pick a date and time"),
        ("tomorrow", "0", "Pick a date and time"),
        ("2026-12-02T09:00+09:00", "0", "Pick a date and time"),
        ("2026-12-02T09:00", "abc", "time zone"),
        ("2026-12-02T09:00", "5000", "time zone"),
    ],
)
def test_bad_times_are_refused_with_a_reason(value, offset, reason):
    with pytest.raises(ScheduleRejected, match=reason):
        parse_send_at(value, offset, now=NOW)


def test_a_year_ahead_is_still_allowed():
    at = NOW + timedelta(days=364)
    assert parse_send_at(at.strftime("%Y-%m-%dT%H:%M"), "0", now=NOW) == at
