package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// summary is the report of a run; its JSON form is the -json output, so
// its field names are an interface for scripts.
type summary struct {
	URL         string  `json:"url"`
	TargetRPS   float64 `json:"target_rps"` // 0: closed loop
	Concurrency int     `json:"concurrency"`
	DurationS   float64 `json:"duration_s"`
	WarmupS     float64 `json:"warmup_s"`
	Gzip        bool    `json:"gzip"`
	Dup         float64 `json:"dup"`

	// The measured phase, after the warm-up.
	Sent        int            `json:"sent"`
	Completed   int            `json:"completed"`
	Duplicates  int            `json:"duplicates"`
	Missed      int            `json:"missed"`
	Status      map[string]int `json:"status"`
	Errors      map[string]int `json:"errors"`
	ElapsedS    float64        `json:"elapsed_s"`
	AchievedRPS float64        `json:"achieved_rps"`
	LatencyMS   distribution   `json:"latency_ms"`  // from the scheduled send time
	ResponseMS  distribution   `json:"response_ms"` // from the actual send start
	LatenessMS  distribution   `json:"lateness_ms"` // actual minus scheduled start

	Warmup      phase `json:"warmup"`
	Interrupted bool  `json:"interrupted"`
	OK          bool  `json:"ok"`
	// Delivery is set with -stream-retries.
	Delivery *deliveryReport `json:"delivery,omitempty"`

	errSamples map[string]string
	hostile    *hostileGzip
}

// phase counts the warm-up, whose failures count but whose timings do not.
type phase struct {
	Sent      int            `json:"sent"`
	Completed int            `json:"completed"`
	Status    map[string]int `json:"status"`
	Errors    map[string]int `json:"errors"`
}

// distribution holds percentiles in milliseconds.
type distribution struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// summarize turns a run into its report. It sorts the result's samples in
// place.
func summarize(cfg config, res loadResult) summary {
	m := res.measured
	s := summary{
		URL:         cfg.url,
		TargetRPS:   cfg.rate,
		Concurrency: cfg.concurrency,
		DurationS:   cfg.duration.Seconds(),
		WarmupS:     cfg.warmup.Seconds(),
		Gzip:        cfg.gzip,
		Dup:         cfg.dup,
		Sent:        m.sent,
		Completed:   m.completed(),
		Duplicates:  m.dups,
		Missed:      res.missed,
		Status:      statusKeys(m.status),
		Errors:      maps.Clone(m.errs),
		LatencyMS:   distributionOf(m.latency),
		ResponseMS:  distributionOf(m.response),
		LatenessMS:  distributionOf(m.lateness),
		Warmup: phase{
			Sent:      res.warm.sent,
			Completed: res.warm.completed(),
			Status:    statusKeys(res.warm.status),
			Errors:    maps.Clone(res.warm.errs),
		},
		Interrupted: res.interrupted,
		errSamples:  maps.Clone(m.errSample),
	}
	for k, v := range res.warm.errSample {
		if _, ok := s.errSamples[k]; !ok {
			s.errSamples[k] = v
		}
	}
	if m.lastDone.After(res.measureStart) {
		elapsed := m.lastDone.Sub(res.measureStart)
		s.ElapsedS = elapsed.Seconds()
		s.AchievedRPS = float64(s.Completed) / elapsed.Seconds()
	}
	s.OK = s.failures(cfg.expect200) == 0
	return s
}

func statusKeys(m map[int]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[strconv.Itoa(k)] = v
	}
	return out
}

// transportErrors counts the requests, warm-up included, that got no HTTP
// response.
func (s *summary) transportErrors() int {
	n := 0
	for _, v := range s.Errors {
		n += v
	}
	for _, v := range s.Warmup.Errors {
		n += v
	}
	return n
}

// non200 counts the responses, warm-up included, whose status was not 200.
func (s *summary) non200() int {
	n := 0
	for _, m := range []map[string]int{s.Status, s.Warmup.Status} {
		for k, v := range m {
			if k != "200" {
				n += v
			}
		}
	}
	return n
}

// failures counts the requests that make the run fail.
func (s *summary) failures(expect200 bool) int {
	n := s.transportErrors()
	if expect200 {
		n += s.non200()
	}
	return n
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted: the smallest sample that at least p percent of the samples do
// not exceed. It returns 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps float error (99.9 × 1000 / 100 = 999.0000000000001)
	// from pushing the rank up by one.
	rank := int(math.Ceil(p*float64(len(sorted))/100 - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// distributionOf sorts samples in place and returns their percentiles.
func distributionOf(samples []time.Duration) distribution {
	if len(samples) == 0 {
		return distribution{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	return distribution{
		P50:  ms(percentile(samples, 50)),
		P90:  ms(percentile(samples, 90)),
		P99:  ms(percentile(samples, 99)),
		P999: ms(percentile(samples, 99.9)),
		Max:  ms(samples[len(samples)-1]),
		Mean: ms(sum / time.Duration(len(samples))),
	}
}

// ms converts to milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)) / 1000 }

func (s *summary) writeJSON(w io.Writer) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func (s *summary) writeText(w io.Writer) error {
	var b strings.Builder
	mode := fmt.Sprintf("rate %g/s (open loop)", s.TargetRPS)
	if s.TargetRPS == 0 {
		mode = "closed loop"
	}
	fmt.Fprintf(&b, "target      %s  %s  concurrency %d  duration %gs  warmup %gs  gzip %t  dup %g\n",
		s.URL, mode, s.Concurrency, s.DurationS, s.WarmupS, s.Gzip, s.Dup)
	if s.Warmup.Sent > 0 {
		fmt.Fprintf(&b, "warmup      sent %d  completed %d  status %s  errors %s (not measured)\n",
			s.Warmup.Sent, s.Warmup.Completed, counts(s.Warmup.Status), counts(s.Warmup.Errors))
	}
	fmt.Fprintf(&b, "requests    sent %d  completed %d  duplicates re-sent %d  missed %d\n",
		s.Sent, s.Completed, s.Duplicates, s.Missed)
	fmt.Fprintf(&b, "status      %s\n", counts(s.Status))
	fmt.Fprintf(&b, "errors      %s\n", counts(s.Errors))
	for _, k := range slices.Sorted(maps.Keys(s.errSamples)) {
		fmt.Fprintf(&b, "            %s: %s\n", k, s.errSamples[k])
	}
	fmt.Fprintf(&b, "throughput  %.1f req/s completed over %.3fs\n", s.AchievedRPS, s.ElapsedS)
	l := s.LatencyMS
	fmt.Fprintf(&b, "latency     p50 %.3fms  p90 %.3fms  p99 %.3fms  p99.9 %.3fms  max %.3fms  mean %.3fms (from scheduled send time)\n",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	l = s.ResponseMS
	fmt.Fprintf(&b, "response    p50 %.3fms  p90 %.3fms  p99 %.3fms  p99.9 %.3fms  max %.3fms  mean %.3fms (from actual send start)\n",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	if s.TargetRPS > 0 {
		l = s.LatenessMS
		fmt.Fprintf(&b, "lateness    p50 %.3fms  p99 %.3fms  max %.3fms (send start after scheduled time)\n", l.P50, l.P99, l.Max)
	}
	if s.Missed > 0 {
		fmt.Fprintf(&b, "warning     %d scheduled requests were never sent: the target (or this tool) did not keep up\n", s.Missed)
	}
	if s.Delivery != nil {
		s.Delivery.writeText(&b)
	}
	if s.hostile != nil {
		s.hostile.writeText(&b)
	}
	if s.Interrupted {
		b.WriteString("warning     interrupted before the end\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// counts formats a count map as "k: v, k: v" in key order, or "none".
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
