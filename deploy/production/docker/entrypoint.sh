#!/bin/sh
# Entry point of every medtransfer image: secrets arrive as files, settings as environment.
#
# Compose secrets and Kubernetes Secret volumes put one file per secret under /run/secrets
# (SECRETS_DIR moves it). A file named after a setting, /run/secrets/MEDTRANSFER_API_KEYS,
# becomes that environment variable for the service, so database URLs and API keys never
# sit in an image, a compose file or a ConfigMap. A variable already set in the
# environment wins over a file.
set -eu

secrets_dir="${SECRETS_DIR:-/run/secrets}"
if [ -d "$secrets_dir" ]; then
  for file in "$secrets_dir"/MEDTRANSFER_*; do
    [ -f "$file" ] || continue
    name=$(basename "$file")
    case "$name" in
      *[!A-Z0-9_]*) echo "entrypoint: ignoring $file (not a setting name)" >&2; continue ;;
    esac
    if eval "[ -z \"\${$name+set}\" ]"; then
      # $(cat) drops the trailing newline an editor leaves in the file.
      value=$(cat "$file")
      export "$name=$value"
    fi
  done
fi

exec "$@"
