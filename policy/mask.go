package policy

import (
	"crypto/sha256"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaskWords masks in text every whitespace-separated token whose
// normalised words include one of words (the normalised entries a list
// function found; a phrase entry masks each of its words). Masking
// replaces the token's letters and digits with '*', keeping the first one
// unless full is set; punctuation and spacing are kept, so "Darn, it!"
// with words ["darn"] becomes "D***, it!". Tokens are matched after the
// same normalisation rules use, so a look-alike spelling ("d4rn") is
// masked too. The text is returned unchanged when nothing matched.
func MaskWords(text string, words []string, full bool) string {
	if text == "" || len(words) == 0 {
		return text
	}
	set := make(map[string]struct{}, len(words))
	for _, w := range words {
		for _, part := range strings.Fields(w) {
			set[part] = struct{}{}
		}
	}
	var b strings.Builder
	changed := false
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		if unicode.IsSpace(r) {
			b.WriteString(text[i : i+n])
			i += n
			continue
		}
		end := i
		for end < len(text) {
			r, n := utf8.DecodeRuneInString(text[end:])
			if unicode.IsSpace(r) {
				break
			}
			end += n
		}
		token := text[i:end]
		if maskToken(token, set) {
			changed = true
			writeMasked(&b, token, full)
		} else {
			b.WriteString(token)
		}
		i = end
	}
	if !changed {
		return text
	}
	return b.String()
}

// maskToken reports whether one of the token's normalised words is in set.
// Stretched words ("daaarn") are found by the list under their squeezed
// forms, so those are tried too.
func maskToken(token string, set map[string]struct{}) bool {
	for _, w := range Words(Normalize(token)) {
		if _, ok := set[w]; ok {
			return true
		}
		if _, ok := set[Squeeze(w)]; ok {
			return true
		}
		if _, ok := set[CollapseRepeats(w)]; ok {
			return true
		}
	}
	return false
}

// writeMasked writes token with its letters and digits replaced by '*',
// keeping the first one unless full.
func writeMasked(b *strings.Builder, token string, full bool) {
	first := !full
	for _, r := range token {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			b.WriteRune(r)
			continue
		}
		if first {
			b.WriteRune(r)
			first = false
			continue
		}
		b.WriteByte('*')
	}
}

// MessageKey identifies a message by what Stream saves before it has an
// id: its author, its channel and its text (trimmed of surrounding space).
// The before-send hook records the key of the text it let through (the
// rewritten text after a rewrite), and the message.new that follows has
// the same key, which links the two.
func MessageKey(userID, cid, text string) [32]byte {
	h := sha256.New()
	for _, part := range []string{userID, cid, strings.TrimSpace(text)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// MessageKeyOf returns the MessageKey of the message ev carries, and false
// when ev has no message or no author to key on. finalText, when not
// empty, replaces the message's text (a before-send rewrite).
func MessageKeyOf(ev *Event, finalText string) ([32]byte, bool) {
	if ev == nil || ev.Message == nil {
		return [32]byte{}, false
	}
	userID := ""
	if ev.Message.User != nil {
		userID = ev.Message.User.ID
	}
	if userID == "" && ev.User != nil {
		userID = ev.User.ID
	}
	cid := ev.ChannelCID()
	if userID == "" || cid == "" {
		return [32]byte{}, false
	}
	text := ev.Message.Text
	if finalText != "" {
		text = finalText
	}
	return MessageKey(userID, cid, text), true
}
