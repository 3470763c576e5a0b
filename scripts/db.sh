#!/usr/bin/env bash
# db.sh start|stop|status manages the persistent development cluster that
# `make run` uses when no server answers on 127.0.0.1:5432: its data lives in
# .data/postgres (MODERATOR_PG_DATA) and survives restarts. `start` leaves it
# running (so `make run` will not stop it) and prints its URLs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_LOG_PREFIX=db
# shellcheck source=scripts/pg-lib.sh
source "$root/scripts/pg-lib.sh"

base=${MODERATOR_PG_DATA:-$root/.data/postgres}

case ${1:-} in
start)
	pg_dev_up "$base"
	if ((PG_DEV_STARTED)); then
		pg_log "started the development cluster in $base/data"
	else
		pg_log "the development cluster in $base/data was already running"
	fi
	pg_create_db "$(pg_url "$PG_DEV_PORT" postgres)" moderator
	printf 'DATABASE_URL=%s\n' "$(pg_url "$PG_DEV_PORT" moderator)"
	pg_log "for make test/bench (admin URL): DATABASE_URL=$(pg_url "$PG_DEV_PORT" postgres)"
	;;
stop)
	pg_dev_down "$base" || pg_die "could not stop the development cluster in $base/data"
	pg_log "the development cluster in $base/data is stopped"
	;;
status)
	data=$base/data
	if [[ -f $data/PG_VERSION ]] && pg_as "$(stat -c %U "$data")" \
		"$(pg_bindir "$(<"$data/PG_VERSION")")/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		printf 'running: DATABASE_URL=%s\n' "$(pg_url "$(sed -n 4p "$data/postmaster.pid")" moderator)"
	else
		printf 'not running (%s)\n' "$data"
		exit 3
	fi
	;;
*)
	printf 'usage: %s start|stop|status\n' "$0" >&2
	exit 2
	;;
esac
