#!/usr/bin/env bash
# The test command (`make test`): formatting, vet, and all tests with the
# race detector. Needs only Go; the binaries tests run (opspilot,
# VictoriaMetrics, promtool) are built from go.mod by the tests themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

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
