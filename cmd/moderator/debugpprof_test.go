package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestDebugPprofOffByDefault(t *testing.T) {
	addr, stop, err := startDebugPprof("", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || addr != "" {
		t.Fatalf("got %q, %v; want no listener", addr, err)
	}
	stop()
}

func TestDebugPprofRefusesPublicAddresses(t *testing.T) {
	for _, addr := range []string{":6060", "0.0.0.0:6060", "10.1.2.3:6060", "localhost", "example.com:6060"} {
		_, _, err := startDebugPprof(addr, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), debugPprofEnv) {
			t.Errorf("%q: got %v, want an error naming %s", addr, err, debugPprofEnv)
		}
	}
}

func TestDebugPprofServesOnLoopback(t *testing.T) {
	addr, stop, err := startDebugPprof("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("cmdline: status %d, %d bytes; want 200 with the command line", resp.StatusCode, len(body))
	}
}
