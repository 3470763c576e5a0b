package storetest

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestBounded: a URL without pool_max_conns gets PoolMaxConns, one with
// it keeps its own, and the other parameters stay.
func TestBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "8"},
		{"postgres://u@h:5432/db?sslmode=disable&pool_max_conns=2", "2"},
		{"postgres://u@h:5432/db", "8"},
	} {
		u, err := url.Parse(Bounded(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Query().Get("pool_max_conns"); got != tc.want {
			t.Errorf("Bounded(%q): pool_max_conns=%q, want %q", tc.in, got, tc.want)
		}
		if in, _ := url.Parse(tc.in); in.Query().Get("sslmode") != u.Query().Get("sslmode") || in.Path != u.Path {
			t.Errorf("Bounded(%q) = %q: changed more than the pool", tc.in, u)
		}
	}
}

// TestConnectAdminWaitsForASlot: refused for want of a connection slot
// (SQLSTATE 53300, here a role's CONNECTION LIMIT), connectAdmin waits and
// connects once a slot is free, instead of failing the test that asked.
func TestConnectAdminWaitsForASlot(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) }) // after the role's drop below
	role := fmt.Sprintf("storetest_one_slot_%d", time.Now().UnixNano()%1e9)
	if _, err := admin.Exec(ctx, "DROP ROLE IF EXISTS "+role); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN CONNECTION LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The role's sessions end a moment after their connections close.
		for range 50 {
			if _, err = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+role); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("drop role %s: %v", role, err)
	})
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	held, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	const hold = 500 * time.Millisecond
	time.AfterFunc(hold, func() { _ = held.Close(context.Background()) })
	start := time.Now()
	conn, err := connectAdmin(ctx, u.String())
	if err != nil {
		t.Fatalf("connectAdmin: %v", err)
	}
	defer conn.Close(ctx)
	if waited := time.Since(start); waited < hold-50*time.Millisecond {
		t.Errorf("connected after %s, while the only slot was held for %s", waited, hold)
	}
}
