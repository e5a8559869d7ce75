-- AlterTable
ALTER TABLE "messages" ADD COLUMN     "request_id" TEXT;

-- CreateIndex
CREATE INDEX "messages_group_name_user_id_request_id_idx" ON "messages"("group_name", "user_id", "request_id");
