package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"moderator/actions/streamtest"
	"moderator/store/storetest"
)

// serveChildEnv, set in the test binary's environment, makes it run
// `moderator serve` instead of the tests, so that a test can kill -9 a
// real service process (TestSpoolSurvivesKill).
const serveChildEnv = "MODERATOR_TEST_SERVE_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(serveChildEnv) == "1" {
		err := run(context.Background(), []string{"serve"}, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
	storetest.Main(m)
}

const (
	e2eKey    = "e2e-key"
	e2eSecret = "e2e-secret-do-not-log"
	e2eBot    = "moderator-bot"
)

// testServer is `moderator serve` started through run, as an operator would.
type testServer struct {
	URL    string
	stream *streamtest.Server // the fake Stream the service calls
	proxy  *tcpProxy
	logs   *logBuffer
	stop   func() error
}

type serverOptions struct {
	env      map[string]string
	rulesDir string             // default: a copy of the starter pack in rules/
	stream   *streamtest.Server // default: a fresh fake with the test's credentials
	dbURL    string             // default: the package's database (storetest.URL)
}

// copyDir copies the files of src (one level deep, enough for rules/).
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func startServer(t testing.TB, opts serverOptions) *testServer {
	t.Helper()
	return startServerOpts(t, opts, true)
}

func startServerOpts(t testing.TB, opts serverOptions, waitReady bool) *testServer {
	t.Helper()
	rawURL := opts.dbURL
	if rawURL == "" {
		rawURL = storetest.URL(t)
	}
	dbURL, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, dbURL.Host)
	dbURL.Host = proxy.Addr()
	fake := opts.stream
	if fake == nil {
		fake = streamtest.New(t, streamtest.WithCredentials(e2eKey, e2eSecret))
	}
	env := map[string]string{
		"STREAM_BASE_URL":       fake.URL,
		"DATABASE_URL":          storetest.Bounded(dbURL.String()),
		"STREAM_API_KEY":        e2eKey,
		"STREAM_API_SECRET":     e2eSecret,
		"STREAM_API_KEYS":       "old-key:old-secret",
		"MODERATOR_ADDR":        "127.0.0.1:0",
		"MODERATOR_BOT_USER_ID": e2eBot,
		"MODERATOR_LOG_LEVEL":   "debug",
		"MODERATOR_RULES_DIR":   opts.rulesDir,
		"MODERATOR_SPOOL_DIR":   t.TempDir(),
	}
	if opts.rulesDir == "" {
		env["MODERATOR_RULES_DIR"] = copyDir(t, "../../rules")
	}
	for k, v := range opts.env {
		env[k] = v
	}
	logs := newLogBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, logs)
	}()
	addr, err := logs.waitFor(`"msg":"listening","addr":"([^"]+)"`, 10*time.Second)
	if err != nil {
		cancel()
		t.Fatalf("server did not start: %v (run: %v)\nlogs:\n%s", err, <-done, logs)
	}
	s := &testServer{URL: "http://" + addr, stream: fake, proxy: proxy, logs: logs}
	var once sync.Once
	var runErr error
	s.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("run: %v", err)
		}
		// Secrets and message text never reach the logs.
		for _, secret := range []string{e2eSecret, "old-secret", "SECRET-TEXT"} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("logs contain %q:\n%s", secret, logs)
			}
		}
	})
	if waitReady {
		s.waitReady(t)
	}
	return s
}

// startServerUnready starts the service with a rules folder that does not
// load, without waiting for readiness.
func startServerUnready(t testing.TB, rulesDir string) *testServer {
	t.Helper()
	return startServerOpts(t, serverOptions{rulesDir: rulesDir}, false)
}

func (s *testServer) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server never became ready; logs:\n%s", s.logs)
}

type delivery struct {
	body      []byte
	raw       []byte // sent instead of body when set (gzip, tampering)
	webhookID string
	apiKey    string
	signature string // computed over body with e2eSecret when empty
	noSig     bool
	headers   map[string]string
}

func signBody(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func (s *testServer) send(t testing.TB, d delivery) (int, map[string]any) {
	t.Helper()
	raw := d.raw
	if raw == nil {
		raw = d.body
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+"/webhooks/stream", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if d.apiKey == "" {
		d.apiKey = e2eKey
	}
	req.Header.Set("X-Api-Key", d.apiKey)
	if !d.noSig {
		sig := d.signature
		if sig == "" {
			sig = signBody(e2eSecret, d.body)
		}
		req.Header.Set("X-Signature", sig)
	}
	if d.webhookID != "" {
		req.Header.Set("X-Webhook-Id", d.webhookID)
	}
	req.Header.Set("X-Webhook-Attempt", "1")
	for k, v := range d.headers {
		req.Header.Set(k, v)
	}
	return jsonAnswer(t)(http.DefaultClient.Do(req))
}

// jsonAnswer returns a function that reads an answer's status and JSON
// body, failing the test on a transport error.
func jsonAnswer(t testing.TB) func(*http.Response, error) (int, map[string]any) {
	return func(resp *http.Response, err error) (int, map[string]any) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
}

func countRows(t testing.TB, where string, args ...any) int {
	t.Helper()
	var n int
	err := storetest.Store(t).Pool().QueryRow(context.Background(), "SELECT count(*) FROM events WHERE "+where, args...).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func messageEvent(id, text string) []byte {
	return fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:e2e","created_at":"2026-11-24T10:00:00Z",`+
		`"message":{"id":%q,"text":%q,"user":{"id":"alice"}},"user":{"id":"alice","created_at":"2026-01-01T00:00:00Z"}}`, id, text)
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestWebhookSignatureMatrix(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	tests := []struct {
		name string
		d    func(id string) delivery
		want int
	}{
		{"valid", func(id string) delivery { return delivery{body: messageEvent(id, "SECRET-TEXT")} }, 200},
		{"valid with rotated key", func(id string) delivery {
			b := messageEvent(id, "x")
			return delivery{body: b, apiKey: "old-key", signature: signBody("old-secret", b)}
		}, 200},
		{"one byte changed", func(id string) delivery {
			b := messageEvent(id, "hello")
			raw := bytes.Replace(b, []byte("hello"), []byte("hellp"), 1)
			return delivery{body: b, raw: raw}
		}, 401},
		{"wrong secret", func(id string) delivery {
			b := messageEvent(id, "x")
			return delivery{body: b, signature: signBody("wrong", b)}
		}, 401},
		{"missing header", func(id string) delivery { return delivery{body: messageEvent(id, "x"), noSig: true} }, 401},
		{"non-hex", func(id string) delivery {
			return delivery{body: messageEvent(id, "x"), signature: strings.Repeat("g", 64)}
		}, 401},
		{"wrong length", func(id string) delivery { return delivery{body: messageEvent(id, "x"), signature: "abcd"} }, 401},
		{"signature over compressed bytes", func(id string) delivery {
			b := messageEvent(id, "x")
			gz := gzipBytes(t, b)
			return delivery{body: b, raw: gz, signature: signBody(e2eSecret, gz)}
		}, 401},
		{"unknown api key", func(id string) delivery { return delivery{body: messageEvent(id, "x"), apiKey: "who"} }, 401},
		{"gzip body", func(id string) delivery {
			b := messageEvent(id, "x")
			return delivery{body: b, raw: gzipBytes(t, b), headers: map[string]string{"Content-Encoding": "gzip"}}
		}, 200},
		{"malformed json", func(id string) delivery {
			return delivery{body: []byte(`{"type":"message.new","message":{"id":"` + id + `"`)}
		}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := "sig-" + strings.ReplaceAll(t.Name(), "/", "-")
			d := tt.d(id)
			d.webhookID = id
			status, body := s.send(t, d)
			if status != tt.want {
				t.Fatalf("status = %d (%v), want %d", status, body, tt.want)
			}
			wantRows := 0
			if tt.want == 200 {
				wantRows = 1
			}
			if n := countRows(t, "message_id = $1", id); n != wantRows {
				t.Fatalf("rows = %d, want %d", n, wantRows)
			}
		})
	}
}

func TestWebhookLimits(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{env: map[string]string{
		"MODERATOR_MAX_BODY_BYTES":         "16KiB",
		"MODERATOR_MAX_DECOMPRESSED_BYTES": "32KiB",
	}})
	big := messageEvent("limit-big", strings.Repeat("a", 20<<10))
	if status, _ := s.send(t, delivery{body: big, webhookID: "limit-big"}); status != 413 {
		t.Fatalf("oversize body: status %d, want 413", status)
	}
	// Under the raw limit compressed, over the decompressed limit.
	bomb := messageEvent("limit-bomb", strings.Repeat("a", 40<<10))
	if status, _ := s.send(t, delivery{body: bomb, raw: gzipBytes(t, bomb), webhookID: "limit-bomb"}); status != 413 {
		t.Fatalf("gzip bomb: status %d, want 413", status)
	}
	fits := messageEvent("limit-fits", strings.Repeat("a", 12<<10))
	if status, _ := s.send(t, delivery{body: fits, webhookID: "limit-fits"}); status != 200 {
		t.Fatalf("body under the limit: status %d, want 200", status)
	}
	if n := countRows(t, "message_id LIKE 'limit-%'"); n != 1 {
		t.Fatalf("rows = %d, want 1 (only the body under the limit)", n)
	}
}

func TestWebhookSamples(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	files, _ := filepath.Glob("../../testdata/samples/*.json")
	if len(files) == 0 {
		t.Fatal("no samples in testdata/samples")
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		id := "sample-" + filepath.Base(f)
		status, resp := s.send(t, delivery{body: body, webhookID: id})
		if status != 200 {
			t.Errorf("%s: status %d (%v), want 200", f, status, resp)
			continue
		}
		if n := countRows(t, "webhook_id = $1", id); n != 1 {
			t.Errorf("%s: rows %d, want 1", f, n)
		}
	}
}

func TestWebhookOutcomes(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	tests := []struct {
		name        string
		body        string
		wantStatus  string
		own, ignore bool
	}{
		{"message", `{"type":"message.new","message":{"id":"oc-1","user":{"id":"alice"}}}`, "recorded", false, false},
		{"bot's own warning", `{"type":"message.new","message":{"id":"oc-2","user":{"id":"` + e2eBot + `"}},"user":{"id":"` + e2eBot + `"}}`, "own", true, false},
		{"ban the bot made", `{"type":"user.banned","message_id":"oc-3","user":{"id":"alice"},"created_by":{"id":"` + e2eBot + `"}}`, "own", true, false},
		{"unknown type", `{"type":"poll.closed","message_id":"oc-4","created_at":1795514400000000000}`, "ignored", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, resp := s.send(t, delivery{body: []byte(tt.body), webhookID: "oc-" + tt.name})
			if status != 200 || resp["status"] != tt.wantStatus {
				t.Fatalf("got %d %v, want 200 %s", status, resp, tt.wantStatus)
			}
			var own, ignored bool
			err := storetest.Store(t).Pool().QueryRow(context.Background(),
				"SELECT own, ignored FROM events WHERE webhook_id = $1", "oc-"+tt.name).Scan(&own, &ignored)
			if err != nil {
				t.Fatal(err)
			}
			if own != tt.own || ignored != tt.ignore {
				t.Fatalf("own, ignored = %v, %v; want %v, %v", own, ignored, tt.own, tt.ignore)
			}
		})
	}
}

func TestWebhookConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	body := messageEvent("dup-100", "x")
	var wg sync.WaitGroup
	statuses := make([]int, 100)
	results := make([]any, 100)
	for i := range 100 {
		wg.Go(func() {
			var resp map[string]any
			statuses[i], resp = s.send(t, delivery{body: body, webhookID: "dup-100"})
			results[i] = resp["status"]
		})
	}
	wg.Wait()
	recorded := 0
	for i, st := range statuses {
		if st != 200 {
			t.Fatalf("delivery %d: status %d, want 200", i, st)
		}
		if results[i] == "recorded" {
			recorded++
		}
	}
	if recorded != 1 {
		t.Fatalf("%d deliveries recorded, want exactly 1", recorded)
	}
	if n := countRows(t, "message_id = 'dup-100'"); n != 1 {
		t.Fatalf("rows = %d, want 1", n)
	}
	status, resp := s.send(t, delivery{body: body, webhookID: "dup-100-replayed"})
	if status != 200 || resp["status"] != "duplicate" {
		t.Fatalf("replay under a new id: %d %v, want 200 duplicate", status, resp)
	}
	if n := countRows(t, "message_id = 'dup-100'"); n != 1 {
		t.Fatalf("rows after replay = %d, want 1", n)
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	body := messageEvent("shutdown-1", "x")
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/webhooks/stream", pr)
	req.Header.Set("X-Api-Key", e2eKey)
	req.Header.Set("X-Signature", signBody(e2eSecret, body))
	req.Header.Set("X-Webhook-Id", "shutdown-1")
	type result struct {
		status int
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		resp.Body.Close()
		got <- result{status: resp.StatusCode}
	}()
	// The pipe write returns once the transport has read it: the connection
	// is up and the headers are sent. The pause lets the server accept it.
	pw.Write(body[:10])
	time.Sleep(50 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	if _, err := s.logs.waitFor(`"msg":"shutting down"`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	pw.Write(body[10:])
	pw.Close()
	r := <-got
	if r.err != nil || r.status != 200 {
		t.Fatalf("in-flight request: %d %v, want 200", r.status, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run returned %v, want nil after a graceful shutdown", err)
	}
	if n := countRows(t, "message_id = 'shutdown-1'"); n != 1 {
		t.Fatalf("rows = %d, want 1", n)
	}
}

func (s *testServer) get(t testing.TB, path string) string {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// logBuffer collects the service's JSON log lines and lets a test wait for one.
type logBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	cond *sync.Cond
}

func newLogBuffer() *logBuffer {
	l := &logBuffer{}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cond.Broadcast()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor returns the first submatch (or the match) of pattern in the logs.
func (l *logBuffer) waitFor(pattern string, timeout time.Duration) (string, error) {
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	for {
		sc := bufio.NewScanner(strings.NewReader(l.String()))
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				return m[len(m)-1], nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no log line matches %s", pattern)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tcpProxy sits between the service and Postgres so a test can cut the
// database off and bring it back without touching the shared server.
//
// Its listener stays open from start to cleanup; while the database is
// cut, each connection is closed as soon as it is accepted. Closing the
// listener instead let the kernel give its port to an outgoing connection
// meanwhile, and bringing the database back then failed with "address
// already in use" (seen once in CI).
type tcpProxy struct {
	target string
	addr   string
	ln     net.Listener
	mu     sync.Mutex
	down   bool // cut off (Stop): connections are closed at once
	conns  map[net.Conn]bool
	// gate is held for writing while the proxy is stalled (Stall): every
	// copy waits on it, so nothing the database or the service sends goes
	// through, and nothing fails either.
	gate sync.RWMutex
}

func newTCPProxy(t testing.TB, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.Stop() })
	return p
}

func (p *tcpProxy) Addr() string { return p.addr }

// serve accepts connections until the listener is closed at cleanup.
func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *tcpProxy) pipe(c net.Conn) {
	if p.isDown() {
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down { // cut off meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { p.copy(up, c); up.Close(); c.Close() }()
	p.copy(c, up)
	c.Close()
	up.Close()
}

func (p *tcpProxy) isDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

// copy copies src to dst, each chunk waiting while the proxy is stalled.
func (p *tcpProxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate.RLock()
			_, werr := dst.Write(buf[:n])
			p.gate.RUnlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stall holds every byte between the service and the database for d,
// without closing anything: each query waits, as when the database has
// no connection or no time to give (starved connections).
func (p *tcpProxy) Stall(d time.Duration) {
	p.gate.Lock()
	time.AfterFunc(d, p.gate.Unlock)
}

// Stop refuses new connections and cuts every open one, as a crashed
// database would.
func (p *tcpProxy) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Start accepts connections again on the same address.
func (p *tcpProxy) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}
