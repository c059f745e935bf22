"""Ctrl-C during a long native call (see csrc/bindings/interrupt.h).

Each test runs a child Python process and sends it SIGINT while a convcore call is running:
the call must end with KeyboardInterrupt (the kernels poll a flag the C-level handler sets,
so it stops within one outer-loop iteration), and the process must stay usable: the next calls
give correct results. The first long call would take a minute or more uninterrupted on the dev
machine and runs once: a kernel that ignored the flag lets it finish, which fails the test.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import convcore

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix",
                                reason="needs POSIX signals")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD_PRELUDE = r"""
import signal, sys, threading, time
# A child started from a shell's background job inherits SIGINT ignored (POSIX), and Python then
# installs no handler: give it Python's default, as an interactive session has.
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
sys.path.insert(0, "tests")
import convcore.functional as F
import reference as ref
import reference_pool as R

rng = np.random.default_rng(0)
def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)

def close(a, b, tol=1e-5):
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)) <= tol

def ask(name):
    # tells the parent to send SIGINT now, then waits until it is on its way
    print("call", name, flush=True)
    sys.stdin.readline()
"""

# Long calls, one per kernel family. The direct conv is about 5.6e11 flops (a minute or more
# uninterrupted); the others repeat until interrupted, so the signal lands in native code.
CHILD_LONG_CALLS = CHILD_PRELUDE + r"""
x, w = randn(16, 64, 96, 96), randn(64, 64, 31, 31)
xs, ws = randn(2, 3, 9, 8), randn(4, 3, 3, 3)
xp = randn(16, 32, 160, 160)
xd, wd = randn(8, 64, 128, 128), randn(64, 1, 15, 15)
wc, wr = randn(64, 31), randn(64, 31)
x48, w9 = np.ascontiguousarray(x[:4, :, :48, :48]), np.ascontiguousarray(w[:, :, :9, :9])
dy40, dyp, col = randn(2, 64, 40, 40), randn(16, 32, 152, 152), randn(2 * 40 * 40, 64 * 81)
long_calls = {
    "conv2d direct (once)": lambda: F.conv2d(x, w, algo="direct"),
    "conv2d im2col": lambda: F.conv2d(x48, w9, algo="im2col"),
    "conv2d_backward reference": lambda: F.conv2d_backward(dy40, x48[:2], w9, algo="reference"),
    "depthwise_conv2d": lambda: F.depthwise_conv2d(xd, wd, padding=7),
    "max_pool2d": lambda: F.max_pool2d(xp, 9, stride=1, padding=4),
    "avg_pool2d_backward": lambda: F.avg_pool2d_backward(dyp, xp, 9, stride=1),
    "sepconv2d_1d": lambda: F.sepconv2d_1d(xd, wc, wr, padding=15),
    "col2im": lambda: F.col2im(col, (2, 64, 48, 48), 9, 9),
}
for name, call in long_calls.items():
    ask(name)
    start = time.perf_counter()
    try:
        while True:
            call()
            if name.endswith("(once)"):
                print("finished", name, flush=True)
                break
    except KeyboardInterrupt:
        print("interrupted", name, f"{time.perf_counter() - start:.3f}", flush=True)
    # usable afterwards: small calls are right
    assert close(F.conv2d(xs, ws, padding=1), ref.conv2d(xs, ws, None, (1, 1), (1, 1, 1, 1)))
    dy = randn(2, 4, 9, 8)
    dx, dw, db = F.conv2d_backward(dy, xs, ws, padding=1)
    want = ref.conv2d_backward(dy, xs, ws, (1, 1), (1, 1, 1, 1))
    assert all(close(a, b) for a, b in zip((dx, dw, db), want))
    y, idx = F.max_pool2d(xs, 2, return_indices=True)
    y_ref, idx_ref = R.max_pool2d(xs, (2, 2), (2, 2), (0, 0))
    assert np.array_equal(y, y_ref.astype(np.float32)) and np.array_equal(idx, idx_ref)
    print("ok", name, flush=True)
print("done", flush=True)
"""

# A Python thread keeps calling conv2d while the main thread's call is interrupted: the worker's
# calls that saw the flag are run again from the start, so every result it gets is exact.
CHILD_WORKER_THREAD = CHILD_PRELUDE + r"""
xs, ws = randn(3, 8, 17, 13), randn(12, 8, 3, 3)
expected = F.conv2d(xs, ws, padding=1)
stop, checked, wrong = threading.Event(), [0], [0]
def worker():
    while not stop.is_set():
        got = F.conv2d(xs, ws, padding=1)
        checked[0] += 1
        wrong[0] += not np.array_equal(got, expected)
thread = threading.Thread(target=worker)
thread.start()
x, w = randn(16, 64, 96, 96), randn(64, 64, 31, 31)
for round in range(3):
    ask(f"main {round}")
    try:
        F.conv2d(x, w, algo="direct")
        print("finished main", flush=True)
    except KeyboardInterrupt:
        print("interrupted main", round, flush=True)
stop.set()
thread.join()
print("worker", checked[0], "wrong", wrong[0], flush=True)
print("done", flush=True)
"""

# A Python handler that does not raise: the call is run again from the start and returns the
# full, correct result; SIG_IGN: nothing is installed and the call just runs.
CHILD_HANDLERS = CHILD_PRELUDE + r"""
x, w = randn(4, 64, 48, 48), randn(64, 64, 11, 11)  # 0.1 s (quiet, 2 cores) to seconds (loaded)
expected = F.conv2d(x, w, algo="direct")
seen = []
signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
ask("custom handler")
# calls until the handler has run: on a fast machine one call can end before the signal comes,
# so the test does not depend on the call outlasting the parent's delay
exact, calls = True, 0
while not seen and calls < 10000:
    exact = exact and np.array_equal(F.conv2d(x, w, algo="direct"), expected)
    calls += 1
print("custom handler ran", len(seen), "exact", exact, flush=True)
signal.signal(signal.SIGINT, signal.SIG_IGN)
ask("ignored")
got = F.conv2d(x, w, algo="direct")
print("ignored exact", np.array_equal(got, expected), flush=True)
# the default handler comes back only once the parent has sent this phase's SIGINT: a call
# faster than the parent's delay would otherwise meet it (CI: the child died of SIGINT, -2)
print("sync", flush=True)
sys.stdin.readline()
signal.signal(signal.SIGINT, signal.default_int_handler)
print("done", flush=True)
"""


def _run_child(script, timeout=900, delay=0.4):
    """Runs `script`; each time it asks ("call ..."), waits `delay` seconds so the call is under
    way, sends SIGINT and lets the child go on. Returns the child's output lines."""
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(convcore.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + env.get("PYTHONPATH", "").split(os.pathsep))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watchdog = threading.Timer(timeout, proc.kill)  # a call that ignores Ctrl-C ends here
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("call "):
                proc.stdin.write("\n")
                proc.stdin.flush()
                time.sleep(delay)
                proc.send_signal(signal.SIGINT)
            elif line.startswith("sync"):  # the child waits until the last signal is sent
                proc.stdin.write("\n")
                proc.stdin.flush()
        proc.wait()
    finally:
        watchdog.cancel()
    stderr = proc.stderr.read()
    assert proc.returncode == 0, f"child exited with {proc.returncode}:\n" + "\n".join(lines) + stderr[-3000:]
    assert lines and lines[-1] == "done", "\n".join(lines) + stderr[-3000:]
    return lines


def test_ctrl_c_stops_long_calls_and_the_process_stays_usable():
    lines = _run_child(CHILD_LONG_CALLS)
    names = [line[len("call "):] for line in lines if line.startswith("call ")]
    assert len(names) == 8
    for name in names:
        assert any(line.startswith(f"interrupted {name} ") for line in lines), (name, lines)
        assert f"ok {name}" in lines, (name, lines)
    assert not any(line.startswith("finished") for line in lines), lines


def test_ctrl_c_in_main_thread_leaves_other_threads_exact():
    lines = _run_child(CHILD_WORKER_THREAD)
    assert sum(line.startswith("interrupted main") for line in lines) == 3, lines
    worker = next(line for line in lines if line.startswith("worker ")).split()
    assert int(worker[1]) > 0 and worker[3] == "0", lines


def test_python_handlers_that_do_not_raise_get_a_full_result():
    lines = _run_child(CHILD_HANDLERS)
    assert "custom handler ran 1 exact True" in lines, lines
    assert "ignored exact True" in lines, lines
