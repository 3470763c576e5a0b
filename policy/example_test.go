package policy_test

import (
	"fmt"
	"testing/fstest"

	"moderator/policy"
)

// A rule folder with one rule and a word list: load it, then evaluate an
// event. The decision names the rule, the values it read, and the actions
// it asks for.
func Example() {
	folder := fstest.MapFS{
		"links.yaml": {Data: []byte(`
rules:
  - id: new-account-links
    description: Links from accounts younger than a day
    reason: "link from an account {{user.account_age}} old"
    mode: enforce
    when: user.account_age < duration("24h") && len(text.links) > 0
    actions:
      - flag: {target: message}
      - ban: {timeout: 1h, shadow: true}
    examples:
      - event: {user: {created_at: "2026-01-15T09:00:00Z"}, message: {text: "https://spam.example"}}
        expect: {match: true, actions: [flag, ban]}
      - event: {message: {text: "https://example.com"}}
        expect: {match: false}
`)},
	}
	rs, err := policy.Load(folder)
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, err := policy.ParseEvent([]byte(`{
		"type": "message.new",
		"created_at": "2026-01-15T12:00:00Z",
		"message": {"id": "m1", "text": "cheap watches at https://spam.example/buy",
			"user": {"id": "u1", "created_at": "2026-01-15T09:00:00Z"}}
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	d := rs.Evaluate(ev)
	for _, m := range d.Matches {
		fmt.Println(m.RuleID, m.Mode, m.Reason)
		fmt.Println("  account age:", m.Evidence["user.account_age"])
		fmt.Println("  links:", m.Evidence["text.links"])
	}
	for _, a := range d.Actions {
		fmt.Println("action:", a)
	}
	// Output:
	// new-account-links enforce link from an account 3h0m0s old
	//   account age: 3h0m0s
	//   links: [https://spam.example/buy]
	// action: flag message ("link from an account 3h0m0s old")
	// action: ban 1h shadow ("link from an account 3h0m0s old")
}

// Load reports every problem of a folder at its file and line.
func ExampleLoad_errors() {
	folder := fstest.MapFS{
		"rules.yaml": {Data: []byte(`rules:
  - id: typo
    description: a misspelt field
    when: user.acount_age < duration("24h")
    actions: [{mute: {timeout: 30s}}]
    examples:
      - {event: {}, expect: {match: true}}
      - {event: {}, expect: {match: false}}
`)},
	}
	_, err := policy.Load(folder)
	fmt.Println(err)
	// Output:
	// rules.yaml:4: when: type user has no field acount_age (column 16)
	// rules.yaml:5: mute timeout 30s: Stream counts whole minutes, so use at least 1m and whole minutes
}
