package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// newClient returns a client tuned for loopback load: one idle connection
// kept per worker so that connections are reused rather than redialled
// (which would measure TCP set-up and exhaust ephemeral ports), no
// environment proxy, and no Accept-Encoding negotiation, whose transparent
// decompression would add work the service's real caller does not do.
func newClient(concurrency int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: (&net.Dialer{
				Timeout:   5 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			MaxIdleConns:        concurrency,
			MaxIdleConnsPerHost: concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
	}
}

// loadParams are the run's target and shape.
type loadParams struct {
	url         string
	key         string
	gzip        bool
	rate        float64 // 0: closed loop
	concurrency int
	warmup      time.Duration
	duration    time.Duration
}

// tally is what one worker saw, in one phase (warm-up or measured). Each
// worker owns its tallies, so recording takes no lock; runLoad merges them
// at the end.
type tally struct {
	sent      int
	dups      int
	status    map[int]int
	errs      map[string]int
	errSample map[string]string // the first error of each kind, for the report
	latency   []time.Duration   // completion minus scheduled time, per response
	response  []time.Duration   // completion minus start, per response
	lateness  []time.Duration   // start minus scheduled time, per send
	lastDone  time.Time
}

func newTally(capacity int) *tally {
	return &tally{
		status:    make(map[int]int),
		errs:      make(map[string]int),
		errSample: make(map[string]string),
		latency:   make([]time.Duration, 0, capacity),
		response:  make([]time.Duration, 0, capacity),
		lateness:  make([]time.Duration, 0, capacity),
	}
}

func (t *tally) merge(o *tally) {
	t.sent += o.sent
	t.dups += o.dups
	for k, v := range o.status {
		t.status[k] += v
	}
	for k, v := range o.errs {
		t.errs[k] += v
		if _, ok := t.errSample[k]; !ok {
			t.errSample[k] = o.errSample[k]
		}
	}
	t.latency = append(t.latency, o.latency...)
	t.response = append(t.response, o.response...)
	t.lateness = append(t.lateness, o.lateness...)
	if o.lastDone.After(t.lastDone) {
		t.lastDone = o.lastDone
	}
}

// completed is the number of requests that got an HTTP response.
func (t *tally) completed() int {
	n := 0
	for _, v := range t.status {
		n += v
	}
	return n
}

// loadResult is a whole run.
type loadResult struct {
	warm, measured *tally
	start          time.Time
	measureStart   time.Time
	// missed counts requests scheduled before the end that no worker
	// could start before it: the latency they would have had is unknown
	// but at least their lateness, so the report shows them.
	missed      int
	interrupted bool
}

// runner is the state the workers share.
type runner struct {
	p            loadParams
	slots        []slot
	client       *http.Client
	start        time.Time
	measureStart time.Time
	end          time.Time
	next         atomic.Int64
	missed       atomic.Int64
	retry        *retrier // nil unless -stream-retries
}

// runLoad sends the slots in order, at p.rate per second from now (or as
// fast as p.concurrency workers allow when the rate is 0), until they run
// out, the warm-up plus the duration elapses or ctx is done. Requests in
// flight at the end complete, within the client's timeout.
func runLoad(ctx context.Context, p loadParams, slots []slot, client *http.Client, retry *retrier) loadResult {
	r := &runner{p: p, slots: slots, client: client, start: time.Now(), retry: retry}
	r.measureStart = r.start.Add(p.warmup)
	r.end = r.measureStart.Add(p.duration)

	perWorker := len(slots)/p.concurrency + 1
	warm := make([]*tally, p.concurrency)
	measured := make([]*tally, p.concurrency)
	var wg sync.WaitGroup
	for i := range p.concurrency {
		warm[i], measured[i] = newTally(0), newTally(perWorker)
		wg.Go(func() { r.work(ctx, warm[i], measured[i]) })
	}
	wg.Wait()

	res := loadResult{
		warm:         newTally(0),
		measured:     newTally(len(slots)),
		start:        r.start,
		measureStart: r.measureStart,
		missed:       int(r.missed.Load()),
		interrupted:  ctx.Err() != nil,
	}
	for i := range p.concurrency {
		res.warm.merge(warm[i])
		res.measured.merge(measured[i])
	}
	return res
}

// work is one worker: it claims the next slot, waits for its scheduled
// time, sends it and records the outcome, until the run ends.
func (r *runner) work(ctx context.Context, warm, measured *tally) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for ctx.Err() == nil {
		i := r.next.Add(1) - 1
		if i >= int64(len(r.slots)) {
			return
		}
		var sched time.Time
		if r.p.rate > 0 {
			// Open loop: the schedule is fixed in advance, so a worker
			// that claims a slot late measures from when it was due.
			sched = r.start.Add(time.Duration(float64(i) / r.p.rate * float64(time.Second)))
			if !sched.Before(r.end) {
				return
			}
			if d := time.Until(sched); d > 0 {
				timer.Reset(d)
				select {
				case <-ctx.Done():
					timer.Stop()
					return
				case <-timer.C:
				}
			}
		} else {
			sched = time.Now()
		}
		began := time.Now()
		if !began.Before(r.end) {
			if r.p.rate > 0 {
				r.missed.Add(1)
				continue // count the rest of the overdue slots too
			}
			return
		}

		t := measured
		if sched.Before(r.measureStart) {
			t = warm
		}
		s := r.slots[i]
		t.sent++
		if s.dup {
			t.dups++
		}
		t.lateness = append(t.lateness, max(0, began.Sub(sched)))
		status, answer, err := r.send(s, attemptOf(s))
		done := time.Now()
		if r.retry != nil {
			r.retry.first(r, s, sched, status, answer, err)
		}
		if err != nil {
			kind := errorKind(err)
			t.errs[kind]++
			if _, ok := t.errSample[kind]; !ok {
				t.errSample[kind] = err.Error()
			}
			continue
		}
		t.status[status]++
		t.latency = append(t.latency, done.Sub(sched))
		t.response = append(t.response, done.Sub(began))
		t.lastDone = done
	}
}

// attemptOf is the X-Webhook-Attempt of a slot's first send: 2 for a
// re-sent duplicate, as a Stream retry.
func attemptOf(s slot) int {
	if s.dup {
		return 2
	}
	return 1
}

// send posts one slot's request with Stream's headers and reads the
// response, so that the connection is reused; it returns the status and
// the answer's "status" field (recorded, spooled …). It deliberately
// ignores the run's context: a request in flight when the run is
// interrupted completes (within the client timeout), so that it is counted
// rather than reported as a spurious error.
func (r *runner) send(s slot, attempt int) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, r.p.url, bytes.NewReader(s.req.body))
	if err != nil {
		return 0, "", fmt.Errorf("new request: %w", err)
	}
	// Canonical keys set directly, skipping canonicalisation per request.
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["X-Api-Key"] = []string{r.p.key}
	h["X-Signature"] = []string{s.req.signature}
	h["X-Webhook-Id"] = []string{s.req.webhookID}
	h["X-Webhook-Attempt"] = []string{strconv.Itoa(attempt)}
	if r.p.gzip {
		h["Content-Encoding"] = []string{"gzip"}
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, "", fmt.Errorf("read response: %w", err)
	}
	var answer struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(body, &answer)
	return resp.StatusCode, answer.Status, nil
}

// errorKind names a transport error's cause for the report, so that a run
// that exhausted ports reads differently from one whose server went away.
func errorKind(err error) string {
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &nerr) && nerr.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection_reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken_pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_local_port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other"
}
