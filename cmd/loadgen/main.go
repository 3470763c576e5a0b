// Command loadgen drives moderator's webhook endpoint the way Stream does, to
// measure throughput and latency over loopback.
//
// Usage:
//
//	go run ./cmd/loadgen -url http://127.0.0.1:8080/webhooks/stream \
//	    -rate 500 -duration 30s -concurrency 64 -key dev-key -secret dev-secret \
//	    [-n 100000] [-body FILE] [-gzip] [-dup 0.0] [-warmup 2s] [-json]
//
// Every request is a realistic message.new event with unique ids and varied
// text of about 250 characters (some with links, mentions, shouting, spam or
// insults), so the service's deduplication, which keys on X-Webhook-Id and on
// the body hash, treats each one as new. It is signed exactly like Stream:
// X-Signature is the lowercase hex HMAC-SHA256 of the uncompressed body keyed
// with the secret, and X-Api-Key, X-Webhook-Id and X-Webhook-Attempt are set.
// With -gzip the body is sent gzip-compressed (Content-Encoding: gzip), still
// signed over the uncompressed bytes. With -dup F, a fraction F of the requests
// re-send an earlier body with its webhook id (as a Stream retry would, with
// X-Webhook-Attempt: 2) to exercise deduplication. With -body FILE the bodies
// come from a template instead (see the -body flag). All bodies are built and
// signed before the run starts, so generating them costs nothing during it.
//
// The load is open-loop: request i is scheduled at start + i/rate and its
// latency is measured from that scheduled time, not from when a worker got
// round to sending it. When all workers are busy the queueing delay therefore
// shows up in the latency (and separately as "lateness") instead of silently
// lowering the rate, which avoids coordinated omission. -rate 0 runs closed
// loop instead: each worker sends as soon as its previous request finishes,
// which finds the maximum throughput at the given concurrency.
//
// A run stops when -n requests (warm-up included) have been sent or when the
// warm-up plus -duration has elapsed, whichever comes first; requests in
// flight then finish (within -timeout). Requests scheduled before the end
// that no worker could start in time are reported as missed. Requests sent
// during -warmup are not measured, but their failures still count.
//
// The report gives the requests sent and completed, the count per HTTP
// status, transport errors by kind, the achieved rate and the latency
// percentiles p50, p90, p99, p99.9 and max (exact, over all samples), both
// from the scheduled time (the figure to quote) and from the actual send
// start (the server's response time alone, without this tool's lateness).
// -json prints a single JSON object on stdout instead. The exit status is 1 when any
// request failed at the transport level or, with -expect-200 (the default),
// got a status other than 200; 2 on bad flags.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var uerr usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &uerr):
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// usageError marks a bad command line, so that main can exit with status 2
// as flag parsing conventionally does.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// config is the command line, validated.
type config struct {
	url         string
	rate        float64 // requests per second; 0 means closed loop
	duration    time.Duration
	warmup      time.Duration
	timeout     time.Duration
	concurrency int
	n           int // total requests including warm-up; 0 means derived
	key         string
	secret      string
	bodyFile    string
	gzip        bool
	dup         float64
	seed        uint64
	json        bool
	expect200   bool
	// streamRetries, databaseURL and hostileGzipRate: see stream.go.
	streamRetries   bool
	databaseURL     string
	hostileGzipRate float64
}

const (
	// defaultClosedLoopN bounds a closed-loop run given no -n: the bodies
	// are pre-built, so the count must be known before the run.
	defaultClosedLoopN = 100_000
	// maxDerivedN caps the count derived from -rate and -duration, so that
	// a large rate does not pre-build gigabytes of bodies by accident.
	// An explicit -n is obeyed.
	maxDerivedN = 500_000
)

// parseConfig reads the flags. The key and secret fall back to
// STREAM_API_KEY and STREAM_API_SECRET so that they need not appear on a
// command line, then to the development defaults.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: loadgen [flags]\n\n"+
			"Sends signed Stream message.new webhooks at a set rate and concurrency and\n"+
			"prints throughput and latency percentiles (see go doc ./cmd/loadgen).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8080/webhooks/stream", "webhook `URL` to POST to")
	fs.Float64Var(&c.rate, "rate", 500, "target requests per second, scheduled open-loop; 0 sends as fast as -concurrency allows (closed loop)")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "measured run time, after the warm-up")
	fs.DurationVar(&c.warmup, "warmup", 0, "unmeasured warm-up time before -duration, at the same rate")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.IntVar(&c.concurrency, "concurrency", 64, "number of workers, hence the most requests in flight")
	fs.IntVar(&c.n, "n", 0, fmt.Sprintf("most requests to send, warm-up included (default: all that -rate schedules in -warmup plus -duration, at most %d; %d with -rate 0)", maxDerivedN, defaultClosedLoopN))
	fs.StringVar(&c.key, "key", "", "API `key` sent as X-Api-Key (default $STREAM_API_KEY, else dev-key)")
	fs.StringVar(&c.secret, "secret", "", "API `secret` that signs bodies (default $STREAM_API_SECRET, else dev-secret)")
	fs.StringVar(&c.bodyFile, "body", "", "template `FILE` for bodies instead of generated events; placeholders {{seq}} {{id}} {{user_id}} {{text}} {{now}} are replaced per request ({{text}} JSON-escaped, without quotes); without any, message.id is replaced in the JSON")
	fs.BoolVar(&c.gzip, "gzip", false, "gzip the bodies (Content-Encoding: gzip); the signature stays over the uncompressed bytes")
	fs.Float64Var(&c.dup, "dup", 0, "`fraction` of requests that re-send an earlier body and webhook id, in [0, 1)")
	fs.Uint64Var(&c.seed, "seed", 0, "random seed for generated bodies (0: a new one per run; a fixed seed repeats ids, which the service then deduplicates across runs)")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object on stdout instead of the text report")
	fs.BoolVar(&c.expect200, "expect-200", true, "exit non-zero when any response is not 200")
	fs.BoolVar(&c.streamRetries, "stream-retries", false, "retry a request not answered 200 as Stream does (about 5 and 12 s after its first attempt), then drop it; report events acknowledged and dropped, and exit non-zero when any is dropped (or lost)")
	fs.StringVar(&c.databaseURL, "database-url", "", "with -stream-retries: after the run, count the events found in this database (`URL`) until every acknowledged one is there, and report lost events, time to drain and replay rate")
	fs.Float64Var(&c.hostileGzipRate, "hostile-gzip-rate", 0, "also send this many gzip bombs per `second` (8 KB that inflate to 8 MiB, bad signature), not counted in the figures")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, usageError{err}
	}
	if fs.NArg() > 0 {
		return c, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	c.key = cmp.Or(c.key, getenv("STREAM_API_KEY"), "dev-key")
	c.secret = cmp.Or(c.secret, getenv("STREAM_API_SECRET"), "dev-secret")
	if err := c.validate(); err != nil {
		return c, usageError{err}
	}
	return c, nil
}

// validate names the first bad flag.
func (c *config) validate() error {
	u, err := url.Parse(c.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q: want an http or https URL", c.url)
	}
	switch {
	case c.rate < 0:
		return fmt.Errorf("-rate %v: must not be negative", c.rate)
	case c.duration <= 0:
		return fmt.Errorf("-duration %v: must be positive", c.duration)
	case c.warmup < 0:
		return fmt.Errorf("-warmup %v: must not be negative", c.warmup)
	case c.timeout <= 0:
		return fmt.Errorf("-timeout %v: must be positive", c.timeout)
	case c.concurrency < 1:
		return fmt.Errorf("-concurrency %d: must be at least 1", c.concurrency)
	case c.n < 0:
		return fmt.Errorf("-n %d: must not be negative", c.n)
	case c.dup < 0 || c.dup >= 1:
		return fmt.Errorf("-dup %v: must be in [0, 1)", c.dup)
	case c.hostileGzipRate < 0:
		return fmt.Errorf("-hostile-gzip-rate %v: must not be negative", c.hostileGzipRate)
	case c.databaseURL != "" && !c.streamRetries:
		return fmt.Errorf("-database-url: only with -stream-retries")
	}
	return nil
}

// requestCount is how many requests to pre-build: what the rate can send
// in the warm-up and the duration, or -n if that is smaller. The second
// result tells whether a count derived without -n was capped.
func (c *config) requestCount() (n int, capped bool) {
	if c.rate == 0 {
		if c.n > 0 {
			return c.n, false
		}
		return defaultClosedLoopN, false
	}
	scheduled := int(math.Ceil(c.rate * (c.warmup + c.duration).Seconds()))
	switch {
	case c.n > 0:
		return max(1, min(c.n, scheduled)), false
	case scheduled > maxDerivedN:
		return maxDerivedN, true
	}
	return max(1, scheduled), false
}

// errFailed reports a run in which some requests failed; the report has the
// details.
var errFailed = errors.New("requests failed")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	n, capped := cfg.requestCount()
	if capped {
		fmt.Fprintf(stderr, "loadgen: pre-building at most %d bodies; pass -n to send more\n", n)
	}

	gen, err := newGenerator(cfg, stderr)
	if err != nil {
		return err
	}
	began := time.Now()
	plan, err := gen.build(n, cfg.dup)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "loadgen: built %d requests (%d unique, %.0f bytes average) in %v\n",
		len(plan.slots), plan.unique, plan.avgSize(), time.Since(began).Round(time.Millisecond))

	client := newClient(cfg.concurrency, cfg.timeout)
	defer client.CloseIdleConnections()
	var retry *retrier
	if cfg.streamRetries {
		retry = newRetrier()
	}
	hostile := &hostileGzip{status: map[int]int{}}
	var hostileDone sync.WaitGroup
	if cfg.hostileGzipRate > 0 {
		until := time.Now().Add(cfg.warmup + cfg.duration)
		hostileDone.Go(func() { hostile.run(ctx, cfg.url, cfg.key, cfg.hostileGzipRate, until) })
	}
	res := runLoad(ctx, loadParams{
		url:         cfg.url,
		key:         cfg.key,
		gzip:        cfg.gzip,
		rate:        cfg.rate,
		concurrency: cfg.concurrency,
		warmup:      cfg.warmup,
		duration:    cfg.duration,
	}, plan.slots, client, retry)
	hostileDone.Wait()

	sum := summarize(cfg, res)
	if retry != nil {
		retry.wait()
		d := retry.report(plan.unique)
		if cfg.databaseURL != "" {
			if err := countRecorded(ctx, cfg.databaseURL, plan.ids(), &d); err != nil {
				return err
			}
		}
		sum.Delivery = &d
	}
	if cfg.hostileGzipRate > 0 {
		sum.hostile = hostile
	}
	if cfg.json {
		if err := sum.writeJSON(stdout); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	} else if err := sum.writeText(stdout); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if d := sum.Delivery; d != nil {
		if d.Dropped > 0 || d.Lost > 0 {
			return fmt.Errorf("%d events dropped by the sender, %d lost: %w", d.Dropped, d.Lost, errFailed)
		}
		return nil
	}
	if bad := sum.failures(cfg.expect200); bad > 0 {
		return fmt.Errorf("%d %w (%d transport errors, %d non-200 responses)",
			bad, errFailed, sum.transportErrors(), sum.non200())
	}
	return nil
}
