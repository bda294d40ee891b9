"""The engine's system clock follows the wall clock but never steps with it: a step is caught up at 5 % of the time
that passes, so durations on it are real time within 5 % and it never goes backwards (a time review found a step
back crashing pair actors, a step forward re-sending a create early, and watchdogs frozen for the step's length)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import JUMP_AHEAD_MS, SLEW, SystemClock

MS = 1_000_000  # ns
T0 = 1_767_225_600_000 * MS


class Host:
    """A host's two clocks, moved by hand: the wall clock (steps) and the steady one (never steps)."""

    def __init__(self) -> None:
        self.wall = T0
        self.steady = 5_000 * MS

    def run(self, ms: int) -> None:
        self.wall += ms * MS
        self.steady += ms * MS

    def clock(self) -> SystemClock:
        return SystemClock(wall_ns=lambda: self.wall, steady=lambda: self.steady)


def test_without_a_step_it_is_the_wall_clock() -> None:
    host = Host()
    clock = host.clock()
    assert clock.now_ms() == T0 // MS
    host.run(61_234)
    assert clock.now_ms() == T0 // MS + 61_234
    assert clock.wall_gap_ms() == 0


def test_a_forward_step_is_caught_up_at_five_percent() -> None:
    host = Host()
    clock = host.clock()
    host.wall += JUMP_AHEAD_MS * MS  # ten minutes ahead
    assert clock.now_ms() == T0 // MS  # no jump
    host.run(60_000)  # a minute's limit timeout: 63 s on this clock, not ten minutes
    assert clock.now_ms() == T0 // MS + 60_000 + 60_000 // SLEW
    assert clock.wall_gap_ms() == JUMP_AHEAD_MS - 60_000 // SLEW
    host.run(JUMP_AHEAD_MS * SLEW)  # long enough to catch up
    assert clock.wall_gap_ms() == 0
    assert clock.now_ms() == host.wall // MS


def test_a_wall_clock_far_ahead_is_followed_at_once() -> None:
    # Real time the steady clock did not count (a VM paused for hours, then restored): caught up at 5 % it would
    # stamp every record hours late for days.
    host = Host()
    clock = host.clock()
    host.run(1_000)
    host.wall += (JUMP_AHEAD_MS + 1) * MS
    assert clock.now_ms() == host.wall // MS
    assert clock.wall_gap_ms() == 0


def test_a_backward_step_never_turns_it_back() -> None:
    host = Host()
    clock = host.clock()
    host.run(10_000)
    before = clock.now_ms()
    host.wall -= 3_600_000 * MS
    assert clock.now_ms() == before
    host.run(20_000)
    assert clock.now_ms() == before + 20_000 - 20_000 // SLEW  # slower, never backwards
    assert clock.wall_gap_ms() == -(3_600_000 - 20_000 // SLEW)


def test_a_suspend_moves_both_clocks_and_it_follows() -> None:
    host = Host()
    clock = host.clock()
    host.run(8 * 3_600_000)  # CLOCK_BOOTTIME counts suspended time, as the wall clock does
    assert clock.now_ms() == host.wall // MS


def test_the_wall_clocks_slow_corrections_are_followed() -> None:
    host = Host()
    clock = host.clock()
    for _ in range(1000):
        host.run(1000)
        host.wall += MS // 2  # NTP slewing the wall clock by 500 ppm
        assert clock.wall_gap_ms() == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 600_000), st.integers(-7_200_000, 7_200_000)), max_size=30))
def test_never_backwards_and_durations_within_five_percent(moves: list[tuple[int, int]]) -> None:
    host = Host()
    clock = host.clock()
    last = clock.now_ms() * MS
    for passed_ms, step_ms in moves:
        host.wall += step_ms * MS
        host.run(passed_ms)
        now, wall = clock._read()
        assert now >= last
        if now == wall and wall - last - passed_ms * MS > JUMP_AHEAD_MS * MS:
            pass  # followed at once: the wall clock was more than JUMP_AHEAD_MS ahead
        else:
            assert abs((now - last) - passed_ms * MS) <= passed_ms * MS // SLEW + 1
            assert wall - now <= JUMP_AHEAD_MS * MS
        last = now
