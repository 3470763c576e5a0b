package policy

import (
	"slices"
	"strings"
)

// actionCompiler validates one action of a rule: its type against the
// rule's events, then its parameters, by type.
type actionCompiler struct {
	c      *exprCompiler
	a      rawAction
	events []string // the rule's known events
	p      *fileParser
	spec   *actionSpec
}

// compileAction validates an action's parameters.
func (c *exprCompiler) compileAction(raw rawRule, a rawAction, events []string) (*actionSpec, []Problem) {
	ac := &actionCompiler{c: c, a: a, events: events, p: &fileParser{file: raw.file},
		spec: &actionSpec{action: Action{Type: ActionType(a.typ)}}}
	if !ac.phaseFits() {
		return nil, ac.p.problems
	}
	switch ac.spec.action.Type {
	case ActionFlag:
		ac.flag()
	case ActionMute:
		ac.mute()
	case ActionBan:
		ac.ban()
	case ActionDelete:
		var dp deleteParams
		if ac.decode(&dp) {
			ac.spec.action.Hard = dp.Hard
			ac.messageOnly()
		}
	case ActionWarn:
		ac.warn()
	case ActionBlock:
		var bp blockParams
		if ac.decode(&bp) {
			if bp.Text == "" {
				ac.p.bad(a.line, "block needs a text, shown to the sender: - block: {text: \"Links are not allowed here\"}")
			}
			ac.spec.text = ac.tmpl(bp.Text, maxBlockRunes, "text")
		}
	case ActionRewrite:
		ac.rewrite()
	default:
		ac.p.bad(a.line, "unknown action %q (known: flag, mute, ban, delete, warn, block, rewrite)", a.typ)
	}
	if len(ac.p.problems) > 0 {
		return nil, ac.p.problems
	}
	return ac.spec, nil
}

// phaseFits reports whether the action's type fits the rule's phase:
// block and rewrite before a message is sent, the others after.
func (ac *actionCompiler) phaseFits() bool {
	beforeSend := slices.Contains(ac.events, EventBeforeSend)
	switch t := ac.spec.action.Type; {
	case beforeSend && t != ActionBlock && t != ActionRewrite:
		ac.p.bad(ac.a.line, "%s cannot run before a message is sent: before_send rules take block or rewrite", ac.a.typ)
		return false
	case !beforeSend && (t == ActionBlock || t == ActionRewrite):
		ac.p.bad(ac.a.line, "%s works only before a message is sent: use it in a rule with events: [before_send]", ac.a.typ)
		return false
	}
	return true
}

// decode decodes the action's parameters into v, strictly.
func (ac *actionCompiler) decode(v any) bool {
	if ac.a.params == nil {
		return true
	}
	if _, ok := ac.p.mapping(ac.a.params, ac.a.typ+" parameters"); !ok {
		return false
	}
	return ac.p.decode(ac.a.params, v, ac.a.typ)
}

// tmpl compiles a text parameter (a reason, a warning) as a template.
func (ac *actionCompiler) tmpl(src string, limit int, what string) *template {
	if src == "" {
		return nil
	}
	t, errs := ac.c.parseTemplate(src)
	line := paramLine(ac.a, what)
	for _, e := range errs {
		ac.p.bad(line+e.line-1, "%s %s: %s", ac.a.typ, what, e)
	}
	if err := checkLiteralLen(ac.a.typ+" "+what, t, limit); err != nil {
		ac.p.bad(ac.a.line, "%v", err)
	}
	return t
}

// messageOnly refuses the action on a rule that also applies to events
// without a message.
func (ac *actionCompiler) messageOnly() {
	for _, e := range ac.events {
		if !strings.HasPrefix(e, "message.") && !strings.HasPrefix(e, "reaction.") {
			ac.p.bad(ac.a.line, "%s needs a message, but the rule also applies to %s events", ac.a.typ, e)
			return
		}
	}
}

func (ac *actionCompiler) flag() {
	var fp flagParams
	if !ac.decode(&fp) {
		return
	}
	switch fp.Target {
	case "", "message":
		ac.spec.action.Target = "message"
		ac.messageOnly()
	case "user":
		ac.spec.action.Target = "user"
	default:
		ac.p.bad(ac.a.line, "flag target %q: want message or user", fp.Target)
	}
	ac.spec.reason = ac.tmpl(fp.Reason, maxReasonRunes, "reason")
}

func (ac *actionCompiler) mute() {
	if hasParam(ac.a, "channel_only") {
		ac.p.bad(paramLine(ac.a, "channel_only"), "mute takes channel: true to mute in the event's channel only (channel_only is ban's word for it)")
		return
	}
	var mp muteParams
	if !ac.decode(&mp) {
		return
	}
	m, err := parseTimeout(mp.Timeout, true)
	switch {
	case err != nil:
		ac.p.bad(ac.a.line, "mute %v", err)
	case m == 0:
		ac.p.bad(ac.a.line, "mute needs a timeout, like - mute: {timeout: 15m}: a mute silences the user for a while, and a permanent silence is a ban")
	}
	ac.spec.action.TimeoutMinutes = m
	ac.spec.action.Shadow = mp.Shadow
	ac.spec.action.ChannelOnly = mp.Channel
	ac.spec.reason = ac.tmpl(mp.Reason, maxReasonRunes, "reason")
}

func (ac *actionCompiler) ban() {
	var bp banParams
	if !ac.decode(&bp) {
		return
	}
	m, err := parseTimeout(bp.Timeout, true)
	if err != nil {
		ac.p.bad(ac.a.line, "ban %v", err)
	}
	ac.spec.action.TimeoutMinutes = m
	ac.spec.action.Shadow = bp.Shadow
	ac.spec.action.IPBan = bp.IPBan
	ac.spec.action.ChannelOnly = bp.ChannelOnly
	switch bp.DeleteMessages {
	case "", "soft", "pruning", "hard":
		ac.spec.action.DeleteMessages = bp.DeleteMessages
	default:
		ac.p.bad(ac.a.line, "ban delete_messages %q: want soft, pruning or hard", bp.DeleteMessages)
	}
	ac.spec.reason = ac.tmpl(bp.Reason, maxReasonRunes, "reason")
}

func (ac *actionCompiler) warn() {
	var wp warnParams
	if !ac.decode(&wp) {
		return
	}
	if wp.Text == "" {
		ac.p.bad(ac.a.line, "warn needs a text: - warn: {text: \"Please keep links out of this channel\"}")
	}
	ac.spec.text = ac.tmpl(wp.Text, maxWarnRunes, "text")
	ac.spec.action.InThread = wp.InThread
	if wp.InThread {
		ac.messageOnly()
	}
}

func (ac *actionCompiler) rewrite() {
	var rp rewriteParams
	if !ac.decode(&rp) {
		return
	}
	switch rp.Mask {
	case "", MaskFirst:
		ac.spec.action.Mask = MaskFirst
	case MaskFull:
		ac.spec.action.Mask = MaskFull
	default:
		ac.p.bad(ac.a.line, "rewrite mask %q: want first (keep the first letter) or full", rp.Mask)
	}
}
