#!/usr/bin/env bash
# Install the sekmet-fhir test server (Apache-2.0) into its own venv, .venv-sekmet/, kept apart
# from the project venv. Optional: `scripts/fhir-test-server.sh serve [PORT]` starts it in the
# foreground on 127.0.0.1 with a fresh data dir (the pytest fixture in tests/server.py does the same).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-sekmet
VERSION=0.1.1
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/sekmet" ] || ! "$VENV/bin/pip" show sekmet-fhir 2>/dev/null | grep -q "^Version: $VERSION$"; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "sekmet-fhir==$VERSION"
fi
echo "sekmet-fhir $VERSION ready in $VENV"
if [ "${1:-}" = "serve" ]; then
  PORT=${2:-8090}
  DATA=$(mktemp -d)
  trap 'rm -rf "$DATA"' EXIT
  cat > "$DATA/settings.yaml" <<YAML
host: 127.0.0.1
port: $PORT
base_url: http://127.0.0.1:$PORT/fhir
data_dir: $DATA/data
simulator: {enabled: false}
validation: {inbound: "off"}
log_inbound: false
YAML
  exec "$VENV/bin/sekmet" serve --config "$DATA/settings.yaml" --host 127.0.0.1 --port "$PORT"
fi
