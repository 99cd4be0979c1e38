#!/usr/bin/env bash
# Fuzz the live daemon from its own OpenAPI document with schemathesis, and
# fail on any 5xx, any response that does not match the document (schema,
# status code, content type) and so on any error that is not problem+json.
#
#   .ci/schemathesis.sh [path/to/switchboard]    (default target/debug/switchboard)
#
# Builds nothing: give it a built binary. Installs schemathesis into the
# project's virtual environment (.venv at the repository root, created if
# missing), starts `switchboard serve` on a temporary data dir with SQLite
# on a free loopback port, runs `st run` with the admin token it prints,
# bounded by ST_MAX_EXAMPLES per operation (default 20) and ST_TIMEOUT
# seconds overall (default 300), then stops the daemon.
#
# The live event stream (/events/stream) is left out: it never ends, by design.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin=${1:-target/debug/switchboard}
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
if [[ ! -x "$bin" ]]; then
    echo "schemathesis.sh: no switchboard binary at $bin; build it first (cargo build -p switchboard)" >&2
    exit 2
fi
max_examples=${ST_MAX_EXAMPLES:-20}
overall=${ST_TIMEOUT:-300}
schemathesis_version=4.32.5

# schemathesis in the project venv.
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
if ! .venv/bin/st --version 2>/dev/null | grep -q "$schemathesis_version"; then
    .venv/bin/pip install --quiet "schemathesis==$schemathesis_version"
fi

work=$(mktemp -d)
daemon_pid=
cleanup() {
    if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$daemon_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$daemon_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Only this daemon's configuration: nothing from the caller's environment.
for var in $(env | grep -o '^SWITCHBOARD_[A-Za-z0-9_]*' || true); do
    unset "$var"
done
mkdir -p "$work/data" "$work/home"
(
    cd "$work"
    HOME="$work/home" \
        SWITCHBOARD_DATA_DIR="$work/data" \
        SWITCHBOARD_DATABASE_URL="sqlite://$work/data/switchboard.db" \
        SWITCHBOARD_LISTEN=127.0.0.1:0 \
        SWITCHBOARD_LOG=warn \
        NO_COLOR=1 \
        exec "$bin" serve
) >"$work/daemon.log" 2>&1 &
daemon_pid=$!

url=
token=
for _ in $(seq 300); do
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
        echo "schemathesis.sh: the daemon exited:" >&2
        cat "$work/daemon.log" >&2
        exit 1
    fi
    url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/daemon.log" | head -n1)
    token=$(sed -n 's/.*store it now): \([^ ]*\).*/\1/p' "$work/daemon.log" | head -n1)
    [[ -n "$url" && -n "$token" ]] && break
    sleep 0.1
done
if [[ -z "$url" || -z "$token" ]]; then
    echo "schemathesis.sh: the daemon did not print its address and admin token:" >&2
    cat "$work/daemon.log" >&2
    exit 1
fi
echo "schemathesis.sh: fuzzing $url (at most $max_examples examples per operation, ${overall}s overall)"

status=0
timeout --kill-after=10 "$overall" .venv/bin/st run "$url/api/v1/openapi.json" \
    --url "$url/api/v1" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples "$max_examples" \
    --exclude-path /events/stream \
    --request-timeout 10 \
    --seed 1 \
    --no-color \
    || status=$?
if [[ $status -eq 124 || $status -eq 137 ]]; then
    echo "schemathesis.sh: schemathesis did not finish within ${overall}s" >&2
fi
if [[ $status -ne 0 ]]; then
    echo "schemathesis.sh: failed (exit $status); the daemon's log:" >&2
    tail -n 50 "$work/daemon.log" >&2
fi
exit $status
