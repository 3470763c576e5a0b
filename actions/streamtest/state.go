package streamtest

import (
	"maps"
	"slices"
	"time"
)

// User is a user the fake knows.
type User struct {
	ID        string
	Name      string
	Role      string
	Custom    map[string]any
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Message is a message the fake knows: sent through it, seeded with
// AddMessage, or created on first use as the target of an action.
type Message struct {
	ID               string
	CID              string
	Text             string
	Type             string
	UserID           string
	ParentID         string
	ShowInChannel    bool
	Silent           bool
	SkipPush         bool
	MentionedUserIDs []string
	CreatedAt        time.Time

	Deleted     bool
	HardDeleted bool
	DeletedBy   string
	DeletedAt   time.Time
}

// Ban is a ban in force or expired.
type Ban struct {
	UserID                string
	BannedByID            string
	ChannelCID            string // empty for an app-wide ban
	Reason                string
	Shadow                bool
	IPBan                 bool
	DeleteMessages        string
	BanFromFutureChannels bool
	Expires               time.Time // zero: until lifted
	CreatedAt             time.Time
}

// Active reports whether the ban is in force at now.
func (b Ban) Active(now time.Time) bool { return b.Expires.IsZero() || now.Before(b.Expires) }

// Mute is one user muting another.
type Mute struct {
	UserID    string // the muter
	TargetID  string
	Expires   time.Time // zero: until lifted
	CreatedAt time.Time
}

// Flag is one user flagging a message or a user.
type Flag struct {
	UserID          string // the flagger
	TargetMessageID string
	TargetUserID    string
	Reason          string
	Custom          map[string]any
	CreatedAt       time.Time
}

// state is everything moderation changes. The server lock guards it.
type state struct {
	users    map[string]User
	messages map[string]*Message
	order    []string // message IDs in creation order
	bans     []Ban
	mutes    []Mute
	flags    []Flag
	seq      int
}

func newState() state {
	return state{users: map[string]User{}, messages: map[string]*Message{}}
}

func (st *state) addMessage(m Message) *Message {
	if _, ok := st.messages[m.ID]; !ok {
		st.order = append(st.order, m.ID)
	}
	p := &m
	st.messages[m.ID] = p
	return p
}

// AddUser seeds a user, as if it had been created before the test.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now()
	}
	u.Custom = maps.Clone(u.Custom)
	s.st.users[u.ID] = u
}

// AddMessage seeds a message, as if a user had posted it before the test.
func (s *Server) AddMessage(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.CreatedAt.IsZero() {
		m.CreatedAt = s.now()
	}
	if m.Type == "" {
		m.Type = "regular"
	}
	m.MentionedUserIDs = slices.Clone(m.MentionedUserIDs)
	s.st.addMessage(m)
}

// Users returns the users the fake knows, sorted by ID.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.st.users))
	for _, id := range slices.Sorted(maps.Keys(s.st.users)) {
		u := s.st.users[id]
		u.Custom = maps.Clone(u.Custom)
		out = append(out, u)
	}
	return out
}

// User returns one user.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.st.users[id]
	u.Custom = maps.Clone(u.Custom)
	return u, ok
}

// Messages returns the messages the fake knows, in creation order,
// including deleted ones.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.st.order))
	for _, id := range s.st.order {
		out = append(out, copyMessage(s.st.messages[id]))
	}
	return out
}

// Message returns one message.
func (s *Server) Message(id string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.st.messages[id]
	if !ok {
		return Message{}, false
	}
	return copyMessage(m), true
}

func copyMessage(m *Message) Message {
	c := *m
	c.MentionedUserIDs = slices.Clone(m.MentionedUserIDs)
	return c
}

// Bans returns every ban, expired ones included, oldest first.
func (s *Server) Bans() []Ban {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.st.bans)
}

// IsBanned reports whether userID is banned in channelCID (empty: app-wide)
// at the server clock's now. An app-wide ban also counts for any channel.
func (s *Server) IsBanned(userID, channelCID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, b := range s.st.bans {
		if b.UserID == userID && (b.ChannelCID == "" || b.ChannelCID == channelCID) && b.Active(now) {
			return true
		}
	}
	return false
}

// Mutes returns every mute, expired ones included, oldest first.
func (s *Server) Mutes() []Mute {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.st.mutes)
}

// Flags returns every flag in force, oldest first.
func (s *Server) Flags() []Flag {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Flag, len(s.st.flags))
	for i, f := range s.st.flags {
		f.Custom = maps.Clone(f.Custom)
		out[i] = f
	}
	return out
}
