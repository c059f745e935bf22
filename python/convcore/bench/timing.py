"""Wall-clock timing: warm-up, then the median of repetitions chosen to fit a time budget."""
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
