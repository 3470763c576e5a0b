# shellcheck shell=bash
# pg-lib.sh holds the PostgreSQL lookup shared by with-db.sh, run.sh, db.sh and
# .ci/run, so that tests, `make run` and CI agree on which server they use.
# It only defines functions; sourcing it changes nothing.
#
# Knobs (environment):
#   MODERATOR_PG_PORT    port of the local server to look for on 127.0.0.1
#                        (default 5432; point it at an unused port to force a
#                        cluster of our own)
#   MODERATOR_PG_BINDIR  PostgreSQL server binaries to use (default: the newest
#                        /usr/lib/postgresql/*/bin, else initdb on PATH)
#   MODERATOR_PG_USER    account that runs our clusters when we are root
#                        (default moderator-pg, created if missing, else nobody)

# pg_log prints one line to stderr, prefixed by the calling script's name, so
# that it never mixes with the output of the command being wrapped.
pg_log() { printf '%s: %s\n' "${PG_LOG_PREFIX:-pg}" "$*" >&2; }

pg_die() {
	pg_log "error: $*"
	exit 1
}

# pg_redact hides the password of a connection URL before it is printed.
pg_redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:xxxxx@#' <<<"$1"; }

# pg_url PORT DBNAME prints the trust-auth URL of a server on loopback.
pg_url() { printf 'postgres://postgres@127.0.0.1:%s/%s?sslmode=disable' "$1" "$2"; }

pg_local_port() { printf '%s' "${MODERATOR_PG_PORT:-5432}"; }

# pg_answers HOST PORT succeeds when a PostgreSQL server accepts connections
# there; without pg_isready it can only tell that something listens.
pg_answers() {
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -h "$1" -p "$2" -t 3 >/dev/null 2>&1
	else
		pg_port_taken "$2" "$1"
	fi
}

# pg_port_taken PORT [HOST] succeeds when something accepts TCP connections.
pg_port_taken() {
	# shellcheck disable=SC2016 # $1 and $2 belong to the inner bash.
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "${2:-127.0.0.1}" "$1" 2>/dev/null
}

# pg_free_port prints a loopback port nobody listens on. It stays below the
# kernel's ephemeral range (32768+) so that outgoing connections cannot take it.
pg_free_port() {
	local port i
	for ((i = 0; i < 50; i++)); do
		port=$((20000 + RANDOM % 12000))
		if ! pg_port_taken "$port"; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	return 1
}

# pg_bindir [MAJOR] prints a directory holding initdb and pg_ctl: the one of
# that major version when given and installed, else the newest installed.
pg_bindir() {
	local d want=${1:-} found=
	if [[ -n ${MODERATOR_PG_BINDIR:-} ]]; then
		[[ -x $MODERATOR_PG_BINDIR/initdb && -x $MODERATOR_PG_BINDIR/pg_ctl ]] || return 1
		printf '%s\n' "$MODERATOR_PG_BINDIR"
		return 0
	fi
	if [[ -n $want && -x /usr/lib/postgresql/$want/bin/pg_ctl ]]; then
		printf '%s\n' "/usr/lib/postgresql/$want/bin"
		return 0
	fi
	while IFS= read -r d; do
		[[ -x $d/initdb && -x $d/pg_ctl ]] && found=$d
	done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V)
	if [[ -z $found ]] && command -v initdb >/dev/null 2>&1; then
		d=$(dirname "$(readlink -f "$(command -v initdb)")")
		[[ -x $d/pg_ctl ]] && found=$d
	fi
	[[ -n $found ]] || return 1
	printf '%s\n' "$found"
}

# pg_psql prints a psql to use: the one on PATH, else the one beside the
# server binaries.
pg_psql() {
	local d
	if command -v psql >/dev/null 2>&1; then
		command -v psql
	elif d=$(pg_bindir) && [[ -x $d/psql ]]; then
		printf '%s\n' "$d/psql"
	else
		return 1
	fi
}

# pg_can_login URL succeeds when URL lets us in without a password prompt. A
# server on 5432 may want a password (Debian's default is scram for TCP); then
# we fall back to a cluster of our own rather than fail every test. Without
# psql there is no way to tell, so it is assumed to work.
pg_can_login() {
	local psql
	psql=$(pg_psql) || return 0
	PGCONNECT_TIMEOUT=5 "$psql" -X -w -Atq -d "$1" -c 'select 1' >/dev/null 2>&1
}

# pg_pick_user prints the account that will own and run a cluster of ours:
# initdb and postgres refuse to run as root.
pg_pick_user() {
	if ((EUID != 0)); then
		id -un
		return 0
	fi
	if [[ -n ${MODERATOR_PG_USER:-} ]]; then
		printf '%s\n' "$MODERATOR_PG_USER"
		return 0
	fi
	if ! id moderator-pg >/dev/null 2>&1 && command -v useradd >/dev/null 2>&1; then
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin moderator-pg >/dev/null 2>&1 || true
	fi
	if id moderator-pg >/dev/null 2>&1; then
		printf '%s\n' moderator-pg
	else
		printf '%s\n' nobody
	fi
}

# pg_as USER CMD [ARGS...] runs CMD as USER from /, a directory every account
# can enter (root's working directory may be private to root).
pg_as() {
	local user=$1
	shift
	if [[ $user == "$(id -un)" ]]; then
		(cd / && "$@")
	elif command -v runuser >/dev/null 2>&1; then
		(cd / && runuser -u "$user" -- "$@")
	else
		(cd / && su -s /bin/bash "$user" -c "$(printf '%q ' "$@")")
	fi
}

# pg_prepare_dir USER DIR creates DIR (mode 700) for USER and checks that USER
# can reach it through every parent directory.
pg_prepare_dir() {
	local user=$1 dir=$2
	mkdir -p "$dir"
	chmod 700 "$dir"
	if ((EUID == 0)); then
		chown "$user:" "$dir" 2>/dev/null || chown "$user" "$dir"
	fi
	pg_as "$user" test -w "$dir" ||
		pg_die "account $user cannot write $dir (is a parent directory private?)"
}

# pg_initdb USER BINDIR DATA LOG [PG SETTING LINES...] creates a trust-auth
# cluster whose superuser is postgres, listening on loopback TCP only (no
# Unix socket: its directory would need to be writable by USER and its path
# short), with the given extra postgresql.conf lines.
pg_initdb() {
	local user=$1 bindir=$2 data=$3 log=$4 line
	shift 4
	if ! pg_as "$user" "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 \
		--no-locale >"$log" 2>&1; then
		cat "$log" >&2
		pg_die "initdb $data failed"
	fi
	{
		printf '\n# Set by scripts/pg-lib.sh for a local development cluster.\n'
		printf "listen_addresses = '127.0.0.1'\n"
		printf "unix_socket_directories = ''\n"
		printf 'max_connections = 200\n'
		for line in "$@"; do printf '%s\n' "$line"; done
	} >>"$data/postgresql.conf"
}

# pg_start USER BINDIR DATA LOG PORT starts a cluster and waits until it
# accepts connections.
pg_start() {
	local user=$1 bindir=$2 data=$3 log=$4 port=$5
	if ! pg_as "$user" "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 -o "-p $port" \
		start >/dev/null 2>&1; then
		tail -n 20 "$log" >&2 || true
		return 1
	fi
}

# pg_start_free_port USER BINDIR DATA LOG starts a cluster on a free port,
# retrying a few times in case another process takes the port first, and
# prints the port.
pg_start_free_port() {
	local port try
	for try in 1 2 3; do
		port=$(pg_free_port) || pg_die "no free loopback port found"
		if pg_start "$@" "$port"; then
			printf '%s\n' "$port"
			return 0
		fi
		pg_log "could not start PostgreSQL on port $port (try $try of 3)"
	done
	return 1
}

# pg_stop USER BINDIR DATA MODE stops a cluster; MODE is fast or immediate.
pg_stop() {
	pg_as "$1" "$2/pg_ctl" -D "$3" -m "$4" -w -t 60 stop >/dev/null 2>&1
}

# pg_dev_up BASE makes sure the persistent development cluster in BASE/data
# runs, creating it on first use (logs go to BASE too). It sets PG_DEV_USER,
# PG_DEV_BINDIR, PG_DEV_PORT, and PG_DEV_STARTED (1 when this call started
# it, 0 when it already ran).
# shellcheck disable=SC2034 # the PG_DEV_ variables are for the caller.
pg_dev_up() {
	local base=$1 data=$1/data major=
	PG_DEV_STARTED=0
	if [[ -f $data/PG_VERSION ]]; then
		major=$(<"$data/PG_VERSION")
		PG_DEV_USER=$(stat -c %U "$data")
	fi
	PG_DEV_BINDIR=$(pg_bindir "$major") ||
		pg_die "no PostgreSQL server binaries (initdb, pg_ctl) found: install them (apt-get install postgresql), set MODERATOR_PG_BINDIR, or set DATABASE_URL"
	if [[ -z $major ]]; then
		if [[ -e $data ]]; then
			pg_die "$data exists but holds no PostgreSQL cluster; remove it to start afresh"
		fi
		PG_DEV_USER=$(pg_pick_user)
		pg_prepare_dir "$PG_DEV_USER" "$base"
		pg_log "creating a development cluster in $data (run by $PG_DEV_USER)"
		pg_initdb "$PG_DEV_USER" "$PG_DEV_BINDIR" "$data" "$base/initdb.log"
	fi
	if pg_as "$PG_DEV_USER" "$PG_DEV_BINDIR/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		PG_DEV_PORT=$(sed -n 4p "$data/postmaster.pid")
		return 0
	fi
	PG_DEV_PORT=$(pg_start_free_port "$PG_DEV_USER" "$PG_DEV_BINDIR" "$data" "$base/server.log") ||
		pg_die "could not start the development cluster in $data (log: $base/server.log)"
	PG_DEV_STARTED=1
}

# pg_dev_down BASE stops the persistent development cluster if it runs.
pg_dev_down() {
	local data=$1/data user bindir
	[[ -f $data/PG_VERSION ]] || return 0
	user=$(stat -c %U "$data")
	bindir=$(pg_bindir "$(<"$data/PG_VERSION")") || return 0
	pg_as "$user" "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1 || return 0
	pg_stop "$user" "$bindir" "$data" fast
}

# pg_create_db ADMIN_URL NAME creates database NAME unless it exists.
pg_create_db() {
	local admin=$1 name=$2 psql exists
	psql=$(pg_psql) || pg_die "psql not found: install postgresql-client to create database $name"
	exists=$("$psql" -X -w -Atq -d "$admin" -c "select 1 from pg_database where datname = '$name'") ||
		pg_die "cannot query $(pg_redact "$admin")"
	[[ $exists == 1 ]] && return 0
	if ! "$psql" -X -w -q -d "$admin" -c "create database \"$name\"" >/dev/null; then
		# Another process may have created it in the meantime.
		exists=$("$psql" -X -w -Atq -d "$admin" -c "select 1 from pg_database where datname = '$name'")
		[[ $exists == 1 ]] || pg_die "cannot create database $name"
	fi
	pg_log "created database $name"
}
