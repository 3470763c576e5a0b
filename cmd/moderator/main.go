// Command moderator moderates a Stream Chat app: it receives Stream's signed
// webhooks, records every event in Postgres, evaluates rules and acts.
//
//	moderator serve            run the HTTP service (applies migrations first)
//	moderator migrate          apply database migrations and exit
//	moderator rules test [DIR] check a rules folder and run its examples
//	moderator eval [--rules DIR] [FILE]  evaluate one event offline
//	moderator token --role R --sub NAME [--ttl 8h]  mint a staff token
//	moderator audit …          search the audit trail from a terminal
//	moderator version          print version, commit and Go version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
)

// Set at build time: go build -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = "unknown"
)

// buildVersion is the version stamped by `make build`, else what the Go
// toolchain recorded: the module version for `go install …@v1.2.3`, or the
// VCS revision (with "+dirty") for a plain `go build` in a checkout.
func buildVersion() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return version
	}
	return "dev-" + rev[:min(12, len(rev))] + dirty
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "moderator:", err)
		os.Exit(1)
	}
}

const usage = `usage: moderator <command> [flags]

commands:
  serve                         run the HTTP service (applies pending migrations first)
  migrate                       apply database migrations and exit
  rules test [DIR]              type-check every rule and run its examples
  rules backtest [--since 7d] DIR
                                replay stored events through a candidate folder; compare with what was decided
  eval [--rules DIR] [FILE]     evaluate one Stream event (FILE or stdin) offline
  token --role R --sub NAME [--ttl 8h]
                                mint a staff token (MODERATOR_ADMIN_JWT_SECRET); prints only the token
  audit user|message|decision|appeal ID, audit events|decisions|actions|appeals|rules [filters]
                                search the audit trail (DATABASE_URL); --json for scripts
  healthcheck [--url URL]       exit 0 when the local service answers /readyz (container health checks)
  completion bash|zsh           print a shell completion script
  version                       print version, commit and Go version
  help [COMMAND]                this text, or a command's own (as COMMAND --help)

configuration comes from the environment (moderator serve --help lists it); see README.md.
`

const rulesUsage = `usage: moderator rules test [-v] [DIR]
       moderator rules backtest [--since 7d | --from T --to T] [--channel CID]... [--rule ID]... [--samples N] [--json] DIR

  test [DIR]      type-check every rule of the folder (default rules) and run its examples
  backtest DIR    replay the stored events of a window through the candidate folder and compare with what was decided
`

// run is the whole program, parameterised for tests.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		cfg, err := loadConfig(cmd, rest, getenv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stdout, stderr)
	case "migrate":
		cfg, err := loadConfig(cmd, rest, getenv, stderr)
		if err != nil {
			return err
		}
		return migrate(ctx, cfg, stdout)
	case "rules":
		if len(rest) > 0 && isHelpFlag(rest[0]) {
			fmt.Fprint(stdout, rulesUsage)
			return flag.ErrHelp
		}
		switch {
		case len(rest) > 0 && rest[0] == "test":
			return runRulesTest(rest[1:], stdout, stderr)
		case len(rest) > 0 && rest[0] == "backtest":
			return runBacktest(ctx, rest[1:], getenv, time.Now(), stdout, stderr)
		}
		fmt.Fprint(stderr, rulesUsage)
		return errUsage
	case "eval":
		return runEval(rest, stdin, stdout, stderr)
	case "token":
		return runToken(rest, getenv, time.Now(), stdout, stderr)
	case "audit":
		return runAudit(ctx, rest, getenv, time.Now(), stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, rest, getenv, stdout, stderr)
	case "completion":
		return runCompletion(rest, stdout, stderr)
	case "version", "--version", "-v":
		if len(rest) > 0 && isHelpFlag(rest[0]) {
			fmt.Fprint(stdout, "usage: moderator version\n\nprint the version, the commit and the Go version\n")
			return nil
		}
		fmt.Fprintf(stdout, "moderator %s (commit %s, %s)\n", buildVersion(), commit, runtime.Version())
		return nil
	case "help":
		return runHelp(ctx, rest, getenv, stdin, stdout)
	case "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "moderator: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}
