-- Unread counts (issue 12) read only this index: the messages of a group after a marker, with
-- their author and whether they are deleted, so counting them is an index-only scan instead of a
-- heap fetch per message (measured by bench/conversations.ts).

-- CreateIndex
CREATE INDEX "messages_group_name_seq_user_id_deleted_idx" ON "messages"("group_name", "seq", "user_id", "deleted");
