#!/bin/sh
# First start of the PostgreSQL container only (docker-entrypoint-initdb.d): one role and
# one database per service, so no service can read another's data, and Temporal's two.
# Passwords come from the mounted secrets, never from this file. The services create and
# upgrade their own tables (Alembic migrations at start-up).
set -e  # sourced by the postgres entry point (no exec bit) or run: stop at the first error

create() { # role database password-file
  password=$(cat "$3")
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set role="$1" --set db="$2" --set password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
}

create incoming_agency incoming_agency /run/secrets/incoming_db_password
create outgoing_agency outgoing_agency /run/secrets/outgoing_db_password
create audit audit /run/secrets/audit_db_password
create temporal temporal /run/secrets/temporal_db_password
# Temporal's visibility store: a second database of the same role.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -c 'CREATE DATABASE temporal_visibility OWNER temporal' \
  -c 'REVOKE ALL ON DATABASE temporal_visibility FROM PUBLIC'
