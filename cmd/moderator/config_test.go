package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moderator/policy"
)

func TestLoadConfigErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	valid := map[string]string{
		"DATABASE_URL":      "postgres://u@127.0.0.1:5432/db",
		"STREAM_API_KEY":    "key",
		"STREAM_API_SECRET": "s3cret-value",
	}
	tests := []struct {
		name    string
		command string
		set     map[string]string
		unset   string
		want    string // the error names this
	}{
		{"missing database", "serve", nil, "DATABASE_URL", "DATABASE_URL is required"},
		{"missing database for migrate", "migrate", nil, "DATABASE_URL", "DATABASE_URL is required"},
		{"malformed database", "serve", map[string]string{"DATABASE_URL": "postgres://u:pw@[::1"}, "", "DATABASE_URL: not a valid"},
		{"missing key", "serve", nil, "STREAM_API_KEY", "STREAM_API_KEY is required"},
		{"missing secret", "serve", nil, "STREAM_API_SECRET", "STREAM_API_SECRET is required"},
		{"bad dry run", "serve", map[string]string{"MODERATOR_DRY_RUN": "yes please"}, "", "MODERATOR_DRY_RUN: must be true or false"},
		{"bad base url", "serve", map[string]string{"STREAM_BASE_URL": "chat.stream-io-api.com"}, "", "STREAM_BASE_URL: must be an http(s) URL"},
		{"bad addr", "serve", map[string]string{"MODERATOR_ADDR": "8080"}, "", "MODERATOR_ADDR: must be host:port"},
		{"bad key pairs", "serve", map[string]string{"STREAM_API_KEYS": "k1:s1,broken"}, "", "STREAM_API_KEYS: entry 2 must be key:secret"},
		{"bad body limit", "serve", map[string]string{"MODERATOR_MAX_BODY_BYTES": "lots"}, "", "MODERATOR_MAX_BODY_BYTES: must be a positive size"},
		{"bad shutdown timeout", "serve", map[string]string{"MODERATOR_SHUTDOWN_TIMEOUT": "-1s"}, "", "MODERATOR_SHUTDOWN_TIMEOUT: must be a positive duration"},
		{"bad log level", "serve", map[string]string{"MODERATOR_LOG_LEVEL": "loud"}, "", "MODERATOR_LOG_LEVEL: must be debug"},
		{"unknown action in rate limits", "serve", map[string]string{"MODERATOR_RATE_LIMITS": "ban=300,kick=5"}, "", "MODERATOR_RATE_LIMITS: want type=number pairs"},
		{"zero rate limit", "serve", map[string]string{"MODERATOR_RATE_LIMITS": "ban=0"}, "", "MODERATOR_RATE_LIMITS: ban: want a whole number of at least 1"},
		{"negative daily cap", "serve", map[string]string{"MODERATOR_DAILY_CAPS": "ban=-1"}, "", "MODERATOR_DAILY_CAPS: ban: want a whole number of at least 0"},
		{"bad workers", "serve", map[string]string{"MODERATOR_ACTION_WORKERS": "many"}, "", "MODERATOR_ACTION_WORKERS: must be a positive whole number"},
		{"bad immunity window", "serve", map[string]string{"MODERATOR_IMMUNITY_WINDOW": "a day"}, "", "MODERATOR_IMMUNITY_WINDOW: must be a positive duration"},
		{"zero immunity window", "serve", map[string]string{"MODERATOR_IMMUNITY_WINDOW": "0s"}, "", "MODERATOR_IMMUNITY_WINDOW: must be a positive duration"},
		{"guard rate over 1", "serve", map[string]string{"MODERATOR_GUARD_MAX_OVERTURN_RATE": "30"}, "", "MODERATOR_GUARD_MAX_OVERTURN_RATE: must be a share above 0 and at most 1"},
		{"guard window too long", "serve", map[string]string{"MODERATOR_GUARD_WINDOW": "90d"}, "", "MODERATOR_GUARD_WINDOW: must be a duration from 1h to 30d"},
		{"bad retention", "serve", map[string]string{"MODERATOR_RETENTION": "forever"}, "", "MODERATOR_RETENTION: must be a duration such as 400d"},
		{"retention under six months", "serve", map[string]string{"MODERATOR_RETENTION": "90d"}, "", "MODERATOR_RETENTION: 90d is shorter than 183 days, the six months users have to appeal under the EU Digital Services Act; set MODERATOR_RETENTION_FORCE=true"},
		{"bad retention force", "serve", map[string]string{"MODERATOR_RETENTION": "90d", "MODERATOR_RETENTION_FORCE": "sure"}, "", "MODERATOR_RETENTION_FORCE: must be true or false"},
		{"bad migrate url", "serve", map[string]string{"MODERATOR_MIGRATE_DATABASE_URL": "postgres://u:pw@[::1"}, "", "MODERATOR_MIGRATE_DATABASE_URL: not a valid"},
		{"reversals are not capped", "serve", map[string]string{"MODERATOR_DAILY_CAPS": "unban=5"}, "", "MODERATOR_DAILY_CAPS: want type=number pairs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			for k, v := range valid {
				env[k] = v
			}
			for k, v := range tt.set {
				env[k] = v
			}
			delete(env, tt.unset)
			_, err := loadConfig(tt.command, nil, func(k string) string { return env[k] }, io.Discard)
			if err == nil {
				t.Fatalf("got nil error, want one naming %q", tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Fatalf("error %q does not say %q", msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Fatalf("error %q spans several lines, want one", msg)
			}
			if strings.Contains(msg, "s3cret-value") || strings.Contains(msg, "pw@") {
				t.Fatalf("error %q leaks a secret", msg)
			}
		})
	}
}

func TestLoadConfigDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL":             "postgres://u@127.0.0.1:5432/db",
		"STREAM_API_KEY":           "key",
		"STREAM_API_SECRET":        "secret",
		"STREAM_API_KEYS":          " old:oldsecret , older:oldersecret ",
		"MODERATOR_MAX_BODY_BYTES": "2MiB",
		"MODERATOR_DRY_RUN":        "true",
		"MODERATOR_RATE_LIMITS":    "ban=600, flag=1000, unban=120",
		"MODERATOR_DAILY_CAPS":     "ban=0",
	}
	c, err := loadConfig("serve", []string{"--addr", "127.0.0.1:9999"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9999" || c.StreamBaseURL != "https://chat.stream-io-api.com" || c.RulesDir != "rules" ||
		c.BotUserID != "moderator-bot" || !c.DryRun || c.MaxBodyBytes != 2<<20 || c.MaxGunzipBytes != 8<<20 ||
		c.ShutdownTimeout != 20*time.Second || c.ImmunityWindow != 24*time.Hour {
		t.Fatalf("config = %+v", c)
	}
	if diff := cmp.Diff(map[policy.ActionType]int{policy.ActionBan: 600, policy.ActionFlag: 1000, "unban": 120}, c.RateLimits); diff != "" {
		t.Fatalf("rate limits (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[policy.ActionType]int{policy.ActionBan: 0}, c.DailyCaps); diff != "" {
		t.Fatalf("daily caps (-want +got):\n%s", diff)
	}
	keys, err := c.webhookKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys["key"] != "secret" || keys["old"] != "oldsecret" || keys["older"] != "oldersecret" {
		t.Fatalf("webhook keys = %v", keys)
	}
	env["MODERATOR_IMMUNITY_WINDOW"] = "90m"
	if c, err = loadConfig("serve", nil, func(k string) string { return env[k] }, io.Discard); err != nil || c.ImmunityWindow != 90*time.Minute {
		t.Fatalf("immunity window = %s, %v; want 1h30m", c.ImmunityWindow, err)
	}
	if c.Retention != DefaultRetention {
		t.Errorf("retention = %s, want the default %s", c.Retention, DefaultRetention)
	}
	for v, want := range map[string]time.Duration{"400d": 400 * 24 * time.Hour, "9000h": 9000 * time.Hour} {
		env["MODERATOR_RETENTION"] = v
		if c, err = loadConfig("serve", nil, func(k string) string { return env[k] }, io.Discard); err != nil || c.Retention != want {
			t.Errorf("MODERATOR_RETENTION=%s: %s, %v; want %s", v, c.Retention, err, want)
		}
	}
	env["MODERATOR_RETENTION"], env["MODERATOR_RETENTION_FORCE"] = "30d", "true"
	if c, err = loadConfig("serve", nil, func(k string) string { return env[k] }, io.Discard); err != nil || c.Retention != 30*24*time.Hour {
		t.Errorf("forced MODERATOR_RETENTION=30d: %s, %v; want 720h", c.Retention, err)
	}
	if _, err := loadConfig("version", nil, func(string) string { return "" }, io.Discard); err != nil {
		t.Fatalf("version needs no configuration: %v", err)
	}
}

// TestLoadConfigReportsEveryProblem: every missing and malformed variable
// is reported in one run, one line each, instead of one per attempt.
func TestLoadConfigReportsEveryProblem(t *testing.T) {
	t.Parallel()
	env := map[string]string{"MODERATOR_DRY_RUN": "yes please", "MODERATOR_ADDR": "8080"}
	_, err := loadConfig("serve", nil, func(k string) string { return env[k] }, io.Discard)
	if err == nil {
		t.Fatal("got nil error")
	}
	want := []string{
		"MODERATOR_DRY_RUN: must be true or false, got \"yes please\"",
		"DATABASE_URL is required (for example postgres://user@127.0.0.1:5432/moderator)",
		"STREAM_API_KEY is required",
		"STREAM_API_SECRET is required",
		"MODERATOR_ADDR: must be host:port or :port, got \"8080\"",
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
