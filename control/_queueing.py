"""Erlang-C waiting time of an M/M/c queue (the realised latency of a GPU pool)."""

from __future__ import annotations

import numpy as np

__all__ = ["erlang_c_wait_s"]


def erlang_c_wait_s(servers: np.ndarray, offered_erlang: np.ndarray, service_s: np.ndarray) -> np.ndarray:
    """Mean queueing wait per pool, s (0 where nothing is offered, inf where the queue is unstable).

    Args:
        servers: number of servers (GPUs) per pool; rounded up to whole servers.
        offered_erlang: offered load a = arrival rate × mean service time (busy GPUs).
        service_s: mean service time of one request, s.
    """
    c = np.ceil(np.asarray(servers, dtype=float) - 1e-9).astype(int)
    a = np.asarray(offered_erlang, dtype=float)
    wait = np.zeros_like(a)
    busy = a > 0
    unstable = busy & (a >= c)
    wait[unstable] = np.inf
    ok = busy & ~unstable
    if not ok.any():
        return wait
    # Erlang B by the stable recursion B_i = a·B_{i−1} / (i + a·B_{i−1}), then C from B.
    b = np.ones(ok.sum())
    aa, cc = a[ok], c[ok]
    for i in range(1, int(cc.max()) + 1):
        step = aa * b / (i + aa * b)
        b = np.where(i <= cc, step, b)
    rho = aa / cc
    erlang_c = b / (1.0 - rho * (1.0 - b))
    wait[ok] = erlang_c * service_s[ok] / (cc - aa)
    return wait
