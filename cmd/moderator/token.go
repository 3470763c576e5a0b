package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"moderator/appeals"
)

// runToken is `moderator token --role R --sub NAME [--ttl 8h]`: it mints an
// HS256 staff token with MODERATOR_ADMIN_JWT_SECRET and prints only the
// token, so that TOKEN=$(moderator token …) works. Each refusal is one line
// naming the flag or variable.
func runToken(args []string, getenv func(string) string, now time.Time, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: moderator token --role viewer|reviewer|admin --sub NAME [--ttl 8h]\n\nmint a staff token signed with MODERATOR_ADMIN_JWT_SECRET and print it\n\n")
		fs.PrintDefaults()
	}
	role := fs.String("role", "", "viewer (search and read), reviewer (also appeals and overturns) or admin (also rule-set status and settings)")
	sub := fs.String("sub", "", "who the token is for, as the audit trail records them (e.g. an e-mail address)")
	ttl := fs.Duration("ttl", 8*time.Hour, "how long the token is valid; at most 720h (30 days)")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected argument %q (flags are --role, --sub, --ttl)", fs.Arg(0))
	}
	switch r := appeals.Role(*role); {
	case *role == "":
		return errors.New("token: --role is required: viewer, reviewer or admin")
	case !r.Valid():
		return fmt.Errorf("token: --role must be viewer, reviewer or admin, got %q", *role)
	}
	if strings.TrimSpace(*sub) == "" {
		return errors.New("token: --sub is required: who the token is for, as the audit trail records them")
	}
	if *ttl <= 0 || *ttl > appeals.MaxTokenTTL {
		return fmt.Errorf("token: --ttl must be positive and at most 720h (30 days), got %s", *ttl)
	}
	secret := strings.TrimSpace(getenv("MODERATOR_ADMIN_JWT_SECRET"))
	if secret == "" {
		return errors.New("MODERATOR_ADMIN_JWT_SECRET is required to mint a staff token (the secret the service verifies it with)")
	}
	if err := checkAdminSecret(secret); err != nil {
		return err
	}
	tok, err := appeals.MintToken([]byte(secret), *sub, appeals.Role(*role), *ttl, now)
	if err != nil {
		// Only the subject can still be refused here (unprintable or too long).
		return fmt.Errorf("token: --sub: %s", strings.TrimPrefix(err.Error(), "mint token: "))
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
