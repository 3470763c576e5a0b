package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"moderator/store"
	"moderator/store/storetest"
)

func TestMigrateStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := map[string]string{"DATABASE_URL": storetest.NewDatabase(t)}
	getenv := func(k string) string { return env[k] }
	all, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	status := func() string {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, []string{"migrate", "--status"}, getenv, strings.NewReader(""), &out, &out); err != nil {
			t.Fatalf("migrate --status: %v\n%s", err, out.String())
		}
		return out.String()
	}

	out := status()
	if got := len(regexp.MustCompile(`(?m)^\d{4}  \S+ +pending$`).FindAllString(out, -1)); got != len(all) {
		t.Errorf("new database: %d pending lines, want %d:\n%s", got, len(all), out)
	}
	if !strings.HasSuffix(out, "migrate: 0 applied, "+strconv.Itoa(len(all))+" pending\n") {
		t.Errorf("new database: summary wrong:\n%s", out)
	}

	var applied bytes.Buffer
	if err := run(ctx, []string{"migrate"}, getenv, strings.NewReader(""), &applied, &applied); err != nil {
		t.Fatalf("migrate: %v\n%s", err, applied.String())
	}
	out = status()
	line := regexp.MustCompile(`(?m)^0001  events +applied \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	if !line.MatchString(out) {
		t.Errorf("after migrate: no applied line for 0001:\n%s", out)
	}
	if !strings.HasSuffix(out, "migrate: "+strconv.Itoa(len(all))+" applied, 0 pending\n") {
		t.Errorf("after migrate: summary wrong:\n%s", out)
	}
}
