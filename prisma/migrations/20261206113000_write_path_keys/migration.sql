-- The per-row cost of a create (issue 11). Measured with 400-message calls of
-- chat_create_messages against 40k stored messages, alternating with an unchanged database
-- (scratch runs, bench/performance-log.md): the three foreign-key checks below took ~36 % of the
-- call, and the index entries of rows without a file or a reply target ~10 %.
--
-- Foreign keys dropped, each checked per inserted row and guaranteed by the writers instead:
-- - messages.group_name and group_events.group_name -> groups: every writer (chat_create_messages,
--   the store's update and delete) creates or locks the group row in the same transaction, and
--   nothing removes a group that has messages (the only group delete removes rows this batch
--   created and stored nothing in). The cascade from groups served no query.
-- - group_events.message_id -> messages: an event is written in its message's transaction and
--   messages are never removed (a delete is a tombstone); eventsSince joins by id. Its index
--   (group_events_message_id_idx) served only that key's cascade, so it goes too.
ALTER TABLE "messages" DROP CONSTRAINT "messages_group_name_fkey";
ALTER TABLE "group_events" DROP CONSTRAINT "group_events_group_name_fkey";
ALTER TABLE "group_events" DROP CONSTRAINT "group_events_message_id_fkey";
DROP INDEX "group_events_message_id_idx";

-- Partial where set: most messages have neither a file nor a reply target, and now add no entry.
-- attachment_id: one message per attachment (unique), and the attachment key's ON DELETE SET
-- NULL finds the message by it when the store removes a replaced or deleted file.
DROP INDEX "messages_attachment_id_key";
CREATE UNIQUE INDEX "messages_attachment_id_key" ON "messages"("attachment_id") WHERE "attachment_id" IS NOT NULL;
-- reply_to: the reply key's check of referencing rows when a message row is removed.
DROP INDEX "messages_reply_to_idx";
CREATE INDEX "messages_reply_to_idx" ON "messages"("reply_to") WHERE "reply_to" IS NOT NULL;
