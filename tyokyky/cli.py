"""The ``tyokyky`` command line.

Every error a user can cause ends in one line on stderr (what, where, what to do) and a
non-zero exit, never a traceback: misused flags included (the parser's usage text is not
printed), and whatever else goes wrong is caught at the top as one line. Every line is
screened for identity codes before it is printed.
"""
from __future__ import annotations

import argparse
import csv
import sys
import warnings
from pathlib import Path

from pipelines.settings import Settings
from pseudonymize.redact import redact
from tyokyky.errors import fail as _fail


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what, and where to read more)."""

    def error(self, message):
        _fail(f"{self.prog}: {message} (see '{self.prog} --help')")
        sys.exit(2)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number (1 or more)")
    return value


def cmd_keygen(args) -> int:
    from pseudonymize import KeyFileError, generate_secret_file

    try:
        path = generate_secret_file(args.out)
    except KeyFileError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot write key file {args.out}: {e.strerror}; give --out a path in a writable folder")
    print(f"wrote a new key to {path} (mode 0600); keep it out of the repository and back it up")
    return 0


def cmd_synth(args) -> int:
    from pipelines.regions import RegionError
    from pipelines.synth import write_landing_zone
    from tyokyky.regional import synth_region

    if getattr(args, "region", None):
        try:
            args = synth_region(args)
        except RegionError as e:
            return _fail(str(e))
    elif not args.out:
        return _fail("synth: say where to write the landing zone: --out DIR (or --region FILE with 'landing')")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _fail(f"{out} is a file, not a folder: give a new folder to --out")
    if out.exists() and any(out.iterdir()):
        return _fail(f"{out} exists and is not empty: give a new folder to --out")
    try:
        stats = write_landing_zone(out, persons=args.persons, seed=1 if args.seed is None else args.seed,
                                   municipalities=getattr(args, "municipalities", None))
    except OSError as e:
        from tyokyky.run import os_error_line

        return _fail(os_error_line(e, f"writing the synthetic landing zone to {out}"))
    print(f"wrote a synthetic landing zone of {args.persons} persons to {out}: "
          f"{stats['files']} deliveries, {stats['rows']} rows")
    return 0


def _region_settings(args):
    """(settings from --landing/--data/--key-file and --region, None) or (None, exit code after one line)."""
    from pipelines.regions import RegionError
    from tyokyky.regional import region_settings

    try:
        return region_settings(args)[0], None
    except RegionError as e:
        return None, _fail(str(e))


def cmd_run(args) -> int:
    from tyokyky.run import BuildStopped, run

    settings, failed = _region_settings(args)
    if settings is None:
        return failed
    try:
        summary = run(settings)
    except BuildStopped as e:
        return _fail(str(e), 1)
    for w in summary.warnings:
        print(redact(f"warning: {w}"))
    for r in summary.rejected:
        print(redact(f"rejected delivery: {r}"))
    print(f"knowledge base: {summary.kb_path}")
    if summary.report:
        print(f"report: {summary.report}")
    return 0


def cmd_demo(args) -> int:
    data = Path(args.data or "data")
    landing = data / "landing"
    key_file = data / "keys" / "demo.key"
    if not landing.exists():
        args_synth = argparse.Namespace(out=landing, persons=args.persons, seed=args.seed)
        if (code := cmd_synth(args_synth)):
            return code
    if not key_file.exists():
        if (code := cmd_keygen(argparse.Namespace(out=key_file))):
            return code
    return cmd_run(argparse.Namespace(landing=landing, data=data, key_file=key_file))


def cmd_query(args) -> int:
    import duckdb

    from pipelines.kb_access import connect

    settings = Settings.resolve(data=args.data)
    path = Path(args.database) if args.database else settings.kb_path
    if not path.exists():
        return _fail(f"no knowledge base at {path}: build one with 'tyokyky run' (or 'make demo')")
    try:
        con = connect(path)
    except (duckdb.Error, OSError) as e:
        return _fail(f"cannot open {path} read-only: {str(e).splitlines()[0]}; pass a knowledge base built by "
                     "'tyokyky run' with --data DIR or --database FILE")
    try:
        result = con.sql(args.sql)
    except duckdb.Error as e:
        hint = ("; tyokyky query only reads the knowledge base: no files, no settings, no extensions"
                if isinstance(e, (duckdb.PermissionException, duckdb.InvalidInputException)) else "")
        return _fail(f"query failed: {str(e).splitlines()[0]}{hint}")
    if result is None:
        return 0
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        for row in result.fetchall():
            writer.writerow(row)
    else:
        result.show(max_rows=args.max_rows, max_width=200)
    return 0


def cmd_serve(args) -> int:
    from pipelines.postgres import PostgresError
    from tyokyky.serve import ServeError, serve, stop

    settings, failed = _region_settings(args)
    if settings is None:
        return failed
    try:
        return stop(settings) if args.stop else serve(settings, args.port)
    except (ServeError, PostgresError) as e:
        return _fail(str(e), 1)


def cmd_bench(args) -> int:
    """The benchmark is a script of its own that drives this command line's build; it runs in
    its own process, so the command line never imports it."""
    import os
    import subprocess

    argv = [sys.executable, "-m", "benchmarks.bench", "--persons", *map(str, args.persons), "--work", args.work]
    argv += ["--keep"] * args.keep + ["--pm4py"] * args.pm4py
    return subprocess.call(argv, env={**os.environ, "PYTHONWARNINGS": "ignore"})  # Dagster's beta notices


def cmd_partner_key(args) -> int:
    from pseudonymize import KeyFileError, load_key_file
    from pseudonymize.sealed import PartnerKey
    from schemas import load_contracts

    if args.partner not in load_contracts():
        return _fail(f"unknown partner {args.partner!r}: one of {', '.join(load_contracts())}")
    try:
        key = load_key_file(Settings.resolve(key_file=args.key_file).key_file)
        path = PartnerKey.issue(key, args.partner).write(args.out)
    except KeyFileError as e:
        return _fail(str(e))
    print(f"wrote {args.partner}'s partner key to {path} (mode 0600): a public key that seals identity codes "
          "for this deployment; it decrypts nothing, and the deployment key stays here")
    return 0


def cmd_pseudonymise_export(args) -> int:
    from pipelines.partner_export import ExportError, pseudonymise_export
    from pseudonymize import KeyFileError
    from pseudonymize.sealed import PartnerKey
    from schemas import load_contracts

    contract = load_contracts().get(args.partner)
    if contract is None:
        return _fail(f"unknown partner {args.partner!r}: one of {', '.join(load_contracts())}")
    try:
        partner_key = PartnerKey.load(args.partner_key, args.partner)
        result = pseudonymise_export(contract, partner_key, Path(args.in_dir), Path(args.out))
    except (KeyFileError, ExportError) as e:
        return _fail(str(e))
    for problem in result.problems:
        print(redact(f"not pseudonymised: {args.partner} {problem}"), file=sys.stderr)
    print(f"pseudonymised {len(result.written)} deliveries of {args.partner} into {args.out}: {result.rows} records, "
          f"{result.invalid_codes} invalid identity codes (counted in the manifests, not written)")
    return 1 if result.problems else 0


def cmd_rekey(args) -> int:
    from pipelines.rekey import RekeyError, rekey

    settings = Settings.resolve(args.landing, args.data, args.key_file, getattr(args, "parameters", None))
    try:
        report = rekey(settings, Path(args.new_key_file), log=print)
    except RekeyError as e:
        return _fail(str(e), 1)
    print(report.summary())
    return 0


def add_locations(p: argparse.ArgumentParser) -> None:
    """--landing, --data, --key-file: the same settings, and environment variables, for every build command."""
    p.add_argument("--landing", help="landing zone (env TYOKYKY_LANDING; default DATA/landing)")
    p.add_argument("--data", help="data directory (env TYOKYKY_DATA; default ./data)")
    p.add_argument("--key-file", help="pseudonymisation key (env TYOKYKY_KEY_FILE)")
    p.add_argument("--region", help="region file (YAML): name, title, controller, municipalities, and locations "
                                    "the flags override")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="tyokyky", description="Pseudonymised analytics for work-ability programmes.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    k = sub.add_parser("keygen", help="write a new random pseudonymisation key (mode 0600)")
    k.add_argument("--out", required=True, help="key file to create (never overwritten)")
    k.set_defaults(func=cmd_keygen)

    s = sub.add_parser("synth", help="write a synthetic landing zone that follows the partner spec")
    s.add_argument("--out", help="folder to create (default: the region file's landing)")
    s.add_argument("--persons", type=positive_int, default=2000)
    s.add_argument("--seed", type=int, default=None, help="default 1, or one of the region's own with --region")
    s.add_argument("--region", help="region file: its municipalities, landing zone and key (created if missing)")
    s.set_defaults(func=cmd_synth)

    r = sub.add_parser("run", help="materialise every asset through Dagster")
    add_locations(r)
    r.add_argument("--parameters", help="scenario parameters YAML (env TYOKYKY_PARAMETERS)")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="synth + keygen + run into ./data, for a first look")
    d.add_argument("--data", help="data directory (default ./data)")
    d.add_argument("--persons", type=positive_int, default=2000)
    d.add_argument("--seed", type=int, default=1)
    d.set_defaults(func=cmd_demo)

    q = sub.add_parser("query", help="run SQL on the knowledge base, read-only")
    q.add_argument("sql")
    q.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    q.add_argument("--data", help="data directory (env TYOKYKY_DATA; default ./data)")
    q.add_argument("--database", help="a knowledge-base file (default DATA/tyokyky.duckdb)")
    q.add_argument("--max-rows", type=positive_int, default=100)
    q.set_defaults(func=cmd_query)

    v = sub.add_parser("serve", help="production mode: PostgreSQL, dagster-daemon and the webserver until Ctrl-C")
    add_locations(v)
    v.add_argument("--port", type=int, default=3000, help="webserver port on 127.0.0.1 (default 3000)")
    v.add_argument("--stop", action="store_true", help="stop the serve of this data directory and wait until it is gone")
    v.set_defaults(func=cmd_serve)

    pk = sub.add_parser("partner-key", help="issue one partner the key it seals its exports with (mode 0600)")
    pk.add_argument("--partner", required=True, help="the partner's name, as in schemas/<partner>.yaml")
    pk.add_argument("--out", required=True, help="partner key file to create (never overwritten)")
    pk.add_argument("--key-file", help="the deployment's key (env TYOKYKY_KEY_FILE)")
    pk.set_defaults(func=cmd_partner_key)

    pe = sub.add_parser("pseudonymise-export", help="(partner side) pseudonymise an export before delivery")
    pe.add_argument("--partner", required=True, help="the partner's name, as in schemas/<partner>.yaml")
    pe.add_argument("--partner-key", required=True, help="the key file from 'tyokyky partner-key'")
    pe.add_argument("--in", dest="in_dir", required=True, help="the raw export: <YYYY-MM>/<file> folders")
    pe.add_argument("--out", required=True, help="where <YYYY-MM>/<file> + manifest.json are written")
    pe.set_defaults(func=cmd_pseudonymise_export)

    rk = sub.add_parser("rekey", help="re-pseudonymise staging and the knowledge base under a new key")
    rk.add_argument("--new-key-file", required=True, help="the new key ('tyokyky keygen --out FILE')")
    add_locations(rk)
    rk.add_argument("--parameters", help="scenario parameters YAML for the rebuilt knowledge base")
    rk.set_defaults(func=cmd_rekey)

    from tyokyky.regional import add_commands

    add_commands(sub)

    b = sub.add_parser("bench", help="national-scale benchmark (see BENCHMARKS.md)")
    b.add_argument("--persons", type=positive_int, nargs="+", default=[10_000])
    b.add_argument("--work", default="bench-work", help="scratch folder (deleted per size)")
    b.add_argument("--keep", action="store_true", help="keep the scratch folder")
    b.add_argument("--pm4py", action="store_true", help="also time pm4py's discover_dfg (bench extra)")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    warnings.filterwarnings("ignore", module="dagster")  # beta/preview notices, not for users
    warnings.filterwarnings("ignore", category=UserWarning)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except OSError as e:
        from tyokyky.run import os_error_line

        return _fail(os_error_line(e, f"running '{args.command}'"), 1)
    except Exception as e:  # a bug, not a user error: still one line, and no identity code
        first = str(e).splitlines()[0] if str(e) else "no message"
        return _fail(f"unexpected {type(e).__name__} in '{args.command}': {first[:300]}; please report it", 1)


if __name__ == "__main__":
    sys.exit(main())
