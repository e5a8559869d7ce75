-- AlterTable
ALTER TABLE "webhook_outbox" ADD COLUMN     "event" TEXT;
