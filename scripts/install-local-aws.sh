#!/usr/bin/env bash
# install-local-aws.sh installs the local AWS test stack that the
# integration tests under internal/localaws use:
#
#   <repo>/.local/dynamodb-local/DynamoDBLocal.jar, DynamoDBLocal_lib/
#       DynamoDB Local 1.25.1, taken from the npm package
#       amplify-dynamodb-simulator@2.9.30 (its emulator/ directory only, so
#       none of the package's ~280 npm dependencies are installed);
#   <repo>/.local/dynamodb-local/launcher/LocalLauncher.class
#       compiled from internal/localaws/java/LocalLauncher.java; it starts
#       DynamoDB Local listening on 127.0.0.1 only.
#
# The S3 server runs in-process in Go and needs nothing installed.
#
# Needs: npm, tar, java and javac (17 or later). Idempotent: work already
# done is skipped. Use --force to reinstall. Progress goes to stderr.
#
# Usage: scripts/install-local-aws.sh [--force]
set -euo pipefail

NPM_PACKAGE=amplify-dynamodb-simulator@2.9.30
# sha256 of emulator/DynamoDBLocal.jar in that package (DynamoDB Local 1.25.1).
JAR_SHA256=454305e9bc3e6ebcca5b62569869e31563b8d7e346474e94557b2600702146c7

SCRIPT_NAME=install-local-aws USAGE_LINES=2,18
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"

dest="$root/.local/dynamodb-local"
src="$root/internal/localaws/java/LocalLauncher.java"

need java "install a JDK 17 or later, e.g. apt-get install openjdk-17-jdk-headless"
need javac "install a JDK 17 or later, e.g. apt-get install openjdk-17-jdk-headless"

tmp=""
cleanup() { [[ -z "$tmp" ]] || rm -rf "$tmp"; }
trap cleanup EXIT

jar_ok() {
	[[ -f "$dest/DynamoDBLocal.jar" && -d "$dest/DynamoDBLocal_lib" ]] || return 1
	local sum
	sum=$(sha256sum "$dest/DynamoDBLocal.jar" | cut -d' ' -f1)
	[[ "$sum" == "$JAR_SHA256" ]]
}

if [[ $force == 0 ]] && jar_ok; then
	log "DynamoDB Local already in $dest"
else
	need npm "install Node.js and npm, e.g. apt-get install npm"
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/install-local-aws.XXXXXX")
	log "fetching $NPM_PACKAGE with npm pack"
	(cd "$tmp" && npm pack --silent "$NPM_PACKAGE" >/dev/null) ||
		die "npm pack $NPM_PACKAGE failed"
	tgz=$(ls "$tmp"/*.tgz)
	log "extracting package/emulator/ from $(basename "$tgz")"
	tar -xzf "$tgz" -C "$tmp" package/emulator
	sum=$(sha256sum "$tmp/package/emulator/DynamoDBLocal.jar" | cut -d' ' -f1)
	[[ "$sum" == "$JAR_SHA256" ]] ||
		die "DynamoDBLocal.jar has sha256 $sum, want $JAR_SHA256"
	# A launcher compiled earlier goes with the old directory; it is
	# compiled again below.
	replace_dir "$tmp/package/emulator" "$dest"
	log "installed DynamoDB Local into $dest"
fi

launcher="$dest/launcher/LocalLauncher.class"
if [[ $force == 0 && -f "$launcher" && "$launcher" -nt "$src" ]]; then
	log "launcher already compiled in $dest/launcher"
else
	log "compiling $src"
	rm -rf "$dest/launcher"
	mkdir -p "$dest/launcher"
	javac -nowarn -d "$dest/launcher" \
		-cp "$dest/DynamoDBLocal.jar:$dest/DynamoDBLocal_lib/*" "$src"
	log "compiled launcher into $dest/launcher"
fi

log "done; run the tests with: go test ./internal/localaws/"
