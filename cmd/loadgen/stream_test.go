package main

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestRetrierLikeStream: an event refused at first is acknowledged on a
// retry, with its attempt number; one refused every time is dropped after
// Stream's last retry.
func TestRetrierLikeStream(t *testing.T) {
	saved := streamRetryAt
	streamRetryAt = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}
	t.Cleanup(func() { streamRetryAt = saved })

	var mu sync.Mutex
	attempts := map[string][]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Webhook-Id")
		mu.Lock()
		attempts[id] = append(attempts[id], r.Header.Get("X-Webhook-Attempt"))
		mu.Unlock()
		if id == "never" || r.Header.Get("X-Webhook-Attempt") == "1" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"status":"spooled"}`))
	}))
	defer srv.Close()
	r := &runner{p: loadParams{url: srv.URL, key: "k"}, client: srv.Client()}
	rt := newRetrier()
	for _, id := range []string{"later", "never"} {
		s := slot{req: &request{webhookID: id, signature: "s", body: []byte("{}")}}
		status, answer, err := r.send(s, 1)
		rt.first(r, s, time.Now(), status, answer, err)
	}
	rt.wait()
	d := rt.report(2)
	if d.Acked != 1 || d.Retried != 1 || d.Dropped != 1 || d.Answers["spooled"] != 1 {
		t.Fatalf("report %+v, want one acknowledged (spooled) on a retry and one dropped", d)
	}
	if got := attempts["never"]; len(got) != 3 || got[2] != "3" {
		t.Errorf("attempts of the refused event: %v, want 1, 2, 3", got)
	}
}
