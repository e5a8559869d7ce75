-- chat_create_messages takes the batch's files as bytes (issue 10, upload memory): one BYTEA
-- parameter holding every item's file back to back, each item's share given by p_att_size, in
-- place of a TEXT[] of base64. The node sends that parameter in binary straight from the decoded
-- upload (src/store/create-batch.ts): no base64 text of up to 7 MB is built, passed through
-- Prisma's JSON parameters, escaped into an array literal and copied again by the driver for each
-- file, which held several such copies per upload in the node's heap (peak heap 430 MB under
-- three clients uploading 5 MiB files, 70 MB without them) and cost its event loop tens of
-- milliseconds per file. Otherwise the function is 20261206140000_group_last_event_at's, with
-- 20261206160000_create_messages_index_scans' SET: see 20261206110000_create_messages_function
-- for what it guarantees.
--
-- The TEXT[] version stays, for nodes of the previous release still running during a rolling
-- update; nothing of this release calls it, and a later migration drops it. A later change of
-- the function replaces this BYTEA version (and keeps its SET enable_seqscan = off).
CREATE FUNCTION "chat_create_messages"(
    p_group TEXT[], p_user TEXT[], p_type TEXT[], p_body TEXT[], p_request TEXT[], p_reply TEXT[], p_id TEXT[],
    p_att_id TEXT[], p_att_name TEXT[], p_att_type TEXT[], p_att_size INTEGER[], p_att_data BYTEA,
    p_window_ms FLOAT8[], p_left_ms FLOAT8, p_deadline_epoch_ms FLOAT8, p_outbox BOOLEAN)
RETURNS TABLE (
    "n" INTEGER, "kind" TEXT, "ref" INTEGER, "seq" INTEGER, "id" TEXT, "user_id" TEXT, "type" TEXT, "body" TEXT,
    "reply_to" TEXT, "created_at" TIMESTAMPTZ, "updated_at" TIMESTAMPTZ, "deleted" BOOLEAN,
    "a_id" TEXT, "a_name" TEXT, "a_type" TEXT, "a_size" INTEGER)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
AS $fn$
#variable_conflict use_column
DECLARE
    v_deadline TIMESTAMPTZ := least(clock_timestamp() + make_interval(secs => p_left_ms / 1000), to_timestamp(p_deadline_epoch_ms / 1000));
    v_lock_timeout TEXT := current_setting('lock_timeout');
    v_created TEXT[];
    v_names TEXT[];
    v_seqs INTEGER[];
    v_now TIMESTAMPTZ := now()::TIMESTAMPTZ(3);
BEGIN
    IF clock_timestamp() >= v_deadline THEN
        RAISE EXCEPTION 'chat write deadline passed' USING ERRCODE = '57014';
    END IF;
    PERFORM set_config('lock_timeout', greatest(1, floor(extract(epoch FROM v_deadline - clock_timestamp()) * 1000))::BIGINT::TEXT, true);

    WITH ins AS (
        INSERT INTO "groups" ("name") SELECT DISTINCT g FROM unnest(p_group) AS g ORDER BY 1
        ON CONFLICT DO NOTHING RETURNING "name")
    SELECT coalesce(array_agg(ins."name"), '{}') INTO v_created FROM ins;
    SELECT array_agg(l."name" ORDER BY l."name"), array_agg(l."last_seq" ORDER BY l."name") INTO v_names, v_seqs
    FROM (SELECT g."name", g."last_seq" FROM "groups" g WHERE g."name" = ANY(p_group) ORDER BY g."name" FOR UPDATE) AS l;

    RETURN QUERY
    WITH items AS (
        -- An item's file is the p_att_size[i] bytes of p_att_data after the files of the items before it.
        SELECT t.*, sum(coalesce(t.att_size, 0)) OVER (ORDER BY t.i) - coalesce(t.att_size, 0) AS att_at
        FROM unnest(p_group, p_user, p_type, p_body, p_request, p_window_ms, p_reply, p_id, p_att_id, p_att_name, p_att_type, p_att_size)
            WITH ORDINALITY AS t(grp, usr, typ, txt, req, win, reply, mid, att_id, att_name, att_type, att_size, i)
    ), base AS (
        SELECT b.grp, b.last_seq FROM unnest(v_names, v_seqs) AS b(grp, last_seq)
    ), orig AS (
        SELECT DISTINCT ON (it.i) it.i, m."id" AS o_id, m."user_id" AS o_user, m."type" AS o_type, m."body" AS o_body,
               m."reply_to" AS o_reply, m."created_at" AS o_created, m."updated_at" AS o_updated, m."deleted" AS o_deleted,
               m."seq" AS o_seq, m."attachment_id" AS o_att
        FROM items it JOIN "messages" m ON m."group_name" = it.grp AND m."user_id" = it.usr AND m."request_id" = it.req
        WHERE it.req IS NOT NULL AND m."created_at" > now() - make_interval(secs => it.win / 1000)
        ORDER BY it.i, m."created_at" DESC
    ), judged AS (
        SELECT it.*, (it.reply IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM "messages" r WHERE r."id" = it.reply AND r."group_name" = it.grp AND NOT r."deleted")) AS refused
        FROM items it WHERE NOT EXISTS (SELECT 1 FROM orig o WHERE o.i = it.i)
    ), keyed AS (
        SELECT j.*, CASE WHEN j.req IS NULL THEN j.i ELSE min(j.i) OVER (PARTITION BY j.grp, j.usr, j.req) END AS first
        FROM judged j WHERE NOT j.refused
    ), fresh AS (
        SELECT k.*, (b.last_seq + row_number() OVER (PARTITION BY k.grp ORDER BY k.i))::INTEGER AS new_seq
        FROM keyed k JOIN base b ON b.grp = k.grp WHERE k.first = k.i
    ), att AS (
        INSERT INTO "attachments" ("id", "group_name", "name", "content_type", "size", "data")
        SELECT f.att_id, f.grp, f.att_name, f.att_type, f.att_size, substring(p_att_data FROM (f.att_at + 1)::INTEGER FOR f.att_size) FROM fresh f WHERE f.att_id IS NOT NULL
    ), msg AS (
        INSERT INTO "messages" ("id", "group_name", "user_id", "type", "body", "seq", "request_id", "reply_to", "attachment_id", "created_at")
        SELECT f.mid, f.grp, f.usr, f.typ, f.txt, f.new_seq, f.req, f.reply, f.att_id, v_now FROM fresh f
    ), ev AS (
        INSERT INTO "group_events" ("group_name", "seq", "operation", "message_id", "user_id", "created_at")
        SELECT f.grp, f.new_seq, CASE WHEN f.reply IS NULL THEN 'create' ELSE 'reply' END, f.mid, f.usr, v_now FROM fresh f
    ), outbox AS (
        INSERT INTO "webhook_outbox" ("group_name", "seq", "event", "created_at")
        SELECT f.grp, f.new_seq, json_build_object(
            'operation', CASE WHEN f.reply IS NULL THEN 'create' ELSE 'reply' END,
            'user', f.usr,
            'message', json_build_object(
                'id', f.mid, 'userId', f.usr, 'type', f.typ, 'body', f.txt, 'replyToId', f.reply,
                'createdAt', to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                'updatedAt', NULL, 'deleted', false, 'seq', f.new_seq,
                'attachment', CASE WHEN f.att_id IS NULL THEN NULL ELSE json_build_object(
                    'id', f.att_id, 'name', f.att_name, 'contentType', f.att_type, 'size', f.att_size) END))::TEXT,
            v_now
        FROM fresh f WHERE p_outbox
    ), bump AS (
        UPDATE "groups" g SET "last_seq" = x.top, "last_event_at" = v_now
        FROM (SELECT f.grp, max(f.new_seq) AS top FROM fresh f GROUP BY f.grp) AS x WHERE g."name" = x.grp
    )
    SELECT it.i::INTEGER,
           CASE WHEN o.i IS NOT NULL THEN 'retry' WHEN j.refused THEN 'refused' WHEN f.i IS NOT NULL THEN 'new' ELSE 'same' END,
           k.first::INTEGER,
           coalesce(o.o_seq, f.new_seq), coalesce(o.o_id, f.mid), o.o_user, o.o_type, o.o_body, o.o_reply,
           CASE WHEN o.i IS NOT NULL THEN o.o_created WHEN f.i IS NOT NULL THEN v_now END,
           o.o_updated, o.o_deleted, a."id", a."name", a."content_type", a."size"
    FROM items it
    LEFT JOIN orig o ON o.i = it.i
    LEFT JOIN judged j ON j.i = it.i
    LEFT JOIN keyed k ON k.i = it.i
    LEFT JOIN fresh f ON f.i = it.i
    LEFT JOIN "attachments" a ON a."id" = o.o_att
    ORDER BY it.i;

    -- A group row this batch created but stored nothing in: refused frames change nothing.
    IF cardinality(v_created) > 0 THEN
        DELETE FROM "groups" g WHERE g."name" = ANY(v_created) AND g."last_seq" = 0;
    END IF;
    IF clock_timestamp() > v_deadline THEN
        RAISE EXCEPTION 'chat write deadline passed' USING ERRCODE = '57014';
    END IF;
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
END
$fn$;
