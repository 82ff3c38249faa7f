"""Checks of the command line's own values, before any work starts: counts, hours, output folders.

Each check raises ``argparse.ArgumentTypeError`` (as an argparse ``type=``) or ``ValueError`` with
the flag, the value and what is accepted, so that ``greenllm`` exits 2 with one line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

__all__ = ["SECONDARY", "WINDOWS", "count_at_least", "hour_utc", "name_list", "number_list", "out_folder",
           "utc_hour_arg", "week_in_year", "window_arg", "window_list"]

# Evaluation windows (DESIGN §5): name → (start, hours). Primary: the 3 recorded test days; July:
# temperature comparison; secondary: Nov–Dec weeks on resampled load (in-sample for the load model).
WINDOWS = {"primary": ("2018-12-14T00:00Z", 72), "july": ("2018-07-16T00:00Z", 168),
           "nov-19": ("2018-11-19T00:00Z", 168), "nov-26": ("2018-11-26T00:00Z", 168),
           "dec-17": ("2018-12-17T00:00Z", 168)}
SECONDARY = ("nov-19", "nov-26", "dec-17")


def count_at_least(low: int):  # noqa: ANN201 - an argparse type
    """An argparse ``type=`` for whole numbers ≥ ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (accepted: ≥ {low})") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is out of range (accepted: a whole number ≥ {low})")
        return value
    parse.__name__ = f"whole number ≥ {low}"
    return parse


def hour_utc(text: str, flag: str) -> pd.Timestamp:
    """``text`` as the start of an hour in UTC; a time with a zone, on the hour.

    Raises:
        ValueError: not a time, no zone, or not on the hour — naming ``flag``.
    """
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        ts = pd.NaT
    if pd.isna(ts):
        raise ValueError(f"{flag} {text!r}: not a time; give an ISO time with a zone, e.g. 2018-12-14T08:00Z")
    if ts.tzinfo is None:
        raise ValueError(f"{flag} {text!r}: no time zone; give UTC with a zone, e.g. 2018-12-14T08:00Z")
    ts = ts.tz_convert("UTC")
    if ts != ts.floor("1h"):
        raise ValueError(f"{flag} {text!r}: decisions are hourly; give the start of an hour "
                         f"(e.g. {ts.floor('1h'):%Y-%m-%dT%H:00Z})")
    return ts


def utc_hour_arg(flag: str):  # noqa: ANN201 - an argparse type
    """An argparse ``type=`` for :func:`hour_utc` that keeps the text (checked) for the command."""
    def parse(text: str) -> str:
        try:
            return hour_utc(text, flag).isoformat()
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{flag} ")) from None
    parse.__name__ = "hour in UTC"
    return parse


def out_folder(path: Path, flag: str) -> Path:
    """Make sure ``path`` is (or can become) a folder before a long run writes into it.

    Raises:
        ValueError: ``path`` or one of its parents is an existing file, or it cannot be created.
    """
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            what = "is" if p == path else f"lies under {p}, which is"
            raise ValueError(f"{flag} {path}: {what} an existing file, not a folder; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot create the folder ({exc.strerror})") from None
    return path


def week_in_year(text: str, year: int, flag: str = "--week") -> pd.Timestamp:
    """The first day (UTC) of a plotted week that lies inside the data's calendar ``year``.

    Raises:
        ValueError: not a date, or the week [day, day + 7 d) leaves the year.
    """
    try:
        day = pd.Timestamp(text)
    except (ValueError, TypeError):
        day = pd.NaT
    if pd.isna(day):
        raise ValueError(f"{flag} {text!r}: not a date; give a day such as {year}-12-10")
    day = day.tz_localize("UTC") if day.tzinfo is None else day.tz_convert("UTC")
    first = pd.Timestamp(f"{year}-01-01", tz="UTC")
    last = pd.Timestamp(f"{year}-12-25", tz="UTC")
    if not first <= day <= last:
        raise ValueError(f"{flag} {text}: the week must lie inside the data ({year}): "
                         f"give a first day from {first:%Y-%m-%d} to {last:%Y-%m-%d}")
    return day


def window_arg(text: str) -> str:
    """An argparse ``type=`` for ``--window``: a name of ``WINDOWS`` or the start of an hour (UTC)."""
    if text in WINDOWS:
        return text
    try:
        return hour_utc(text, "--window").isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: not a window name ({', '.join(WINDOWS)}) nor the start of an hour "
            f"({str(exc).split(': ', 1)[-1]})") from None


def number_list(low: float, high: float):  # noqa: ANN201 - an argparse type
    """An argparse ``type=`` for a comma-separated list of numbers in ``[low, high]``, e.g. ``0,0.5,3``."""
    def parse(text: str) -> tuple[float, ...]:
        values = []
        for part in text.split(","):
            try:
                value = float(part)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{part.strip()!r} in {text!r} is not a number (accepted: numbers in [{low:g}, {high:g}], "
                    "comma-separated)") from None
            if not low <= value <= high:
                raise argparse.ArgumentTypeError(f"{value:g} is out of range [{low:g}, {high:g}]")
            values.append(value)
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"{text!r}: a value repeats")
        return tuple(values)
    parse.__name__ = f"list of numbers in [{low:g}, {high:g}]"
    return parse


def _distinct(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")]
    if "" in parts:
        raise argparse.ArgumentTypeError(f"{text!r}: an empty item; give names separated by commas")
    if len(set(parts)) != len(parts):
        raise argparse.ArgumentTypeError(f"{text!r}: an item repeats")
    return parts


def name_list(valid: tuple[str, ...]):  # noqa: ANN201 - an argparse type
    """An argparse ``type=`` for a comma-separated list of distinct names out of ``valid``."""
    def parse(text: str) -> tuple[str, ...]:
        parts = _distinct(text)
        for part in parts:
            if part not in valid:
                raise argparse.ArgumentTypeError(f"{part!r} in {text!r}: not one of {', '.join(valid)}")
        return tuple(parts)
    parse.__name__ = "list of names"
    return parse


def window_list(text: str) -> tuple[str, ...]:
    """An argparse ``type=`` for comma-separated windows, each as :func:`window_arg` accepts it."""
    return tuple(dict.fromkeys(window_arg(part) for part in _distinct(text)))
