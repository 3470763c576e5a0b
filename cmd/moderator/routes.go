package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

type routesConfig struct {
	logger *slog.Logger
	// metrics serves /metrics; nil when it has a listener of its own
	// (MODERATOR_METRICS_ADDR).
	metrics http.Handler
	webhook http.Handler
	// beforeSend is Stream's before-message-send hook.
	beforeSend http.Handler
	// ready returns an error when the service cannot take webhooks
	// durably (503), else what is degraded, if anything (200).
	ready func(context.Context) (degraded []string, err error)
	// readyDetail is added to a 200 from /readyz when not empty: what is
	// degraded without stopping the service (a rules reload refused or
	// stuck while the last good set serves).
	readyDetail func() string
	// staffAPI owns everything below /api/v1 (appeals.NewServer, or
	// appeals.Disabled when staff authentication is not configured).
	staffAPI http.Handler
	// console owns everything below /console (console.New, or a 404 when
	// staff authentication is not configured).
	console http.Handler
}

// routes lists every endpoint of the service.
func routes(c routesConfig) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Method(http.MethodPost, "/webhooks/stream", c.webhook)
	r.Method(http.MethodPost, "/webhooks/stream/before-send", c.beforeSend)
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", handleReady(c.logger, c.ready, c.readyDetail))
	if c.metrics != nil {
		r.Method(http.MethodGet, "/metrics", c.metrics)
	}
	// The staff API: its routes and their roles are listed in
	// appeals/routes.go and documented in appeals/openapi.yaml.
	r.Mount("/api/v1", c.staffAPI)
	// The reviewer console, on the same authentication and audit.
	if c.console != nil {
		r.Mount("/console", c.console)
	}
	return r
}

// handleReady answers 200 when the service can take webhooks durably:
// {"status":"ok"}, or {"status":"degraded: spooling", "degraded": […]}
// while it can only spool them, with detail's text, if any, as "detail";
// 503 when it cannot take them at all.
func handleReady(logger *slog.Logger, ready func(context.Context) ([]string, error), detail func() string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		degraded, err := ready(ctx)
		if err != nil {
			logger.Debug("not ready", "error", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
		body := map[string]any{"status": "ok"}
		if len(degraded) > 0 {
			body["status"], body["degraded"] = "degraded: "+degraded[0], degraded
		}
		if detail != nil {
			if d := detail(); d != "" {
				body["detail"] = d
			}
		}
		writeJSON(w, http.StatusOK, body)
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
