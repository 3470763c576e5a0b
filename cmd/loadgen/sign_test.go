package main

import "testing"

func TestSign(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret string
		body   string
		want   string
	}{
		{
			// The worked example in STREAM_API.md.
			name:   "stream vector",
			secret: "tsec2",
			body:   `{"type":"message.new","message":{"text":"the quick brown fox"}}`,
			want:   "a91edf26f024e0efad88b0e2561e4841fa6f8c85f98ecb85dcd12e58563c2218",
		},
		{
			// Computed independently with Python's hmac module.
			name:   "empty body",
			secret: "dev-secret",
			body:   "",
			want:   "81e9bc06b6af1b4362fe7888de7e192c9c0d955d298135162aaf281b8172f861",
		},
		{
			name:   "utf-8 body signed as raw bytes",
			secret: "dev-secret",
			body:   `{"text":"café 🔥"}`,
			want:   "f6ccb64c3c454207029be63c4255bcb678a4f353b2db82748bda14770eb56841",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := sign([]byte(tt.secret), []byte(tt.body)); got != tt.want {
				t.Errorf("sign(%q, %q) = %s, want %s", tt.secret, tt.body, got, tt.want)
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	body := make([]byte, 2048)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	secret := []byte("dev-secret")
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		sign(secret, body)
	}
}
