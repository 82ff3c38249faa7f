"""Tolerances used across the tests, named once."""

EXACT = 1e-12          # values copied through unchanged
CONSERVATION = 1e-9    # request / power balances, relative to the size of their terms (at least 1)
HAND_CHECKED = 0.05    # a statistic re-computed by hand from the raw file (same units)
