#!/usr/bin/env bash
# Runs every test of trusted-device, installing what the tests need. CI runs exactly this.
#
#   bash infra/scripts/test-all.sh
#
# 0. every "spec N.N" / "DESIGN N" cited in the code exists in docs/wire-protocol.md, docs/design.md;
# 1. formatting and lints (rustfmt, clippy with warnings as errors);
# 2. the Rust tests: unit tests, the store conformance suite on both stores (DynamoDB through
#    dynoxide, a DynamoDB-compatible server the tests embed on a free loopback port), the
#    end-to-end HTTP tests and the CLI tests (cargo test --workspace);
# 3. the end-to-end HTTP suite once more, with the server on the DynamoDB store;
# 4. template.yaml: cfn-lint and `sam validate --lint` (both offline; installed in a venv), and
#    docs/openapi.json with openapi-spec-validator, and schemathesis from it against the local
#    server (issue #19, infra/scripts/schemathesis.sh: no 5xx, statuses and bodies as documented);
# 5. the official @authsignal/node and @authsignal/browser SDKs, unmodified, against the local
#    server binary (the browser SDK's QR code over its default WebSocket path);
# 6. the official Python SDK (authsignal on PyPI) against the same server (issue #20);
# 7. the official @authsignal/browser SDK, unmodified, in headless Chromium (Debian's, installed
#    with apt-get when missing) on a page of another origin: CORS, push and QR-code flows
#    (tests/browser/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

step() { printf '\n==> %s\n' "$*"; }

step "every cited spec and DESIGN section exists in docs/"
bash infra/scripts/check-spec-citations.sh

step "rustfmt"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (embedded store)"
cargo test --workspace --locked

step "end-to-end suite on the DynamoDB store"
TRUSTED_DEVICE_TEST_STORE=dynamodb cargo test -p e2e-tests --locked

step "template.yaml: cfn-lint and sam validate --lint"
tools=".tools/venv"
if [ ! -x "$tools/bin/sam" ] || [ ! -x "$tools/bin/cfn-lint" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check "aws-sam-cli==1.170.0" "cfn-lint==1.58.0"
fi
"$tools/bin/cfn-lint" template.yaml
SAM_CLI_TELEMETRY=0 AWS_REGION=us-east-1 "$tools/bin/sam" validate --lint --template-file template.yaml

step "docs/openapi.json: a valid OpenAPI 3.1 document (openapi-spec-validator)"
# The Rust tests check that it is the generated document and has exactly the served routes;
# this checks it against the OpenAPI 3.1 schema and the spec's rules (issue #19).
if [ ! -x "$tools/bin/openapi-spec-validator" ]; then
  "$tools/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==0.9.0"
fi
"$tools/bin/openapi-spec-validator" docs/openapi.json

step "schemathesis from docs/openapi.json against the local server: no 5xx, answers as documented"
bash infra/scripts/schemathesis.sh

step "Node SDK compatibility (@authsignal/node and @authsignal/browser against the local server)"
command -v node >/dev/null || { echo "node is required (Node.js 20+)"; exit 1; }
(cd tests/node-compat && npm ci --no-audit --no-fund --loglevel=error)
cargo build -p trusted-device --locked
data_dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export TD_TENANT_ID="node-compat"
export TD_SECRET_KEY="sk_node_compat_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export TD_BASE_URL="http://127.0.0.1:${port}/v1"
# The test listens for push.created on this port; the server signs with this secret (spec 2.11).
export TD_WEBHOOK_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export TD_WEBHOOK_SECRET="whsec_node_compat_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
# The secret goes through the environment, not the command line (visible in ps).
TRUSTED_DEVICE_TENANT_ID="$TD_TENANT_ID" TRUSTED_DEVICE_SECRET_KEY="$TD_SECRET_KEY" \
  TRUSTED_DEVICE_PUSH_WEBHOOK_URL="http://127.0.0.1:${TD_WEBHOOK_PORT}/push-created" \
  TRUSTED_DEVICE_PUSH_WEBHOOK_SECRET="$TD_WEBHOOK_SECRET" \
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
# Sessions (issue #20): a client id and short lifetimes for the test tenant, and a second tenant
# (its secret read from the CLI's one-time output) whose tokens must unlock nothing here. The
# CLI writes to the server's data directory while it runs (the embedded store is shared).
export TD_SESSION_CLIENT_ID="web-app" TD_ACCESS_TOKEN_TTL=2
td_cli() { ./target/debug/trusted-device "$@" --data-dir "$data_dir"; }
td_cli tenant configure --tenant-id "$TD_TENANT_ID" --session-client-id "$TD_SESSION_CLIENT_ID" \
  --access-token-ttl "$TD_ACCESS_TOKEN_TTL" --refresh-token-ttl 120 >/dev/null
export TD_OTHER_TENANT_ID="node-compat-other"
TD_OTHER_SECRET_KEY=$(td_cli tenant create --tenant-id "$TD_OTHER_TENANT_ID" | sed -n 's/^secret key: //p')
export TD_OTHER_SECRET_KEY
td_cli tenant configure --tenant-id "$TD_OTHER_TENANT_ID" --session-client-id "$TD_SESSION_CLIENT_ID" >/dev/null
# Events (issue #19): a third tenant whose events webhook is events.test.mjs's receiver; the
# secret through the environment, not the command line.
export TD_EVENTS_TENANT_ID="node-compat-events"
TD_EVENTS_SECRET_KEY=$(td_cli tenant create --tenant-id "$TD_EVENTS_TENANT_ID" | sed -n 's/^secret key: //p')
export TD_EVENTS_SECRET_KEY
export TD_EVENTS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export TD_EVENTS_WEBHOOK_SECRET="whsec_node_events_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
TRUSTED_DEVICE_EVENTS_WEBHOOK_SECRET="$TD_EVENTS_WEBHOOK_SECRET" td_cli tenant configure \
  --tenant-id "$TD_EVENTS_TENANT_ID" --events-webhook-url "http://127.0.0.1:${TD_EVENTS_PORT}/events" >/dev/null
# --experimental-websocket: Node 20's global WebSocket, which @authsignal/browser's default QR-code
# path needs (qr-websocket.test.mjs).
(cd tests/node-compat && node --experimental-websocket --test)

step "Python SDK (authsignal on PyPI) against the same server"
if [ ! -x "$tools/bin/python" ] || ! "$tools/bin/python" -c 'import authsignal' 2>/dev/null; then
  "$tools/bin/pip" install --quiet --disable-pip-version-check "authsignal==${AUTHSIGNAL_PYTHON_VERSION:-4.1.0}"
fi
"$tools/bin/python" tests/python-compat/server_api_test.py

step "the browser SDK in a real browser (headless Debian Chromium, cross-origin CORS)"
# Debian's chromium from apt (no browser download works on these machines); sudo only if not root.
if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo"
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium >/dev/null
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
browser_started=$(date +%s)
# The harness starts its own server (the binary built above) and page servers on free ports.
(cd tests/browser && TD_BIN="$PWD/../../target/debug/trusted-device" node --test)
echo "browser tests: $(( $(date +%s) - browser_started )) s"
