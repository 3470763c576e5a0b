package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// debugPprofEnv names the loopback address of the profiling listener, for
// measuring the service under load (`go tool pprof`). It is off unless
// set, and it refuses any address but a loopback one: profiles show the
// service's internals and cost CPU, so they are never on the port Stream
// reaches.
const debugPprofEnv = "MODERATOR_DEBUG_PPROF_ADDR"

// startDebugPprof serves net/http/pprof on addr when addr is set, and
// returns the address it listens on ("" when off) and a function that
// stops it.
func startDebugPprof(addr string, logger *slog.Logger) (listening string, stop func(), err error) {
	if addr == "" {
		return "", func() {}, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return "", nil, fmt.Errorf("%s: want a loopback host:port such as 127.0.0.1:6060, got %q", debugPprofEnv, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("%s: listen on %s: %w", debugPprofEnv, addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	logger.Warn("profiling listener on (debug only)", "addr", ln.Addr().String())
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}
