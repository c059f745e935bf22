"""What machine we run on, and what it can do right now.

The dev VMs change CPU model and clock between (and within) runs, so the FMA peak and the
streaming bandwidth are re-measured between row groups; each row's "% of roofline" uses the
reading taken just before it (targets.md, "The machine's limits move")."""
import os
import platform
import time
from dataclasses import asdict, dataclass

import convcore
from convcore import _cpu

_MB = 1 << 20


def cache_size_bytes(level, default):
    """Per-core cache size of `level` from sysfs (Linux), else `default`."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            path = os.path.join(base, entry)
            with open(os.path.join(path, "level")) as f:
                if int(f.read()) != level:
                    continue
            with open(os.path.join(path, "type")) as f:
                if f.read().strip() == "Instruction":
                    continue
            with open(os.path.join(path, "size")) as f:
                text = f.read().strip().upper()
            units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
            if text[-1] in units:
                return int(text[:-1]) * units[text[-1]]
            return int(text)
    except (OSError, ValueError):
        pass
    return default


def bandwidth_buffer_bytes():
    """Each probe array is 4x the L2 and at least 64 MB, so the stream comes from beyond the
    private caches, as the big depthwise/pooling rows' data does."""
    return max(64 * _MB, 4 * cache_size_bytes(2, 2 * _MB))


def machine_info(threads):
    info = convcore.backends()
    cpu = info["cpu"]
    return {
        "cpu_model": cpu.get("brand") or platform.processor() or "unknown",
        "vendor": cpu.get("vendor", ""),
        "isa": cpu.get("isa", "?"),
        "best_isa": cpu.get("best_isa", "?"),
        "threads": threads,
        "logical_cpus": os.cpu_count(),
        "l2_bytes": cache_size_bytes(2, 0),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "convcore": convcore.__version__,
    }


def _version(module):
    try:
        return __import__(module).__version__
    except Exception:  # not installed, or broken: the report says so rather than failing
        return None


@dataclass
class ProbeReading:
    label: str            # which row group it precedes ("start", "resnet", ..., "end")
    time_s: float         # seconds since the run started
    peak_1t: float        # GFLOP/s, one thread
    peak_nt: float        # GFLOP/s, `threads` threads
    bw_1t: float          # GB/s, one thread (max of copy and triad)
    bw_nt: float          # GB/s, `threads` threads
    copy_nt: float
    triad_nt: float
    threads: int
    isa: str
    bw_nbytes: int

    def peak(self, threads):
        return self.peak_1t if threads == 1 else self.peak_nt

    def bandwidth(self, threads):
        return self.bw_1t if threads == 1 else self.bw_nt

    def as_dict(self):
        return asdict(self)


class Probes:
    """Takes and keeps the machine readings of one run."""

    def __init__(self, threads, fma_seconds=0.05, fma_samples=5, bw_passes=5, bw_nbytes=None):
        self.threads = threads
        self.fma_seconds = fma_seconds
        self.fma_samples = fma_samples
        self.bw_passes = bw_passes
        self.bw_nbytes = bw_nbytes or bandwidth_buffer_bytes()
        self.readings = []
        self._t0 = time.perf_counter()

    @property
    def latest(self):
        return self.readings[-1] if self.readings else None

    def measure(self, label):
        one = _cpu._probe_fma_peak(1, self.fma_seconds, self.fma_samples)
        many = one if self.threads == 1 else _cpu._probe_fma_peak(
            self.threads, self.fma_seconds, self.fma_samples)
        bw1 = _cpu._probe_bandwidth(1, self.bw_nbytes, self.bw_passes)
        bwn = bw1 if self.threads == 1 else _cpu._probe_bandwidth(
            self.threads, self.bw_nbytes, self.bw_passes)
        reading = ProbeReading(
            label=label, time_s=time.perf_counter() - self._t0,
            peak_1t=one["gflops"], peak_nt=many["gflops"],
            bw_1t=bw1["gbs"], bw_nt=bwn["gbs"], copy_nt=bwn["copy_gbs"], triad_nt=bwn["triad_gbs"],
            threads=self.threads, isa=one["isa"], bw_nbytes=bwn["nbytes"])
        self.readings.append(reading)
        return reading
