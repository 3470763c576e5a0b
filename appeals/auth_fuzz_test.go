package appeals

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzAuthenticate feeds arbitrary tokens to an authenticator with both an
// HS256 secret and a JWKS. It must never panic, and must accept only the
// exact tokens that were signed: any change to one (a flipped bit, another
// alg, padding, a non-canonical encoding) is refused.
func FuzzAuthenticate(f *testing.F) {
	b := setup(f, setupOpts{secret: testSecret, jwks: true, noWait: true})
	valid := map[string]bool{
		sign(f, jwt.SigningMethodHS256, testSecret, "", claims(nil)):                               true,
		sign(f, jwt.SigningMethodRS256, rsaKey, "rsa-1", idpClaims(nil)):                           true,
		sign(f, jwt.SigningMethodES256, ecKey, "ec-1", idpClaims(map[string]any{"role": "admin"})): true,
	}
	for tok := range valid {
		f.Add(tok)
		parts := strings.Split(tok, ".")
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(parts[0] + "." + parts[1] + "." + parts[2] + "=")
		f.Add(b64([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".")
		f.Add(b64([]byte(`{"alg":"HS256","kid":"rsa-1"}`)) + "." + parts[1] + "." + parts[2])
		// base64 decoders skip \r and \n: the same signature with one
		// inserted must still be refused.
		f.Add(tok[:len(tok)-4] + "\r" + tok[len(tok)-4:])
		f.Add(parts[0] + "\n." + parts[1] + "." + parts[2])
	}
	f.Add("")
	f.Add("..")
	f.Add(strings.Repeat(".", 100))
	f.Fuzz(func(t *testing.T, token string) {
		s, err := b.auth.Authenticate(t.Context(), token)
		if err == nil && !valid[token] {
			t.Fatalf("accepted a token that was never signed: %q → %+v", token, s)
		}
		if err != nil {
			if _, ok := err.(*authError); !ok {
				t.Fatalf("error %T %v is not an *authError", err, err)
			}
		}
	})
}

func benchmarkMiddleware(b *testing.B, opts setupOpts, token string) {
	bn := setup(b, opts)
	bn.auth.limiter = newSubjectLimiter(1<<30, time.Now) // measure authentication, not the limiter's refusals
	b.ReportAllocs()
	for b.Loop() {
		bn.do(b, "Bearer "+token)
	}
}

// Benchmarks of the middleware per request: verification dominates, and
// RS256 is the cost an IdP token adds.
func BenchmarkMiddlewareHS256(b *testing.B) {
	keys(b)
	benchmarkMiddleware(b, setupOpts{secret: testSecret}, sign(b, jwt.SigningMethodHS256, testSecret, "", farClaims(nil)))
}

func BenchmarkMiddlewareRS256(b *testing.B) {
	keys(b)
	benchmarkMiddleware(b, setupOpts{jwks: true}, sign(b, jwt.SigningMethodRS256, rsaKey, "rsa-1", farClaims(map[string]any{"iss": testIssuer, "aud": testAudience})))
}

func BenchmarkMiddlewareES256(b *testing.B) {
	keys(b)
	benchmarkMiddleware(b, setupOpts{jwks: true}, sign(b, jwt.SigningMethodES256, ecKey, "ec-1", farClaims(map[string]any{"iss": testIssuer, "aud": testAudience})))
}

func BenchmarkMiddlewareRefusedSignature(b *testing.B) {
	keys(b)
	benchmarkMiddleware(b, setupOpts{secret: testSecret}, sign(b, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef-0123"), "", farClaims(nil)))
}

// farClaims are valid at the fixed test clock and far around it, so that a
// benchmark may run as long as it likes.
func farClaims(edits map[string]any) jwt.MapClaims {
	c := claims(edits)
	c["exp"] = testEpoch.Add(100 * 365 * 24 * time.Hour).Unix()
	return c
}
