-- Membership and read state (issue 12). A member row exists from a user's first subscribe or
-- first stored operation in a group until they leave; read_seq is their read marker in the
-- group's seq space. No foreign key to "groups": a user may subscribe to a group that has no
-- stored event yet (and so no row there).

-- CreateTable
CREATE TABLE "memberships" (
    "user_id" TEXT NOT NULL,
    "group_name" TEXT NOT NULL,
    "read_seq" INTEGER NOT NULL DEFAULT 0,
    "read_at" TIMESTAMPTZ(3),
    "joined_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "memberships_pkey" PRIMARY KEY ("user_id","group_name")
);

-- CreateIndex: a group's members, most recently joined first (GET /api/groups/<group>/members)
CREATE INDEX "memberships_group_name_joined_at_user_id_idx" ON "memberships"("group_name", "joined_at", "user_id");
