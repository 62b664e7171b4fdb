#!/usr/bin/env bash
# Creates what compose.yaml needs and the repository must never hold, once per host:
#   secrets/*_password            random database passwords (PostgreSQL superuser, one role per service, Temporal)
#   secrets/*_database_url        the services' SQLAlchemy URLs built from them
#   secrets/api_keys.json         MEDTRANSFER_API_KEYS: an integrator, a clerk and an operator key (edit it)
#   secrets/keys/<region>.pem     one Ed25519 signing key per region of data/regions.json
#   .env                          KAFKA_CLUSTER_ID and TEMPORAL_DB_PASSWORD for compose interpolation
# Existing files are kept: running it again never replaces a password or a key.
#
# Permissions: secrets/ is 0700, so no other user of this host can read inside it. The
# files themselves are 0644 because compose mounts them into the containers with the host's
# permissions and the services run as their own users (10001, postgres). The signing keys'
# directory is mounted whole, so it is 0755 and its keys 0644 for the same reason.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
REPO_DIR="$(cd ../../.. && pwd)"
PYTHON="${PYTHON:-$REPO_DIR/.venv/bin/python}"
[ -x "$PYTHON" ] || { echo "error: $PYTHON not found; run 'make install' in $REPO_DIR or set PYTHON" >&2; exit 1; }

umask 077
mkdir -p secrets/keys
chmod 0700 secrets

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

if [ ! -e secrets/api_keys.json ]; then
  new_file secrets/api_keys.json "$("$PYTHON" - "$(random_hex)" "$(random_hex)" "$(random_hex)" <<'PY'
import json
import sys

integrator, clerk, operator = sys.argv[1:4]
print(json.dumps({
    integrator: {"agency": "integrator", "regions": ["*"], "roles": ["integrator"]},
    clerk: {"agency": "clerks", "regions": ["*"], "roles": ["integrator", "clerk"]},
    operator: {"agency": "operations", "regions": ["*"], "roles": ["integrator", "clerk", "operator"]},
}, indent=2))
PY
)"
  echo "        edit secrets/api_keys.json: one entry per agency system or clerk, its regions and roles (README, HTTP API)"
else
  echo "kept    secrets/api_keys.json"
fi

# Region signing keys: created only where missing (contracts.keys keeps existing ones).
mapfile -t regions < <("$PYTHON" -c 'import json, sys; print("\n".join(r["code"] for r in json.load(open(sys.argv[1]))["regions"]))' "$REPO_DIR/data/regions.json")
args=()
for region in "${regions[@]}"; do args+=(--region "$region"); done
(cd "$REPO_DIR" && "$PYTHON" -m contracts.keys generate --dir "$OLDPWD/secrets/keys" "${args[@]}") >/dev/null
chmod 0644 secrets/keys/*.pem
chmod 0755 secrets/keys  # a directory mount: the services' user must list it
echo "keys    secrets/keys: ${#regions[@]} region signing keys"

if [ ! -e .env ]; then
  cluster_id=$("$PYTHON" -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
  printf 'KAFKA_CLUSTER_ID=%s\nTEMPORAL_DB_PASSWORD=%s\n' "$cluster_id" "$(cat secrets/temporal_db_password)" >.env
  echo "created .env"
else
  echo "kept    .env"
fi
