package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// request is one pre-built webhook delivery: everything that varies between
// requests is computed before the run.
type request struct {
	webhookID string
	signature string // over the uncompressed body
	body      []byte // as sent: gzip-compressed with -gzip
}

// slot is one scheduled send. A duplicate slot points at the request of an
// earlier slot and re-sends it unchanged, as a Stream retry does.
type slot struct {
	req *request
	dup bool
}

// ids returns the webhook ids of the plan's unique requests.
func (p *plan) ids() []string {
	var ids []string
	for _, s := range p.slots {
		if !s.dup {
			ids = append(ids, s.req.webhookID)
		}
	}
	return ids
}

// plan is the whole run's requests in send order.
type plan struct {
	slots  []slot
	unique int
	bytes  int64 // total size of the unique bodies as sent
}

func (p *plan) avgSize() float64 {
	if p.unique == 0 {
		return 0
	}
	return float64(p.bytes) / float64(p.unique)
}

// dupWindow bounds how far back a duplicate reaches: Stream retries within
// seconds, so a re-send repeats a recent delivery, not an arbitrary old one.
const dupWindow = 1000

// generator builds signed bodies, either realistic message.new events or
// expansions of a template file.
type generator struct {
	secret []byte
	gzip   bool
	seed   uint64
	now    time.Time
	rate   float64
	tmpl   *template // nil: generated events
}

func newGenerator(cfg config, stderr io.Writer) (*generator, error) {
	g := &generator{
		secret: []byte(cfg.secret),
		gzip:   cfg.gzip,
		seed:   cfg.seed,
		now:    time.Now().UTC(),
		rate:   cfg.rate,
	}
	if g.seed == 0 {
		// Fresh ids per run: the service's deduplication is durable, so a
		// repeated seed would make a second run all duplicates.
		g.seed = rand.Uint64() | 1
	}
	if cfg.bodyFile != "" {
		raw, err := os.ReadFile(cfg.bodyFile)
		if err != nil {
			return nil, fmt.Errorf("read body template: %w", err)
		}
		t, err := parseTemplate(raw)
		if err != nil {
			return nil, fmt.Errorf("body template %s: %w", cfg.bodyFile, err)
		}
		if t.constant {
			fmt.Fprintf(stderr, "loadgen: warning: %s has no placeholders and no message object; every body is identical, so the service will treat all but the first as duplicates\n", cfg.bodyFile)
		}
		g.tmpl = t
		// Catch a template that expands to invalid JSON before building
		// thousands of them.
		if _, err := g.rawBody(0, 0); err != nil {
			return nil, fmt.Errorf("body template %s: %w", cfg.bodyFile, err)
		}
	}
	return g, nil
}

// build pre-builds n sends, a fraction dup of which re-send an earlier
// request. The unique bodies are built in parallel, each from its own
// random stream, so a given seed gives the same bodies whatever the
// parallelism.
func (g *generator) build(n int, dup float64) (*plan, error) {
	rng := rand.New(rand.NewPCG(g.seed, 0x6c6f616467656e)) // "loadgen"
	// ordinal[i] is the index, among the unique requests, of the one that
	// slot i sends.
	ordinal := make([]int, n)
	isDup := make([]bool, n)
	// firstSlot[u] is the slot that first sends unique request u; its
	// schedule dates the body's created_at.
	firstSlot := make([]int, 0, n)
	for i := range n {
		u := len(firstSlot)
		if u > 0 && dup > 0 && rng.Float64() < dup {
			ordinal[i] = u - 1 - rng.IntN(min(u, dupWindow))
			isDup[i] = true
			continue
		}
		ordinal[i] = u
		firstSlot = append(firstSlot, i)
	}

	reqs := make([]request, len(firstSlot))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(reqs)))
	errs := make([]error, workers)
	sizes := make([]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var zbuf bytes.Buffer
			zw := gzip.NewWriter(&zbuf)
			for u := w; u < len(reqs); u += workers {
				r, err := g.request(u, firstSlot[u], zw, &zbuf)
				if err != nil {
					errs[w] = err
					return
				}
				reqs[u] = r
				sizes[w] += int64(len(r.body))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	p := &plan{slots: make([]slot, n), unique: len(reqs)}
	for _, s := range sizes {
		p.bytes += s
	}
	for i := range n {
		p.slots[i] = slot{req: &reqs[ordinal[i]], dup: isDup[i]}
	}
	return p, nil
}

// request builds, signs and (with -gzip) compresses unique request u, first
// sent by slot i.
func (g *generator) request(u, i int, zw *gzip.Writer, zbuf *bytes.Buffer) (request, error) {
	raw, err := g.rawBody(u, i)
	if err != nil {
		return request{}, err
	}
	r := request{
		webhookID: uuid(rand.New(rand.NewPCG(g.seed, ^uint64(u))), u),
		signature: sign(g.secret, raw),
		body:      raw,
	}
	if g.gzip {
		zbuf.Reset()
		zw.Reset(zbuf)
		if _, err := zw.Write(raw); err != nil {
			return request{}, fmt.Errorf("gzip body %d: %w", u, err)
		}
		if err := zw.Close(); err != nil {
			return request{}, fmt.Errorf("gzip body %d: %w", u, err)
		}
		r.body = bytes.Clone(zbuf.Bytes())
	}
	return r, nil
}

// rawBody returns the uncompressed body of unique request u, first sent by
// slot i. Everything random in it comes from a stream seeded by u alone.
func (g *generator) rawBody(u, i int) ([]byte, error) {
	rng := rand.New(rand.NewPCG(g.seed, uint64(u)))
	at := g.now
	if g.rate > 0 {
		// Date the event near when it will be sent, so that a freshness
		// check on created_at sees it as current.
		at = at.Add(time.Duration(float64(i) / g.rate * float64(time.Second)))
	}
	ev := newEvent(rng, u, g.now, at)
	if g.tmpl != nil {
		return g.tmpl.expand(u, ev)
	}
	return marshal(ev)
}

// marshal encodes v as Stream does: HTML characters unescaped, no trailing
// newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// uuid returns a version 4 UUID whose last 48 bits are u, so that ids are
// unique within a run by construction, and whose other bits come from rng,
// so that they differ between runs.
func uuid(rng *rand.Rand, u int) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], rng.Uint64())
	binary.BigEndian.PutUint64(b[8:16], uint64(u))
	binary.BigEndian.PutUint16(b[8:10], uint16(rng.Uint32()))
	b[6] = 0x40 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

// The wire form of a generated message.new event: the part of Stream's
// payload that moderation reads, plus the bulky fields (html, reactions,
// request_info) that make its size realistic, about 1.7 KB.
type (
	wireEvent struct {
		Type               string       `json:"type"`
		CID                string       `json:"cid"`
		ChannelType        string       `json:"channel_type"`
		ChannelID          string       `json:"channel_id"`
		ChannelMemberCount int          `json:"channel_member_count"`
		WatcherCount       int          `json:"watcher_count"`
		Message            wireMessage  `json:"message"`
		User               wireUser     `json:"user"`
		CreatedAt          string       `json:"created_at"`
		RequestInfo        *requestInfo `json:"request_info,omitempty"`
	}
	wireMessage struct {
		ID              string           `json:"id"`
		CID             string           `json:"cid"`
		Text            string           `json:"text"`
		HTML            string           `json:"html"`
		Type            string           `json:"type"`
		User            wireUser         `json:"user"`
		Attachments     []wireAttachment `json:"attachments"`
		LatestReactions []struct{}       `json:"latest_reactions"`
		OwnReactions    []struct{}       `json:"own_reactions"`
		ReactionCounts  map[string]int   `json:"reaction_counts"`
		ReplyCount      int              `json:"reply_count"`
		CreatedAt       string           `json:"created_at"`
		UpdatedAt       string           `json:"updated_at"`
		MentionedUsers  []wireUser       `json:"mentioned_users"`
		Silent          bool             `json:"silent"`
		Shadowed        bool             `json:"shadowed"`
		Pinned          bool             `json:"pinned"`
	}
	wireUser struct {
		ID        string `json:"id"`
		Role      string `json:"role"`
		Name      string `json:"name"`
		Language  string `json:"language,omitempty"`
		CreatedAt string `json:"created_at"`
		UpdatedAt string `json:"updated_at"`
		Online    bool   `json:"online"`
		Banned    bool   `json:"banned"`
	}
	wireAttachment struct {
		Type        string `json:"type"`
		Title       string `json:"title,omitempty"`
		TitleLink   string `json:"title_link,omitempty"`
		Text        string `json:"text,omitempty"`
		OGScrapeURL string `json:"og_scrape_url,omitempty"`
	}
	requestInfo struct {
		Type      string `json:"type"`
		IP        string `json:"ip"`
		UserAgent string `json:"user_agent"`
		SDK       string `json:"sdk"`
	}
)

// stamp formats a time as Stream's legacy payloads do.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

const userPool = 500

// newEvent returns a message.new event for unique request u sent at the
// time at; now anchors the users' account ages.
func newEvent(rng *rand.Rand, u int, now, at time.Time) wireEvent {
	// Chat traffic is skewed: a few users send most messages, which is what
	// per-user counters and strikes see.
	f := rng.Float64()
	senderIdx := int(f * f * userPool)
	sender := newUser(senderIdx, now)
	channelID := channels[rng.IntN(len(channels))]
	cid := "messaging:" + channelID

	var mentioned []wireUser
	var names []string
	if rng.Float64() < 0.2 {
		for range 1 + rng.IntN(3) {
			m := newUser(rng.IntN(userPool), now)
			mentioned = append(mentioned, m)
			names = append(names, m.ID)
		}
	}
	text, links := newText(rng, names)
	attachments := []wireAttachment{}
	if len(links) > 0 {
		attachments = append(attachments, wireAttachment{
			Type:        "url",
			Title:       "Link preview",
			TitleLink:   links[0],
			Text:        "A page someone shared in chat.",
			OGScrapeURL: links[0],
		})
	}
	if mentioned == nil {
		mentioned = []wireUser{}
	}
	ts := stamp(at)
	members := 20 + int(channelID[0])%7*40
	return wireEvent{
		Type:               "message.new",
		CID:                cid,
		ChannelType:        "messaging",
		ChannelID:          channelID,
		ChannelMemberCount: members,
		WatcherCount:       1 + rng.IntN(members),
		Message: wireMessage{
			ID:              uuid(rng, u),
			CID:             cid,
			Text:            text,
			HTML:            "<p>" + html.EscapeString(text) + "</p>\n",
			Type:            "regular",
			User:            sender,
			Attachments:     attachments,
			LatestReactions: []struct{}{},
			OwnReactions:    []struct{}{},
			CreatedAt:       ts,
			UpdatedAt:       ts,
			MentionedUsers:  mentioned,
		},
		User:      sender,
		CreatedAt: ts,
		RequestInfo: &requestInfo{
			Type:      "client",
			IP:        fmt.Sprintf("10.0.%d.%d", senderIdx/250, 1+senderIdx%250),
			UserAgent: "stream-chat-react/12.0.0",
			SDK:       "stream-chat-js",
		},
	}
}

// newUser returns user number idx. The user's attributes derive from idx
// only, so the same user looks the same in every message; one in ten is a
// new account (under two days old), which account-age rules look for.
func newUser(idx int, now time.Time) wireUser {
	created := now.Add(-time.Duration(30+idx*7%1500) * 24 * time.Hour)
	if idx%10 == 3 {
		created = now.Add(-time.Duration(1+idx%47) * time.Hour)
	}
	role := "user"
	if idx == 7 {
		role = "moderator"
	}
	return wireUser{
		ID:        fmt.Sprintf("user-%04d", idx),
		Role:      role,
		Name:      firstNames[idx%len(firstNames)],
		Language:  "en",
		CreatedAt: stamp(created),
		UpdatedAt: stamp(created.Add(time.Hour)),
		Online:    true,
	}
}

// newText returns about 250 characters of chat text and the links in it.
// Some messages carry the features rules look for: links (some to dubious
// domains), @mentions of the given users, a shouted sentence, spam, an
// insult, emoji or stretched words.
func newText(rng *rand.Rand, mentions []string) (string, []string) {
	var extras, links []string
	if rng.Float64() < 0.25 {
		l := "https://" + domains[rng.IntN(len(domains))] + "/" + strconv.FormatUint(rng.Uint64()%1e8, 36)
		links = append(links, l)
		extras = append(extras, pick(rng, linkLeads)+" "+l)
	}
	if rng.Float64() < 0.05 {
		extras = append(extras, pick(rng, spam))
	}
	if rng.Float64() < 0.05 {
		extras = append(extras, pick(rng, insults))
	}
	if rng.Float64() < 0.15 {
		extras = append(extras, pick(rng, emoji))
	}
	if rng.Float64() < 0.05 {
		extras = append(extras, pick(rng, stretched))
	}
	shout := rng.Float64() < 0.1

	// Lengths count characters, not bytes, as Stream's limits do.
	target := 190 + rng.IntN(81)
	var b strings.Builder
	b.Grow(target + 80)
	length := 0
	write := func(s string) {
		if length > 0 {
			b.WriteByte(' ')
			length++
		}
		b.WriteString(s)
		length += utf8.RuneCountInString(s)
	}
	for _, m := range mentions {
		write("@" + m)
	}
	for length < target || len(extras) > 0 {
		// Put an extra in place of a sentence now and then, and all of
		// them once the text is long enough.
		if len(extras) > 0 && (length >= target || rng.IntN(3) == 0) {
			write(extras[0])
			extras = extras[1:]
			continue
		}
		s := sentence(rng)
		if shout && rng.IntN(2) == 0 {
			s = strings.ToUpper(strings.TrimRight(s, ".?!")) + "!!!"
			shout = false
		}
		write(s)
	}
	return b.String(), links
}

// sentence returns a capitalised sentence of 5 to 12 common words.
func sentence(rng *rand.Rand) string {
	n := 5 + rng.IntN(8)
	var b strings.Builder
	for i := range n {
		w := pick(rng, words)
		if i == 0 {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
			continue
		}
		b.WriteByte(' ')
		b.WriteString(w)
	}
	b.WriteString(pick(rng, []string{".", ".", ".", "?", "!"}))
	return b.String()
}

func pick(rng *rand.Rand, list []string) string { return list[rng.IntN(len(list))] }

var (
	channels   = []string{"general", "random", "support", "gaming", "music", "offtopic", "announcements", "dev", "sports", "memes", "help", "trading"}
	firstNames = []string{"Ada", "Bruno", "Chen", "Dalia", "Emeka", "Fatima", "Gustav", "Hana", "Ivan", "Jana", "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya"}
	domains    = []string{"example.com", "github.com", "youtube.com/watch", "en.wikipedia.org/wiki", "docs.google.com/document", "bit.ly", "tinyurl.com", "free-nitro-gift.xyz", "claim-airdrop.top", "news.ycombinator.com/item"}
	linkLeads  = []string{"Check this out:", "Look at", "Here is the link", "Found it:", "Sign up at"}
	spam       = []string{"FREE crypto giveaway, claim your reward now before it ends!", "DM me for cheap followers and likes, best price guaranteed.", "Earn $500 a day from home, no experience needed, click my profile!"}
	insults    = []string{"You are such an idiot, honestly.", "Shut up, loser, nobody asked you.", "This is stupid and so are you."}
	emoji      = []string{"😂😂😂", "🔥🔥", "👍", "🙏 thanks!", "❤️", "🎉🎉🎉"}
	stretched  = []string{"sooooo goooood", "noooooo way", "hahahahahaha", "yessssss"}
	words      = []string{
		"the", "game", "tonight", "was", "really", "good", "and", "I", "think", "we", "should", "play", "again",
		"tomorrow", "after", "work", "anyone", "else", "here", "from", "Berlin", "what", "time", "is", "it",
		"for", "you", "did", "see", "new", "update", "they", "released", "yesterday", "looks", "great", "but",
		"the", "servers", "are", "slow", "again", "maybe", "because", "of", "the", "event", "can", "someone",
		"help", "me", "with", "my", "account", "settings", "please", "thanks", "a", "lot", "everyone", "love",
		"this", "channel", "so", "much", "music", "stream", "starts", "at", "eight", "don't", "forget", "to",
		"bring", "snacks", "lol", "honestly", "not", "sure", "about", "that", "one", "team", "won", "last",
		"match", "by", "two", "points", "wow", "crazy", "ending", "coffee", "break", "need", "more", "sleep",
		"weekend", "plans", "anybody", "going", "concert", "ticket", "price", "too", "high", "this", "year",
	}
)

// template is a -body file. With placeholders, each body replaces them;
// without, each body is the file's JSON with message.id replaced.
type template struct {
	raw          []byte
	placeholders bool
	obj          map[string]any // without placeholders: the decoded file
	constant     bool           // neither placeholders nor a message object
}

// templateKeys are the placeholders a template may use.
var templateKeys = []string{"{{seq}}", "{{id}}", "{{user_id}}", "{{text}}", "{{now}}"}

func parseTemplate(raw []byte) (*template, error) {
	t := &template{raw: raw}
	for _, k := range templateKeys {
		if bytes.Contains(raw, []byte(k)) {
			t.placeholders = true
		}
	}
	if t.placeholders {
		return t, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&t.obj); err != nil {
		return nil, fmt.Errorf("decode JSON object: %w", err)
	}
	if _, ok := t.obj["message"].(map[string]any); !ok {
		t.constant = true
	}
	return t, nil
}

// expand returns the body for unique request u, taking its variable parts
// from the generated event ev.
func (t *template) expand(u int, ev wireEvent) ([]byte, error) {
	if t.placeholders {
		text, err := json.Marshal(ev.Message.Text)
		if err != nil {
			return nil, fmt.Errorf("encode text: %w", err)
		}
		r := strings.NewReplacer(
			"{{seq}}", strconv.Itoa(u),
			"{{id}}", ev.Message.ID,
			"{{user_id}}", ev.User.ID,
			"{{text}}", string(text[1:len(text)-1]),
			"{{now}}", ev.CreatedAt,
		)
		body := []byte(r.Replace(string(t.raw)))
		if !json.Valid(body) {
			return nil, errors.New("not valid JSON after replacing placeholders")
		}
		return body, nil
	}
	if t.constant {
		return t.raw, nil
	}
	obj := make(map[string]any, len(t.obj))
	for k, v := range t.obj {
		obj[k] = v
	}
	msg := make(map[string]any)
	for k, v := range t.obj["message"].(map[string]any) {
		msg[k] = v
	}
	msg["id"] = ev.Message.ID
	obj["message"] = msg
	return marshal(obj)
}
