#!/usr/bin/env bash
# with-db.sh CMD [ARGS...] runs CMD with DATABASE_URL set to an admin URL of a
# real PostgreSQL server, so that tests never skip for want of one. Each Go
# test package creates and drops its own databases on that server.
#
# Where the server comes from, in order:
#   1. DATABASE_URL already set: used as it is.
#   2. A server on 127.0.0.1:5432 (MODERATOR_PG_PORT) that lets user postgres
#      in without a password: postgres://postgres@127.0.0.1:5432/postgres.
#   3. Otherwise a throwaway cluster from the installed PostgreSQL binaries,
#      in a temporary directory, on a free loopback port, with fsync off (its
#      data is deleted anyway), run by an unprivileged account when we are
#      root. It is stopped and deleted when CMD ends, fails or is interrupted.
# One line on stderr says which server is used.
set -euo pipefail

PG_LOG_PREFIX=with-db
# shellcheck source=scripts/pg-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"

if (($# == 0)); then
	printf 'usage: %s CMD [ARGS...]\n' "$0" >&2
	exit 2
fi

if [[ -n ${DATABASE_URL:-} ]]; then
	pg_log "using DATABASE_URL from the environment: $(pg_redact "$DATABASE_URL")"
	exec "$@"
fi

port=$(pg_local_port)
url=$(pg_url "$port" postgres)
if pg_answers 127.0.0.1 "$port"; then
	if pg_can_login "$url"; then
		export DATABASE_URL=$url
		pg_log "using the server on 127.0.0.1:$port: $url"
		exec "$@"
	fi
	pg_log "the server on 127.0.0.1:$port refuses $url without a password; starting a throwaway cluster instead"
fi

bindir=$(pg_bindir) ||
	pg_die "no server on 127.0.0.1:$port and no PostgreSQL server binaries (initdb, pg_ctl) found: install them (apt-get install postgresql), set MODERATOR_PG_BINDIR, or set DATABASE_URL"
user=$(pg_pick_user)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/moderator-pg.XXXXXX")
data=$tmp/data
started=

# cleanup stops the cluster and removes its directory; it runs on every exit,
# including failures and signals (the signal traps below turn those into exits).
# shellcheck disable=SC2317 # invoked by the EXIT trap.
cleanup() {
	if [[ -n $started ]]; then
		pg_stop "$user" "$bindir" "$data" immediate || pg_log "warning: could not stop the throwaway cluster in $data"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

pg_prepare_dir "$user" "$tmp"
pg_initdb "$user" "$bindir" "$data" "$tmp/initdb.log" 'fsync = off' 'full_page_writes = off'
port=$(pg_start_free_port "$user" "$bindir" "$data" "$tmp/server.log") ||
	pg_die "could not start the throwaway cluster (log above)"
started=1

export DATABASE_URL
DATABASE_URL=$(pg_url "$port" postgres)
pg_log "using a throwaway PostgreSQL $(<"$data/PG_VERSION") cluster (fsync off, run by $user, deleted on exit): $DATABASE_URL"

# Not exec: the cluster must be stopped after CMD. A signal sent to this
# script alone takes effect when CMD ends; Ctrl-C reaches both.
rc=0
"$@" || rc=$?
exit "$rc"
