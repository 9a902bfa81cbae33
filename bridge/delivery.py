"""Retrying delivery: the one backoff policy of the bridge.

Every retry loop (Node runtime restarts, session reconnects, alert and webhook deliveries,
snapshot retries) asks a `Backoff` how long to wait before attempt n, so a change of policy is
made once.

Why "equal" jitter by default: the delay of attempt n is uniform in [base/2, base], where
base = min(maximum, initial * factor**(n-1)). The lower half guarantees a retry never fires
almost at once after a failure (a crashing runtime cannot spin); the random upper half spreads
many tenants that failed together (a WhatsApp outage, a receiver restart) so they do not retry in
lockstep. "full" jitter (uniform in [0, base]) spreads better but may retry at once; "none" is
for tests and for callers that add their own spread.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

Jitter = Literal["equal", "full", "none"]
_MAX_EXPONENT = 1000


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff, capped at `maximum`, with jitter (see the module docstring).

    `delay(attempt)` is pure apart from the random draw: callers keep their own attempt count
    (1 = the wait after the first failure) and reset it when things work again. `rng` is
    injectable so tests can check the bounds deterministically.
    """

    initial: float
    maximum: float
    factor: float = 2.0
    jitter: Jitter = "equal"
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum (got {self.initial}, {self.maximum})")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be at least 1 (got {self.factor})")

    def base(self, attempt: int) -> float:
        """The delay before `attempt` (1-based) without jitter: initial * factor**(attempt-1), capped."""
        exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
        try:
            raw = self.initial * self.factor**exponent
        except OverflowError:
            return self.maximum
        return min(self.maximum, raw)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (1-based), jittered; never more than `maximum`."""
        base = self.base(attempt)
        if self.jitter == "none":
            return base
        low = base / 2.0 if self.jitter == "equal" else 0.0
        return self.rng.uniform(low, base)
