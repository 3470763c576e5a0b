// Command floor is the minimal durable webhook intake that moderator's speed
// is measured against: it checks the signature (HMAC-SHA256 of the body),
// decodes the JSON, group-commits the body into a table with one unique
// index (the webhook id) and answers 200 only after the commit. It has no
// rules, counters, decisions or actions, so whatever moderator costs beyond
// it is the price of moderation. Its /before-send path is the minimal
// before-send hook: the same checks, answered without the database. `make bench/intake` runs both under the same
// load, one after the other, and prints the ratios.
//
//	go run ./cmd/loadgen/floor -addr 127.0.0.1:8090 -database-url "$DATABASE_URL" -secret dev-secret
//
// The group commit is the same shape as moderator's (store.Batcher): two
// flushers, each taking whatever is queued the moment it is free, up to 256
// bodies, in one INSERT … SELECT FROM unnest … ON CONFLICT DO NOTHING.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "Postgres connection string (DATABASE_URL)")
	secret := fs.String("secret", "dev-secret", "the API secret webhooks are signed with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbURL == "" {
		return errors.New("DATABASE_URL (or --database-url) is required")
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	pool, err := pgxpool.New(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS floor_events (
		id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		webhook_id  text NOT NULL UNIQUE,
		body        jsonb NOT NULL,
		received_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	c := newCommitter(pool)
	go c.run(ctx)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler([]byte(*secret), c), ReadHeaderTimeout: 5 * time.Second}
	logger.Info("listening", "addr", ln.Addr().String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// handler verifies, decodes and commits one webhook. A path ending in
// /before-send is the minimal before-send hook instead: verified and
// decoded, answered {} (accept) without the database, as moderator's
// answer never waits for it; its latency is what the machine itself
// gives such a hook (moderator's before-send target is an absolute 5 ms).
func handler(secret []byte, c *committer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		got, err := hex.DecodeString(r.Header.Get("X-Signature"))
		if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev struct {
			Type    string `json:"type"`
			Message struct {
				ID   string `json:"id"`
				Text string `json:"text"`
			} `json:"message"`
			User struct {
				ID string `json:"id"`
			} `json:"user"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "malformed", http.StatusBadRequest)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/before-send") {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{}`)
			return
		}
		if err := c.commit(r.Context(), r.Header.Get("X-Webhook-Id"), body); err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"recorded"}`)
	})
}

type pendingBody struct {
	webhookID string
	body      []byte
	done      chan error
}

// committer group-commits bodies: each of its flushers takes whatever is
// queued when it is free, so a lone request waits for nobody.
type committer struct {
	pool  *pgxpool.Pool
	queue chan pendingBody
}

func newCommitter(pool *pgxpool.Pool) *committer {
	return &committer{pool: pool, queue: make(chan pendingBody, 4096)}
}

func (c *committer) commit(ctx context.Context, webhookID string, body []byte) error {
	p := pendingBody{webhookID: webhookID, body: body, done: make(chan error, 1)}
	select {
	case c.queue <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *committer) run(ctx context.Context) {
	const flushers, maxBatch = 2, 256
	for range flushers {
		go func() {
			for {
				var first pendingBody
				select {
				case <-ctx.Done():
					return
				case first = <-c.queue:
				}
				batch := []pendingBody{first}
			fill:
				for len(batch) < maxBatch {
					select {
					case p := <-c.queue:
						batch = append(batch, p)
					default:
						break fill
					}
				}
				err := c.insert(ctx, batch)
				for _, p := range batch {
					p.done <- err
				}
			}
		}()
	}
}

func (c *committer) insert(ctx context.Context, batch []pendingBody) error {
	ids := make([]string, len(batch))
	bodies := make([]string, len(batch))
	for i, p := range batch {
		ids[i], bodies[i] = p.webhookID, string(p.body)
	}
	_, err := c.pool.Exec(ctx, `INSERT INTO floor_events (webhook_id, body)
		SELECT * FROM unnest($1::text[], $2::jsonb[]) ON CONFLICT (webhook_id) DO NOTHING`, ids, bodies)
	return err
}
