// Package storetest gives tests a real, migrated Postgres database of their
// own on the server named by DATABASE_URL (an admin connection string; the
// default is the local server on 127.0.0.1:5432). `make test` finds or starts
// that server, so tests never skip for want of one.
//
// A test package calls Main from TestMain to get one database for the
// package, created at start and dropped at the end; a test that needs an
// empty database of its own calls NewDatabase.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"moderator/store"
)

// DefaultAdminURL is used when DATABASE_URL is unset.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL returns the server's admin connection string.
func AdminURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// pkg is the package's shared databases: one per run of its tests. With
// go test -count=N each test runs N times in one process, and a test's
// second run would find its first run's rows (its ids are its name), so
// the n-th run of each test gets the n-th database (see generation).
var pkg struct {
	sync.Mutex
	label string
	gens  []*shared
	runs  map[string]int     // test name -> times a test of that name asked
	of    map[testing.TB]int // test -> its generation
}

// shared is one generation's database and the store on it.
type shared struct {
	url   string
	drop  func() error
	store *store.Store
}

// generation returns the shared database of t's run, creating it for a
// second or later run; call it with pkg locked.
func generation(t testing.TB) *shared {
	g, ok := pkg.of[t]
	if !ok {
		if pkg.runs == nil {
			pkg.runs, pkg.of = map[string]int{}, map[testing.TB]int{}
		}
		g = pkg.runs[t.Name()]
		pkg.runs[t.Name()]++
		pkg.of[t] = g
	}
	for len(pkg.gens) <= g {
		u, drop, err := createDatabase(context.Background(), fmt.Sprintf("%s_run%d", pkg.label, len(pkg.gens)+1), true)
		if err != nil {
			t.Fatalf("storetest: %v", err)
		}
		pkg.gens = append(pkg.gens, &shared{url: u, drop: drop})
	}
	return pkg.gens[g]
}

// Main creates and migrates a database for the calling test package, runs
// the tests and drops the database. Use it as the body of TestMain.
func Main(m *testing.M) {
	ctx := context.Background()
	wd, _ := os.Getwd()
	dbURL, drop, err := createDatabase(ctx, filepath.Base(wd), true)
	if err != nil {
		fmt.Fprintf(os.Stderr, "storetest: %v\n(make test finds or starts a server; or set DATABASE_URL)\n", err)
		os.Exit(1)
	}
	pkg.label = filepath.Base(wd)
	pkg.gens = []*shared{{url: dbURL, drop: drop}}
	code := m.Run()
	pkg.Lock()
	for _, g := range pkg.gens {
		if g.store != nil {
			g.store.Close()
		}
		if err := g.drop(); err != nil {
			fmt.Fprintf(os.Stderr, "storetest: %v\n", err)
		}
	}
	pkg.Unlock()
	os.Exit(code)
}

// URL returns the package database's connection string (migrated).
func URL(t testing.TB) string {
	t.Helper()
	pkg.Lock()
	defer pkg.Unlock()
	if len(pkg.gens) == 0 {
		t.Fatal("storetest: call storetest.Main from TestMain")
	}
	return generation(t).url
}

// Store returns a store on the package database, shared by the package's
// tests (each test should use its own ids), a database of its own for
// each run of the tests (go test -count).
func Store(t testing.TB) *store.Store {
	t.Helper()
	u := URL(t)
	pkg.Lock()
	defer pkg.Unlock()
	g := generation(t)
	if g.store == nil {
		s, err := store.Open(context.Background(), Bounded(u))
		if err != nil {
			t.Fatalf("storetest: open: %v", err)
		}
		g.store = s
	}
	return g.store
}

// OwnStore returns a store on a migrated database of the test's own,
// dropped when the test ends, so that counts and whole lists see only
// what the test wrote.
func OwnStore(t testing.TB) *store.Store {
	t.Helper()
	return OwnStoreWith(t, nil)
}

// OwnStoreWith is OwnStore whose pool's configuration configure adjusts
// first (nil: none).
func OwnStoreWith(t testing.TB, configure func(*pgxpool.Config)) *store.Store {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(NewDatabase(t))
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	if configure != nil {
		configure(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatalf("storetest: migrate: %v", err)
	}
	return st
}

// NewDatabase creates an empty, unmigrated database dropped when the test
// ends, and returns its connection string.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	u, drop, err := createDatabase(ctx, name, false)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("storetest: %v", err)
		}
	})
	return u
}

// PoolMaxConns bounds the pools tests open through Bounded. The server's
// max_connections (100 by default, 97 for tests) is shared by every test
// package go test runs at once, and a service's own default of 16 made two
// replicas of one test hold 35 connections: CI once ran out ("sorry, too
// many clients already"). Eight is more than the tests need at once.
const PoolMaxConns = 8

// Bounded returns the connection string rawURL with pool_max_conns set to
// PoolMaxConns, unless it names one already.
func Bounded(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	if q.Has("pool_max_conns") {
		return rawURL
	}
	q.Set("pool_max_conns", fmt.Sprint(PoolMaxConns))
	u.RawQuery = q.Encode()
	return u.String()
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

func createDatabase(ctx context.Context, label string, migrated bool) (dbURL string, drop func() error, err error) {
	admin := AdminURL()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := connectAdmin(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", redact(admin), err)
	}
	defer conn.Close(context.Background())

	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	label = unsafeChars.ReplaceAllString(strings.ToLower(label), "_")
	if len(label) > 30 {
		label = label[:30]
	}
	name := "moderator_test_" + label + "_" + hex.EncodeToString(suffix)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	dbURL = u.String()

	if migrated {
		if err := migrate(ctx, dbURL); err != nil {
			return "", nil, err
		}
	}
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := connectAdmin(ctx, admin)
		if err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return dbURL, drop, nil
}

// connectAdmin connects to the admin database, waiting while the server has
// no connection to spare (SQLSTATE 53300): another test package's tests
// end and give theirs back, so a moment's peak fails no test.
func connectAdmin(ctx context.Context, admin string) (*pgx.Conn, error) {
	for {
		conn, err := pgx.Connect(ctx, admin)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "53300" {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func migrate(ctx context.Context, dbURL string) error {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("open test database: %w", err)
	}
	defer pool.Close()
	if _, err := store.New(pool).Migrate(ctx); err != nil {
		return fmt.Errorf("migrate test database: %w", err)
	}
	return nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "DATABASE_URL"
	}
	return u.Redacted()
}

// LoginRole creates a login role of its own in the group role group (for
// example "moderator_service", created by the migrations) and returns
// dbURL with that role as its user. The role is dropped when the test
// ends; roles are cluster-wide, so its name is unique.
func LoginRole(t testing.TB, dbURL, group string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := "moderator_test_" + unsafeChars.ReplaceAllString(strings.ToLower(group), "_") + "_" + hex.EncodeToString(suffix)
	exec := func(ctx context.Context, sql string) error {
		conn, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			return fmt.Errorf("connect to %s: %w", redact(AdminURL()), err)
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	role := pgx.Identifier{name}.Sanitize()
	if err := exec(ctx, "CREATE ROLE "+role+" LOGIN IN ROLE "+pgx.Identifier{group}.Sanitize()); err != nil {
		t.Fatalf("storetest: create role %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec(ctx, "DROP ROLE "+role); err != nil {
			t.Errorf("storetest: drop role %s: %v", name, err)
		}
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("storetest: parse %s: %v", redact(dbURL), err)
	}
	u.User = url.User(name)
	return u.String()
}
