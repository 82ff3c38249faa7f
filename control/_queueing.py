"""Erlang-C (M/M/c) queueing of a GPU pool: the realised waiting time and the share of late requests."""

from __future__ import annotations

import numpy as np

__all__ = ["erlang_c_late_fraction", "erlang_c_probability", "erlang_c_wait_s"]


def erlang_c_probability(servers: np.ndarray, offered_erlang: np.ndarray) -> np.ndarray:
    """Probability that a request waits (Erlang C), per pool: 0 where nothing is offered, 1 where
    the queue is unstable (offered ≥ servers). Servers are rounded up to whole servers."""
    c = np.ceil(np.asarray(servers, dtype=float) - 1e-9).astype(int)
    a = np.asarray(offered_erlang, dtype=float)
    prob = np.where(a > 0, 1.0, 0.0)
    ok = (a > 0) & (a < c)
    if not ok.any():
        return prob
    # Erlang B by the stable recursion B_i = a·B_{i−1} / (i + a·B_{i−1}), then C from B.
    b = np.ones(ok.sum())
    aa, cc = a[ok], c[ok]
    for i in range(1, int(cc.max()) + 1):
        b = np.where(i <= cc, aa * b / (i + aa * b), b)
    prob[ok] = b / (1.0 - (aa / cc) * (1.0 - b))
    return prob


def erlang_c_wait_s(servers: np.ndarray, offered_erlang: np.ndarray, service_s: np.ndarray) -> np.ndarray:
    """Mean queueing wait per pool, s (0 where nothing is offered, inf where the queue is unstable).

    Args:
        servers: number of servers (GPUs) per pool; rounded up to whole servers.
        offered_erlang: offered load a = arrival rate × mean service time (busy GPUs).
        service_s: mean service time of one request, s.
    """
    c = np.ceil(np.asarray(servers, dtype=float) - 1e-9)
    a = np.asarray(offered_erlang, dtype=float)
    prob = erlang_c_probability(servers, a)
    stable = (a > 0) & (a < c)
    wait = np.where(a > 0, np.inf, 0.0)
    wait[stable] = prob[stable] * np.asarray(service_s, dtype=float)[stable] / (c[stable] - a[stable])
    return wait


def erlang_c_late_fraction(servers: np.ndarray, offered_erlang: np.ndarray, service_s: np.ndarray,
                           slack_s: np.ndarray) -> np.ndarray:
    """Share of requests that wait longer than ``slack_s``: P(W > s) = C · exp(−(c − a)·s / service).

    ``servers``, ``offered_erlang`` and ``service_s`` are per pool ``(P,)``; ``slack_s`` broadcasts
    against them on its last axis (e.g. ``(R, P, K)`` with the pool on axis 1 after a transpose by the
    caller). A negative slack (RTT + prefill alone break the SLO) makes every request late.
    """
    c = np.ceil(np.asarray(servers, dtype=float) - 1e-9)
    a = np.asarray(offered_erlang, dtype=float)
    prob = erlang_c_probability(servers, a)
    stable = (a > 0) & (a < c)
    decay = np.where(stable, (c - a) / np.where(np.asarray(service_s) > 0, service_s, 1.0), 0.0)
    late = np.where(stable, prob * np.exp(-decay * np.maximum(slack_s, 0.0)), np.where(a > 0, 1.0, 0.0))
    return np.where(np.asarray(slack_s) < 0, 1.0, late)
