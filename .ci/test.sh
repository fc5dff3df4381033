#!/usr/bin/env bash
# The test command (`make test`): formatting, vet, and all tests with the
# race detector. Needs only Go; the binaries tests run (opspilot,
# VictoriaMetrics, promtool) are built from go.mod by the tests themselves,
# and Chromium and iproute2 are installed from Debian's packages when
# missing (see below).
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests that drive a browser need Chromium, and the datacenter tests need
# iproute2 (network namespaces). Install them where we may (root with apt,
# unless OPSPILOT_NO_INSTALL is set); otherwise those tests skip and say why.
need=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ] && [ -z "${OPSPILOT_NO_INSTALL:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== apt-get install ${need[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) \
    || echo "could not install ${need[*]}: the tests that need them will skip"
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
  echo "these files need gofmt -w:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
# -p 2 matches the 2-core budget; e2e tests start real processes.
go test -race -count=1 -p 2 -timeout 15m ./...
