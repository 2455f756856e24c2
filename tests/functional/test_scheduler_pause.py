"""The scheduler's pause: an observer freezes the simulation at a moment; nothing runs or ages until it resumes."""

import threading

from patchpilot_sim.clock import Scheduler, SimClock

WAIT = 30.0  # a bound on waiting for the scheduler thread, never a condition of the outcome


def test_scheduler_pause_from_a_callback_freezes_time_and_keeps_the_queue_in_order() -> None:
    clock = SimClock(time_scale=3_600.0)
    scheduler = Scheduler(clock)
    ran: list[str] = []
    paused = threading.Event()
    done = threading.Event()
    try:

        def observer() -> None:
            ran.append("observer")
            scheduler.after(0, lambda: ran.append("first"), chained=True)  # due at once, but the simulation is frozen
            scheduler.after(60, lambda: (ran.append("second"), done.set()), chained=True)
            scheduler.pause()
            paused.set()

        scheduler.after(0, observer)
        assert paused.wait(WAIT)
        frozen = clock.elapsed_seconds()
        assert ran == ["observer"]  # pause() ran in the observer: the callbacks queued after it are still waiting
        assert not scheduler.idle()
        assert clock.elapsed_seconds() == frozen  # simulated time stands still while paused
        scheduler.resume()
        assert done.wait(WAIT)
        assert ran == ["observer", "first", "second"]
        assert clock.elapsed_seconds() >= frozen + 60
    finally:
        scheduler.resume()
        scheduler.stop()
