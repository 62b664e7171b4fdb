#!/usr/bin/env bash
# Installs the local engines into the cache, reusing what is already there.
#   install.sh kafka | temporal | test-server | browser | postgres | kustomize | all
# A component is complete only when its stamp file exists; a partial install (no stamp)
# is removed and done again, so an interrupted download never leaves a corrupt cache.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

install_kafka() {
  if [ -f "$KAFKA_HOME/.complete" ]; then log "kafka $KAFKA_VERSION: cached in $KAFKA_HOME"; return; fi
  need java "install a Java 17+ runtime, e.g. apt-get install openjdk-17-jre-headless"
  need mvn "install Maven, e.g. apt-get install maven"
  rm -rf "$KAFKA_HOME"; mkdir -p "$KAFKA_HOME/libs"
  log "kafka $KAFKA_VERSION: resolving the broker jars from Maven Central (first run only)..."
  mvn -B -ntp -f "$REPO_DIR/deploy/local/maven/kafka/pom.xml" \
      dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$KAFKA_HOME/libs" >"$KAFKA_HOME/maven.log" 2>&1 \
    || { tail -n 20 "$KAFKA_HOME/maven.log" >&2; die "Maven could not resolve Kafka; see $KAFKA_HOME/maven.log"; }
  ls "$KAFKA_HOME/libs"/kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka_2.13 jar missing after Maven run"
  touch "$KAFKA_HOME/.complete"
  log "kafka $KAFKA_VERSION: $(ls "$KAFKA_HOME/libs" | wc -l) jars in $KAFKA_HOME/libs"
}

# A Go tool built from its module into its own cache directory, stamped when it runs.
# Args: label, version, home, binary, module path, version flag, how long it takes.
go_install_tool() {
  local label=$1 version=$2 home=$3 bin=$4 module=$5 version_flag=$6 duration=$7
  if [ -f "$home/.complete" ] && [ -x "$bin" ]; then
    log "$label $version: cached in $home"; return
  fi
  need go "install Go 1.24+ ($label is built from its Go module)"
  rm -rf "$home"; mkdir -p "$home"
  log "$label $version: building with 'go install' (first run only, $duration)..."
  GOBIN="$home" GOFLAGS="-trimpath" go install "$module@$version" 2>&1 \
    | while IFS= read -r line; do printf '  %s\n' "$line" >&2; done
  [ -x "$bin" ] || die "go install finished but $bin is missing"
  "$bin" "$version_flag" >/dev/null || die "$bin does not run"
  touch "$home/.complete"
  log "$label: $("$bin" "$version_flag")"
}

install_temporal() {
  go_install_tool "temporal CLI" "$TEMPORAL_CLI_VERSION" "$TEMPORAL_HOME" "$TEMPORAL_BIN" \
    github.com/temporalio/cli/cmd/temporal --version "several minutes on 2 cores"
}

install_test_server() {
  if [ -f "$TEST_SERVER_HOME/.complete" ]; then log "temporal test server $TEST_SERVER_VERSION: cached"; return; fi
  need java "install a Java 17+ runtime"
  need mvn "install Maven"
  rm -rf "$TEST_SERVER_HOME"; mkdir -p "$TEST_SERVER_HOME/libs"
  log "temporal test server $TEST_SERVER_VERSION: resolving from Maven Central (first run only)..."
  mvn -B -ntp -f "$REPO_DIR/deploy/local/maven/temporal-test-server/pom.xml" \
      dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$TEST_SERVER_HOME/libs" >"$TEST_SERVER_HOME/maven.log" 2>&1 \
    || { tail -n 20 "$TEST_SERVER_HOME/maven.log" >&2; die "Maven could not resolve the test server"; }
  # The Python SDK runs `<path> <port>`: a wrapper makes the jar set look like its binary.
  cat >"$TEST_SERVER_BIN" <<WRAP
#!/usr/bin/env bash
exec java -Xss1m -Xmx512m -cp "$TEST_SERVER_HOME/libs/*" io.temporal.testserver.TestServer "\$@"
WRAP
  chmod +x "$TEST_SERVER_BIN"
  touch "$TEST_SERVER_HOME/.complete"
  log "temporal test server: $TEST_SERVER_BIN"
}

install_browser() {
  # Debian's Chromium and its driver, for the operations page's browser test.
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
     && fc-list 2>/dev/null | grep -qi wenquanyi; then
    log "chromium: $(chromium --version 2>/dev/null | head -n 1)"; return
  fi
  need apt-get "the browser test needs Debian's chromium and chromium-driver packages"
  log "chromium: installing Debian's chromium and chromium-driver (first run only)..."
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver fonts-wqy-zenhei >/dev/null \
    || die "apt-get could not install chromium and chromium-driver"
  log "chromium: $(chromium --version 2>/dev/null | head -n 1)"
}

install_kustomize() {
  go_install_tool kustomize "$KUSTOMIZE_VERSION" "$KUSTOMIZE_HOME" "$KUSTOMIZE_BIN" \
    sigs.k8s.io/kustomize/kustomize/v5 version "1-3 minutes"
}

install_postgres() {
  # Debian's PostgreSQL server, for the tests on PostgreSQL and deploy/local/postgres.sh.
  local bin; bin="$(postgres_bin_dir)"
  if [ -n "$bin" ]; then log "postgres: $("$bin/postgres" --version) in $bin"; return; fi
  need apt-get "the PostgreSQL tests need Debian's postgresql package"
  log "postgres: installing Debian's postgresql package (first run only)..."
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q 2>&1 | while IFS= read -r line; do printf '  %s\n' "$line" >&2; done \
    || log "postgres: apt-get update failed; trying the package lists already here"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q postgresql 2>&1 \
    | while IFS= read -r line; do printf '  %s\n' "$line" >&2; done \
    || die "apt-get could not install postgresql (see the lines above)"
  bin="$(postgres_bin_dir)"
  [ -n "$bin" ] || die "postgresql installed but no pg_ctl/initdb under /usr/lib/postgresql/*/bin"
  log "postgres: $("$bin/postgres" --version) in $bin"
}

case "${1:-all}" in
  kafka) install_kafka ;;
  temporal) install_temporal ;;
  test-server) install_test_server ;;
  browser) install_browser ;;
  postgres) install_postgres ;;
  kustomize) install_kustomize ;;
  all) install_kafka; install_test_server; install_temporal; install_browser; install_postgres; install_kustomize ;;
  *) die "usage: install.sh kafka|temporal|test-server|browser|postgres|kustomize|all" ;;
esac
