-- The reviewer console (package console): its sign-in sessions, and the
-- work on appeals that the console and the staff API share: who has
-- claimed or been assigned an appeal, and reviewers' notes on it.
--
-- console_sessions is not audit: a session is created at sign-in, deleted
-- at sign-out, and ignored (then swept) once expired. Only a hash of the
-- cookie's value is kept, so a read of this table signs no one in.
CREATE TABLE console_sessions (
    id_hash     bytea       PRIMARY KEY,            -- sha256 of the session cookie's value
    subject     text        NOT NULL,               -- the staff token's sub
    role        text        NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    csrf_token  text        NOT NULL,               -- every state-changing form carries it
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL                -- never after the token's exp
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

-- Claims and assignments are append-only: each claim, release or
-- assignment is a row, and an appeal's holder is its latest row's
-- assignee (NULL: released, nobody holds it).
CREATE TABLE appeal_assignments (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appeal_id  bigint      NOT NULL REFERENCES appeals (id),
    act        text        NOT NULL CHECK (act IN ('claim', 'release', 'assign')),
    assignee   text,                                -- who holds it after this row; NULL after a release
    actor      text        NOT NULL,                -- who did it (the staff token's sub)
    at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((act = 'release') = (assignee IS NULL))
);
CREATE INDEX appeal_assignments_appeal_idx ON appeal_assignments (appeal_id, id DESC);

CREATE TABLE appeal_notes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appeal_id   bigint      NOT NULL REFERENCES appeals (id),
    author      text        NOT NULL,
    body        text        NOT NULL CHECK (btrim(body) <> ''),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX appeal_notes_appeal_idx ON appeal_notes (appeal_id, id);

CREATE TRIGGER appeal_assignments_append_only BEFORE UPDATE OR DELETE ON appeal_assignments
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
CREATE TRIGGER appeal_notes_append_only BEFORE UPDATE OR DELETE ON appeal_notes
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
