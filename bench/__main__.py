"""Run a benchmark by name and append its numbers, with the machine's description, to bench/RESULTS.md.

    python -m bench --list
    python -m bench NAME [--no-record] [benchmark options...]

A benchmark is a module bench/<name>.py with `run(argv) -> list[tuple[str, str]]` (metric, value);
it prints as it goes and returns the rows to record.
"""

import argparse
import datetime as dt
import importlib
import os
import pkgutil
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine_description():
    import django
    from django.db import connection

    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    except OSError:
        cpu = platform.processor() or "?"
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory_gib = 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()" if connection.vendor == "postgresql" else "SELECT sqlite_version()")
        database = f"{connection.vendor} {cursor.fetchone()[0].split(' on ')[0]}"
    return (f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB, Python {platform.python_version()}, "
            f"Django {django.get_version()}, {database}")


def available():
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))


def record(name, rows, argv):
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"\n### {name} — {stamp}\n", f"Machine: {machine_description()}  \n",
             f"Command: `python -m bench {name} {' '.join(argv)}`\n\n", "| metric | value |\n|---|---|\n"]
    lines += [f"| {metric} | {value} |\n" for metric, value in rows]
    with RESULTS.open("a") as out:
        out.writelines(lines)


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vpnmonitor.settings")
    os.environ.setdefault("DEBUG", "true")
    import django

    django.setup()
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("name", nargs="?")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args, rest = parser.parse_known_args()
    if args.list or not args.name:
        print("\n".join(n for n in available() if n not in {"datasets"}))
        return 0
    if args.name not in available():
        parser.error(f"unknown benchmark {args.name!r}; try --list")
    rows = importlib.import_module(f"bench.{args.name}").run(rest)
    for metric, value in rows:
        print(f"{metric}: {value}")
    if not args.no_record:
        record(args.name, rows, rest)
        print(f"recorded in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
