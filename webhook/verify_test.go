package webhook

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	testKey    = "key1"
	testSecret = "tsec2"
)

var testKeys = Keyring{testKey: testSecret, "old-key": "old-secret"}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func gzipped(t testing.TB, body []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestSignatureVector checks the worked example from STREAM_API.md.
func TestSignatureVector(t *testing.T) {
	t.Parallel()
	body := []byte(`{"type":"message.new","message":{"text":"the quick brown fox"}}`)
	const want = "a91edf26f024e0efad88b0e2561e4841fa6f8c85f98ecb85dcd12e58563c2218"
	if got := sign("tsec2", body); got != want {
		t.Fatalf("sign = %s, want %s", got, want)
	}
	v, err := Keyring{"k": "tsec2"}.VerifyAndParse("k", want, body, 1<<20)
	if err != nil {
		t.Fatalf("VerifyAndParse: %v", err)
	}
	if v.Event.Type != "message.new" || v.Event.Message.Text != "the quick brown fox" {
		t.Fatalf("parsed %+v", v.Event)
	}
}

func TestVerifyAndParse(t *testing.T) {
	t.Parallel()
	body := []byte(`{"type":"message.new","created_at":"2026-11-24T10:00:00.123456789Z","message":{"id":"m1","text":"hi"}}`)
	sig := sign(testSecret, body)
	flipped := append([]byte(nil), body...)
	flipped[20] ^= 0x01
	gz := gzipped(t, body)

	tests := []struct {
		name       string
		apiKey     string
		sig        string
		raw        []byte
		wantStatus int    // 0: accepted
		wantReason string // signature failure label
	}{
		{name: "valid", apiKey: testKey, sig: sig, raw: body},
		{name: "valid uppercase hex", apiKey: testKey, sig: strings.ToUpper(sig), raw: body},
		{name: "rotated key", apiKey: "old-key", sig: sign("old-secret", body), raw: body},
		{name: "no api key header tries every secret", apiKey: "", sig: sig, raw: body},
		{name: "gzip body, signature over decompressed bytes", apiKey: testKey, sig: sig, raw: gz},
		{name: "one byte changed", apiKey: testKey, sig: sig, raw: flipped, wantStatus: 401, wantReason: sigMismatch},
		{name: "wrong secret", apiKey: testKey, sig: sign("other", body), raw: body, wantStatus: 401, wantReason: sigMismatch},
		{name: "secret of another configured key", apiKey: testKey, sig: sign("old-secret", body), raw: body, wantStatus: 401, wantReason: sigMismatch},
		{name: "missing signature", apiKey: testKey, sig: "", raw: body, wantStatus: 401, wantReason: sigMissing},
		{name: "non-hex signature", apiKey: testKey, sig: strings.Repeat("zz", 32), raw: body, wantStatus: 401, wantReason: sigMalformed},
		{name: "short signature", apiKey: testKey, sig: sig[:62], raw: body, wantStatus: 401, wantReason: sigMalformed},
		{name: "long signature", apiKey: testKey, sig: sig + "00", raw: body, wantStatus: 401, wantReason: sigMalformed},
		{name: "signature over the compressed bytes", apiKey: testKey, sig: sign(testSecret, gz), raw: gz, wantStatus: 401, wantReason: sigMismatch},
		{name: "unknown api key", apiKey: "nope", sig: sig, raw: body, wantStatus: 401, wantReason: sigUnknown},
		{name: "malformed json, valid signature", apiKey: testKey, sig: sign(testSecret, []byte(`{"type":`)), raw: []byte(`{"type":`), wantStatus: 400},
		{name: "json array, valid signature", apiKey: testKey, sig: sign(testSecret, []byte(`[1]`)), raw: []byte(`[1]`), wantStatus: 400},
		{name: "bad timestamp", apiKey: testKey, sig: sign(testSecret, []byte(`{"type":"x","created_at":true}`)), raw: []byte(`{"type":"x","created_at":true}`), wantStatus: 400},
		{name: "corrupt gzip", apiKey: testKey, sig: sig, raw: gz[:len(gz)-6], wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := testKeys.VerifyAndParse(tt.apiKey, tt.sig, tt.raw, 1<<20)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("got error %v, want accepted", err)
				}
				if !bytes.Equal(v.Body, body) {
					t.Fatalf("body = %q, want %q", v.Body, body)
				}
				if v.SHA256 != sha256.Sum256(body) {
					t.Fatal("SHA256 is not the hash of the decompressed body")
				}
				if want := time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC); !v.Event.CreatedAt.Equal(want) {
					t.Fatalf("created_at = %v, want %v", v.Event.CreatedAt, want)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want *Error with status %d", err, tt.wantStatus)
			}
			if e.Status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%v)", e.Status, tt.wantStatus, e)
			}
			if got := signatureFailure(err); got != tt.wantReason {
				t.Fatalf("signature failure = %q, want %q", got, tt.wantReason)
			}
		})
	}
}

func TestGunzipLimit(t *testing.T) {
	t.Parallel()
	// A small gzip that inflates far past the limit: refused with 413
	// after reading no more than limit+1 decompressed bytes.
	bomb := gzipped(t, bytes.Repeat([]byte{' '}, 10<<20))
	body := append([]byte(`{"type":"message.new"}`), bytes.Repeat([]byte{' '}, 10<<20)...)
	_, err := testKeys.VerifyAndParse(testKey, sign(testSecret, body), bomb, 64<<10)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %v, want 413", err)
	}
}

func readSamples(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("../testdata/samples/*.json")
	if err != nil {
		t.Fatal(err)
	}
	local, _ := filepath.Glob("testdata/*.json")
	files = append(files, local...)
	if len(files) == 0 {
		t.Fatal("no samples found in ../testdata/samples or testdata")
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestSamplesParse(t *testing.T) {
	t.Parallel()
	for name, body := range readSamples(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v, err := testKeys.VerifyAndParse(testKey, sign(testSecret, body), body, 1<<20)
			if err != nil {
				t.Fatalf("VerifyAndParse: %v", err)
			}
			if strings.HasPrefix(name, "before_message_send") {
				// No type and no created_at: the message is not saved yet.
				if v.Event.Message == nil || v.Event.Message.Text == "" || v.Event.RequestInfo == nil {
					t.Fatalf("before-send payload parsed as %+v", v.Event)
				}
				return
			}
			if v.Event.Type == "" || v.Event.CreatedAt.IsZero() {
				t.Fatalf("type %q created_at %v: want both set", v.Event.Type, v.Event.CreatedAt)
			}
			if want := strings.TrimSuffix(strings.TrimSuffix(name, ".json"), "-1"); v.Event.Type != want {
				t.Fatalf("type = %q, want %q", v.Event.Type, want)
			}
		})
	}
}

func FuzzVerifyAndParse(f *testing.F) {
	for _, body := range readSamples(f) {
		f.Add(body, false)
		f.Add(body, true)
	}
	f.Add([]byte(`{"type":"message.new","created_at":1732406400000000000,"user":{"id":"u","custom":{"a":1},"b":2}}`), false)
	f.Fuzz(func(t *testing.T, body []byte, compress bool) {
		raw := body
		if compress {
			raw = gzipped(t, body)
		}
		v, err := testKeys.VerifyAndParse(testKey, sign(testSecret, body), raw, 1<<20)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if e.Status != 400 && e.Status != 413 {
				t.Fatalf("a correctly signed body got status %d: %v", e.Status, e)
			}
			return
		}
		if !bytes.Equal(v.Body, body) || v.Event == nil {
			t.Fatalf("accepted delivery lost its body or event: %+v", v)
		}
		// A signature over anything else must fail.
		if _, err := testKeys.VerifyAndParse(testKey, sign("wrong", body), raw, 1<<20); err == nil {
			t.Fatal("accepted a body signed with the wrong secret")
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	body := readSamples(b)["message.new-1.json"]
	body = append(body, bytes.Repeat([]byte{' '}, max(0, 2048-len(body)))...) // ≈2 KB, as in DESIGN.md
	sig := sign(testSecret, body)
	want, _ := hex.DecodeString(sig)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		mac := hmac.New(sha256.New, []byte(testSecret))
		mac.Write(body)
		if !hmac.Equal(mac.Sum(nil), want) {
			b.Fatal("mismatch")
		}
	}
}

func BenchmarkVerifyAndParse(b *testing.B) {
	body := readSamples(b)["message.new-1.json"]
	sig := sign(testSecret, body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := testKeys.VerifyAndParse(testKey, sig, body, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGunzipRatio: an 8 KB gzip that would inflate to 8 MiB stops at 32
// times its size (at least 256 KiB), before any HMAC, even under the
// default 8 MiB limit; an event that compresses well but is small passes.
func TestGunzipRatio(t *testing.T) {
	t.Parallel()
	bomb := gzipped(t, make([]byte, 8<<20))
	if len(bomb) > 9<<10 {
		t.Fatalf("bomb is %d bytes, want about 8 KB", len(bomb))
	}
	_, err := testKeys.VerifyAndParse(testKey, sign(testSecret, []byte("whatever")), bomb, 8<<20)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusRequestEntityTooLarge || !strings.Contains(e.Msg, "exceeds 262144 bytes") {
		t.Fatalf("8 KB bomb: got %v, want 413 at 262144 bytes", err)
	}

	text := strings.Repeat("spam ", 20_000) // 100 KB that compresses about 300 times
	body := []byte(`{"type":"message.new","message":{"id":"m","text":"` + text + `","user":{"id":"u"}},"user":{"id":"u"}}`)
	if _, err := testKeys.VerifyAndParse(testKey, sign(testSecret, body), gzipped(t, body), 8<<20); err != nil {
		t.Fatalf("a small, very compressible event: %v", err)
	}
	for _, tc := range []struct {
		compressed int
		want       int64
	}{{100, 256 << 10}, {64 << 10, 2 << 20}, {1 << 20, 8 << 20}} {
		if got := gunzipLimit(tc.compressed, 8<<20); got != tc.want {
			t.Errorf("gunzipLimit(%d) = %d, want %d", tc.compressed, got, tc.want)
		}
	}
}

// readFlag is a body that notes whether it was read.
type readFlag struct {
	io.Reader
	read bool
}

func (r *readFlag) Read(p []byte) (int, error) {
	r.read = true
	return r.Reader.Read(p)
}

// TestHeadersCheckedBeforeBody: an unknown key, a missing or malformed
// signature are refused without reading (or inflating) the body.
func TestHeadersCheckedBeforeBody(t *testing.T) {
	t.Parallel()
	h := Handler(slog.New(slog.NewJSONHandler(io.Discard, nil)), Config{Keys: testKeys}, noRules{}, &flakyAudit{},
		NewMetrics(prometheus.NewRegistry()))
	for name, hdr := range map[string][2]string{
		"unknown key":  {"stranger", strings.Repeat("ab", 32)},
		"no signature": {testKey, ""},
		"not hex":      {testKey, "zz"},
		"short":        {"", "abcd"},
	} {
		body := &readFlag{Reader: bytes.NewReader(gzipped(t, make([]byte, 1<<20)))}
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stream", body)
		req.Header.Set("X-Api-Key", hdr[0])
		req.Header.Set("X-Signature", hdr[1])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized || body.read {
			t.Errorf("%s: status %d, body read %v; want 401 without reading it", name, rec.Code, body.read)
		}
	}
}

// BenchmarkHostileGzip: the CPU one 8 KB gzip bomb (8 MiB of zeros) with
// a bad signature costs: refused at the ratio limit now, against inflating
// the whole 8 MiB and HMACing it, as before the limit.
func BenchmarkHostileGzip(b *testing.B) {
	bomb := gzipped(b, make([]byte, 8<<20))
	sig := strings.Repeat("0", 64)
	b.Run("ratio-limit", func(b *testing.B) {
		for b.Loop() {
			if _, err := testKeys.VerifyAndParse(testKey, sig, bomb, 8<<20); err == nil {
				b.Fatal("bomb accepted")
			}
		}
	})
	b.Run("whole-8MiB", func(b *testing.B) {
		for b.Loop() {
			body, err := gunzip(bomb, 8<<20)
			if err != nil {
				b.Fatal(err)
			}
			mac := hmac.New(sha256.New, []byte(testSecret))
			mac.Write(body)
			_ = mac.Sum(nil)
		}
	})
}
