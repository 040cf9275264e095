"""The ``sundial`` command: one entry point for the operator and its offline tools.

Each sub-command lives in its own module and contributes ``add_parser(subparsers)``; this module only wires
them together, so importing it stays cheap (kopf and the Kubernetes client load only for ``sundial run``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sundial import __version__, deploy
from sundial.api import crd
from sundial.cli import preview
from sundial.cli import run as runner


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sundial",
        description="Deploy software at a chosen moment, in your own time zone.",
    )
    parser.add_argument("--version", action="version", version=f"sundial {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    preview.add_parser(subparsers)
    crd.add_parser(subparsers)
    runner.add_parser(subparsers)
    deploy.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())
