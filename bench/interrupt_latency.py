"""How long Ctrl-C takes to stop a long convcore call, against how long the call runs uninterrupted.

    python bench/interrupt_latency.py [--threads 1] [--repeats 3]

For each op: one uninterrupted run (wall and process CPU seconds), then `repeats` runs that get
SIGINT (sent to this process by a timer thread) 0.3 s in; the latency is the time from the
signal to KeyboardInterrupt, in wall and in process CPU seconds (on a loaded machine only the
CPU figure says how much work ran after the signal). Then a small call is checked, to show the
process is usable.
"""
import argparse
import os
import signal
import statistics
import threading
import time

import numpy as np

import convcore
import convcore.functional as F


def _calls(rng):
    r = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    x, w = r(2, 64, 96, 96), r(64, 64, 31, 31)
    w9 = np.ascontiguousarray(w[:, :, :9, :9])
    xd, wd = r(8, 64, 128, 128), r(64, 1, 15, 15)
    xp = r(16, 32, 160, 160)
    return {
        "conv2d direct 2x64x96x96 * 64x64x31x31": lambda: F.conv2d(x, w, algo="direct"),
        "conv2d im2col 2x64x96x96 * 64x64x9x9": lambda: F.conv2d(x, w9, algo="im2col"),
        "depthwise_conv2d 8x64x128x128 15x15": lambda: F.depthwise_conv2d(xd, wd, padding=7),
        "max_pool2d 16x32x160x160 k9 s1": lambda: F.max_pool2d(xp, 9, stride=1, padding=4),
    }


def _interrupted_after(call, delay):
    """(wall, CPU) seconds from the signal to KeyboardInterrupt; None if the call finished first.
    CPU seconds are the process's: on a shared machine they say what the wall clock cannot."""
    sent = {}

    def send():
        sent["wall"], sent["cpu"] = time.perf_counter(), time.process_time()
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(delay, send)
    timer.start()
    finished = False
    try:
        call()
        finished = True
        timer.join()  # the signal may still come: let it land here, not in the next call
        time.sleep(0.05)
    except KeyboardInterrupt:
        stopped = (time.perf_counter() - sent["wall"], time.process_time() - sent["cpu"])
    timer.join()
    return None if finished else stopped


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        convcore.set_num_threads(args.threads)
    print(f"threads {convcore.get_num_threads()}, isa {convcore.backends()['cpu']['isa']}")
    delay = 0.3
    xs, ws = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
    for name, call in _calls(np.random.default_rng(0)).items():
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        latencies = [r for r in (_interrupted_after(call, delay) for _ in range(args.repeats))
                     if r is not None]
        usable = np.array_equal(F.conv2d(xs, ws), np.full((1, 3, 3, 3), 18, np.float32))
        median = "n/a"
        if latencies:
            median = (f"{1000 * statistics.median(r[0] for r in latencies):.0f} ms wall, "
                      f"{1000 * statistics.median(r[1] for r in latencies):.0f} ms CPU")
        print(f"{name}: uninterrupted {wall:.2f} s wall ({cpu:.2f} s CPU); "
              f"Ctrl-C at {delay} s stopped {len(latencies)}/{args.repeats} runs, median "
              f"latency {median}; next call correct: {usable}", flush=True)


if __name__ == "__main__":
    main()
