#!/usr/bin/env bash
# fuzz.sh [-race] FUZZTIME PKG:FUZZNAME... runs each Go fuzz target for
# FUZZTIME (e.g. 10s, 5m). `go test -fuzz` with a pattern that matches
# nothing passes silently, so each target is first looked up with
# `go test -list`, and a missing one fails the run by name.
set -euo pipefail

race=()
if [[ ${1:-} == -race ]]; then
	race=(-race)
	shift
fi
if (($# < 2)); then
	printf 'usage: %s [-race] FUZZTIME PKG:FUZZNAME...\n' "$0" >&2
	exit 2
fi
fuzztime=$1
shift

out=$(mktemp)
trap 'rm -f "$out"' EXIT

for target in "$@"; do
	pkg=./${target%%:*}/
	name=${target#*:}
	if [[ $target != *:* || -z $name ]]; then
		printf 'fuzz: %s is not PKG:FUZZNAME\n' "$target" >&2
		exit 2
	fi
	if ! listed=$(go test -list "^${name}\$" "$pkg" 2>&1); then
		printf '%s\nfuzz: cannot list the tests of %s (above)\n' "$listed" "$pkg" >&2
		exit 1
	fi
	if ! grep -qx "$name" <<<"$listed"; then
		printf 'fuzz: fuzz target %s not found in %s (listed in FUZZ)\n' "$name" "$pkg" >&2
		exit 1
	fi
	printf 'fuzz: %s in %s for %s\n' "$name" "$pkg" "$fuzztime"
	rc=0
	go test "${race[@]}" -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$out" || rc=$?
	((rc == 0)) && continue
	# Go 1.26's fuzz coordinator can report its own -fuzztime deadline as a
	# failure when a worker is busy at that instant (go.dev/issue/75804,
	# fixed in Go 1.27), more often on a loaded machine. That failure names
	# no input; a real one says where it wrote the failing input.
	if ! grep -q 'Failing input written to' "$out" &&
		grep -A1 -E "^--- FAIL: ${name} \(" "$out" | tail -n 1 | grep -Eq '^[[:space:]]+context deadline exceeded$'; then
		printf 'fuzz: %s: ignored a "context deadline exceeded" at the end of -fuzztime with no failing input (go.dev/issue/75804)\n' "$name" >&2
		continue
	fi
	exit "$rc"
done
