"""Network architectures behind the learned forecasters (PyTorch ``nn.Module``s, no training here).

Every net maps a scaled look-back ``x (B, L)``, series ids ``(B,)`` and calendar features at the
issue time ``(B, F)`` to scaled quantiles ``(B, H, Q)``, ordered by construction. ``ForecastNet``
does what both share: it subtracts the level (mean of the last ``level_steps`` inputs) before the
core and adds it back after, embeds the series identity, and orders the quantiles (median plus
non-negative gaps). With inputs finer than the forecast step (the 10-min load, ``sub_steps`` per
step) the core reads the last ``fine_steps`` inputs as they are and the earlier ones as means per
forecast step: the recent windows at full rate, the older past at the rate of the forecast. Cores:

* ``mlp`` — N-HiTS-style: blocks that read the input average-pooled at different rates, each
  forecasting and removing its part of the input (doubly residual);
* ``tcn`` — a temporal-convolution net: residual dilated causal convolutions over the look-back
  (long look-backs average-pooled to ≤ 48 positions); the last position's and the mean features,
  with the last day of raw inputs, feed a small head.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ARCHITECTURES", "ForecastNet", "MemberMean", "NetSpec"]

ARCHITECTURES = ("mlp", "tcn")


@dataclass(frozen=True)
class NetSpec:
    """Shape of a net (stored in the model's JSON spec)."""

    architecture: str
    lookback: int
    horizon: int
    n_series: int
    n_features: int
    n_quantiles: int
    level_steps: int
    hidden: int
    embedding_dim: int
    dropout: float
    sub_steps: int = 1
    fine_steps: int = 0

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def core_lookback(self) -> int:
        """Inputs the core reads: the last ``fine_steps`` at the input step, the earlier ones as
        means of ``sub_steps`` (the whole look-back when ``fine_steps`` covers it)."""
        if self.sub_steps == 1 or self.fine_steps >= self.lookback:
            return self.lookback
        return math.ceil((self.lookback - self.fine_steps) / self.sub_steps) + self.fine_steps


def _coarse_past(x: torch.Tensor, s: NetSpec) -> torch.Tensor:
    """``x (B, lookback)`` → ``(B, core_lookback)``: sub-step means before the last ``fine_steps``."""
    if s.core_lookback == s.lookback:
        return x
    past, recent = x[:, :s.lookback - s.fine_steps], x[:, s.lookback - s.fine_steps:]
    return torch.cat([_pool(past, s.sub_steps), recent], dim=1)


def _pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """Average over non-overlapping blocks of ``k`` steps (ending at the last step), ``(B, ⌈L/k⌉)``."""
    if k == 1:
        return x
    short = (-x.shape[1]) % k
    if short:
        x = torch.cat([x[:, :1].expand(-1, short), x], dim=1)
    return x.reshape(x.shape[0], -1, k).mean(dim=2)


class _MLPCore(nn.Module):
    def __init__(self, s: NetSpec, pools: tuple[int, ...] = (8, 4, 1)) -> None:
        super().__init__()
        self.pools = pools
        self.blocks = nn.ModuleList()
        self.backcasts = nn.ModuleList()
        self.forecasts = nn.ModuleList()
        for k in pools:
            n_in = math.ceil(s.lookback / k) + s.embedding_dim + s.n_features
            self.blocks.append(nn.Sequential(
                nn.Linear(n_in, s.hidden), nn.ReLU(), nn.Dropout(s.dropout),
                nn.Linear(s.hidden, s.hidden), nn.ReLU()))
            self.backcasts.append(nn.Linear(s.hidden, s.lookback))
            self.forecasts.append(nn.Linear(s.hidden, s.horizon * s.n_quantiles))

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        resid = x
        out: torch.Tensor | float = 0.0
        for k, block, back, fore in zip(self.pools, self.blocks, self.backcasts, self.forecasts, strict=True):
            pooled = _pool(resid, k)
            h = block(torch.cat([pooled, ctx], dim=1))
            resid = resid - back(h)
            out = out + fore(h)
        assert isinstance(out, torch.Tensor)   # a tensor after the first block (pools is never empty)
        return out


class _CausalConv(nn.Module):
    """Causal dilated convolution on ``(B, L, C)`` as one matrix product of shifted copies
    (much faster on CPU than ``nn.Conv1d`` at these small channel counts)."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.kernel, self.dilation = kernel, dilation
        self.lin = nn.Linear(kernel * channels, channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n, d = h.shape[1], self.dilation
        pad = F.pad(h, (0, 0, (self.kernel - 1) * d, 0))
        return self.lin(torch.cat([pad[:, i * d:i * d + n] for i in range(self.kernel)], dim=2))


class _TCNCore(nn.Module):
    def __init__(self, s: NetSpec, channels: int = 16, kernel: int = 3) -> None:
        super().__init__()
        self.pool = max(1, s.lookback // 48)  # a coarse view of long look-backs keeps it fast
        n = math.ceil(s.lookback / self.pool)
        self.recent = min(24, s.lookback)     # the last day also enters the head at full rate
        dilations, field_len, d = [], 1, 1
        while field_len < n:
            dilations.append(d)
            field_len += (kernel - 1) * d
            d *= 2
        self.inp = nn.Linear(1, channels)
        self.convs = nn.ModuleList(_CausalConv(channels, kernel, d) for d in dilations)
        self.drop = nn.Dropout(s.dropout)
        self.head = nn.Sequential(
            nn.Linear(2 * channels + self.recent + s.embedding_dim + s.n_features, s.hidden), nn.ReLU(),
            nn.Linear(s.hidden, s.horizon * s.n_quantiles))

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        h = self.inp(_pool(x, self.pool)[:, :, None])
        for conv in self.convs:
            h = h + self.drop(F.relu(conv(h)))
        feats = torch.cat([h[:, -1], h.mean(dim=1), x[:, -self.recent:], ctx], dim=1)
        return self.head(feats)


class ForecastNet(nn.Module):
    """Level-normalised, series-embedded, quantile-ordered wrapper around a core architecture."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        if spec.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture {spec.architecture!r}; valid: {list(ARCHITECTURES)}")
        self.spec = spec
        self.embedding = nn.Embedding(spec.n_series, spec.embedding_dim)
        core = replace(spec, lookback=spec.core_lookback)
        self.core = _MLPCore(core) if spec.architecture == "mlp" else _TCNCore(core)

    def forward(self, x: torch.Tensor, series: torch.Tensor, cal: torch.Tensor) -> torch.Tensor:
        """Scaled quantiles ``(B, H, Q)`` from scaled inputs ``x (B, L)``."""
        s = self.spec
        level = x[:, -s.level_steps:].mean(dim=1, keepdim=True)
        ctx = torch.cat([self.embedding(series), cal], dim=1)
        raw = self.core(_coarse_past(x - level, s), ctx).view(-1, s.horizon, s.n_quantiles)
        mid_i = s.n_quantiles // 2
        mid = raw[:, :, mid_i:mid_i + 1]
        below = torch.cumsum(F.softplus(raw[:, :, :mid_i].flip(2)), dim=2).flip(2)
        above = torch.cumsum(F.softplus(raw[:, :, mid_i + 1:]), dim=2)
        return torch.cat([mid - below, mid, mid + above], dim=2) + level[:, :, None]


class MemberMean(nn.Module):
    """An ensemble of nets of one shape (trained with different seeds): the mean of their
    quantiles (a mean of ordered quantile vectors stays ordered)."""

    def __init__(self, members: list[ForecastNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.spec = members[0].spec

    def forward(self, x: torch.Tensor, series: torch.Tensor, cal: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x, series, cal) for m in self.members]).mean(dim=0)
