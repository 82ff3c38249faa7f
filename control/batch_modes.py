"""Edge batch modes: the batch size an edge device runs as a choice the MPC makes.

With ``sizing.edge_batch_modes`` (e.g. ``[1, 2, 4, 8]``) every edge pool becomes one sub-pool per
mode that fits the device's memory, named ``gpu@b<batch>`` (``SI/rtx2000ada@b8``). The sub-pools
of one site's devices share them: the GPUs running over the modes are at most the devices installed
(the LP's ``control.constraints.SharedDevices`` rows, the plant's ``within_shared_devices``), so the
allocation stays an LP (continuous device counts per mode). The device's catalogue batch is its
*fixed* mode: the one the baselines run and the sizing counts (``fixed_mode_gpus``).

Each mode's figures are derived (tag D, configs/hardware.yaml) from the measured batch-1 decode rate:

* decode step time grows with the KV cache each step reads: t(b) = t(1)·(W + b·KV)/(W + KV), W the
  weights and KV one sequence's mean cache (``edge_memory.mean_kv_tokens``), so
  decode tok/s(b) = b · ``decode_tok_per_s_batch1`` ÷ that ratio;
* the device draws its busy power in every mode: decode J/token = (busy − idle) W ÷ tok/s(b);
* prefill rate and J/token are those of the catalogue (compute-bound, about flat in batch);
* TTFT = b × prompt ÷ prefill rate: a batch's prompts are prefilled together before any first token
  (static batching), so larger batches trade TTFT for energy.

Memory check: weights + runtime reserve + b × ``context_tokens`` × KV bytes per token ≤ the device's
memory; modes that do not fit are not offered (an 8 GB Orin NX holds batch 1, 2 and 4, not 8).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from control.params import EdgeMemory, Gpu, HardwareCatalogue
from control.plant import PlantParams
from forecast.scenario import Scenario
from forecast.schema import ConfigError

__all__ = ["device_name", "fixed_mode_gpus", "gpu_for", "memory_needed_gb", "mode_batch", "mode_gpu", "mode_table",
           "pools", "shared_device_groups", "within_shared_devices"]

SEP = "@b"
GB = 1e9


def mode_batch(pool_gpu: str) -> int:
    """The batch of a pool's GPU name (``rtx2000ada@b4`` → 4); 1 for a name without a mode."""
    return int(pool_gpu.split(SEP)[1]) if SEP in pool_gpu else 1


def device_name(pool_gpu: str) -> str:
    """The catalogue name of a pool's GPU (``rtx2000ada@b4`` → ``rtx2000ada``)."""
    return pool_gpu.split(SEP)[0]


def memory_needed_gb(memory: EdgeMemory, batch: int) -> float:
    """Weights + runtime reserve + ``batch`` slots of KV cache, GB."""
    kv_gb = batch * memory.context_tokens * memory.kv_bytes_per_token / GB
    return memory.weights_gb + memory.runtime_reserve_gb + kv_gb


def _fits(memory: EdgeMemory, gpu: Gpu, batch: int) -> bool:
    return memory_needed_gb(memory, batch) <= float(gpu.memory_gb or 0.0)


def _checked(hardware: HardwareCatalogue, gpu: Gpu) -> EdgeMemory:
    if hardware.edge_memory is None or gpu.memory_gb is None or gpu.decode_tok_per_s_batch1 is None:
        raise ConfigError(f"sizing.edge_batch_modes: batch modes of {gpu.name} need hardware.edge_memory and "
                          f"hardware.{gpu.name}.memory_gb / decode_tok_per_s_batch1 (configs/hardware.yaml)")
    return hardware.edge_memory


def mode_gpu(hardware: HardwareCatalogue, gpu: Gpu, batch: int) -> Gpu:
    """``gpu`` running at ``batch``: the derived decode rate and energy (module docstring).

    Raises:
        ConfigError: the catalogue lacks the figures, or the mode does not fit the device's memory.
    """
    memory = _checked(hardware, gpu)
    if not _fits(memory, gpu, batch):
        raise ConfigError(f"{gpu.name} at batch {batch}: needs {memory_needed_gb(memory, batch):.2f} GB "
                          f"(weights + reserve + KV cache), the device has {gpu.memory_gb:g} GB")
    weights_b, kv_b = memory.weights_gb * GB, memory.mean_kv_tokens * memory.kv_bytes_per_token
    decode = batch * float(gpu.decode_tok_per_s_batch1 or 0.0) * (weights_b + kv_b) / (weights_b + batch * kv_b)
    return replace(gpu, name=f"{gpu.name}{SEP}{batch}", batch=batch, decode_tok_per_s=decode,
                   decode_j_per_token=(gpu.busy_w - gpu.idle_w) / decode)


def gpu_for(hardware: HardwareCatalogue, pool_gpu: str) -> Gpu:
    """The catalogue entry of a pool's GPU name, a batch mode's derived one for ``gpu@b<batch>``."""
    base = hardware.get(device_name(pool_gpu))
    return mode_gpu(hardware, base, mode_batch(pool_gpu)) if SEP in pool_gpu else base


def _modes(hardware: HardwareCatalogue, gpu: Gpu, modes: tuple[int, ...]) -> list[int]:
    """The batch modes of ``gpu`` that fit its memory (its catalogue batch among them)."""
    memory = _checked(hardware, gpu)
    fit = [b for b in sorted(modes) if _fits(memory, gpu, b)]
    if gpu.batch not in fit:
        raise ConfigError(f"sizing.edge_batch_modes: {list(modes)} must include {gpu.name}'s catalogue batch "
                          f"{gpu.batch} (the fixed mode the baselines run), and it must fit the device; "
                          f"fitting: {fit}")
    return fit


def pools(scenario: Scenario, hardware: HardwareCatalogue) -> tuple[list[int], list[str], list[int], list[bool]]:
    """Each pool's site, GPU name, device group and whether it is its device's fixed mode, site by site."""
    site_of: list[int] = []
    gpu_of: list[str] = []
    device_of: list[int] = []
    fixed: list[bool] = []
    modes = scenario.sizing.edge_batch_modes
    for s, site in enumerate(scenario.sites):
        for name in site.pools:
            gpu, device = hardware.get(name), len(set(device_of))
            batches = _modes(hardware, gpu, modes) if modes and gpu.kind == "edge" else [0]
            for b in batches:
                site_of.append(s)
                gpu_of.append(f"{name}{SEP}{b}" if b else name)
                device_of.append(device)
                fixed.append(b in (0, gpu.batch))
    return site_of, gpu_of, device_of, fixed


def shared_device_groups(plant: PlantParams) -> list[np.ndarray]:
    """The pools of each device group with more than one mode (sharing the devices)."""
    groups = [np.flatnonzero(plant.pool_device == g) for g in np.unique(plant.pool_device)]
    return [g for g in groups if len(g) > 1]


def fixed_mode_gpus(plant: PlantParams) -> np.ndarray:
    """Installed GPUs as a fixed-batch operator runs them ``(P,)``: each device counted once, in its
    fixed mode (0 on the other modes' sub-pools); ``gpus_max`` when there are no batch modes."""
    return np.where(plant.fixed_mode, plant.gpus_max, 0.0)


def within_shared_devices(plant: PlantParams, gpus: np.ndarray) -> np.ndarray:
    """GPUs per pool with each device group's modes within its devices: a group over its count is
    scaled down to it (whole GPUs by largest remainder when the plant rounds up)."""
    out = np.asarray(gpus, dtype=float).copy()
    for group in shared_device_groups(plant):
        cap, total = float(plant.gpus_max[group[0]]), float(out[group].sum())
        if total <= cap + 1e-9:
            continue
        scaled = out[group] * cap / total
        if plant.round_gpus_up:
            whole = np.floor(scaled + 1e-9)
            order = np.argsort(-(scaled - whole), kind="stable")[: int(round(cap - whole.sum()))]
            whole[order] += 1.0
            scaled = whole
        out[group] = scaled
    return out


def mode_table(hardware: HardwareCatalogue, modes: tuple[int, ...], prompt_tokens: float,
               output_tokens: float) -> list[dict[str, float | str | bool]]:
    """Per edge device and batch mode: memory, fit, decode rate, energy per request at full use
    (idle + dynamic, J) and TTFT (prefill alone, s) for one request shape."""
    rows: list[dict[str, float | str | bool]] = []
    for gpu in (g for g in hardware.gpus if g.kind == "edge"):
        memory = _checked(hardware, gpu)
        for b in sorted(modes):
            fits = _fits(memory, gpu, b)
            row: dict[str, float | str | bool] = {"device": gpu.name, "batch": b,
                                                  "memory_gb": memory_needed_gb(memory, b), "fits": fits}
            if fits:
                m = mode_gpu(hardware, gpu, b)
                gpu_s = prompt_tokens / m.prefill_tok_per_s + output_tokens / m.decode_tok_per_s
                row |= {"decode_tok_per_s": m.decode_tok_per_s,
                        "j_per_request": m.idle_w * gpu_s + prompt_tokens * m.prefill_j_per_token
                        + output_tokens * m.decode_j_per_token,
                        "ttft_s": b * prompt_tokens / m.prefill_tok_per_s, "fixed": b == gpu.batch}
            rows.append(row)
    return rows
