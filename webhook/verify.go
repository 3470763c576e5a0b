package webhook

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"moderator/policy"
)

// Keyring maps each configured Stream API key to its secret. Several keys
// let an app rotate its secret: Stream signs with the newest key and names
// it in X-Api-Key.
type Keyring map[string]string

// Verified is a delivery whose signature checked out and whose body parsed.
type Verified struct {
	APIKey     string
	Body       []byte // decompressed, exactly as signed
	Compressed bool
	SHA256     [32]byte // of Body: the replay-deduplication key
	Event      *policy.Event
}

// Error is a rejected delivery: the status to answer, the metric outcome,
// and a message safe to show the sender.
type Error struct {
	Status  int
	Outcome string
	Msg     string
	Err     error // detail for the log; may be nil
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Outcomes of a delivery, as metric labels and in the canonical log line.
const (
	OutcomeRecorded     = "recorded"     // new event, recorded
	OutcomeOwn          = "own"          // new event caused by our bot user, recorded, not evaluated
	OutcomeIgnored      = "ignored"      // new event of a type we do not act on, recorded
	OutcomeDuplicate    = "duplicate"    // retry or replay of a recorded event; nothing written
	OutcomeUnauthorized = "unauthorized" // unknown key, bad or missing signature
	OutcomeTooLarge     = "too_large"
	OutcomeMalformed    = "malformed"
	OutcomeUnavailable  = "unavailable" // could not record durably: Stream should retry
	OutcomeQuarantined  = "quarantined" // refused by the database for its data, kept in quarantine
	OutcomeSpooled      = "spooled"     // fsync'd to the local spool; recorded when the database can commit it
)

var gzipMagic = []byte{0x1f, 0x8b}

// errSignature reasons are metric labels too.
const (
	sigMissing   = "missing"
	sigMalformed = "malformed"
	sigMismatch  = "mismatch"
	sigUnknown   = "unknown_key"
)

func unauthorized(reason, msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Outcome: OutcomeUnauthorized, Msg: msg, Err: signatureReason(reason)}
}

// signatureReason carries the metric label of a signature failure.
type signatureReason string

func (r signatureReason) Error() string { return "signature " + string(r) }

// VerifyAndParse checks a raw webhook body and parses it. raw is the body as
// received (maybe gzip); apiKey and signature are the X-Api-Key and
// X-Signature headers. The signature must be the lowercase hex HMAC-SHA256
// of the decompressed body under the key's secret; a signature over the
// compressed bytes is refused, as Stream documents. When apiKey is empty
// every configured secret is tried, so a proxy that drops the header does
// not lose events; an unknown key is refused.
//
// What can be checked before inflating a gzip body is checked first (the
// key, the signature's form), and a gzip body may inflate to at most
// gzipRatio times its size (at least gzipFloor, at most maxDecompressed):
// a small bomb stops at its limit, before any HMAC.
func (k Keyring) VerifyAndParse(apiKey, signature string, raw []byte, maxDecompressed int64) (*Verified, error) {
	want, herr := k.checkHeaders(apiKey, signature)
	if herr != nil {
		return nil, herr
	}
	body, compressed := raw, false
	if bytes.HasPrefix(raw, gzipMagic) {
		var err error
		body, err = gunzip(raw, gunzipLimit(len(raw), maxDecompressed))
		if err != nil {
			return nil, err
		}
		compressed = true
	}
	matched := ""
	for key, secret := range k {
		if apiKey != "" && key != apiKey {
			continue
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if hmac.Equal(mac.Sum(nil), want) {
			matched = key
			break
		}
	}
	if matched == "" {
		return nil, unauthorized(sigMismatch, "invalid X-Signature")
	}
	v, perr := parseVerified(matched, body, compressed)
	if perr != nil {
		return nil, perr
	}
	return v, nil
}

// checkHeaders refuses an unknown X-Api-Key and a missing or malformed
// X-Signature, which need no body; it returns the signature's bytes.
func (k Keyring) checkHeaders(apiKey, signature string) ([]byte, *Error) {
	if _, ok := k[apiKey]; apiKey != "" && !ok {
		return nil, unauthorized(sigUnknown, "unknown X-Api-Key")
	}
	if signature == "" {
		return nil, unauthorized(sigMissing, "missing X-Signature")
	}
	want, err := hex.DecodeString(strings.TrimSpace(signature))
	if err != nil || len(want) != sha256.Size {
		return nil, unauthorized(sigMalformed, "malformed X-Signature: want 64 hex characters")
	}
	return want, nil
}

// parseVerified parses a body whose signature checked out (now, or before
// it was spooled) into a Verified delivery.
func parseVerified(apiKey string, body []byte, compressed bool) (*Verified, *Error) {
	ev, err := policy.ParseEvent(body)
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Outcome: OutcomeMalformed, Msg: "body: " + err.Error()}
	}
	return &Verified{APIKey: apiKey, Body: body, Compressed: compressed, SHA256: sha256.Sum256(body), Event: ev}, nil
}

// Gzip bodies inflate to at most gzipRatio times their size, and never
// less than gzipFloor: Stream's events are a few KB and JSON compresses
// about 5 to 10 times, while a bomb compresses a thousand times.
const (
	gzipRatio = 32
	gzipFloor = 256 << 10
)

// gunzipLimit is the decompressed size allowed for compressed bytes of
// gzip under the configured maximum.
func gunzipLimit(compressed int, maxDecompressed int64) int64 {
	return min(maxDecompressed, max(gzipFloor, gzipRatio*int64(compressed)))
}

// gunzip decompresses a gzip body, refusing output larger than limit
// without ever producing more than limit+1 bytes (a gzip bomb stops there).
func gunzip(raw []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Outcome: OutcomeMalformed, Msg: "body: invalid gzip", Err: err}
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Outcome: OutcomeMalformed, Msg: "body: invalid gzip", Err: err}
	}
	if int64(len(out)) > limit {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Outcome: OutcomeTooLarge,
			Msg: fmt.Sprintf("body: decompressed size exceeds %d bytes (%d times the compressed size, at least %d, at most the configured maximum)",
				limit, gzipRatio, gzipFloor)}
	}
	return out, nil
}

// signatureFailure returns the metric label of a signature failure, or "".
func signatureFailure(err error) string {
	var r signatureReason
	if errors.As(err, &r) {
		return string(r)
	}
	return ""
}
