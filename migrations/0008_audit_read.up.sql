-- Indexes for the staff's reads of the audit trail (store/audit.go): the
-- action searches by channel and by message, and the conversation around a
-- judged reply (its thread). The other filters use the indexes of
-- 0001–0005. Each list pages on (time, id) newest first; the time indexes
-- give the order and Postgres breaks the rare ties by id with an
-- incremental sort, so the id is not repeated in each index.
CREATE INDEX actions_channel_idx ON actions (channel_cid, created_at DESC) WHERE channel_cid IS NOT NULL;
CREATE INDEX actions_message_idx ON actions (message_id) WHERE message_id IS NOT NULL;

-- Replies only: a thread's messages, by their parent, in time order.
CREATE INDEX events_thread_idx ON events ((payload #>> '{message,parent_id}'), received_at DESC)
    WHERE type = 'message.new' AND payload #>> '{message,parent_id}' IS NOT NULL;
