"""The ``greenllm`` command: ``greenllm SUBCOMMAND ... [--set key=value ...]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from forecast.scenario import ConfigError
from forecast.schema import DataError
from pipelines._config import load_config

__all__ = ["main"]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="scenario YAML, e.g. configs/default.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set data.max_gap_h=3 "
                        "or --set sites.DE.water_budget_l_per_day=5e4")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="greenllm",
        description="Forecast-driven, carbon-, water- and temperature-aware allocation of LLM "
                    "inference across data centres.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    data = sub.add_parser("data", help="inspect the scenario's data (sources, spans, gaps, plots)")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    summary = data_sub.add_parser("summary", help="print a table per site and region and write week plots")
    _add_common(summary)
    summary.add_argument("--plots", type=Path, default=Path("out/summary"),
                         help="folder for the PNG plots (default: out/summary)")
    summary.add_argument("--week", default="2018-12-10",
                         help="first day (UTC) of the plotted week (default: 2018-12-10, recorded load)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        if args.command == "data" and args.data_command == "summary":
            from pipelines.data import run_summary

            run_summary(cfg, args.plots, args.week)
    except (ConfigError, DataError, FileNotFoundError) as exc:
        print(f"greenllm: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
