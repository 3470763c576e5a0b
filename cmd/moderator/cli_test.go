package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestHelpForEveryCommand(t *testing.T) {
	t.Parallel()
	// Every command the usage text lists is in commandTree, and the other
	// way round, so help and the completions know them all.
	listed := regexp.MustCompile(`(?m)^  ([a-z]+)\b`).FindAllStringSubmatch(usage, -1)
	var fromUsage []string
	for _, m := range listed {
		fromUsage = append(fromUsage, m[1])
	}
	fromUsage = slices.Compact(fromUsage) // "rules test" and "rules backtest" are one command
	if got, want := strings.Join(fromUsage, " "), strings.Join(commandNames(), " "); got != want {
		t.Errorf("usage lists %q, commandTree %q", got, want)
	}
	noEnv := func(string) string { return "" }
	for _, name := range commandNames() {
		if name == "help" {
			continue
		}
		for _, args := range [][]string{{"help", name}, {name, "--help"}} {
			var out, errOut bytes.Buffer
			err := run(context.Background(), args, noEnv, strings.NewReader(""), &out, &errOut)
			if args[0] == "help" && err != nil {
				t.Errorf("%v: %v", args, err)
			}
			if code := exitCode(err); code != 0 {
				t.Errorf("%v: exit %d (%v), want 0", args, code, err)
			}
			text := out.String() + errOut.String()
			if !strings.Contains(text, "usage: moderator "+name) {
				t.Errorf("%v printed no usage of %s:\n%s", args, name, text)
			}
			if args[0] == "help" && errOut.Len() > 0 {
				t.Errorf("%v wrote to stderr: %s", args, errOut.String())
			}
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"help", "serve"}, noEnv, strings.NewReader(""), &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"DATABASE_URL", "MODERATOR_METRICS_ADDR", "STREAM_API_SECRET"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("help serve does not list %s", v)
		}
	}
	if err := run(context.Background(), []string{"help", "nonsense"}, noEnv, strings.NewReader(""), &out, &out); err == nil {
		t.Error("help nonsense: no error")
	}
}

// exitCode is the status main would exit with for err.
func exitCode(err error) int {
	switch {
	case err == nil, isErrHelp(err):
		return 0
	case isErrUsage(err):
		return 2
	default:
		return 1
	}
}

func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"completion", shell}, nil, strings.NewReader(""), &out, &out); err != nil {
			t.Fatalf("completion %s: %v", shell, err)
		}
		script := out.String()
		for _, c := range commandTree {
			if !strings.Contains(script, c.name) {
				t.Errorf("%s completion lacks %s", shell, c.name)
			}
			if len(c.subs) > 0 && !strings.Contains(script, strings.Join(c.subs, " ")) {
				t.Errorf("%s completion lacks the subcommands of %s", shell, c.name)
			}
		}
		if !strings.Contains(script, "complete -F _moderator moderator") {
			t.Errorf("%s completion does not register itself", shell)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"completion", "fish"}, nil, strings.NewReader(""), &out, &out); exitCode(err) != 2 {
		t.Errorf("completion fish: got %v, want a usage error", err)
	}
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	_, port, err := net.SplitHostPort(strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MODERATOR_ADDR": ":" + port}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"healthcheck"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, &out); err != nil {
		t.Errorf("healthcheck of a ready service: %v\n%s", err, out.String())
	}

	// Nothing listens on a port just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	err = run(context.Background(), []string{"healthcheck", "--url", "http://" + closed + "/readyz"}, nil, strings.NewReader(""), &out, &out)
	if exitCode(err) != 1 {
		t.Errorf("healthcheck of nothing: got %v, want a failure (exit 1)", err)
	}
}

func isErrHelp(err error) bool  { return errors.Is(err, flag.ErrHelp) }
func isErrUsage(err error) bool { return errors.Is(err, errUsage) }
