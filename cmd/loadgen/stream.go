package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// streamRetryAt are the times after its first attempt at which Stream
// tries a webhook again when it got no 200 (STREAM_API.md: about 5 and
// 12 s), after which it drops it.
var streamRetryAt = []time.Duration{5 * time.Second, 12 * time.Second}

// retrier, with -stream-retries, delivers like Stream: an event not
// answered 200 is tried again at streamRetryAt, each attempt with its own
// X-Webhook-Attempt, then dropped. It counts the events acknowledged (a 200
// at some attempt), by the answer's status, and those dropped.
type retrier struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	acked   int
	retried int // acknowledged on a retry
	dropped int
	answers map[string]int // the "status" of the 200 that acknowledged each event
}

func newRetrier() *retrier { return &retrier{answers: map[string]int{}} }

// first takes the outcome of an event's first attempt, and schedules its
// retries when it failed.
func (t *retrier) first(r *runner, s slot, sched time.Time, status int, answer string, err error) {
	if s.dup {
		return // a re-sent duplicate is not an event of its own
	}
	if err == nil && status == http.StatusOK {
		t.ack(answer, false)
		return
	}
	t.wg.Go(func() {
		for i, at := range streamRetryAt {
			time.Sleep(time.Until(sched.Add(at)))
			status, answer, err := r.send(s, i+2)
			if err == nil && status == http.StatusOK {
				t.ack(answer, true)
				return
			}
		}
		t.mu.Lock()
		t.dropped++
		t.mu.Unlock()
	})
}

func (t *retrier) ack(answer string, retry bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.acked++
	t.answers[answer]++
	if retry {
		t.retried++
	}
}

// wait waits for the retries still pending.
func (t *retrier) wait() { t.wg.Wait() }

// deliveryReport is what the sender and the database say of the events,
// with -stream-retries and -database-url.
type deliveryReport struct {
	Events   int            `json:"events"`
	Acked    int            `json:"acknowledged"`
	Retried  int            `json:"acknowledged_on_retry"`
	Dropped  int            `json:"dropped_by_sender"`
	Answers  map[string]int `json:"answers"`
	Recorded int            `json:"recorded"` // events found in the database (-1 without -database-url)
	Lost     int            `json:"lost"`     // events sent and never recorded
	AtEnd    int            `json:"recorded_at_end"`
	DrainS   float64        `json:"drain_s"`   // from the end of the traffic until every acknowledged event was recorded
	ReplayPS float64        `json:"replay_ps"` // events recorded per second while draining
}

func (t *retrier) report(events int) deliveryReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	answers := make(map[string]int, len(t.answers))
	for k, v := range t.answers {
		answers[k] = v
	}
	return deliveryReport{Events: events, Acked: t.acked, Retried: t.retried, Dropped: t.dropped, Answers: answers,
		Recorded: -1, Lost: -1}
}

// countRecorded polls the database until every acknowledged event is in
// the events table, nothing more arrives for a minute, or ctx ends, and
// fills in the database's side of d.
func countRecorded(ctx context.Context, dbURL string, ids []string, d *deliveryReport) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("-database-url: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	count := func() (int, error) {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM events WHERE webhook_id = ANY($1)`, ids).Scan(&n)
		return n, err
	}
	start := time.Now()
	n, err := count()
	if err != nil {
		return fmt.Errorf("count recorded events: %w", err)
	}
	d.AtEnd = n
	last, lastChange := n, start
	for n < d.Acked && time.Since(lastChange) < time.Minute && ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		if n, err = count(); err != nil {
			return fmt.Errorf("count recorded events: %w", err)
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
	}
	d.Recorded, d.Lost = n, d.Events-n
	d.DrainS = lastChange.Sub(start).Seconds()
	if d.DrainS > 0 {
		d.ReplayPS = float64(n-d.AtEnd) / d.DrainS
	}
	return nil
}

func (d *deliveryReport) writeText(w io.Writer) {
	var answers []string
	for k, v := range d.Answers {
		answers = append(answers, fmt.Sprintf("%s %d", k, v))
	}
	fmt.Fprintf(w, "delivery    events %d  acknowledged %d (%s; %d on a retry)  dropped by the sender %d\n",
		d.Events, d.Acked, strings.Join(answers, ", "), d.Retried, d.Dropped)
	if d.Recorded >= 0 {
		fmt.Fprintf(w, "database    recorded %d  lost %d  (%d recorded when the traffic ended, the rest in %.1fs: %.0f/s)\n",
			d.Recorded, d.Lost, d.AtEnd, d.DrainS, d.ReplayPS)
	}
}

// hostileGzip, with -hostile-gzip-rate, sends that many gzip bombs a
// second beside the load: 8 KB that inflate to 8 MiB, under a known key
// and a wrong signature, as an attacker without the secret can. It counts
// their answers.
type hostileGzip struct {
	mu     sync.Mutex
	status map[int]int
	errs   int
}

func (h *hostileGzip) run(ctx context.Context, url, key string, rate float64, until time.Time) {
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = zw.Write(make([]byte, 8<<20))
	_ = zw.Close()
	bomb := zb.Bytes()
	client := &http.Client{Timeout: 10 * time.Second}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for time.Now().Before(until) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(bomb))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Content-Encoding", "gzip")
			req.Header.Set("X-Api-Key", key)
			req.Header.Set("X-Signature", strings.Repeat("0", 64))
			resp, err := client.Do(req)
			h.mu.Lock()
			defer h.mu.Unlock()
			if err != nil {
				h.errs++
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			h.status[resp.StatusCode]++
		})
	}
}

func (h *hostileGzip) writeText(w io.Writer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := map[string]int{}
	for k, v := range h.status {
		st[fmt.Sprint(k)] = v
	}
	fmt.Fprintf(w, "hostile     8 KB gzip bombs, bad signature: status %s  errors %d (not in the figures above)\n", counts(st), h.errs)
}
