// Command benchintake measures moderator's webhook intake against the
// minimal durable intake (cmd/loadgen/floor) under the same load, one after
// the other on the same machine and database server, and prints the
// throughputs, latencies and ratios. Because the machines this runs on are
// noisy, only the ratios of one run are meant to be compared with targets.
// `make bench/intake` builds the binaries and runs it.
//
//	benchintake -bin bin -database-url postgres://… [-policy NAME=DIR]… [-n 30000] [-rate 500] [-duration 30s] [-rounds 1]
//
// With -rounds N it measures every subject N times, a round after the
// other (so that a slow spell of the machine falls on all subjects of a
// round), and reports the median of each figure and, for the ratios, their
// range: each round's ratios are to that round's floor.
//
// For each subject (the floor, then moderator with each -policy, the
// starter pack by default) it creates a fresh database, starts the server,
// waits until it answers, runs loadgen open loop (-rate per second for
// -duration, then the before-send path at the same rate: the floor's is
// the minimal hook, answered without its database)
// and then closed loop (-rate 0, -n requests, 64 in flight), stops the
// server and drops the database. moderator runs in dry run, so actions are
// decided, enqueued and recorded but nothing is sent.
//
// The fixed-rate runs come first so that they measure the latency at a
// steady rate, not the aftermath of the closed loop's burst: after it,
// moderator's word indexer works through its backlog and autovacuum
// through a dozen tables, where the floor has one table and nothing in
// the background (docs/performance.md, 2026-12-05 night). -after-burst
// runs them after the closed loop instead, to measure that aftermath.
//
// It also reports the CPU each subject's closed-loop run cost per webhook
// (the server, its Postgres backends, the load tool; Linux, Postgres on the
// same machine) and the floor's over the subject's: a ratio that other work
// on the machine moves much less than the throughputs (see cpuUse).
//
// Before each run it waits for the machine to be quiet (see settle), and
// after them it reports what the rest of the machine used during the
// closed loops, with a warning naming the busiest other processes when
// they added more than a few percent to a subject's CPU: a forgotten shell loop
// starting psql five times a second, 15 % of the CPU, made the starter
// pack's p99 at 500/s half again as long and its closed loop a fifth
// slower (docs/performance.md, 2026-12-06 session 13).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "benchintake:", err)
		os.Exit(1)
	}
}

type config struct {
	bin, dbURL string
	policies   policyList
	n          int
	rate       int
	duration   time.Duration
	conc       int
	rounds     int
	// beforeSend is the body template of the before-send run ("" skips it).
	beforeSend string
	// afterBurst runs the fixed-rate runs after the closed loop.
	afterBurst bool
}

// policyList is the repeatable -policy NAME=DIR[+DIR…] flag: folders
// joined with + are laid over each other (later files win) into one.
type policyList [][2]string

func (p *policyList) String() string { return fmt.Sprint(*p) }
func (p *policyList) Set(v string) error {
	name, dir, ok := strings.Cut(v, "=")
	if !ok || name == "" || dir == "" {
		return fmt.Errorf("want NAME=DIR, got %q", v)
	}
	*p = append(*p, [2]string{name, dir})
	return nil
}

// result is one subject's runs, and the CPU of the closed-loop one:
// each also has a before-send run at the fixed rate.
type result struct {
	name         string
	closed, open loadSummary
	beforeSend   *loadSummary
	cpu          cpuUse
	openCPU      cpuUse // of the fixed-rate run (webhooks, not before-send)
	// intake and closedIntake are moderator's counts of its batches in
	// the fixed-rate run and in the closed loop (nil for the floor).
	intake, closedIntake *intakeCounts
}

// loadSummary is the part of loadgen's -json report used here.
type loadSummary struct {
	Completed int `json:"completed"`
	Warmup    struct {
		Completed int `json:"completed"`
	} `json:"warmup"`
	Status      map[string]int `json:"status"`
	AchievedRPS float64        `json:"achieved_rps"`
	LatencyMS   struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
	} `json:"latency_ms"`
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("benchintake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.bin, "bin", "bin", "folder holding the moderator, floor and loadgen binaries")
	fs.StringVar(&c.dbURL, "database-url", getenv("DATABASE_URL"), "a Postgres server's URL; a database per subject is created and dropped")
	fs.Var(&c.policies, "policy", "NAME=DIR[+DIR…]: measure moderator with this rules folder, or folders laid over each other (repeatable; default: bare="+bareDir+", starter=rules and heavy=rules+"+heavyDir+")")
	fs.IntVar(&c.n, "n", 30000, "requests of the closed-loop run")
	fs.IntVar(&c.rate, "rate", 500, "requests per second of the open-loop run")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "length of the open-loop run")
	fs.IntVar(&c.conc, "concurrency", 64, "requests in flight")
	fs.IntVar(&c.rounds, "rounds", 1, "measure every subject this many times, interleaved, and report the medians and ranges")
	fs.StringVar(&c.beforeSend, "before-send", beforeSendBody, "body template of the before-send run at -rate after each subject's webhook run at -rate (\"\": none)")
	fs.BoolVar(&c.afterBurst, "after-burst", false, "run the fixed-rate runs right after the closed loop instead of before it (the latency while the subject recovers from the burst)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.rounds < 1 {
		return errors.New("-rounds must be at least 1")
	}
	if c.dbURL == "" {
		return errors.New("DATABASE_URL (or -database-url) is required")
	}
	if len(c.policies) == 0 {
		c.policies = policyList{{"bare", bareDir}, {"starter", "rules"}, {"heavy", "rules+" + heavyDir}}
	}
	subjects := []string{"floor"}
	for _, p := range c.policies {
		subjects = append(subjects, p[0])
	}
	var rounds [][]result
	for round := range c.rounds {
		results, err := measureRound(ctx, c, subjects, round, stderr)
		if err != nil {
			return err
		}
		rounds = append(rounds, results)
	}
	report(stdout, c, rounds)
	return nil
}

// measureRound measures each subject once, the floor first.
func measureRound(ctx context.Context, c config, subjects []string, round int, stderr io.Writer) ([]result, error) {
	var results []result
	for i, name := range subjects {
		fmt.Fprintf(stderr, "benchintake: round %d of %d: %s …\n", round+1, c.rounds, name)
		var dir string
		if i > 0 {
			dir = c.policies[i-1][1]
		}
		r, err := measure(ctx, c, name, dir, stderr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// measure runs one subject on a database of its own.
func measure(ctx context.Context, c config, name, rulesDir string, stderr io.Writer) (result, error) {
	dbName := "bench_intake_" + name
	dbURL, drop, err := freshDatabase(ctx, c.dbURL, dbName)
	if err != nil {
		return result{}, err
	}
	defer drop()
	admin, err := pgx.Connect(ctx, c.dbURL)
	if err != nil {
		return result{}, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	addr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	if strings.Contains(rulesDir, "+") {
		merged, err := os.MkdirTemp("", "benchintake-rules-")
		if err != nil {
			return result{}, err
		}
		defer os.RemoveAll(merged)
		if err := layFolders(merged, strings.Split(rulesDir, "+")); err != nil {
			return result{}, err
		}
		rulesDir = merged
	}
	var cmd *exec.Cmd
	if name == "floor" {
		cmd = exec.CommandContext(ctx, filepath.Join(c.bin, "floor"), "-addr", addr, "-database-url", dbURL, "-secret", "dev-secret")
	} else {
		// A spool of its own: the default (.data/spool in the working
		// directory) would replay what an earlier run left there.
		spool, err := os.MkdirTemp("", "benchintake-spool-")
		if err != nil {
			return result{}, err
		}
		defer os.RemoveAll(spool)
		cmd = exec.CommandContext(ctx, filepath.Join(c.bin, "moderator"), "serve")
		cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "MODERATOR_ADDR="+addr, "MODERATOR_RULES_DIR="+rulesDir,
			"MODERATOR_SPOOL_DIR="+spool,
			"MODERATOR_DRY_RUN=true", "STREAM_API_KEY=dev-key", "STREAM_API_SECRET=dev-secret", "MODERATOR_LOG_LEVEL=warn")
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if err := waitReady(ctx, name, addr); err != nil {
		return result{}, fmt.Errorf("%w\n%s", err, logs.String())
	}
	r := result{name: name}
	runs := []func() error{
		func() error { return measureFixedRate(ctx, c, &r, addr, admin, dbName, cmd.Process.Pid) },
		func() error { return measureClosed(ctx, c, &r, addr, admin, dbName, cmd.Process.Pid) },
	}
	if c.afterBurst {
		runs[0], runs[1] = runs[1], runs[0]
	}
	for _, run := range runs {
		if busy, ok := settle(ctx); !ok && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "benchintake: %s: the machine is still %.1f %% busy after %s; measuring anyway\n", name, busy, settleFor)
		}
		if err := run(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// measureClosed runs the closed loop against target and keeps its figures
// and the CPU it cost (the server of pid, the database's backends, the
// load tool) in r.
func measureClosed(ctx context.Context, c config, r *result, addr string, admin *pgx.Conn, dbName string, pid int) error {
	count, err := countIntake(ctx, r.name, addr)
	if err != nil {
		return err
	}
	probe := startCPUProbe(ctx, admin, dbName, pid)
	closed, loadCPU, err := load(ctx, c, "http://"+addr+"/webhooks/stream", "-rate", "0", "-n", strconv.Itoa(c.n))
	if err != nil {
		return err
	}
	if r.closedIntake, err = count(); err != nil {
		return err
	}
	r.closed, r.cpu = closed, probe.stop(ctx)
	r.cpu.load, r.cpu.requests = loadCPU, closed.Completed+closed.Warmup.Completed
	if closed.Completed == 0 {
		return fmt.Errorf("the closed-loop run measured nothing: the 2 s warm-up took all %d requests; raise -n", c.n)
	}
	return nil
}

// measureFixedRate runs the open loop at -rate against the subject at addr
// and the before-send path at the same rate (the floor's is the minimal
// hook, see cmd/loadgen/floor), and keeps their figures in r, with the CPU
// the webhooks' run cost (as measureClosed) and, for moderator, its own
// count of that run's batches (intakeCounts).
func measureFixedRate(ctx context.Context, c config, r *result, addr string, admin *pgx.Conn, dbName string, pid int) error {
	target := "http://" + addr + "/webhooks/stream"
	count, err := countIntake(ctx, r.name, addr)
	if err != nil {
		return err
	}
	probe := startCPUProbe(ctx, admin, dbName, pid)
	open, loadCPU, err := load(ctx, c, target, "-rate", strconv.Itoa(c.rate), "-duration", c.duration.String())
	if err != nil {
		return err
	}
	r.open, r.openCPU = open, probe.stop(ctx)
	if r.intake, err = count(); err != nil {
		return err
	}
	r.openCPU.load, r.openCPU.requests = loadCPU, open.Completed+open.Warmup.Completed
	if c.beforeSend == "" {
		return nil
	}
	bs, _, err := load(ctx, c, target+"/before-send", "-rate", strconv.Itoa(c.rate), "-duration", c.duration.String(),
		"-body", c.beforeSend)
	if err != nil {
		return fmt.Errorf("before-send: %w", err)
	}
	r.beforeSend = &bs
	return nil
}

// beforeSendBody is the default body of the before-send run: a plain
// message the starter pack lets through, which is what nearly every
// message is.
const beforeSendBody = "cmd/loadgen/bodies/before_send_accept.json"

// load runs loadgen with the shared settings and extra flags, and returns
// its report and the CPU time it used.
func load(ctx context.Context, c config, target string, extra ...string) (loadSummary, time.Duration, error) {
	args := append([]string{"-url", target, "-key", "dev-key", "-secret", "dev-secret",
		"-concurrency", strconv.Itoa(c.conc), "-warmup", "2s", "-json"}, extra...)
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "loadgen"), args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	var s loadSummary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		return s, 0, fmt.Errorf("loadgen %v: %v (%v)\n%s", extra, err, runErr, errOut.String())
	}
	if runErr != nil {
		return s, 0, fmt.Errorf("loadgen %v: %v: statuses %v\n%s", extra, runErr, s.Status, errOut.String())
	}
	return s, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// waitReady polls the subject until it answers: moderator's /readyz, or any
// HTTP answer from the floor.
func waitReady(ctx context.Context, name, addr string) error {
	path := "/readyz"
	if name == "floor" {
		path = "/"
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + path)
		if err == nil {
			resp.Body.Close()
			if name == "floor" || resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("did not become ready within 60 s")
}

// freshDatabase creates database name on the server of serverURL (dropping
// a leftover of an interrupted run) and returns its URL and how to drop it.
func freshDatabase(ctx context.Context, serverURL, name string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", nil, err
	}
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
		conn.Close(context.Background())
	}
	return u.String(), drop, nil
}

// heavyDir holds the counter-heavy policy's rules, laid over the starter pack.
const heavyDir = "cmd/loadgen/benchintake/heavy"

// bareDir is a rules folder with no rules: the bare subject records every
// webhook and judges none, the ceiling of any policy's ratio (what
// recording costs beyond the floor's one-index insert).
const bareDir = "cmd/loadgen/benchintake/bare"

// layFolders copies the files of each folder (one level deep) into dst, in
// order, so a later folder's file replaces an earlier one of the same name.
func layFolders(dst string, dirs []string) error {
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
