# lib.sh: what the install scripts share. Source it after setting
# SCRIPT_NAME (the prefix of every log line) and USAGE_LINES (the line
# range of the calling script's header comment that -h prints):
#
#   SCRIPT_NAME=install-x USAGE_LINES=2,15
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   parse_args "$@"     # sets force=0|1; handles -h/--help
#
# It sets root (the repository root) and defines log, die, need and
# replace_dir.

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# need CMD HINT fails with HINT when CMD is not on PATH.
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH ($2)"; }

parse_args() {
	force=0
	for arg in "$@"; do
		case "$arg" in
		--force) force=1 ;;
		-h | --help)
			sed -n "${USAGE_LINES}p" "$0" | sed 's/^# \{0,1\}//' >&2
			exit 0
			;;
		*) die "unknown argument $arg (usage: $0 [--force])" ;;
		esac
	done
}

# replace_dir NEW DEST moves the finished directory NEW to DEST in one
# rename, so a half-done install never looks complete; what DEST held is
# moved aside first and removed after.
replace_dir() {
	local new=$1 dest=$2
	mkdir -p "$(dirname "$dest")"
	rm -rf "$dest.old"
	[[ ! -e "$dest" ]] || mv "$dest" "$dest.old"
	mv "$new" "$dest"
	rm -rf "$dest.old"
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -f "$root/go.mod" ]] || die "cannot find the repository root (no go.mod in $root)"
