"""Wall-clock timing: warm-up, then the median of repetitions chosen to fit a time budget; for
columns compared with each other, repetitions taken in alternation."""
import math
import statistics
import time
from dataclasses import dataclass, field


@dataclass
class Timing:
    median_ms: float
    reps: int
    samples_ms: list = field(default_factory=list)

    @property
    def min_ms(self):
        return min(self.samples_ms)


@dataclass
class Budget:
    """How long one measurement may take. A call slower than seconds/min_reps gets min_reps
    repetitions; a fast call gets as many as fit in `seconds`, capped at max_reps. `fixed_reps`
    (the --reps option) overrides both."""
    seconds: float = 0.5
    min_reps: int = 3
    max_reps: int = 50
    fixed_reps: int = 0

    def scaled(self, factor, min_reps=None):
        """A budget for a slower baseline (the NumPy im2col on big rows): a share of the time and
        perhaps fewer repetitions, so the whole suite stays within minutes."""
        return Budget(self.seconds * factor, self.min_reps if min_reps is None else min_reps,
                      self.max_reps, self.fixed_reps)


def measure(fn, budget):
    """Median wall time of fn() in milliseconds. The first call is a warm-up (page faults on new
    outputs, thread-pool start, lazy initialisation) and is never counted, except that a call
    slower than the whole budget with min_reps == 1 (the NumPy baseline) is not repeated: its
    warm-up time stands."""
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    if budget.fixed_reps > 0:
        reps = budget.fixed_reps
    else:
        reps = int(budget.seconds / max(warm, 1e-6))
        reps = max(budget.min_reps, min(budget.max_reps, reps))
        # A slow call gets min_reps only while they fit in 3x the budget (at least one), so a
        # slow kernel or baseline cannot stretch the suite to hours.
        reps = min(reps, max(1, math.ceil(3 * budget.seconds / max(warm, 1e-6))))
        if budget.min_reps <= 1 and warm >= budget.seconds:
            return Timing(warm * 1e3, 1, [warm * 1e3])
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return Timing(statistics.median(samples), reps, samples)


# Below this much time a round (one call of each column), every timed call in measure_alternating
# follows an untimed call of its own.
REWARM_BELOW_S = 0.05


def measure_alternating(fns, budget):
    """Median wall times of several calls timed in alternation: {key: Timing}. Each takes one
    untimed warm-up; then every round calls each in turn (the order reversed every other round),
    so the columns' samples spread over the same stretch of time. Why: on the shared dev VM
    other tenants slow everything for windows of seconds (a 50-call median of one depthwise
    conv2d moved 68 -> 108 us within 3 s), so two columns timed one after the other could land
    in different windows and their ratio carry that noise; timed in turn they meet the same
    conditions. Where a round is short, each timed call follows an untimed call of its own, so
    it finds the caches as back-to-back repetition leaves them, not as the other column's call
    did (timed straight after PyTorch's pooling, a 0.7 ms max_pool2d ran 15-30% slower: its 32 MB
    no longer half in L3). The rounds get the time `budget` would give each column alone."""
    keys = list(fns)
    warm = {}
    for key in keys:
        t0 = time.perf_counter()
        fns[key]()
        warm[key] = time.perf_counter() - t0
    rewarm = sum(warm.values()) < REWARM_BELOW_S
    round_s = max(sum(warm.values()) * (2 if rewarm else 1), 1e-6)
    if budget.fixed_reps > 0:
        reps = budget.fixed_reps
    else:
        total = budget.seconds * len(keys)
        reps = int(total / round_s)
        reps = max(budget.min_reps, min(budget.max_reps, reps))
        reps = min(reps, max(1, math.ceil(3 * total / round_s)))  # as measure(): slow calls
    samples = {key: [] for key in keys}
    for r in range(reps):
        for key in (keys if r % 2 == 0 else reversed(keys)):
            if rewarm:
                fns[key]()
            t0 = time.perf_counter()
            fns[key]()
            samples[key].append((time.perf_counter() - t0) * 1e3)
    return {key: Timing(statistics.median(samples[key]), reps, samples[key]) for key in keys}
