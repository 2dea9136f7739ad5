"""A pass collects garbage less often while it runs, and leaves the collector as it found it, also
when the scheduler's threads run passes that overlap; a sending process keeps to a CPU of its own."""

import gc
import os
import subprocess
import sys
import threading
from pathlib import Path

from digest.throughput import THRESHOLD, few_collections


def test_thresholds_are_raised_inside_and_restored_by_the_last_pass_out():
    before = gc.get_threshold()
    assert before != THRESHOLD
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with few_collections():
            first_in.set()
            second_in.wait(5)
        first_out.set()  # the other pass is still running: it must keep the raised thresholds

    def second():
        first_in.wait(5)
        with few_collections():
            second_in.set()
            first_out.wait(5)
            seen["after the first left"] = gc.get_threshold()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after the first left": THRESHOLD}
    assert gc.get_threshold() == before


def test_an_error_inside_still_restores():
    before = gc.get_threshold()
    try:
        with few_collections():
            assert gc.get_threshold() == THRESHOLD
            raise RuntimeError("planning failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before


def test_as_a_decorator_each_call_raises_and_restores():
    before = gc.get_threshold()
    seen = []

    @few_collections()
    def a_pass():
        seen.append(gc.get_threshold())

    a_pass()
    a_pass()
    assert seen == [THRESHOLD, THRESHOLD] and gc.get_threshold() == before


def test_the_switch_interval_is_short_inside_and_restored_by_the_last_run_out():
    import sys

    from digest.throughput import SWITCH_INTERVAL, short_switches

    before = sys.getswitchinterval()
    assert before > SWITCH_INTERVAL
    with short_switches():
        with short_switches():  # two sends at once (the scheduler's threads)
            assert sys.getswitchinterval() == SWITCH_INTERVAL
        assert sys.getswitchinterval() == SWITCH_INTERVAL  # the other is still sending
    assert sys.getswitchinterval() == before


def test_a_sending_process_keeps_to_the_slot_th_cpu_round_robin():
    allowed = sorted(os.sched_getaffinity(0))
    code = ("import os, threading; from digest.throughput import own_core; cpu = own_core({slot}); "
            "seen = []; t = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0)))); "
            "t.start(); t.join(); print(cpu, sorted(os.sched_getaffinity(0)), seen[0])")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    for slot in (0, 1, len(allowed) + 1):
        out = subprocess.run([sys.executable, "-c", code.format(slot=slot)], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        if len(allowed) < 2:  # one CPU allowed: nothing to choose, left as it is
            assert out == f"None {allowed} {allowed}"
            continue
        cpu = allowed[slot % len(allowed)]
        assert out == f"{cpu} [{cpu}] [{cpu}]"  # the process, and a thread it starts afterwards
