"""Tolerances used across the tests, named once."""

EXACT = 1e-12          # values copied through unchanged, relative
ROUNDOFF = 1e-9        # absolute round-off of sums over a few thousand requests (a known-case dispatcher value)
CONSERVATION = 1e-9    # request / power balances, relative to the size of their terms (at least 1)
SOLVER = 1e-6          # an LP's optimum, stage value or primal value against its known answer (HiGHS's feasibility
                       # and optimality tolerances are 1e-7: a few of them add up)
SOLVER_PRIMAL = 1e-7   # a primal value of a small known-optimum LP, absolute (one solver tolerance)
HAND_CHECKED = 0.05    # a statistic re-computed by hand from the raw file (same units)
FLOAT32_VALUE = 1e-6   # one float32 value computed two ways (a loss weight, a logged loss), relative
FLOAT32_SUMS = 1e-5    # float32 tensors summed in another order (a weighted mean of gradients), relative
FLOAT32_ATOL = 1e-7    # … and absolute, near zero
DDP_TRAINING = 1e-3    # a model trained by 2 DDP processes against 1 (sums in another order over many steps), relative
DDP_WEIGHTS_ATOL = 1e-4  # … its weights, absolute
ADMM_OBJECTIVE = 5e-3   # ADMM's cost-stage optimum against the centralised LP's, relative (issue #18's target)
ADMM_PRIMAL = 1e-3      # ADMM's coupling residual (demand and backlog rows), relative (issue #18's target)
