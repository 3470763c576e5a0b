package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// httpGet answers the status and body of a GET, failing the test on a
// transport error.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestMetricsOnTheirOwnListener(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{env: map[string]string{"MODERATOR_METRICS_ADDR": "127.0.0.1:0"}})
	addr, err := s.logs.waitFor(`"msg":"metrics listening","addr":"([^"]+)"`, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	// Not on the public port any more.
	if status, _ := httpGet(t, s.URL+"/metrics"); status != http.StatusNotFound {
		t.Errorf("GET /metrics on MODERATOR_ADDR: got %d, want 404", status)
	}
	status, body := httpGet(t, "http://"+addr+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics on MODERATOR_METRICS_ADDR: got %d", status)
	}
	info := regexp.MustCompile(`moderator_build_info\{commit="[^"]*",go="` + regexp.QuoteMeta(runtime.Version()) + `",version="[^"]+"\} 1`)
	if !info.MatchString(body) {
		t.Errorf("no moderator_build_info line with the Go version in:\n%s", grepLines(body, "build_info"))
	}
	// Counters exist at zero before anything happened, so alerts see the
	// first increment.
	for _, want := range []string{
		`moderator_actions_total{outcome="failed",type="ban"} 0`,
		`moderator_action_rate_limited_total{type="flag"} 0`,
		`moderator_webhook_signature_failures_total{reason="mismatch"} 0`,
		`moderator_webhooks_total{outcome="unavailable"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if status, _ := httpGet(t, "http://"+addr+"/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz on the metrics listener: got %d, want 200", status)
	}
	if status, _ := httpGet(t, "http://"+addr+"/webhooks/stream"); status == http.StatusOK {
		t.Errorf("the metrics listener serves the webhook")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// TestIntakeMetrics: each recorded webhook is counted in the intake's
// histograms (its wait for a flusher, its batch), which are fed after the
// answers, so the test waits for them; and the loads of counter marks
// the replica's copies could not spare, and the batches they let it judge
// ahead, are counted.
func TestIntakeMetrics(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	// A user and channel of this run's own, so that the counts of copy
	// loads are this server's first; the account is an hour old, so that
	// the starter pack's raid rule reads the channel's young count.
	run := fmt.Sprintf("intake-metrics-%d", time.Now().UnixNano())
	for i := range 3 {
		id := fmt.Sprintf("%s-%d", run, i)
		body := fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:%s","created_at":"2026-11-24T10:00:0%dZ",`+
			`"message":{"id":%q,"text":"hello","user":{"id":%q,"created_at":"2026-11-24T09:00:00Z"}},"user":{"id":%q,"created_at":"2026-11-24T09:00:00Z"}}`, run, i, id, run, run)
		if status, resp := s.send(t, delivery{body: body, webhookID: id}); status != http.StatusOK {
			t.Fatalf("webhook %d: %d %v", i, status, resp)
		}
	}
	count := regexp.MustCompile(`(?m)^moderator_intake_wait_seconds_count (\d+)$`)
	batches := func(path string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^moderator_intake_batch_seconds_count\{path="` + path + `"\} (\d+)$`)
	}
	records := regexp.MustCompile(`(?m)^moderator_intake_batch_records_sum (\d+)$`)
	var body string
	// A batch's records are observed last, after its wait and its time.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		body = s.get(t, "/metrics")
		if m := records.FindStringSubmatch(body); m != nil && m[1] == "3" {
			break
		}
	}
	if m := count.FindStringSubmatch(body); m == nil || m[1] != "3" {
		t.Fatalf("want 3 waits observed:\n%s", grepLines(body, "moderator_intake_"))
	}
	if m := records.FindStringSubmatch(body); m == nil || m[1] != "3" {
		t.Errorf("want 3 records in the batches:\n%s", grepLines(body, "moderator_intake_batch_records"))
	}
	// The first message is judged after its history read; the next two,
	// judged ahead from the copies, match no rule and commit with their
	// insert.
	for path, want := range map[string]string{"read": "1", "insert": "2"} {
		if m := batches(path).FindStringSubmatch(body); m == nil || m[1] != want {
			t.Errorf("want %s batches of path %s timed:\n%s", want, path, grepLines(body, "moderator_intake_batch_seconds_count"))
		}
	}
	// One load of the user's marks, one of the channel's young ones and
	// one of the user's strikes (the flood rule reads them past its
	// count); the next two messages count from the copies.
	for _, kind := range []string{"user", "channel", "strikes"} {
		loads := regexp.MustCompile(`(?m)^moderator_intake_copy_loads_total\{kind="` + kind + `"\} (\d+)$`).FindStringSubmatch(body)
		if loads == nil || loads[1] != "1" {
			t.Errorf("want 1 copy load of kind %s:\n%s", kind, grepLines(body, "moderator_intake_copy"))
		}
	}
	// Those two are judged ahead, and commit in one round trip.
	if ahead := regexp.MustCompile(`(?m)^moderator_intake_judged_ahead_total (\d+)$`).FindStringSubmatch(body); ahead == nil || ahead[1] != "2" {
		t.Errorf("want 2 batches judged ahead:\n%s", grepLines(body, "moderator_intake_"))
	}
	if misses := regexp.MustCompile(`(?m)^moderator_intake_copy_misses_total (\d+)$`).FindStringSubmatch(body); misses == nil || misses[1] != "0" {
		t.Errorf("want no copy misses:\n%s", grepLines(body, "moderator_intake_copy"))
	}
}
