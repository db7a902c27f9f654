"""The console's pure rules: who manages a room, how long a join waits, what a CSV cell and a CSV
file may hold."""

from datetime import timedelta

import pytest

from console.audit_export import csv_lines, safe_cell
from console.joiners import retry_pause
from console.leavers import room_admins
from console.people_import import ImportRefused, _rows


def create(sender: str, version: str, **content) -> dict:
    return {
        "type": "m.room.create",
        "state_key": "",
        "sender": sender,
        "content": {"room_version": version, **content},
    }


def levels(users: dict) -> dict:
    return {"type": "m.room.power_levels", "state_key": "", "content": {"users": users}}


def test_room_admins_in_a_v12_room_are_its_creators_and_power_100():
    state = [
        create("@ann:x", "12", additional_creators=["@cat:x"]),
        levels({"@bob:x": 100, "@dan:x": 50}),
    ]
    assert room_admins(state) == {"@ann:x", "@cat:x", "@bob:x"}


def test_room_admins_in_an_older_room_come_from_power_levels_only():
    state = [create("@ann:x", "10"), levels({"@ann:x": 100, "@bob:x": 99, "@eve:x": "100"})]
    assert room_admins(state) == {"@ann:x"}


def test_joins_wait_longer_each_time_up_to_an_hour():
    pauses = [retry_pause(n) for n in range(0, 40)]
    assert pauses[0] == timedelta(seconds=5) and pauses[1] == timedelta(seconds=10)
    assert pauses == sorted(pauses) and max(pauses) == timedelta(hours=1)


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx"])
def test_formula_cells_are_quoted(value):
    assert safe_cell(value) == "'" + value


def test_plain_cells_and_the_header_are_kept():
    assert safe_cell("@") == "'@" and safe_cell("bob") == "bob"
    text = "".join(csv_lines([["2026", "ada", "", "room.block", "=x", "{}"]]))
    assert text.splitlines() == [
        "at,actor,address,action,target,details",
        "2026,ada,,room.block,'=x,{}",
    ]


def test_a_csv_with_a_bom_and_spaces_in_the_header_reads():
    rows = _rows("\ufeffUsername , Password\nann, pw \n")
    assert rows == [(2, {"username": "ann", "password": "pw"})]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("username,email\nann,a@x\n", "lacks the column(s): password"),
        ("username,password,phone\n", "Unknown column(s): phone"),
    ],
)
def test_an_unreadable_file_is_refused_with_its_reason(text, message):
    with pytest.raises(ImportRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        _rows(text)


def test_a_row_with_extra_cells_is_marked():
    assert _rows("username,password\nann,pw,extra\n") == [(2, {"__extra__": True})]
