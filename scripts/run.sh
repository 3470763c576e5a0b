#!/usr/bin/env bash
# run.sh starts the service locally (what `make run` does) with the starter
# configuration, against a local PostgreSQL found the way with-db.sh finds
# one, except that when it must start a cluster itself it keeps the data in
# .data/postgres (MODERATOR_PG_DATA) so that it survives restarts, and stops
# that cluster when the service exits.
#
# Variables already in the environment win over the starter values:
#   DATABASE_URL        used as it is (nothing is created), else
#                       .../moderator on the local server, created if missing
#   STREAM_API_KEY      dev-key
#   STREAM_API_SECRET   dev-secret
#   MODERATOR_ADDR      127.0.0.1:8080
#   MODERATOR_DRY_RUN   true: nothing is sent to Stream from a laptop
#   MODERATOR_ADMIN_JWT_SECRET  a fixed development secret, so the staff API
#                       (/api/v1) is on and `moderator token` can mint tokens
#   MODERATOR_BIN       a built binary to run (default: go build bin/moderator)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
PG_LOG_PREFIX=run
# shellcheck source=scripts/pg-lib.sh
source scripts/pg-lib.sh

export STREAM_API_KEY=${STREAM_API_KEY:-dev-key}
export STREAM_API_SECRET=${STREAM_API_SECRET:-dev-secret}
export MODERATOR_ADDR=${MODERATOR_ADDR:-127.0.0.1:8080}
export MODERATOR_DRY_RUN=${MODERATOR_DRY_RUN:-true}
# A development secret only: never use it outside a laptop. Staff tokens for
# this service are minted with the same value (printed below).
dev_admin_secret=dev-admin-secret-for-make-run-only-0123456789
export MODERATOR_ADMIN_JWT_SECRET=${MODERATOR_ADMIN_JWT_SECRET:-$dev_admin_secret}

base=${MODERATOR_PG_DATA:-$root/.data/postgres}
stop_dev_cluster=0
from_env=

if [[ -n ${DATABASE_URL:-} ]]; then
	pg_log "using DATABASE_URL from the environment: $(pg_redact "$DATABASE_URL")"
	from_env=1
else
	port=$(pg_local_port)
	if pg_answers 127.0.0.1 "$port" && pg_can_login "$(pg_url "$port" postgres)"; then
		pg_log "using the server on 127.0.0.1:$port"
	else
		pg_dev_up "$base"
		port=$PG_DEV_PORT
		if ((PG_DEV_STARTED)); then
			stop_dev_cluster=1
			pg_log "started the development cluster in $base/data on 127.0.0.1:$port; it stops when the service exits"
		else
			pg_log "using the development cluster already running in $base/data on 127.0.0.1:$port"
		fi
	fi
	# shellcheck disable=SC2317 # invoked by the EXIT trap.
	stop_cluster() {
		if ((stop_dev_cluster)); then
			pg_dev_down "$base" || pg_log "warning: could not stop the development cluster in $base/data"
		fi
	}
	trap stop_cluster EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	pg_create_db "$(pg_url "$port" postgres)" moderator
	export DATABASE_URL
	DATABASE_URL=$(pg_url "$port" moderator)
	pg_log "DATABASE_URL=$DATABASE_URL"
fi

bin=${MODERATOR_BIN:-}
if [[ -z $bin ]]; then
	bin=bin/moderator
	go build -o "$bin" ./cmd/moderator
fi

# The sender needs the URL only when the address is not the default one.
host=${MODERATOR_ADDR%:*}
case $host in
'' | 0.0.0.0 | '[::]') host=127.0.0.1 ;;
esac
url=http://$host:${MODERATOR_ADDR##*:}/webhooks/stream
send="scripts/send-sample.sh"
[[ $url == http://127.0.0.1:8080/webhooks/stream ]] || send="MODERATOR_URL=$url $send"
[[ $STREAM_API_KEY == dev-key && $STREAM_API_SECRET == dev-secret ]] ||
	send="STREAM_API_KEY=... STREAM_API_SECRET=... $send"
shown_url=$DATABASE_URL
# shellcheck disable=SC2016 # the variable's name is shown, not its secret value.
[[ -z $from_env ]] || shown_url='$DATABASE_URL'
[[ -n $from_env ]] || printf "run: in another terminal, first: export DATABASE_URL='%s'\n" "$DATABASE_URL" >&2
cat >&2 <<EOF
run: serving on $MODERATOR_ADDR (dry run: $MODERATOR_DRY_RUN). Send a signed sample event from another terminal:
run:   $send                  # testdata/samples/message.new-1.json
run:   $send path/to/event.json
run: and see it recorded with: psql "$shown_url" -c 'select id, type, user_id, received_at from events order by id desc limit 5'
EOF
if [[ $MODERATOR_ADMIN_JWT_SECRET == "$dev_admin_secret" ]]; then
	api=http://$host:${MODERATOR_ADDR##*:}/api/v1
	cat >&2 <<EOF
run: the staff API is on with a development secret; a reviewer's token and a search:
run:   TOKEN=\$(MODERATOR_ADMIN_JWT_SECRET=$dev_admin_secret $bin token --role reviewer --sub you@example.com)
run:   curl -s -H "Authorization: Bearer \$TOKEN" '$api/events?limit=5'
EOF
fi

if ((stop_dev_cluster)); then
	# Not exec: the cluster is stopped after the service exits (Ctrl-C
	# reaches the service; the cluster runs in its own session).
	rc=0
	"$bin" serve || rc=$?
	exit "$rc"
fi
exec "$bin" serve
