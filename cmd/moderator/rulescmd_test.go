package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"moderator/policy"
)

func starterVersion(t *testing.T) string {
	t.Helper()
	rs, err := policy.Load(os.DirFS("../../rules"))
	if err != nil {
		t.Fatalf("load starter pack: %v", err)
	}
	return rs.Version()
}

func TestRunRulesTest(t *testing.T) {
	t.Parallel()
	version := starterVersion(t)
	tests := []struct {
		name       string
		args       []string
		wantErr    string // "" for success
		wantStdout string
		wantStderr string
	}{
		{
			name:       "starter pack",
			args:       []string{"../../rules"},
			wantStdout: "ok: 16 rules, 47 examples passed (version " + version + ")\n",
		},
		{
			name: "starter pack, listed",
			args: []string{"-v", "../../rules"},
			wantStdout: "" +
				"enforce  scam-domains                 ../../rules/domains.yaml:5  Links to known scam and phishing domains\n" +
				"enforce  block-scam-links             ../../rules/before_send.yaml:6  Refuse messages linking to known scam and phishing domains before they are sent\n" +
				"enforce  mask-profanity               ../../rules/before_send.yaml:26  Mask swear words before the message is sent, keeping each word's first letter\n" +
				"enforce  invite-links                 ../../rules/domains.yaml:26  Invite links to other communities from accounts younger than a week\n" +
				"enforce  flood                        ../../rules/flood.yaml:6  More than ten messages in a minute, across all channels\n" +
				"shadow   copy-paste-spam              ../../rules/flood.yaml:34  The same text five times in ten minutes, spread over three or more channels\n" +
				"shadow   raid                         ../../rules/flood.yaml:56  A channel flooded by brand-new accounts, twenty messages in five minutes\n" +
				"enforce  profanity-warn               ../../rules/ladder.yaml:11  Swearing, first time in a week: a warning\n" +
				"enforce  profanity-mute               ../../rules/ladder.yaml:30  Swearing, second time in a week: a day's mute\n" +
				"enforce  profanity-ban                ../../rules/ladder.yaml:47  Swearing, third time in a week: a week's ban\n" +
				"enforce  new-account-links            ../../rules/links.yaml:4  Links from accounts younger than a day\n" +
				"enforce  over-long-message            ../../rules/long_text.yaml:7  Messages longer than the 5,000 characters the rules judge\n" +
				"enforce  mention-flood                ../../rules/mentions.yaml:3  Messages that mention eight or more people\n" +
				"enforce  profanity                    ../../rules/profanity.yaml:6  Swear words from the profanity list\n" +
				"shadow   caps-shouting                ../../rules/shouting.yaml:5  Long messages written mostly in capitals\n" +
				"enforce  repeated-characters          ../../rules/shouting.yaml:23  Messages with a character repeated twenty or more times\n" +
				"ok: 16 rules, 47 examples passed (version " + version + ")\n",
		},
		{
			name:    "broken folder",
			args:    []string{"../../policy/testdata/load/bad-mode"},
			wantErr: "rules folder ../../policy/testdata/load/bad-mode: 2 problem(s)",
			wantStderr: "" +
				`../../policy/testdata/load/bad-mode/rules.yaml:2: rule id "Bad_ID": use 1-64 lower-case letters, digits, -, _ or . (ids appear in the audit trail)` + "\n" +
				`../../policy/testdata/load/bad-mode/rules.yaml:4: mode "enforcing": want enforce or shadow` + "\n",
		},
		{
			name:       "folder without rules",
			args:       []string{"../../policy/testdata/load/empty"},
			wantErr:    "rules folder ../../policy/testdata/load/empty: 1 problem(s)",
			wantStderr: "../../policy/testdata/load/empty: no rule files (*.yaml, *.yml) in the rules folder\n",
		},
		{
			name:    "missing folder",
			args:    []string{"no-such-folder"},
			wantErr: "rules folder: stat no-such-folder: no such file or directory",
		},
		{
			name:    "a file, not a folder",
			args:    []string{"rulescmd.go"},
			wantErr: "rules folder rulescmd.go is not a folder",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := runRulesTest(tt.args, &stdout, &stderr)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("runRulesTest(%q) = %v, want success; stderr:\n%s", tt.args, err, stderr.String())
			}
			if tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("runRulesTest(%q) = %v, want %q", tt.args, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantStdout, stdout.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunRulesTestUsage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want error
	}{
		{[]string{"a", "b"}, errUsage},
		{[]string{"-x"}, errUsage},
		{[]string{"-h"}, flag.ErrHelp},
	} {
		var stdout, stderr bytes.Buffer
		err := runRulesTest(tt.args, &stdout, &stderr)
		if !errors.Is(err, tt.want) {
			t.Errorf("runRulesTest(%q) = %v, want %v", tt.args, err, tt.want)
		}
		if !strings.Contains(stderr.String(), "usage: moderator rules test") {
			t.Errorf("runRulesTest(%q) stderr %q lacks the usage", tt.args, stderr.String())
		}
	}
}

func TestRunEval(t *testing.T) {
	t.Parallel()
	version := starterVersion(t)
	const newAccountLink = `{"user": {"id": "u1", "created_at": "2026-01-15T09:00:00Z"},
		"message": {"id": "m1", "text": "cheap watches at https://shop.example.net/deal fuuuck"}}`
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantStdout string
	}{
		{
			name:  "partial event on stdin",
			args:  []string{"--rules", "../../rules", "--partial"},
			stdin: newAccountLink,
			wantStdout: "rule set  " + version + " (../../rules, 16 rules, 14 for message.new events)\n" +
				`event     message.new, message m1, user u1, channel messaging:general, text "cheap watches at https://shop.example.net/deal fuuuck"` + "\n" +
				"\n" +
				"MATCH  profanity-warn (enforce, ../../rules/ladder.yaml:11)\n" +
				"  reason    Swearing, first time in a week: a warning\n" +
				`  evidence  contains_any(text.words, "profanity") = ["fuuuck"]` + "\n" +
				`            strikes.by_rule("profanity", "7d") = 0` + "\n" +
				`  actions   warn "Please keep it civil: swearing is against this community's rules."` + "\n" +
				"\n" +
				"MATCH  new-account-links (enforce, ../../rules/links.yaml:4)\n" +
				"  reason    link from an account 3h0m0s old: shop.example.net\n" +
				`  evidence  text.links = ["https://shop.example.net/deal"]` + "\n" +
				`            user.account_age = "3h0m0s"` + "\n" +
				`  actions   flag message ("link from an account 3h0m0s old: shop.example.net")` + "\n" +
				"\n" +
				"MATCH  profanity (enforce, ../../rules/profanity.yaml:6)\n" +
				"  reason    profanity: fuuuck\n" +
				`  evidence  contains_any(text.words, "profanity") = ["fuuuck"]` + "\n" +
				`  actions   flag message ("profanity (fuuuck)")` + "\n" +
				"\n" +
				`actions   warn "Please keep it civil: swearing is against this community's rules."  [profanity-warn]` + "\n" +
				`          flag message ("link from an account 3h0m0s old: shop.example.net")  [new-account-links]` + "\n" +
				`          flag message ("profanity (fuuuck)")  [profanity]` + "\n",
		},
		{
			// Stream's before-send payload has no type: eval judges it as
			// the hook does, and prints the answer.
			name: "before-send payload",
			args: []string{"--rules", "../../rules"},
			stdin: `{"message": {"id": "", "text": "what the fuck", "type": "regular"}, "user": {"id": "u1", "role": "user"},
				"channel": {"cid": "messaging:e2e"}, "request_info": {"type": "client"}}`,
			wantStdout: "rule set  " + version + " (../../rules, 16 rules, 2 for before_send events)\n" +
				`event     before_send, user u1, channel messaging:e2e, text "what the fuck"` + "\n" +
				"\n" +
				"MATCH  mask-profanity (enforce, ../../rules/before_send.yaml:26)\n" +
				"  reason    masked: fuck\n" +
				`  evidence  contains_any(text.words, "profanity") = ["fuck"]` + "\n" +
				"  actions   rewrite mask=first\n" +
				"\n" +
				"actions   rewrite mask=first  [mask-profanity]\n" +
				`answer    rewrite, sending "what the f***"  [mask-profanity]` + "\n",
		},
		{
			name:  "shadow match",
			args:  []string{"--rules", "../../rules", "--partial", "-"},
			stdin: `{"message": {"text": "WHY DOES NOBODY EVER ANSWER"}}`,
			wantStdout: "rule set  " + version + " (../../rules, 16 rules, 14 for message.new events)\n" +
				`event     message.new, message example-message, user example-user, channel messaging:general, text "WHY DOES NOBODY EVER ANSWER"` + "\n" +
				"\n" +
				"SHADOW caps-shouting (shadow, ../../rules/shouting.yaml:5)\n" +
				"  reason    100% capitals\n" +
				"  evidence  text.caps_ratio = 1\n" +
				"            text.length = 27\n" +
				`  would     warn in-thread "Please don't shout."` + "\n" +
				"\n" +
				"actions   none\n",
		},
		{
			name:  "history supplied",
			args:  []string{"--rules", "../../rules", "--partial", "--history", `strikes.by_rule("profanity", "7d")=2`},
			stdin: `{"message": {"text": "piss off"}}`,
			wantStdout: "rule set  " + version + " (../../rules, 16 rules, 14 for message.new events)\n" +
				`event     message.new, message example-message, user example-user, channel messaging:general, text "piss off"` + "\n" +
				"\n" +
				"MATCH  profanity-ban (enforce, ../../rules/ladder.yaml:47)\n" +
				"  reason    swearing 3 times this week\n" +
				`  evidence  contains_any(text.words, "profanity") = ["piss off"]` + "\n" +
				`            strikes.by_rule("profanity", "7d") = 2` + "\n" +
				`  actions   ban 7d ("swearing 3 times this week")` + "\n" +
				"\n" +
				"MATCH  profanity (enforce, ../../rules/profanity.yaml:6)\n" +
				"  reason    profanity: piss off\n" +
				`  evidence  contains_any(text.words, "profanity") = ["piss off"]` + "\n" +
				`  actions   flag message ("profanity (piss off)")` + "\n" +
				"\n" +
				`actions   ban 7d ("swearing 3 times this week")  [profanity-ban]` + "\n" +
				`          flag message ("profanity (piss off)")  [profanity]` + "\n",
		},
		{
			name: "Stream's sample event from a file",
			args: []string{"--rules", "../../rules", "../../testdata/samples/message.new-1.json"},
			wantStdout: "rule set  " + version + " (../../rules, 16 rules, 14 for message.new events)\n" +
				`event     message.new, message fff0d7c0-60bd-4835-833b-3843007817bf, user 97b49906-0b98-463b-aa47-0aa945677eb2, channel messaging:fun, text "8b780762-4830-4e2a-aa43-18aabaf1732d"` + "\n" +
				"\n" +
				"no rule matched\n" +
				"\n" +
				"actions   none\n",
		},
		{
			name:  "an event type no rule is for",
			args:  []string{"--rules", "../../rules"},
			stdin: `{"type": "user.updated", "user": {"id": "u9"}}`,
			wantStdout: "rule set  " + version + " (../../rules, 16 rules, 0 for user.updated events)\n" +
				"event     user.updated, user u9\n" +
				"\n" +
				"no rule matched\n" +
				"\n" +
				"actions   none\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if err := runEval(tt.args, strings.NewReader(tt.stdin), &stdout, &stderr); err != nil {
				t.Fatalf("runEval(%q) = %v; stderr:\n%s", tt.args, err, stderr.String())
			}
			if diff := cmp.Diff(tt.wantStdout, stdout.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr: %s", stderr.String())
			}
		})
	}
}

func TestRunEvalJSON(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := runEval([]string{"--rules", "../../rules", "--json", "--partial"},
		strings.NewReader(`{"message": {"text": "free nitro https://discord-nitro.gift/x"}}`), &stdout, &stderr)
	if err != nil {
		t.Fatalf("runEval: %v; stderr:\n%s", err, stderr.String())
	}
	var d policy.Decision
	if err := json.Unmarshal(stdout.Bytes(), &d); err != nil {
		t.Fatalf("output is not a decision: %v\n%s", err, stdout.String())
	}
	var got []string
	for _, a := range d.Actions {
		got = append(got, string(a.Type)+"@"+a.RuleID)
	}
	if diff := cmp.Diff([]string{"delete@scam-domains", "ban@scam-domains"}, got); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if d.RuleSetVersion != starterVersion(t) {
		t.Errorf("version %q, want the starter pack's", d.RuleSetVersion)
	}
}

func TestRunEvalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		stdin   string
		wantErr string
	}{
		{"not JSON", []string{"--rules", "../../rules"}, "nope", "eval: stdin: decode event: invalid JSON"},
		{"not an object", []string{"--rules", "../../rules"}, "[1]", "eval: stdin: event is not a JSON object"},
		{"partial not JSON", []string{"--rules", "../../rules", "--partial"}, "{", "eval: stdin: decode partial event: unexpected end of JSON input"},
		{"missing file", []string{"--rules", "../../rules", "no-such.json"}, "", "eval: open no-such.json: no such file or directory"},
		{"broken rules", []string{"--rules", "../../policy/testdata/load/not-bool"}, "{}", "rules folder ../../policy/testdata/load/not-bool: 1 problem(s)"},
		{"two files", []string{"a.json", "b.json"}, "", "usage"},
		{"history no rule reads", []string{"--rules", "../../rules", "--history", `counts.user_messages("5m")=3`}, "{}",
			`eval: --history counts.user_messages("5m"): no rule reads it (they read counts.channel_young_messages("5m"), counts.user_channels("10m"), counts.user_duplicates("10m"), counts.user_messages("1m"), strikes.by_rule("flood", "10m"), strikes.by_rule("profanity", "7d"))`},
		{"history not a number", []string{"--rules", "../../rules", "--history", `strikes.count("7d")=many`}, "{}",
			`eval: --history strikes.count("7d")=many: the value must be a whole number ≥ 0`},
		{"history without a value", []string{"--rules", "../../rules", "--history", `strikes.count("7d")`}, "{}",
			`eval: --history strikes.count("7d"): want CALL=N, like 'counts.user_messages("1m")=11'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := runEval(tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("runEval(%q) = %v, want %q", tt.args, err, tt.wantErr)
			}
		})
	}
}
