"""Hardening: workspace limits, concurrency, determinism, no memory growth."""
import threading

import numpy as np
import pytest

import convcore
import convcore.functional as F

from reference import assert_close, conv2d as ref_conv2d


@pytest.fixture
def workspace_limit():
    old = convcore.get_max_workspace()
    yield convcore.set_max_workspace
    convcore.set_max_workspace(old if old < 2**62 else None)


def test_workspace_limit_falls_back_or_raises(rng, workspace_limit):
    x = rng.standard_normal((2, 16, 20, 20)).astype(np.float32)
    w = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    assert F.select_algo(x.shape, w.shape, padding=1) == "im2col"
    workspace_limit(1024)
    assert F.select_algo(x.shape, w.shape, padding=1) == "direct"
    y = F.conv2d(x, w, padding=1)  # auto: falls back to direct, same result
    assert_close(y, ref_conv2d(x, w, None, (1, 1), (1, 1, 1, 1)), "direct fallback", 1e-5)
    with pytest.raises(MemoryError, match="CONVCORE_MAX_WORKSPACE"):
        F.conv2d(x, w, padding=1, algo="im2col")
    workspace_limit(None)
    assert F.select_algo(x.shape, w.shape, padding=1) == "im2col"


def _workload(rng):
    cases = []
    for groups, c, k in ((1, 8, 12), (2, 8, 6), (8, 8, 16)):
        x = rng.standard_normal((3, c, 17, 13)).astype(np.float32)
        w = rng.standard_normal((k, c // groups, 3, 3)).astype(np.float32)
        cases.append((x, w, groups))
    return cases


def _run(cases):
    out = []
    for x, w, groups in cases:
        y = F.conv2d(x, w, padding=1, groups=groups)
        dx, dw, db = F.conv2d_backward(y, x, w, padding=1, groups=groups)
        out += [y, dx, dw, db]
    return out


def test_threads_give_bit_identical_results(rng):
    """The GIL is released inside kernels: Python threads calling ops at once must get exactly
    the serial results."""
    cases = _workload(rng)
    serial = _run(cases)
    results = [None] * 8
    errors = []

    def worker(slot):
        try:
            for _ in range(5):
                got = _run(cases)
                for a, b in zip(got, serial):
                    np.testing.assert_array_equal(a, b)
            results[slot] = True
        except Exception as exc:  # reported from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert all(results)


def test_bit_identical_run_to_run(rng):
    cases = _workload(rng)
    first = _run(cases)
    for _ in range(3):
        for a, b in zip(_run(cases), first):
            np.testing.assert_array_equal(a, b)


def _rss_bytes():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os
    return pages * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs Linux /proc")
@pytest.mark.skipif(__import__("os").environ.get("CONVCORE_SANITIZED") == "1",
                    reason="ASan's quarantine keeps freed memory resident; the plain run checks growth")
def test_no_memory_growth_over_many_calls(rng):
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    for _ in range(500):  # warm up allocator pools
        F.conv2d_backward(F.conv2d(x, w, padding=1), x, w, padding=1)
    before = _rss_bytes()
    for _ in range(10000):
        y = F.conv2d(x, w, padding=1)
        F.conv2d_backward(y, x, w, padding=1)
        try:
            F.conv2d(x[:, :3], w)  # error path must not leak either
        except ValueError:
            pass
    growth = _rss_bytes() - before
    assert growth < 8 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB over 10000 calls"
