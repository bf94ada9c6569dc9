#!/usr/bin/env bash
# Builds the capture Lambda (cmd/streamhandler) for the provided.al2023
# runtime on arm64 (Graviton), as deploy/template.yaml expects:
#
#   dist/streamhandler/bootstrap   the executable (CodeUri of the template)
#   dist/streamhandler.zip         the same, zipped, for uploading by hand
#
# Run from anywhere: scripts/build-lambda.sh (or `make lambda`).
# The zip is made with `zip` when installed, else with the small Go program
# in internal/tools/zipdir; set REWIND_ZIP=go to use that one regardless.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=dist/streamhandler
rm -rf "$out" "$out.zip"
mkdir -p "$out"

# lambda.norpc drops the legacy Go 1.x RPC entry point that provided.*
# runtimes never use. CGO off gives a static binary: al2023 has a glibc, but
# nothing ties the build machine's to it. GOOS/GOARCH are set here, not
# taken from the environment, so a stray GOARCH=amd64 cannot produce a
# function that fails at its first invocation.
CGO_ENABLED=0 GOOS=linux GOARCH=arm64 \
	go build -tags lambda.norpc -trimpath -ldflags='-s -w' \
	-o "$out/bootstrap" ./cmd/streamhandler

if [[ "${REWIND_ZIP:-}" != go ]] && command -v zip >/dev/null 2>&1; then
	# -X leaves out extra file attributes (uid/gid, times) that differ
	# between machines; the bootstrap's 0755 mode is kept.
	(cd "$out" && zip -q -X -r ../streamhandler.zip .)
else
	go run ./internal/tools/zipdir -o "$out.zip" "$out"
fi

echo "built $out/bootstrap and $out.zip ($(wc -c <"$out.zip") bytes)" >&2

# The scheduled compaction function (deploy/template.yaml
# CompactionFunction, created only when CompactionSchedule is set).
rm -rf dist/compactor
mkdir -p dist/compactor
CGO_ENABLED=0 GOOS=linux GOARCH=arm64 \
	go build -tags lambda.norpc -trimpath -ldflags='-s -w' \
	-o dist/compactor/bootstrap ./cmd/compactor
echo "built dist/compactor/bootstrap" >&2
