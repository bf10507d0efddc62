"""Region commands of the command line: ``--region FILE`` for run, synth and serve, and
``export-aggregates`` and ``pool`` (registered by :func:`add_commands`).

A region file gives the locations a flag would (flags win) and binds the data directory to the
region (``DATA/region.json``), so every later build of it — sensor and schedule included — is
that region's.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.settings import Settings


def region_settings(args) -> tuple[Settings, object]:
    """Settings from the flags, then the region file, then the environment; binds DATA to the region.
    Raises RegionError with one line."""
    from pipelines import regions

    r = regions.resolve(getattr(args, "region", None), args.landing, args.data, args.key_file)
    settings = Settings.resolve(r.landing, r.data, r.key_file, getattr(args, "parameters", None))
    if r.region is not None:
        regions.bind(settings.data, r.region)
    return settings, r.region


def synth_region(args) -> argparse.Namespace:
    """``synth --region FILE``: out from the region's landing, its municipalities (and a few
    outside: people move), a seed of its own (different persons in each region) and its key."""
    from pipelines import regions
    from pseudonymize import generate_secret_file

    region = regions.load_region(args.region)
    out = Path(args.out) if args.out else region.landing
    if out is None:
        raise regions.RegionError(f"region file {args.region} has no 'landing' and no --out was given: "
                                  "say where to write the landing zone")
    if region.key_file is not None and not region.key_file.exists():
        generate_secret_file(region.key_file)
    seed = args.seed if args.seed is not None else regions.region_seed(region.name)
    return argparse.Namespace(out=out, persons=args.persons, seed=seed, municipalities=regions.synth_weights(region))


def cmd_export(args) -> int:
    from pipelines.aggregates import AggregateError, export
    from tyokyky.errors import fail as _fail

    data = Settings.resolve(data=args.data).data
    try:
        if args.public:
            from reports.public_aggregates import export_public

            result = export_public(data, Path(args.out))
        else:
            result = export(data, Path(args.out))
    except AggregateError as e:
        return _fail(str(e), 1)
    kind = "public (disclosure rules applied)" if result.public else "for the national evaluator (exact)"
    print(f"wrote the aggregate package of region {result.region}, {kind}: {result.files} views in {result.out}")
    if result.release:
        print(f"release record: {result.release}")
    return 0


def cmd_pool(args) -> int:
    from pipelines.aggregates import AggregateError
    from pipelines.pooling import pool
    from reports.national import build_national_report
    from tyokyky.errors import fail as _fail

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _fail(f"{out} is a file, not a folder: give a folder to --out")
    try:
        result = pool([Path(p) for p in args.packages], out)
    except AggregateError as e:
        return _fail(str(e), 1)
    report = build_national_report(result.path, out / "reports")
    print(f"national knowledge base: {result.path} (schema nat, regions {', '.join(result.regions)})")
    print(f"report: {report.path}")
    return 0


def add_commands(sub) -> None:
    e = sub.add_parser("export-aggregates", help="write the region's aggregate package for the national evaluation")
    e.add_argument("--data", help="data directory of the region (env TYOKYKY_DATA; default ./data)")
    e.add_argument("--out", required=True, help="package folder to create")
    e.add_argument("--public", action="store_true",
                   help="only what passes the disclosure rules (recorded as a release)")
    e.set_defaults(func=cmd_export)

    p = sub.add_parser("pool", help="pool regional packages into DIR/national.duckdb and a national report")
    p.add_argument("--out", required=True, help="folder for national.duckdb and reports/")
    p.add_argument("packages", nargs="+", metavar="PACKAGE", help="package folders, one per region")
    p.set_defaults(func=cmd_pool)
