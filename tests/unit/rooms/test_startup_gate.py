"""A sync host starts its accounts a few at a time, and deferred setup waits for first rounds."""

import asyncio

from rooms.sync.startup import StartupGate


async def test_first_rounds_take_turns():
    gate = StartupGate(first_rounds=2, setups=1)
    first, second = await gate.first_round(), await gate.first_round()
    third = asyncio.ensure_future(gate.first_round())
    await asyncio.sleep(0.05)
    assert not third.done()  # two slots, both held
    first.release()
    first.release()  # releasing twice gives back one slot only
    held = await asyncio.wait_for(third, 1)
    fourth = asyncio.ensure_future(gate.first_round())
    await asyncio.sleep(0.05)
    assert not fourth.done()
    second.release()
    held.release()
    (await asyncio.wait_for(fourth, 1)).release()


async def test_setup_waits_until_no_first_round_is_waiting():
    gate = StartupGate(first_rounds=1, setups=1)
    running = await gate.first_round()
    waiting = asyncio.ensure_future(gate.first_round())
    entered = asyncio.Event()

    async def set_up() -> None:
        async with gate.setup():
            entered.set()

    setup = asyncio.ensure_future(set_up())
    await asyncio.sleep(0.05)
    assert not entered.is_set()
    running.release()
    (await asyncio.wait_for(waiting, 1)).release()
    await asyncio.wait_for(setup, 1)
    assert entered.is_set()


async def test_setup_waits_no_longer_than_its_patience(monkeypatch):
    monkeypatch.setattr(StartupGate, "SETUP_PATIENCE", 0.1)
    gate = StartupGate(first_rounds=1, setups=1)
    running = await gate.first_round()
    async with asyncio.timeout(2):
        async with gate.setup():
            pass
    running.release()


async def test_a_slot_held_too_long_is_given_back(monkeypatch):
    monkeypatch.setattr(StartupGate, "HOLD_LIMIT", 0.1)
    gate = StartupGate(first_rounds=1, setups=1)
    stuck = await gate.first_round()
    (await asyncio.wait_for(gate.first_round(), 2)).release()
    stuck.release()  # late: changes nothing
    (await asyncio.wait_for(gate.first_round(), 1)).release()


async def test_a_cancelled_wait_leaves_the_gate_idle():
    gate = StartupGate(first_rounds=1, setups=1)
    running = await gate.first_round()
    waiting = asyncio.ensure_future(gate.first_round())
    await asyncio.sleep(0.02)
    waiting.cancel()
    running.release()
    async with asyncio.timeout(1):
        async with gate.setup():
            pass
