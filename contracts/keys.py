"""Region keys and the public-key registry: ``python -m contracts.keys ...``.

An agency:
  generate --dir KEYS --region CODE [--not-before T] [--not-after T]
      create a new key pair for one of its regions in its own key directory and print
      the public registry entry (JSON) to send to the platform operator; the private key
      never leaves its file.
The platform operator (who alone holds the operator key):
  add --registry FILE --platform-key PEM --entry JSON     enter (or replace) a key
  revoke --registry FILE --platform-key PEM --key-id ID [--at T]
  expire --registry FILE --platform-key PEM --key-id ID --at T   end of a rotation's overlap
Anyone:
  show --registry FILE --platform-public-key B64          verify and list the registry
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.keyring import (
    KeyEntry,
    KeyRegistry,
    KeyRegistryError,
    new_key_id,
    parse_registry,
    with_entry,
    write_private_key,
)
from contracts.local_trust import publish, read_registry
from contracts.signing import load_private_key, public_key_b64


def _time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2027-01-01T00:00:00+08:00")
    return parsed


def _operator_registry(args: argparse.Namespace) -> tuple[KeyRegistry, Ed25519PrivateKey]:
    key = load_private_key(Path(args.platform_key).read_bytes())
    return read_registry(Path(args.registry), public_key_b64(key)), key


def _publish(args: argparse.Namespace, registry: KeyRegistry, key: Ed25519PrivateKey) -> None:
    publish(Path(args.registry), KeyRegistry(registry.entries, datetime.now(UTC)), key)


def _entry(registry: KeyRegistry, key_id: str) -> KeyEntry:
    for entry in registry.entries:
        if entry.key_id == key_id:
            return entry
    raise SystemExit(f"no key {key_id} in the registry")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m contracts.keys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="a new key pair for one region")
    generate.add_argument("--dir", type=Path, required=True, help="this agency's key directory")
    generate.add_argument("--region", required=True, help="6-digit region code")
    generate.add_argument("--not-before", type=_time, default=None)
    generate.add_argument("--not-after", type=_time, default=None)
    for name in ("add", "revoke", "expire"):
        sub = commands.add_parser(name, help=f"{name} a key (platform operator)")
        sub.add_argument("--registry", required=True)
        sub.add_argument("--platform-key", required=True, help="the operator's private key PEM")
        if name == "add":
            sub.add_argument("--entry", required=True, help="the entry JSON, or @file")
        else:
            sub.add_argument("--key-id", required=True)
            sub.add_argument("--at", type=_time, default=None, required=name == "expire")
    show = commands.add_parser("show", help="verify the registry and list its keys")
    show.add_argument("--registry", required=True)
    show.add_argument("--platform-public-key", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "generate" and not re.fullmatch(r"\d{6}", args.region):
        parser.error("region must be a 6-digit code")
    try:
        if args.command == "generate":
            _generate(args)
        elif args.command == "show":
            document = json.loads(Path(args.registry).read_text(encoding="utf-8"))
            registry = parse_registry(document, args.platform_public_key)
            for item in registry.entries:
                print(json.dumps(item.to_json(), ensure_ascii=False))
        else:
            _change_registry(args)
    except (KeyRegistryError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _generate(args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    key_id = new_key_id(args.region, now)
    public = write_private_key(args.dir, args.region, key_id)
    entry = KeyEntry(args.region, key_id, public, args.not_before or now, args.not_after, None)
    print(json.dumps(entry.to_json(), ensure_ascii=False))


def _change_registry(args: argparse.Namespace) -> None:
    """The platform operator's add, revoke or expire: the registry signed again."""
    registry, key = _operator_registry(args)
    if args.command == "add":
        text = args.entry
        if text.startswith("@"):
            text = Path(text[1:]).read_text(encoding="utf-8")
        registry = with_entry(registry, KeyEntry.from_json(json.loads(text)))
    else:
        entry = _entry(registry, args.key_id)
        at = args.at or datetime.now(UTC)
        changed = (
            replace(entry, revoked_at=at)
            if args.command == "revoke"
            else replace(entry, not_after=at)
        )
        registry = with_entry(registry, changed)
    _publish(args, registry, key)
    print(f"registry {args.registry}: {len(registry.entries)} keys, signed")


if __name__ == "__main__":
    sys.exit(main())
