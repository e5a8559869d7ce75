-- CreateTable: the request_id of each update and delete, so that a retry of one (after
-- `unavailable`, or an answer lost with the connection) answers the original ack instead of
-- applying again. Creates and replies keep theirs on the message ("messages"."request_id").
CREATE TABLE "request_keys" (
    "group_name" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "request_id" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "message_id" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "request_keys_pkey" PRIMARY KEY ("group_name","user_id","request_id")
);

-- AddForeignKey
ALTER TABLE "request_keys" ADD CONSTRAINT "request_keys_group_name_fkey" FOREIGN KEY ("group_name") REFERENCES "groups"("name") ON DELETE CASCADE ON UPDATE CASCADE;
