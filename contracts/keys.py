"""Create region signing keys: ``python -m contracts.keys generate --dir DIR --region CODE``.

Existing keys are kept. Prints ``<region> <base64 public key>`` per region; the private key
never leaves its file.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from contracts.signing import write_region_key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.keys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="create missing region keys")
    generate.add_argument("--dir", type=Path, required=True, help="key directory")
    generate.add_argument(
        "--region", action="append", required=True, help="6-digit region code (repeatable)"
    )
    args = parser.parse_args(argv)

    bad = [region for region in args.region if not re.fullmatch(r"\d{6}", region)]
    if bad:
        parser.error(f"region must be a 6-digit code: {', '.join(bad)}")
    for region in args.region:
        print(f"{region} {write_region_key(args.dir, region)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
