-- The shared call budget is working state, not audit: after a crash it may
-- start again full (one call), which Stream's own windows tolerate. Unlogged,
-- taking a call commits without waiting for the WAL to reach the disk (about
-- 4 ms a call on a busy disk, in the path of every action).
ALTER TABLE rate_budgets SET UNLOGGED;
