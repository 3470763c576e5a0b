package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// command is one command of the binary and its subcommands.
type command struct {
	name string
	subs []string
}

// commandTree lists every command and its subcommands, for `help` and the
// shell completions. A test holds it to the usage text.
var commandTree = []command{
	{"serve", nil},
	{"migrate", nil},
	{"rules", []string{"test", "backtest"}},
	{"eval", nil},
	{"token", nil},
	{"audit", []string{"user", "message", "decision", "appeal", "statement", "events", "decisions", "actions", "appeals", "rules", "quarantine"}},
	{"healthcheck", nil},
	{"completion", []string{"bash", "zsh"}},
	{"version", nil},
	{"help", nil},
}

func isHelpFlag(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help"
}

// runHelp is `moderator help [CMD]`: the general usage, or CMD's own, which
// is what `moderator CMD --help` prints, on stdout, with exit status 0.
func runHelp(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if !slices.ContainsFunc(commandTree, func(c command) bool { return c.name == args[0] }) || args[0] == "help" {
		return fmt.Errorf("help: unknown command %q; the commands are %s", args[0], strings.Join(commandNames(), ", "))
	}
	err := run(ctx, append(slices.Clone(args), "--help"), getenv, stdin, stdout, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func commandNames() []string {
	names := make([]string, len(commandTree))
	for i, c := range commandTree {
		names[i] = c.name
	}
	return names
}

// runCompletion prints a completion script for bash or zsh, to be sourced:
//
//	source <(moderator completion bash)
func runCompletion(args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && isHelpFlag(args[0]) {
		fmt.Fprint(stdout, completionUsage)
		return nil
	}
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		fmt.Fprint(stderr, completionUsage)
		return errUsage
	}
	var cases strings.Builder
	for _, c := range commandTree {
		if len(c.subs) > 0 {
			fmt.Fprintf(&cases, "\t\t%s) words=%q ;;\n", c.name, strings.Join(c.subs, " "))
		}
	}
	script := strings.NewReplacer("@COMMANDS@", strings.Join(commandNames(), " "), "@CASES@", cases.String()).Replace(bashCompletion)
	if args[0] == "zsh" {
		script = "autoload -U +X bashcompinit && bashcompinit\n" + script
	}
	fmt.Fprint(stdout, script)
	return nil
}

const completionUsage = `usage: moderator completion bash|zsh

print a shell completion script for commands and subcommands; load it with
  source <(moderator completion bash)       # in ~/.bashrc
  source <(moderator completion zsh)        # in ~/.zshrc
`

// bashCompletion completes the command, then its subcommand (or, for help,
// a command name); zsh runs it through bashcompinit.
const bashCompletion = `# moderator shell completion (moderator completion bash|zsh)
_moderator() {
	local cur=${COMP_WORDS[COMP_CWORD]} words=""
	if ((COMP_CWORD == 1)); then
		words="@COMMANDS@"
	elif ((COMP_CWORD == 2)); then
		case ${COMP_WORDS[1]} in
@CASES@		help) words="@COMMANDS@" ;;
		esac
	fi
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _moderator moderator
`
