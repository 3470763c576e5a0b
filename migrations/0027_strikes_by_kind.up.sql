-- The history read counts each kind of strike on its own (store.strikes):
-- a rule's strikes (strikes.by_rule) and an action type's
-- (strikes.of_type) by an index range scan of the user's rows of that
-- kind, newest first, up to 1,000. Reading the user's 1,000 most recent
-- strikes of every kind and filtering them let a flood of one rule's
-- strikes (a spammer's deletes) crowd another rule's out of a ladder's
-- count, and read rows no value counted. strike_key is included so that
-- the scans need not visit the table once its pages are all-visible.
CREATE INDEX strikes_user_rule_idx ON strikes (user_id, shadow, rule_id, at) INCLUDE (strike_key);
CREATE INDEX strikes_user_type_idx ON strikes (user_id, shadow, type, at) INCLUDE (strike_key);
