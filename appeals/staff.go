package appeals

import "context"

// Role is what a staff token allows. Each role includes the ones below it:
// admin ⊃ reviewer ⊃ viewer.
type Role string

// The roles, from least to most.
const (
	RoleViewer   Role = "viewer"   // search and read the audit trail
	RoleReviewer Role = "reviewer" // also record and decide appeals, and overturn
	RoleAdmin    Role = "admin"    // also rule-set status and service settings
)

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleReviewer:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether a token with role r may do what needs role need.
func (r Role) Allows(need Role) bool { return r.Valid() && r.rank() >= need.rank() }

// Staff is the authenticated caller of a staff request, from its token.
type Staff struct {
	Subject string // the token's sub: who is acting, as the audit trail records it
	Role    Role
}

type staffKey struct{}

// WithStaff returns ctx carrying s; the authentication middleware sets it.
func WithStaff(ctx context.Context, s Staff) context.Context {
	return context.WithValue(ctx, staffKey{}, s)
}

// StaffFrom returns the caller that the authentication middleware put in
// ctx.
func StaffFrom(ctx context.Context) (Staff, bool) {
	s, ok := ctx.Value(staffKey{}).(Staff)
	return s, ok
}
