package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// cpuUse is the CPU time a subject's closed-loop run cost, per part: the
// server, the Postgres backends serving its database and the load tool.
// On a machine whose cores the three share, the throughput ratio of two
// subjects tends to the inverse ratio of their CPU per webhook, and that
// ratio moves much less with other work on the machine than throughputs
// do: it says what the throughput ratio would be on a quiet machine.
type cpuUse struct {
	server, postgres, load time.Duration
	requests               int  // answered, warm-up included
	ok                     bool // /proc was readable (Linux)
}

// perRequest is the total CPU per request.
func (c cpuUse) perRequest() time.Duration {
	if c.requests == 0 {
		return 0
	}
	return (c.server + c.postgres + c.load) / time.Duration(c.requests)
}

// clockTick is the unit of /proc/PID/stat's times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// procCPU returns the user and system CPU time process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	t, err := parseStat(string(b))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return t, nil
}

// parseStat returns utime + stime of a /proc/PID/stat line. The command
// name, in parentheses, may hold spaces and parentheses; the fields after
// its last ")" are state (field 3), … utime (14) and stime (15).
func parseStat(s string) (time.Duration, error) {
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("no command name in %q", s)
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("utime %q, stime %q: want clock ticks", fields[11], fields[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// backendsCPU returns the CPU time used so far by each backend serving
// database db, by pid: the Postgres server must run on this machine.
func backendsCPU(ctx context.Context, conn *pgx.Conn, db string) (map[int]time.Duration, error) {
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1`, db)
	if err != nil {
		return nil, err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		if t, err := procCPU(int(pid)); err == nil {
			out[int(pid)] = t
		}
	}
	return out, nil
}

// cpuProbe samples the CPU of a subject's server and Postgres backends
// before and after a run.
type cpuProbe struct {
	conn      *pgx.Conn // to the Postgres server, for pg_stat_activity
	db        string
	serverPID int
	server    time.Duration
	backends  map[int]time.Duration
	err       error
}

func startCPUProbe(ctx context.Context, conn *pgx.Conn, db string, serverPID int) *cpuProbe {
	p := &cpuProbe{conn: conn, db: db, serverPID: serverPID}
	p.server, p.err = procCPU(serverPID)
	if p.err == nil {
		p.backends, p.err = backendsCPU(ctx, conn, db)
	}
	return p
}

// stop returns the CPU used since start; ok is false when /proc could not
// be read (not Linux, or Postgres on another machine).
func (p *cpuProbe) stop(ctx context.Context) cpuUse {
	if p.err != nil {
		return cpuUse{}
	}
	server, err := procCPU(p.serverPID)
	if err != nil {
		return cpuUse{}
	}
	backends, err := backendsCPU(ctx, p.conn, p.db)
	if err != nil || len(backends) == 0 {
		return cpuUse{}
	}
	u := cpuUse{server: server - p.server, ok: true}
	for pid, t := range backends {
		u.postgres += t - p.backends[pid] // a backend started during the run had 0 before
	}
	return u
}
