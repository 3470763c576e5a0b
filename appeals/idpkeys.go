package appeals

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// IDPKeys is an identity provider's key set, fetched and refreshed as the
// staff authenticator's (bounded in time and size, in the background, an
// unknown kid refetched at most every 30 s), for a verifier of its own:
// the console's OpenID Connect sign-in checks ID tokens with it.
type IDPKeys struct{ ks *keySet }

// NewIDPKeys starts fetching the key set at jwksURL (client nil: a client
// with a 10 s timeout); its refresher ends with ctx.
func NewIDPKeys(ctx context.Context, jwksURL string, client *http.Client, logger *slog.Logger) *IDPKeys {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &IDPKeys{ks: loadKeySet(func() (jwkset.Storage, error) {
		return newJWKS(ctx, jwksURL, client, logger, nil, jwksUnknownKIDWait)
	}, logger)}
}

// Keyfunc returns golang-jwt's key function for a token signed with RS256
// (RSA of at least 2048 bits) or ES256 (P-256) by the key of its kid, as
// the key set publishes it for signatures; any other token is refused.
func (k *IDPKeys) Keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg, _ := t.Header["alg"].(string)
		kid, _ := t.Header["kid"].(string)
		if alg != "RS256" && alg != "ES256" {
			return nil, refuse("alg_not_allowed", "alg %q is not accepted", clip(alg))
		}
		if kid == "" {
			return nil, refuse("unknown_key", "%s token without a kid", alg)
		}
		return k.ks.keyfunc(ctx, alg, kid)(t)
	}
}

// ValidSubject reports whether sub can stand for a person in the audit
// trail (printable, without surrounding space, at most 256 bytes), as a
// staff token's sub must.
func ValidSubject(sub string) error { return validSubject(sub) }
