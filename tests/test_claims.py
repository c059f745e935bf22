"""The textbook-claims bench (python -m convcore.bench --claims): its analytic counts, that both
forms of each claim compute the same thing, and how a gap is attributed (on fixed synthetic
times: no timed assertions)."""
import numpy as np
import pytest

from convcore.bench import claims as C
from convcore.bench.cli import parse_args


def test_bottleneck_counts_are_the_textbook_figures(rng):
    claim = C.bottleneck(rng, n=1)
    assert claim.costly.macs == 28 * 28 * 192 * 32 * 25 == 120_422_400          # ~120.4M
    assert claim.cheap.macs == 28 * 28 * 192 * 16 + 28 * 28 * 16 * 32 * 25 == 12_443_648  # ~12.4M
    assert claim.costly.params == 192 * 32 * 25 + 32


def test_stacked_and_separable_ratios(rng):
    claim = C.stacked_3x3(rng, c=8, hw=10, n=1)
    assert claim.costly.params == 49 * 64 + 8 and claim.cheap.params == 3 * (9 * 64 + 8)
    assert claim.costly.macs / claim.cheap.macs == pytest.approx(49 / 27)
    sep = C.depthwise_separable(rng, 16, 6, n=1)
    assert sep.costly.macs / sep.cheap.macs == pytest.approx(1 / (1 / 16 + 1 / 9))


@pytest.mark.parametrize("k", [3, 5])
def test_rank1_forms_compute_the_same_output(rng, k):
    claim = C.rank1(rng, k, c=3, hw=13, n=1)
    np.testing.assert_allclose(claim.cheap.run(), claim.costly.run(), rtol=1e-5, atol=1e-5)
    assert claim.costly.macs / claim.cheap.macs == pytest.approx(k / 2)


def test_strided_forms_compute_the_same_output(rng):
    claim = C.strided(rng, c=3, hw=11, n=2)
    np.testing.assert_allclose(claim.cheap.run(), claim.costly.run(), rtol=1e-5, atol=1e-5)


def _claim(cheap_macs, cheap_bytes, calls=1):
    run = lambda: None  # noqa: E731
    return C.Claim("t", "test", C.Form("costly", 8e9, 1, 1e6, 1, run),
                   C.Form("cheap", cheap_macs, 1, cheap_bytes, calls, run))


MACHINE = C.Machine(peak_gflops=100.0, bandwidth_gbs=10.0, call_s=20e-6, threads=1)


def test_agreement_within_two_x_names_no_bound():
    why, gap = C.explain(_claim(1e9, 1e6), t_costly=0.16, t_cheap=0.03, machine=MACHINE)
    assert why is None and gap == pytest.approx(8 / (0.16 / 0.03))


def test_gap_is_attributed_to_the_largest_bound():
    # cheap form: 1e9 MACs (20 ms at peak) but 1 GB to move (100 ms at 10 GB/s)
    why, gap = C.explain(_claim(1e9, 1e9), t_costly=0.16, t_cheap=0.12, machine=MACHINE)
    assert gap > 2 and why[0] == "memory traffic" and "1000.0 MB" in why[1]
    # tiny work, many calls: overhead
    why, _ = C.explain(_claim(1e6, 1e3, calls=500), t_costly=0.16, t_cheap=0.012, machine=MACHINE)
    assert why[0] == "overhead"
    # compute-bound form far from peak: the kernel's efficiency
    why, _ = C.explain(_claim(1e9, 1e6), t_costly=0.16, t_cheap=0.1, machine=MACHINE)
    assert why[0].startswith("kernel efficiency") and "compute, is 20%" in why[0]


def test_cli_has_the_flag():
    assert parse_args(["--claims"]).claims and not parse_args([]).claims
