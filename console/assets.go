package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

// static holds the console's stylesheet and scripts. htmx.min.js is
// htmx 2.0.11 from npm's htmx.org package (dist/htmx.min.js, BSD
// Zero-Clause licence), committed as published: no Node step builds it.
//
//go:embed static
var static embed.FS

// asset is one static file, served at a URL holding a hash of its
// content, so that it can be cached for a year and a new release is
// fetched at once.
type asset struct {
	body        []byte
	contentType string
	url         string // /console/assets/htmx.min.<hash>.js
}

// assets are the static files by name (htmx.min.js) and by URL.
type assets struct {
	byName map[string]*asset
	byURL  map[string]*asset
}

func loadAssets(prefix string) (*assets, error) {
	a := &assets{byName: map[string]*asset{}, byURL: map[string]*asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		name := path.Base(p)
		sum := sha256.Sum256(body)
		ext := path.Ext(name)
		hashed := strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:6]) + ext
		ct := mime.TypeByExtension(ext)
		if ct == "" {
			ct = "application/octet-stream"
		}
		as := &asset{body: body, contentType: ct, url: prefix + "/assets/" + hashed}
		a.byName[name], a.byURL[hashed] = as, as
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load console assets: %w", err)
	}
	return a, nil
}

// url returns the hashed URL of the asset name; templates call it.
func (a *assets) url(name string) (string, error) {
	as, ok := a.byName[name]
	if !ok {
		return "", fmt.Errorf("no console asset %q", name)
	}
	return as.url, nil
}

// serve answers GET /assets/{file}: a hashed name is immutable, cached for
// a year; anything else is 404.
func (a *assets) serve(w http.ResponseWriter, r *http.Request) {
	as, ok := a.byURL[path.Base(r.URL.Path)]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", as.contentType)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(as.body)
}
