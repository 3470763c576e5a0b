package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"moderator/appeals"
)

//go:embed templates
var templateFS embed.FS

// pages are the console's templates: each page is the layout with its
// own "content", parsed once at start.
type pages struct {
	byName map[string]*template.Template
}

// pageNames are the pages in templates/, each NAME.html defining
// "content" (and maybe "fragments" htmx asks for).
var pageNames = []string{"sign-in", "queue", "appeal", "confirm-overturn", "error", "user", "decision", "statement", "search", "rules", "playground", "signed-in"}

func parsePages(a *assets) (*pages, error) {
	funcs := template.FuncMap{
		"asset":       a.url,
		"chat":        func(s string) template.HTML { return chatText(s, 0) },
		"short":       func(s string, n int) template.HTML { return chatText(s, n) },
		"ago":         ago,
		"ts":          func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"join":        strings.Join,
		"value":       evidenceValue,
		"messageText": messageText,
		"hasPrefix":   strings.HasPrefix,
		"percent":     func(f float64) float64 { return f * 100 },
		"pathEscape":  url.PathEscape,
		"overturn": func(url, csrf, back string, reasons []string) overturnForm {
			return overturnForm{URL: url, CSRF: csrf, Back: back, Reasons: reasons}
		},
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse console page %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// basePage is what every page's layout shows: the title, who is signed
// in, and the CSRF token its forms carry.
type basePage struct {
	Title    string
	Prefix   string
	SignedIn bool
	Subject  string
	Role     string
	CSRF     string
	// CanDecide: the role may claim, note and decide (reviewer, admin).
	CanDecide bool
}

func (c *Console) base(r *http.Request, title string) basePage {
	sess := sessionFrom(r.Context())
	return basePage{
		Title: title, Prefix: Prefix,
		SignedIn: sess.Subject != "", Subject: sess.Subject, Role: sess.Role, CSRF: sess.CSRFToken,
		CanDecide: sess.Subject != "" && sess.can(appeals.RoleReviewer),
	}
}

// render writes the page name (the whole page, or for an htmx request
// asking for one, the block named by the HX-Target-less "fragment") with
// status.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	c.renderTemplate(w, r, status, name, "layout", data)
}

// renderFragment writes one named template of page name, for htmx to
// swap in.
func (c *Console) renderFragment(w http.ResponseWriter, r *http.Request, name, fragment string, data any) {
	c.renderTemplate(w, r, http.StatusOK, name, fragment, data)
}

func (c *Console) renderTemplate(w http.ResponseWriter, r *http.Request, status int, name, tmpl string, data any) {
	t, ok := c.pages.byName[name]
	if !ok {
		logOf(r.Context()).err = fmt.Errorf("no console page %q", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, tmpl, data); err != nil {
		logOf(r.Context()).err = fmt.Errorf("render %s/%s: %w", name, tmpl, err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage is an error's page.
type errorPage struct {
	basePage
	Status     int
	StatusText string
	Message    string
}

// evidenceValue shows a value a rule read as JSON (a string quoted, so
// that "" and a space show).
func evidenceValue(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the page escapes it; \u003c would only hide a <
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// messageText is the message's whole text in a recorded event's payload
// ("" when it has none).
func messageText(payload json.RawMessage) string {
	var ev struct {
		Message struct {
			Text string `json:"text"`
		} `json:"message"`
	}
	_ = json.Unmarshal(payload, &ev)
	return ev.Message.Text
}

// ago says how long ago t was, roughly: "3d 4h", "5h 12m", "40s".
func ago(now, t time.Time) string {
	return roughDuration(now.Sub(t))
}

func roughDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd %dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
