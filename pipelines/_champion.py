"""Whether a newly trained forecaster takes the alias ``champion`` from the version in service.

Both are scored on data newer than both versions' training data: per signal, the test origins of
the new training run whose issue time is after the later of the two training ends (the champion's
comes from its version tags ``train_end.<signal>``). The score is ``train``'s skill (MAE ÷ the better
seasonal-naive MAE, lower is better) averaged over the signals both models forecast; the new version
wins when its mean skill is lower. No champion yet: the new version becomes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.baselines import baselines_for
from forecast.evaluate import evaluate, evaluation_origins, skill
from forecast.interface import Forecaster
from forecast.splits import TRAIN, SignalSplit

__all__ = ["Decision", "decide", "mean_skill", "train_end_tags"]


@dataclass(frozen=True)
class Decision:
    """The outcome: promote or not, the two mean skills, the data they were scored on, in words."""

    promote: bool
    new_skill: float
    champion_skill: float
    origins: int
    text: str


def train_end_tags(splits: Mapping[str, SignalSplit]) -> dict[str, str]:
    """``train_end.<signal>``: the last training hour of each signal (ISO, UTC)."""
    out = {}
    for sig, split in splits.items():
        rows = split.full.index[(split.output_labels() == TRAIN).any(axis=1)]
        out[f"train_end.{sig}"] = rows.max().isoformat()
    return out


def mean_skill(models: Mapping[str, Forecaster], splits: Mapping[str, SignalSplit], horizon: int, stride: int,
               after: Mapping[str, pd.Timestamp]) -> tuple[float, int]:
    """Mean skill over ``models``' signals on the test origins issued after ``after[signal]``, and
    how many origins that is in all."""
    skills, n = [], 0
    for sig, model in models.items():
        split = splits[sig]
        org, mask = evaluation_origins(split, horizon, stride)
        keep = split.full.index[org] > after[sig]
        if not keep.any():
            continue
        origins = (org[keep], mask[keep])
        sc = {"model": evaluate(model, split, horizon, origins=origins)[0]}
        for name, base in baselines_for(sig, truth=split.full).items():
            if name.startswith("seasonal_naive"):
                sc[name] = evaluate(base.fit(split.upto(0)[list(split.outputs)]), split, horizon, origins=origins)[0]
        skills.append(skill(sc["model"], sc["seasonal_naive_24"], sc["seasonal_naive_168"]))
        n += int(keep.sum())
    return (float(np.mean(skills)) if skills else float("nan")), n


def decide(new: Mapping[str, Forecaster], champion: Mapping[str, Forecaster] | None, champion_version: str,
           champion_tags: Mapping[str, str], splits: Mapping[str, SignalSplit], horizon: int,
           stride: int) -> Decision:
    """The module docstring's rule; ``champion`` None: no champion yet."""
    if champion is None:
        return Decision(True, float("nan"), float("nan"), 0, "no champion yet: this version becomes it")
    signals = [s for s in new if s in champion]
    ours = train_end_tags({s: splits[s] for s in signals})
    after = {s: max(pd.Timestamp(ours[f"train_end.{s}"]), pd.Timestamp(champion_tags.get(f"train_end.{s}",
                                                                                       ours[f"train_end.{s}"])))
             for s in signals}
    new_skill, n = mean_skill({s: new[s] for s in signals}, splits, horizon, stride, after)
    champ_skill, _ = mean_skill({s: champion[s] for s in signals}, splits, horizon, stride, after)
    if not np.isfinite(new_skill) or not np.isfinite(champ_skill):
        return Decision(False, new_skill, champ_skill, n, f"kept v{champion_version}: no test data newer than "
                        "both versions' training data")
    promote = new_skill < champ_skill
    verb = f"promoted over v{champion_version}" if promote else f"kept v{champion_version}"
    return Decision(promote, new_skill, champ_skill, n,
                    f"{verb}: mean skill {new_skill:.4f} (new) vs {champ_skill:.4f} (champion) on {n} forecasts "
                    f"issued after both versions' training data ({len(signals)} signals)")
