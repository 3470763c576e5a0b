package store_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"moderator/store"
	"moderator/store/storetest"
)

// TestOpenHonoursPoolMaxConns: a pool_max_conns in the URL is kept; without
// it the pool has 16 connections.
func TestOpenHonoursPoolMaxConns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		suffix string
		want   int32
	}{{"&pool_max_conns=3", 3}, {"", 16}, {"&pool_max_conns=40", 40}} {
		st, err := store.Open(context.Background(), storetest.URL(t)+tc.suffix)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Pool().Config().MaxConns; got != tc.want {
			t.Errorf("%q: MaxConns = %d, want %d", tc.suffix, got, tc.want)
		}
		st.Close()
	}
	if _, err := store.Open(context.Background(), storetest.URL(t)+"&pool_max_conns=1"); err == nil ||
		!strings.Contains(err.Error(), "pool_max_conns must be at least 2") {
		t.Errorf("pool_max_conns=1: got %v, want an error naming it", err)
	}
}

// TestWriteWaitsForARefusedConnection: a database that refuses connections
// for a moment (a restart, a failover) does not fail a write that can wait
// a second.
func TestWriteWaitsForARefusedConnection(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(storetest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Host = ln.Addr().String()
	ln.Close() // refused until the proxy below listens
	st, err := store.Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	up := make(chan net.Listener, 1)
	defer func() {
		if ln := <-up; ln != nil {
			ln.Close()
		}
	}()
	go func() {
		time.Sleep(300 * time.Millisecond)
		ln, err := net.Listen("tcp", u.Host)
		up <- ln
		if err != nil {
			return // the write below then fails, and says so
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	rec := record(t, "refused-then-up", `{"type":"message.new","message":{"id":"refused-then-up","text":"x","user":{"id":"u"}},"user":{"id":"u"}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := st.RecordEvent(ctx, rec); err != nil {
		t.Fatalf("write while the server refused connections for 300 ms: %v", err)
	}
}
