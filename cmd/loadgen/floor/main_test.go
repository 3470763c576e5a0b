package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"moderator/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// TestFloorCommitsOnceBeforeAnswering: every signed body is in the table
// when its 200 arrives, once however often it is sent; a bad signature
// writes nothing.
func TestFloorCommitsOnceBeforeAnswering(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, storetest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE floor_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		webhook_id text NOT NULL UNIQUE, body jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := newCommitter(pool)
	go c.run(runCtx)
	secret := []byte("s3cret")
	srv := httptest.NewServer(handler(secret, c))
	defer srv.Close()

	post := func(id string, body []byte, sig string) int {
		return postTo(t, srv.URL, id, body, sig)
	}
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Appendf(nil, `{"type":"message.new","message":{"id":"m%d","text":"hi"}}`, i)
			for range 2 { // a retry: the same id twice
				if got := post(fmt.Sprint("w", i), body, sign(secret, body)); got != http.StatusOK {
					t.Errorf("webhook %d: got %d, want 200", i, got)
				}
			}
		})
	}
	wg.Wait()
	body := []byte(`{"type":"message.new"}`)
	if got := post("forged", body, sign([]byte("other"), body)); got != http.StatusUnauthorized {
		t.Errorf("forged: got %d, want 401", got)
	}
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM floor_events").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != n {
		t.Errorf("got %d rows, want %d (one per webhook id, none for the forged one)", rows, n)
	}

	// The before-send path answers {} to a signed body and writes nothing;
	// a forged one is refused.
	body = []byte(`{"message":{"id":"bs","text":"hi"},"user":{"id":"u"}}`)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/stream/before-send", bytes.NewReader(body))
	req.Header.Set("X-Signature", sign(secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(answer) != "{}" {
		t.Errorf("before-send: %d %q, want 200 {}", resp.StatusCode, answer)
	}
	if got := postTo(t, srv.URL+"/webhooks/stream/before-send", "bs-forged", body, sign([]byte("other"), body)); got != http.StatusUnauthorized {
		t.Errorf("forged before-send: got %d, want 401", got)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM floor_events").Scan(&rows); err != nil || rows != n {
		t.Errorf("rows after the before-send requests: %d (%v), want %d", rows, err, n)
	}
}

// postTo posts body to url signed sig under webhook id, and returns the
// status.
func postTo(t *testing.T, url, id string, body []byte, sig string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("X-Signature", sig)
	req.Header.Set("X-Webhook-Id", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
