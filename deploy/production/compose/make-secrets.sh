#!/usr/bin/env bash
# Creates what compose.yaml needs and the repository must never hold, once per site. The
# site is one deployment (both agency services) serving its own regions only:
#
#   ./make-secrets.sh --deployment NAME --region CODE [--region CODE ...] \
#                     [--platform-public-key B64]
#
#   secrets/*_password            random database passwords (PostgreSQL superuser, one role per service, Temporal)
#   secrets/*_database_url        the services' SQLAlchemy URLs built from them
#   secrets/api_keys.json         MEDTRANSFER_API_KEYS: the hashes ("sha256:<hex>") of an integrator, a
#                                 clerk and an operator key, each for the served regions (edit it)
#   secrets/api_keys_handout.txt  those three keys in clear (0600): hand each to its holder, then delete it
#   secrets/keys/<region>/<key_id>.pem   one Ed25519 signing key per served region (none of another region)
#   secrets/registry-entries/<key_id>.json   each new key's public registry entry, for the platform operator
#   secrets/trust/                where the platform operator's signed registry.json goes (mounted read-only)
#   secrets/temporal_codec_keys.json     MEDTRANSFER_TEMPORAL_CODEC_KEYS: one AES-256 key for Temporal payloads
#   .env                          compose interpolation: KAFKA_CLUSTER_ID, TEMPORAL_DB_PASSWORD,
#                                 MEDTRANSFER_DEPLOYMENT, MEDTRANSFER_SERVED_REGIONS,
#                                 MEDTRANSFER_TEMPORAL_CODEC_KEY_ID, MEDTRANSFER_PLATFORM_PUBLIC_KEY
# Existing files and .env values are kept: running it again never replaces a password or a
# key, and a value that differs from the one in .env is refused (edit .env to change it).
#
# The registry is not made here: the platform operator, who alone holds the operator key,
# enters each region key (docs/production-trust.md):
#   python -m contracts.keys add --registry registry.json --platform-key platform.pem \
#       --entry @secrets/registry-entries/<key_id>.json
# and hands back registry.json (to put in secrets/trust/) and its public key (for
# --platform-public-key). The services refuse to start without both.
#
# Permissions: secrets/ is 0700, so no other user of this host can read inside it. The
# files themselves are 0644 because compose mounts them into the containers with the host's
# permissions and the services run as their own users (10001, postgres). The signing keys'
# and the registry's directories are mounted whole, so they are 0755 and their files 0644
# for the same reason.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
HERE="$(pwd)"
REPO_DIR="$(cd ../../.. && pwd)"
PYTHON="${PYTHON:-$REPO_DIR/.venv/bin/python}"

die() { echo "error: $*" >&2; exit 1; }
[ -x "$PYTHON" ] || die "$PYTHON not found; run 'make install' in $REPO_DIR or set PYTHON"

usage="usage: $0 --deployment NAME --region CODE [--region CODE ...] [--platform-public-key B64]"
deployment=""
platform_public_key=""
regions=()
while [ $# -gt 0 ]; do
  case "$1" in
    --deployment) [ $# -ge 2 ] || die "$usage"; deployment="$2"; shift 2 ;;
    --region) [ $# -ge 2 ] || die "$usage"; regions+=("$2"); shift 2 ;;
    --platform-public-key) [ $# -ge 2 ] || die "$usage"; platform_public_key="$2"; shift 2 ;;
    -h | --help) echo "$usage"; exit 0 ;;
    *) die "$usage" ;;
  esac
done

umask 077
mkdir -p secrets/keys secrets/registry-entries secrets/trust
chmod 0700 secrets
touch .env

env_value() { # NAME: its value in .env (without the single quotes), empty when unset
  sed -n "s/^$1=//p" .env | tail -n 1 | sed "s/^'\(.*\)'\$/\1/"
}

env_set() { # NAME VALUE: add to .env when missing; refuse a different value
  local current
  current="$(env_value "$1")"
  if [ -z "$current" ]; then
    # Single-quoted: compose and a shell both read the value as written (JSON, base64).
    printf "%s='%s'\n" "$1" "$2" >>.env
    echo "set     .env $1"
  elif [ "$current" != "$2" ]; then
    die ".env sets $1=$current, not $2; edit .env to change it"
  else
    echo "kept    .env $1"
  fi
}

# Who this site is: its name and its regions, given once and then read from .env.
if [ -z "$deployment" ]; then
  deployment="$(env_value MEDTRANSFER_DEPLOYMENT)"
fi
[ -n "$deployment" ] || die "name the deployment: $usage"
[[ "$deployment" =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "--deployment: lower-case letters, digits and - only"
served_json="$("$PYTHON" - "$REPO_DIR/data/regions.json" "$(env_value MEDTRANSFER_SERVED_REGIONS)" "${regions[@]}" <<'PY'
import json
import sys

known = {r["code"] for r in json.load(open(sys.argv[1], encoding="utf-8"))["regions"]}
given = sorted(set(sys.argv[3:])) or sorted(json.loads(sys.argv[2] or "[]"))
if not given:
    sys.exit("error: name the regions this site serves (--region CODE, once per region)")
unknown = [code for code in given if code not in known]
if unknown:
    sys.exit(f"error: regions not in data/regions.json: {unknown}")
print(json.dumps(given, separators=(",", ":")))
PY
)"
mapfile -t regions < <("$PYTHON" -c 'import json, sys; print("\n".join(json.loads(sys.argv[1])))' "$served_json")
env_set MEDTRANSFER_DEPLOYMENT "$deployment"
env_set MEDTRANSFER_SERVED_REGIONS "$served_json"

random_hex() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

new_file() { # path content: write only when missing
  if [ -e "$1" ]; then echo "kept    $1"; return; fi
  printf '%s\n' "$2" >"$1"
  chmod 0644 "$1"
  echo "created $1"
}

for name in postgres incoming_db outgoing_db audit_db temporal_db; do
  new_file "secrets/${name}_password" "$(random_hex)"
done
url() { # role database password-file
  printf 'postgresql+psycopg://%s:%s@postgres:5432/%s' "$1" "$(cat "$3")" "$2"
}
new_file secrets/incoming_database_url "$(url incoming_agency incoming_agency secrets/incoming_db_password)"
new_file secrets/outgoing_database_url "$(url outgoing_agency outgoing_agency secrets/outgoing_db_password)"
new_file secrets/audit_database_url "$(url audit audit secrets/audit_db_password)"

# API keys: the configuration holds their hashes only (services/common/auth.py), each for
# the served regions; the keys themselves are written once, for handing out.
if [ ! -e secrets/api_keys.json ]; then
  (cd "$REPO_DIR" && "$PYTHON" - "$deployment" "$served_json" "$HERE/secrets" <<'PY'
import json
import os
import sys
from pathlib import Path

from services.common.auth import new_key_entry

deployment, regions, secrets_dir = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
holders = {
    "integrator": ["integrator"],
    "clerks": ["integrator", "clerk"],
    "operations": ["integrator", "clerk", "operator"],
}
entries: dict[str, object] = {}
handout = []
for holder, roles in holders.items():
    key, entry = new_key_entry(f"{deployment}-{holder}", regions, roles)
    entries.update(entry)
    handout.append(f"{deployment}-{holder} ({', '.join(roles)}): {key}")
fd = os.open(secrets_dir / "api_keys_handout.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as handle:
    handle.write("\n".join(handout) + "\n")
(secrets_dir / "api_keys.json").write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
PY
  )
  chmod 0644 secrets/api_keys.json
  echo "created secrets/api_keys.json (hashes) and secrets/api_keys_handout.txt (the keys: hand out, then delete)"
  echo "        edit secrets/api_keys.json: one entry per agency system or clerk, its regions and roles (README, HTTP API)"
else
  echo "kept    secrets/api_keys.json"
fi

# Region signing keys: one per served region, made only where the region has none. Each
# new key's public entry is kept for the platform operator to enter into the registry.
for region in "${regions[@]}"; do
  if compgen -G "secrets/keys/$region/*.pem" >/dev/null; then
    echo "kept    secrets/keys/$region"
    continue
  fi
  entry="$(cd "$REPO_DIR" && "$PYTHON" -m contracts.keys generate --dir "$HERE/secrets/keys" --region "$region")"
  key_id="$("$PYTHON" -c 'import json, sys; print(json.loads(sys.argv[1])["key_id"])' "$entry")"
  printf '%s\n' "$entry" >"secrets/registry-entries/$key_id.json"
  chmod 0644 "secrets/registry-entries/$key_id.json"
  echo "created secrets/keys/$region/$key_id.pem; its registry entry: secrets/registry-entries/$key_id.json"
done
for other in secrets/keys/*/; do
  [ -d "$other" ] || continue
  region="$(basename "$other")"
  [[ " ${regions[*]} " == *" $region "* ]] || die "secrets/keys/$region: a key of a region this site does not serve (the services refuse to start)"
done
find secrets/keys -type d -exec chmod 0755 {} +  # directory mounts: the services' user must list them
find secrets/keys -type f -name '*.pem' -exec chmod 0644 {} +
chmod 0755 secrets/trust

# Temporal payload encryption: one AES-256 key; new payloads use the key id in .env.
codec_key_id="$(env_value MEDTRANSFER_TEMPORAL_CODEC_KEY_ID)"
codec_key_id="${codec_key_id:-$deployment-1}"
if [ ! -e secrets/temporal_codec_keys.json ]; then
  new_file secrets/temporal_codec_keys.json "$("$PYTHON" -c 'import base64, json, os, sys; print(json.dumps({sys.argv[1]: base64.b64encode(os.urandom(32)).decode()}))' "$codec_key_id")"
else
  echo "kept    secrets/temporal_codec_keys.json"
fi
"$PYTHON" -c 'import json, sys; sys.exit(0 if sys.argv[2] in json.load(open(sys.argv[1])) else f"error: {sys.argv[1]} has no key {sys.argv[2]}")' \
  secrets/temporal_codec_keys.json "$codec_key_id"
env_set MEDTRANSFER_TEMPORAL_CODEC_KEY_ID "$codec_key_id"

if [ -z "$(env_value KAFKA_CLUSTER_ID)" ]; then
  env_set KAFKA_CLUSTER_ID "$("$PYTHON" -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
fi
env_set TEMPORAL_DB_PASSWORD "$(cat secrets/temporal_db_password)"

# The platform operator's public key: the root of trust of the registry, from the operator.
if [ -n "$platform_public_key" ]; then
  "$PYTHON" - "$platform_public_key" <<'PY' || exit 1
import base64
import binascii
import sys

try:
    ok = len(base64.b64decode(sys.argv[1], validate=True)) == 32
except (binascii.Error, ValueError):
    ok = False
if not ok:
    sys.exit("error: --platform-public-key is not a base64 Ed25519 public key (32 bytes)")
PY
  env_set MEDTRANSFER_PLATFORM_PUBLIC_KEY "$platform_public_key"
elif [ -z "$(env_value MEDTRANSFER_PLATFORM_PUBLIC_KEY)" ]; then
  echo "todo    the platform operator's public key: run again with --platform-public-key B64"
fi
if [ -e secrets/trust/registry.json ]; then
  chmod 0644 secrets/trust/registry.json  # public; read by the services' user
  echo "kept    secrets/trust/registry.json"
else
  echo "todo    the platform operator's signed registry: put it at secrets/trust/registry.json"
  echo "        after it entered secrets/registry-entries/*.json (python -m contracts.keys add ...)"
fi
