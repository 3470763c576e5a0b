package policy

import (
	"fmt"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Settings are values of the whole rules folder that are not a rule's but
// that rules read. They are set once, in a settings: block of any rule
// file (a settings.yaml of its own reads well):
//
//	settings:
//	  young_account: 7d
//
// young_account is the account age under which an account is young:
// user.young and counts.channel_young_messages follow it. It lives in the
// folder, not in the service's environment, because it is a moderation
// choice: staff change it with the rules that read it, it is reviewed
// and versioned with them, and a backtest of a folder uses that folder's
// age.

// Bounds and default of the young-account age.
const (
	DefaultYoungAccount = 24 * time.Hour
	MinYoungAccount     = time.Minute
	// MaxYoungAccount bounds the setting so that the store can index the
	// messages of every account that may be young (store/counters.go).
	MaxYoungAccount = 30 * 24 * time.Hour
)

// settingYoungAccount is the key of the young-account age.
const settingYoungAccount = "young_account"

func settingKeys() []string { return []string{settingYoungAccount} }

// rawSetting is a setting as written.
type rawSetting struct {
	file  string
	line  int
	key   string
	value string
}

// settings are the folder's settings, checked.
type settings struct {
	youngAccount time.Duration
}

// settings reads a settings: block.
func (p *fileParser) settings(v ast.Node) []rawSetting {
	m, ok := p.mapping(v, "settings")
	if !ok {
		return nil
	}
	var out []rawSetting
	p.keys(m, "settings", settingKeys(), func(key string, line int, v ast.Node) {
		s, isStr := v.(*ast.StringNode)
		if !isStr {
			p.bad(line, "settings: %s: want a duration like 24h or 7d", key)
			return
		}
		out = append(out, rawSetting{file: p.file, line: line, key: key, value: s.Value})
	})
	return out
}

// compileSettings checks the settings of the folder: each is set at most
// once, and within its bounds.
func compileSettings(raws []rawSetting) (settings, []Problem) {
	s := settings{youngAccount: DefaultYoungAccount}
	var problems []Problem
	where := map[string]rawSetting{}
	for _, r := range raws {
		bad := func(format string, args ...any) {
			problems = append(problems, Problem{File: r.file, Line: r.line, Msg: fmt.Sprintf(format, args...)})
		}
		if prev, dup := where[r.key]; dup {
			bad("settings: %s is also set at %s:%d; set it once for the folder", r.key, prev.file, prev.line)
			continue
		}
		where[r.key] = r
		d, err := ParseDuration(r.value)
		if err != nil {
			bad("settings: %s: %v", r.key, err)
			continue
		}
		if d < MinYoungAccount || d > MaxYoungAccount {
			bad("settings: %s %q is out of range: from %s to %s", r.key, r.value, formatWindow(MinYoungAccount), formatWindow(MaxYoungAccount))
			continue
		}
		s.youngAccount = d
	}
	return s, problems
}

// YoungAccount is the folder's young-account age (settings:
// young_account, DefaultYoungAccount when not set): an account younger
// than it is young for user.young and counts.channel_young_messages.
func (rs *RuleSet) YoungAccount() time.Duration { return rs.young }
