package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// registerBuildInfo exports moderator_build_info{version,commit,go} = 1, so
// dashboards and alerts can tell which build each replica runs.
func registerBuildInfo(reg prometheus.Registerer) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "moderator_build_info",
		Help:        "Always 1; its labels name the running build.",
		ConstLabels: prometheus.Labels{"version": buildVersion(), "commit": commit, "go": runtime.Version()},
	})
	g.Set(1)
	reg.MustRegister(g)
}

// metricsHandler serves the registry in Prometheus' text format. A
// collector that fails (the action queue's, which asks the database) is
// left out rather than failing the page: a database outage is when the
// spool's and the webhooks' figures matter most.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError})
}

// metricsServer is the separate /metrics listener of MODERATOR_METRICS_ADDR.
type metricsServer struct {
	srv *http.Server
	ln  net.Listener
}

// listenMetrics opens MODERATOR_METRICS_ADDR's listener; it serves /metrics
// and /healthz only.
func listenMetrics(addr string, reg *prometheus.Registry, logger *slog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (MODERATOR_METRICS_ADDR): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(reg))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return &metricsServer{ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}}, nil
}

// serve runs until Shutdown; its error, other than the closed server's, is
// logged by the caller.
func (m *metricsServer) serve() error {
	if err := m.srv.Serve(m.ln); err != nil && err != http.ErrServerClosed {
		return fmt.Errorf("metrics listener: %w", err)
	}
	return nil
}

func (m *metricsServer) shutdown(ctx context.Context) error { return m.srv.Shutdown(ctx) }
