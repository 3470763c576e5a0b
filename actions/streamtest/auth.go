package streamtest

import (
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

var errWrongAlg = errors.New("token is not HS256")

// Token returns a valid server token for this server's secret, for tests
// that call the fake with a raw HTTP client.
func (s *Server) Token() string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"server": true}).SignedString([]byte(s.Secret))
	if err != nil {
		panic("streamtest: sign token: " + err.Error())
	}
	return tok
}

// authenticate checks what every server-side request must carry: the
// api_key parameter (code 2), Stream-Auth-Type: jwt, a server token in
// Authorization without a "Bearer " prefix, signed HS256 with the secret
// (code 43 for a bad signature, 5 otherwise, 40 when expired), and, on a
// request with a body, Content-Type: application/json.
func (s *Server) authenticate(r *http.Request, route string) *apiError {
	key := r.URL.Query().Get("api_key")
	switch {
	case key == "":
		return errAuth(2, "api_key not found")
	case key != s.Key:
		return errAuth(2, "api_key not valid")
	}
	if got := r.Header.Get("Stream-Auth-Type"); got != "jwt" {
		if got == "" {
			return errAuth(5, "Stream-Auth-Type header is missing; server-side calls must send jwt")
		}
		return errAuth(5, "Stream-Auth-Type "+got+" is not supported; server-side calls must send jwt")
	}
	if e := s.checkToken(r.Header.Get("Authorization")); e != nil {
		return e
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return errInput(opName(route), "Content-Type", "Content-Type must be application/json")
		}
	}
	return nil
}

func (s *Server) checkToken(header string) *apiError {
	if header == "" {
		return errAuth(5, "Authorization header is missing")
	}
	if strings.HasPrefix(strings.ToLower(header), "bearer ") {
		return errAuth(5, "Authorization must be the token itself, without a Bearer prefix")
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(header, claims, func(t *jwt.Token) (any, error) {
		if t.Method.Alg() != jwt.SigningMethodHS256.Alg() {
			return nil, errWrongAlg
		}
		return []byte(s.Secret), nil
	})
	switch {
	case errors.Is(err, errWrongAlg):
		return errAuth(5, "JWTAuth error: token is not valid: server tokens are signed HS256")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errAuth(43, "JWTAuth error: signature is not valid. Make sure the token is created using the secret for API key \""+s.Key+"\"")
	case errors.Is(err, jwt.ErrTokenExpired):
		return errAuth(40, "JWTAuth error: token has expired")
	case err != nil:
		return errAuth(5, "JWTAuth error: token is not valid")
	}
	if server, _ := claims["server"].(bool); !server {
		return errAuth(5, "JWTAuth error: not a server token: the payload must be {\"server\": true}")
	}
	if _, ok := claims["user_id"]; ok {
		return errAuth(5, "JWTAuth error: a server token must not name a user_id")
	}
	return nil
}
