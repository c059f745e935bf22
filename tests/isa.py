"""Run a test body under each SIMD level the CPU supports (others skip, never fail)."""
import contextlib

import pytest

from convcore import _cpu

ISA_ORDER = ["scalar", "avx2", "avx512"]


def supported(isa):
    return ISA_ORDER.index(isa) <= ISA_ORDER.index(_cpu.cpu_info()["best_isa"])


@contextlib.contextmanager
def forced_isa(isa):
    if not supported(isa):
        pytest.skip(f"this CPU lacks {isa} (best: {_cpu.cpu_info()['best_isa']})")
    previous = _cpu.cpu_info()["isa"]
    assert _cpu._set_isa(isa) == isa
    try:
        yield
    finally:
        _cpu._set_isa(previous)
