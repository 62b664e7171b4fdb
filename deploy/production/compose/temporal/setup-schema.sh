#!/bin/sh
# Temporal's two PostgreSQL schemas (history and visibility), created on the first run and
# upgraded to this admin-tools version's schema on every later one. The databases and the
# temporal role exist already (postgres-init/10-medtransfer-databases.sh).
set -eu
: "${POSTGRES_SEEDS:?}" "${DB_PORT:?}" "${POSTGRES_USER:?}"
SQL_PASSWORD=$(cat /run/secrets/temporal_db_password)
export SQL_PASSWORD
schema_root=/etc/temporal/schema/postgresql/v12

sql_tool() { # database command...
  db=$1; shift
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" \
    -u "$POSTGRES_USER" --db "$db" "$@"
}

for pair in temporal:temporal temporal_visibility:visibility; do
  db=${pair%%:*}
  dir=${pair#*:}
  # Creates the version table on an empty database; on a database that has it already
  # this fails, which is fine: update-schema below fails loudly on any real problem.
  sql_tool "$db" setup-schema -v 0.0 || echo "setup-schema: $db already initialised"
  sql_tool "$db" update-schema -d "$schema_root/$dir/versioned"
done
echo "temporal schemas are up to date"
