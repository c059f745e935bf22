"""Shared test fixtures.

- `rng`: a NumPy Generator seeded from CONVCORE_SEED (default: a fresh seed) and printed in the
  failure report, so any failing random case can be replayed with CONVCORE_SEED=<seed>.
- Every native output is pre-filled with NaN (the _set_debug_poison hook) so an element a kernel
  forgets to write fails the comparison instead of passing by luck.
"""
import os
import zlib

import numpy as np
import pytest

import convcore
from convcore import _cpu


@pytest.fixture(autouse=True, scope="session")
def _poison_outputs():
    _cpu._set_debug_poison(True)
    yield
    _cpu._set_debug_poison(False)


def _base_seed():
    env = os.environ.get("CONVCORE_SEED")
    return int(env) if env else int.from_bytes(os.urandom(4), "little")


BASE_SEED = _base_seed()


@pytest.fixture
def rng(request):
    # one stream per test, derived from the session seed and the test's name
    # crc32, not a character sum: ids like [19] and [28] must get different streams
    seed = (BASE_SEED + zlib.crc32(request.node.nodeid.encode())) % (2**32)
    request.node.user_properties.append(("seed", seed))
    return np.random.default_rng(seed)


def pytest_report_header(config):
    info = convcore.backends()
    return [
        f"convcore: CONVCORE_SEED={BASE_SEED} isa={info['cpu']['isa']} "
        f"threads={info['num_threads']} cpu={info['cpu']['brand']!r}"
    ]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.append(
            ("replay", f"re-run with CONVCORE_SEED={BASE_SEED} pytest '{item.nodeid}'")
        )


@pytest.fixture
def threads():
    """convcore.set_num_threads, with the count restored after the test."""
    before = convcore.get_num_threads()
    yield convcore.set_num_threads
    convcore.set_num_threads(before)


@pytest.fixture(scope="module")
def one_thread_module():
    """One native thread for a module (`pytestmark = pytest.mark.usefixtures(...)`): for tiny
    shapes a thread team costs more than the work, and bit-exact comparisons need a fixed count."""
    before = convcore.get_num_threads()
    convcore.set_num_threads(1)
    yield
    convcore.set_num_threads(before)


def torch_or_skip():
    return pytest.importorskip("torch")
