-- A reversal may end with nothing to undo: the unmute of a mute whose ban
-- a stronger one placed since has replaced at Stream keeps that ban and
-- sends nothing (the reason says which ban it kept).
ALTER TABLE action_outcomes DROP CONSTRAINT action_outcomes_outcome_check;
ALTER TABLE action_outcomes ADD CONSTRAINT action_outcomes_outcome_check
    CHECK (outcome IN ('applied', 'failed', 'held', 'dry_run', 'superseded', 'suppressed', 'nothing_to_undo'));
