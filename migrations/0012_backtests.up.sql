-- Backtests (package backtest): a candidate rule set replayed over the
-- stored events of a window, compared with what was decided. A row is the
-- request and, once it has run, its report. Not audit (the staff_audit row
-- is): a row goes from running to done or failed, once.
CREATE TABLE backtests (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requested_by       text        NOT NULL,   -- the staff token's sub, or cli:$USER
    role               text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    params             jsonb       NOT NULL,   -- window, channels, rules, samples, where the candidate came from
    candidate_version  text        NOT NULL,   -- the candidate rule set's content hash
    status             text        NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    finished_at        timestamptz,
    summary            text,                   -- the report's totals in plain words
    report             jsonb,                  -- backtest.Report, when done
    error              text,                   -- why, when failed
    CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX backtests_created_at_idx ON backtests (created_at DESC);
