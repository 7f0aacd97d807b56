#!/usr/bin/env bash
# Fuzzes the local server with schemathesis from docs/openapi.json (issue #19): generated
# requests for every documented operation, checked for a 5xx (never a 500: a house rule), for a
# status the document does not list, for a Content-Type and a body that do not match it.
#
#   bash infra/scripts/schemathesis.sh                 # what test-all.sh runs (~1 minute)
#   SCHEMATHESIS_MAX_EXAMPLES=300 bash infra/scripts/schemathesis.sh   # a longer run by hand
#
# Three passes, one per security scheme of the document: the Server API with the secret key,
# and the Client API with the tenant id and with a track token. Deterministic: a fixed seed and
# a bounded number of cases per operation (SCHEMATHESIS_SEED, SCHEMATHESIS_MAX_EXAMPLES).
set -euo pipefail
cd "$(dirname "$0")/../.."

tools=".tools/venv"
if [ ! -x "$tools/bin/schemathesis" ]; then
  [ -x "$tools/bin/pip" ] || python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi
cargo build -p trusted-device --locked

data_dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tenant="schemathesis"
secret="sk_schemathesis_$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
# The secret goes through the environment, not the command line (visible in ps).
TRUSTED_DEVICE_TENANT_ID="$tenant" TRUSTED_DEVICE_SECRET_KEY="$secret" \
  ./target/debug/trusted-device serve --addr "127.0.0.1:${port}" --data-dir "$data_dir" \
  >"$data_dir/server.log" 2>&1 &
server_pid=$!
cleanup() { kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -rf "$data_dir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  grep -q listening "$data_dir/server.log" 2>/dev/null && break
  sleep 0.1
done
grep -q listening "$data_dir/server.log" || { cat "$data_dir/server.log"; echo "server did not start"; exit 1; }

base="http://127.0.0.1:${port}"
# A track token for the Client API's `token` scheme, as a backend hands one to the app.
token=$(curl -sf -u "${secret}:" -H 'Content-Type: application/json' -d '{}' \
  "$base/v1/users/schemathesis-user/actions/addAuthenticator" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

fuzz() {
  SCHEMATHESIS_TELEMETRY=false "$tools/bin/schemathesis" run docs/openapi.json --url "$base" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases coverage,fuzzing --workers 1 --no-color \
    --seed "${SCHEMATHESIS_SEED:-19}" --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-20}" \
    --warnings off "$@"
}
echo "--- Server API, secret key"
fuzz --auth "${secret}:" --exclude-path-regex '^/v1/client/'
echo "--- Client API, tenant id"
fuzz --auth "${tenant}:" --include-path-regex '^/v1/client/'
echo "--- Client API, track token"
fuzz --header "Authorization: Bearer ${token}" --include-path-regex '^/v1/client/'
