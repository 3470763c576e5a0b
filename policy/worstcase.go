package policy

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr/vm"
)

// worstCaseLimits bound one rule's run on a worst-case event, checked at
// load. A normal rule takes microseconds; these catch the ones that would
// make every long message expensive.
type worstCaseLimits struct {
	time  time.Duration
	alloc uint64
}

// defaultLimits are the limits Load applies. Under the race detector
// everything runs several times slower, so the time limit stretches with
// it.
func defaultLimits() worstCaseLimits {
	return worstCaseLimits{time: 5 * time.Millisecond * raceSlowdown, alloc: 16 << 20}
}

// worstCaseTrials is how many times a run over the limits is retried
// before the rule is refused.
const worstCaseTrials = 5

// worstCaseEvents returns synthetic events at the limits of what a rule
// sees: the longest evaluated text made of many short words, of many
// links, and of one repeated character; the most mentions and
// attachments; long custom fields. Each variant stresses different rules.
func worstCaseEvents(eventType string) []*Event {
	now := exampleTime()
	filler := func(unit string) string { // MaxTextRunes characters of unit, repeated
		return capText(strings.Repeat(unit, MaxTextRunes/utf8.RuneCountInString(unit)+1))
	}
	texts := []string{
		filler("a B c D e! "),
		filler("https://x1.spam.example/p?q=1 "),
		filler("a"),
		filler("Wörd ＦＲＥＥ 𝐟𝐫𝐞𝐞 "),
	}
	var tags []any // custom fields decode from JSON as []any
	for i := range 200 {
		tags = append(tags, fmt.Sprintf("tag-%d", i))
	}
	custom := map[string]any{"bio": filler("lorem ipsum "), "tags": tags, "tier": 3.0}
	var mentions []User
	for i := range maxMentions + 1 {
		mentions = append(mentions, User{ID: fmt.Sprintf("user-%d", i)})
	}
	var attachments []Attachment
	for i := range maxAttachments + 1 {
		attachments = append(attachments, Attachment{
			Type: "image", Title: filler("title "), TitleLink: fmt.Sprintf("https://a%d.spam.example/x", i),
			OGScrapeURL: fmt.Sprintf("https://b%d.spam.example/y", i), Text: filler("text "),
		})
	}
	var teams []string
	for i := range maxTeams + 1 {
		teams = append(teams, fmt.Sprintf("team-%d", i))
	}
	var evs []*Event
	for _, text := range texts {
		author := &User{
			ID: "worst-case-user", Role: "user", Name: filler("name "), Teams: teams,
			CreatedAt: Time{now.Add(-time.Hour)}, Custom: custom,
		}
		evs = append(evs, &Event{
			Type:      eventType,
			CreatedAt: Time{now},
			CID:       "messaging:worst-case",
			Message: &Message{
				ID: "worst-case-message", Text: text + " tail", Type: "regular", User: author,
				Attachments: attachments, MentionedUsers: mentions, ParentID: "parent",
				CreatedAt: Time{now}, Custom: custom,
			},
			MessageUpdate:      &MessageUpdate{OldText: text},
			User:               author,
			TargetUser:         author,
			Channel:            &Channel{CID: "messaging:worst-case", Type: "messaging", ID: "worst-case", MemberCount: 10_000, Custom: custom},
			ChannelMemberCount: 10_000,
		})
	}
	return evs
}

// exampleTime is the fixed "now" of examples and synthetic events.
func exampleTime() time.Time { return time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC) }

// checkWorstCase runs the rule on the worst-case events and refuses it
// when it takes too long or allocates too much on any of them. A run is
// retried before refusing, so that a pause of the garbage collector or a
// busy machine does not refuse a good rule.
//
// envs caches the worst-case environments by event type across the rules
// of one load.
func (rs *RuleSet) checkWorstCase(r *rule, lim worstCaseLimits, envs map[string][]*Env) []Problem {
	m := rs.vms.Get().(*vm.VM)
	defer rs.vms.Put(m)
	refuse := func(format string, args ...any) []Problem {
		return []Problem{{File: r.file, Line: r.whenLine, Msg: "when: refused: " + fmt.Sprintf(format, args...)}}
	}
	typ := worstCaseType(r.events)
	if envs[typ] == nil {
		for _, ev := range worstCaseEvents(typ) {
			envs[typ] = append(envs[typ], newEnv(ev, needAll, DefaultYoungAccount))
		}
	}
	for _, env := range envs[typ] {
		elapsed, alloc, err := measure(lim, func() error {
			matched, err := r.run(m, env)
			if matched {
				r.match(m, env)
			}
			return err
		})
		if err != nil && strings.Contains(err.Error(), "memory budget exceeded") {
			return refuse("allocates more than the memory budget (%d elements) on a worst-case message", vmMemoryBudget)
		}
		if elapsed > lim.time {
			return refuse("takes %v on a worst-case message (the limit is %v)", elapsed.Round(time.Microsecond), lim.time)
		}
		if alloc > lim.alloc {
			return refuse("allocates %d KiB on a worst-case message (the limit is %d KiB)", alloc>>10, lim.alloc>>10)
		}
	}
	return nil
}

// worstCaseType picks the event type to test a rule with: its first exact
// type, or message.new.
func worstCaseType(events []string) string {
	for _, e := range events {
		if e != "*" && !strings.HasSuffix(e, ".*") {
			return e
		}
	}
	return "message.new"
}

// measure runs fn up to worstCaseTrials times and returns the least CPU
// time and allocation seen, stopping early once a run is within the
// limits. The least of several runs discounts pauses of the garbage
// collector and other goroutines' work.
func measure(lim worstCaseLimits, fn func() error) (elapsed time.Duration, alloc uint64, err error) {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	for trial := range worstCaseTrials {
		runtime.Gosched() // start each trial with a fresh time slice
		before := read()
		timer := startCPUTimer()
		err = fn()
		e := timer.stop()
		a := read() - before
		if trial == 0 || e < elapsed {
			elapsed = e
		}
		if trial == 0 || a < alloc {
			alloc = a
		}
		if err != nil || (elapsed <= lim.time && alloc <= lim.alloc) {
			break
		}
	}
	return elapsed, alloc, err
}
