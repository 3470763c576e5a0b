package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runHealthcheck asks the local service's /readyz and succeeds on a 2xx.
// It exists for container health checks: the distroless image has no shell
// and no curl. The address is MODERATOR_ADDR's port on the loopback
// interface unless --url names another.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("moderator healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "", "URL to ask (default http://127.0.0.1:<port of MODERATOR_ADDR>/readyz)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: moderator healthcheck [--url URL] [--timeout 3s]\n\n"+
			"Exits 0 when the local service answers /readyz with 200 (ready, or degraded but\n"+
			"accepting webhooks), 1 otherwise. For container health checks.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	url := *target
	if url == "" {
		addr := getenv("MODERATOR_ADDR")
		if addr == "" {
			addr = ":8080"
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil || port == "" {
			return &configError{msg: fmt.Sprintf("MODERATOR_ADDR: must be host:port or :port, got %q", addr)}
		}
		url = "http://" + net.JoinHostPort("127.0.0.1", port) + "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return errors.New("healthcheck: " + url + " answered " + resp.Status + ": " + string(body))
	}
	fmt.Fprintf(stdout, "healthcheck: %s answered %s: %s", url, resp.Status, body)
	return nil
}
