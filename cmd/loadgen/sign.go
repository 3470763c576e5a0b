package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// sign returns the X-Signature Stream sends with a webhook: the lowercase
// hex HMAC-SHA256 of the raw, uncompressed body keyed with the API secret.
func sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}
