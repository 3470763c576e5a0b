package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
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
	// machine is what the whole machine's CPU did meanwhile (see other).
	machine machineTimes
	// busiest are the processes other than the subject's that used the
	// most CPU during the run, most first (see busiestOthers).
	busiest []procUse
}

// other is the CPU the rest of the machine used during the run: Postgres's
// background processes (the WAL writer, the checkpointer) and anything
// else running. Whatever is not the subject's own work adds noise to its
// figures; a stray process can halve a closed loop's throughput.
func (c cpuUse) other() time.Duration {
	return max(c.machine.busy-c.server-c.postgres-c.load, 0)
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

// machineTimes are CPU times summed over the machine's cores.
type machineTimes struct {
	busy  time.Duration // running anything: user, nice, system, irq, softirq
	steal time.Duration // a virtual machine's cores taken by its host
	all   time.Duration // busy, steal, idle and iowait: the cores times the wall time
}

func (m machineTimes) sub(o machineTimes) machineTimes {
	return machineTimes{busy: m.busy - o.busy, steal: m.steal - o.steal, all: m.all - o.all}
}

// readMachine returns the machine's CPU times so far, from /proc/stat.
func readMachine() (machineTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineTimes{}, err
	}
	return parseProcStat(string(b))
}

// parseProcStat reads /proc/stat's first line, "cpu  user nice system idle
// iowait irq softirq steal …", in clock ticks (guest time is part of user).
func parseProcStat(s string) (machineTimes, error) {
	line, _, _ := strings.Cut(s, "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return machineTimes{}, fmt.Errorf("/proc/stat: want \"cpu\" and 8 times, got %q", line)
	}
	var t [8]time.Duration
	for i := range t {
		n, err := strconv.ParseInt(fields[i+1], 10, 64)
		if err != nil {
			return machineTimes{}, fmt.Errorf("/proc/stat: time %q: %w", fields[i+1], err)
		}
		t[i] = time.Duration(n) * clockTick
	}
	user, nice, system, idle, iowait, irq, softirq, steal := t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]
	busy := user + nice + system + irq + softirq
	return machineTimes{busy: busy, steal: steal, all: busy + steal + idle + iowait}, nil
}

// procUse is a process's CPU time over a run.
type procUse struct {
	pid  int
	name string
	cpu  time.Duration
}

// processTimes returns the CPU time so far of every process on the
// machine, by pid, with its name.
func processTimes() map[int]procUse {
	out := map[int]procUse{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		t, err := parseStat(string(b))
		if err != nil {
			continue
		}
		name := string(b)
		if i, j := strings.IndexByte(name, '('), strings.LastIndexByte(name, ')'); i >= 0 && j > i {
			name = name[i+1 : j]
		}
		out[pid] = procUse{pid: pid, name: name, cpu: t}
	}
	return out
}

// busiestOthers returns the three processes, other than those in skip,
// that used the most CPU between before and after (a process started
// meanwhile had none before; one that ended is not seen).
func busiestOthers(before, after map[int]procUse, skip map[int]bool) []procUse {
	var out []procUse
	for pid, a := range after {
		if skip[pid] {
			continue
		}
		used := a.cpu
		if b, ok := before[pid]; ok { // by pid: a kernel worker's name changes with its work
			used -= b.cpu
		}
		if used > 0 {
			out = append(out, procUse{pid: pid, name: a.name, cpu: used})
		}
	}
	slices.SortFunc(out, func(x, y procUse) int { return cmp.Compare(y.cpu, x.cpu) })
	return out[:min(len(out), 3)]
}

// cpuProbe samples the CPU of a subject's server and Postgres backends
// before and after a run.
type cpuProbe struct {
	conn      *pgx.Conn // to the Postgres server, for pg_stat_activity
	db        string
	serverPID int
	server    time.Duration
	backends  map[int]time.Duration
	machine   machineTimes
	procs     map[int]procUse
	err       error
}

func startCPUProbe(ctx context.Context, conn *pgx.Conn, db string, serverPID int) *cpuProbe {
	p := &cpuProbe{conn: conn, db: db, serverPID: serverPID}
	p.server, p.err = procCPU(serverPID)
	if p.err == nil {
		p.backends, p.err = backendsCPU(ctx, conn, db)
	}
	if p.err == nil {
		p.machine, p.err = readMachine()
		p.procs = processTimes()
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
	machine, err := readMachine()
	if err != nil {
		return cpuUse{}
	}
	u := cpuUse{server: server - p.server, machine: machine.sub(p.machine), ok: true}
	skip := map[int]bool{p.serverPID: true, os.Getpid(): true}
	for pid, t := range backends {
		u.postgres += t - p.backends[pid] // a backend started during the run had 0 before
		skip[pid] = true
	}
	u.busiest = busiestOthers(p.procs, processTimes(), skip)
	return u
}

// settle waits until the machine is quiet: until less than quietShare of
// its CPU is busy over a half-second window, for at most settleFor. The
// run before may leave work behind that is not the next one's (Postgres
// writing out the previous subject's pages, the kernel freeing a dropped
// database's), and so may anything else on the machine. It reports how
// busy the last window was and whether it settled; without /proc/stat it
// cannot tell, and says settled.
func settle(ctx context.Context) (busy float64, settled bool) {
	deadline := time.Now().Add(settleFor)
	for {
		before, err := readMachine()
		if err != nil {
			return 0, true
		}
		select {
		case <-ctx.Done():
			return 0, false
		case <-time.After(settleWindow):
		}
		after, err := readMachine()
		if err != nil {
			return 0, true
		}
		d := after.sub(before)
		busy = share(d.busy, d.all)
		if d.all > 0 && busy < quietShare {
			return busy, true
		}
		if time.Now().After(deadline) {
			return busy, false
		}
	}
}

const (
	quietShare   = 3.0 // % of the machine's CPU
	settleWindow = 500 * time.Millisecond
	settleFor    = 20 * time.Second
)
