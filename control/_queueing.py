"""Erlang-C (M/M/c) queueing of a GPU pool: the realised waiting time and the share of late requests.

Erlang B in closed form — ``B(c, a) = P(X = c) ÷ P(X ≤ c)`` for ``X ~ Poisson(a)``, the pmf in log
space (``gammaln``) and the cdf as the regularised upper incomplete gamma ``Q(c + 1, a)``
(``scipy.special.gammaincc``) — so a pool of thousands of GPUs costs what one of two does; Erlang C
follows as ``C = B ÷ (1 − ρ·(1 − B))`` with ``ρ = a ÷ c``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaincc, gammaln

__all__ = ["erlang_b", "erlang_c_late_fraction", "erlang_c_probability", "erlang_c_wait_s"]


def erlang_b(servers: np.ndarray, offered_erlang: np.ndarray) -> np.ndarray:
    """Blocking probability of ``servers`` whole servers offered ``offered_erlang`` (both > 0).

    Args:
        servers: whole servers ``c ≥ 1``.
        offered_erlang: offered load ``a > 0`` (busy servers).
    """
    c = np.asarray(servers, dtype=float)
    a = np.asarray(offered_erlang, dtype=float)
    log_pmf = c * np.log(a) - a - gammaln(c + 1.0)
    return np.exp(log_pmf - np.log(gammaincc(c + 1.0, a)))


def erlang_c_probability(servers: np.ndarray, offered_erlang: np.ndarray) -> np.ndarray:
    """Probability that a request waits (Erlang C), per pool: 0 where nothing is offered, 1 where
    the queue is unstable (offered ≥ servers). Servers are rounded up to whole servers."""
    c = np.ceil(np.asarray(servers, dtype=float) - 1e-9)
    a = np.asarray(offered_erlang, dtype=float)
    c, a = np.broadcast_arrays(c, a)
    prob = np.where(a > 0, 1.0, 0.0)
    ok = (a > 0) & (a < c)
    if ok.any():
        aa, cc = a[ok], c[ok]
        b = erlang_b(cc, aa)
        prob[ok] = b / (1.0 - (aa / cc) * (1.0 - b))
    return prob


def erlang_c_wait_s(servers: np.ndarray, offered_erlang: np.ndarray, service_s: np.ndarray,
                    probability: np.ndarray | None = None) -> np.ndarray:
    """Mean queueing wait per pool, s (0 where nothing is offered, inf where the queue is unstable).

    Args:
        servers: number of servers (GPUs) per pool; rounded up to whole servers.
        offered_erlang: offered load a = arrival rate × mean service time (busy GPUs).
        service_s: mean service time of one request, s.
        probability: ``erlang_c_probability(servers, offered_erlang)`` when the caller has it.
    """
    c = np.ceil(np.asarray(servers, dtype=float) - 1e-9)
    a = np.asarray(offered_erlang, dtype=float)
    prob = erlang_c_probability(servers, a) if probability is None else probability
    stable = (a > 0) & (a < c)
    wait = np.where(a > 0, np.inf, 0.0)
    wait[stable] = prob[stable] * np.asarray(service_s, dtype=float)[stable] / (c[stable] - a[stable])
    return wait


def erlang_c_late_fraction(servers: np.ndarray, offered_erlang: np.ndarray, service_s: np.ndarray,
                           slack_s: np.ndarray, probability: np.ndarray | None = None) -> np.ndarray:
    """Share of requests that wait longer than ``slack_s``: P(W > s) = C · exp(−(c − a)·s / service).

    ``servers``, ``offered_erlang`` and ``service_s`` are per pool ``(P,)``; ``slack_s`` broadcasts
    against them on its last axis (e.g. ``(R, P, K)`` with the pool on axis 1 after a transpose by the
    caller). A negative slack (RTT + prefill alone break the SLO) makes every request late.
    ``probability``: ``erlang_c_probability(servers, offered_erlang)`` when the caller has it.
    """
    c = np.ceil(np.asarray(servers, dtype=float) - 1e-9)
    a = np.asarray(offered_erlang, dtype=float)
    prob = erlang_c_probability(servers, a) if probability is None else probability
    stable = (a > 0) & (a < c)
    decay = np.where(stable, (c - a) / np.where(np.asarray(service_s) > 0, service_s, 1.0), 0.0)
    late = np.where(stable, prob * np.exp(-decay * np.maximum(slack_s, 0.0)), np.where(a > 0, 1.0, 0.0))
    return np.where(np.asarray(slack_s) < 0, 1.0, late)
