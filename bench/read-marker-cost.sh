#!/bin/bash
# The cost of a marker move that also counts the reader's unread messages (issue 12):
# a group with N messages by another user, a member whose marker moves step by step from 1.
# Usage: bench/read-marker-cost.sh (N=100000 by default; needs PostgreSQL on 127.0.0.1:5432 and psql).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
DB=chatroom_read_marker_cost
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
npx tsx src/store/migrate-cli.ts >/dev/null
psql -h 127.0.0.1 -U postgres -d $DB -q <<SQL
INSERT INTO groups (name, last_seq) VALUES ('big', $N);
INSERT INTO messages (id, group_name, user_id, type, body, seq) SELECT 'm' || i, 'big', 'wes', 'text', 'x', i FROM generate_series(1, $N) i;
INSERT INTO memberships (user_id, group_name, read_seq) VALUES ('ann', 'big', 0);
VACUUM ANALYZE;
SQL
# The statements as src/store/prisma-read-state.ts runs them (old: the upsert alone).
OLD='INSERT INTO "memberships" ("user_id", "group_name", "read_seq", "read_at") VALUES ($1, $2, $3, now()) ON CONFLICT ("user_id", "group_name") DO UPDATE SET "read_seq" = EXCLUDED."read_seq", "read_at" = EXCLUDED."read_at" WHERE "memberships"."read_seq" < EXCLUDED."read_seq" RETURNING "read_seq", "read_at"'
NEW='WITH mk AS (INSERT INTO "memberships" ("user_id", "group_name", "read_seq", "read_at") VALUES ($1, $2, $3, now()) ON CONFLICT ("user_id", "group_name") DO UPDATE SET "read_seq" = EXCLUDED."read_seq", "read_at" = EXCLUDED."read_at" WHERE "memberships"."read_seq" < EXCLUDED."read_seq" RETURNING "read_seq", "read_at") SELECT mk."read_seq", mk."read_at", COALESCE((SELECT g."last_seq" FROM "groups" g WHERE g."name" = $2), 0) AS last_seq, (SELECT count(*)::int FROM "messages" m WHERE m."group_name" = $2 AND m."seq" > mk."read_seq" AND m."user_id" <> $1 AND NOT m."deleted") AS unread FROM mk'
run() { # name, statement, first seq
  local name=$1 stmt=$2 start=$3 sql
  sql="PREPARE s(text, text, int) AS $stmt;"$'\n'
  for ((i = start; i < start + 200; i++)); do sql+="EXECUTE s('ann', 'big', $i);"$'\n'; done
  local t0=$(date +%s%N)
  psql -h 127.0.0.1 -U postgres -d $DB -qAt -o /dev/null <<<"$sql"
  local t1=$(date +%s%N)
  echo "$name: 200 marker moves from seq $start: $(( (t1 - t0) / 200000 )) us per move (psql start included)"
}
run old "$OLD" 1
psql -h 127.0.0.1 -U postgres -d $DB -qc "UPDATE memberships SET read_seq = 0"
run new "$NEW" 1
psql -h 127.0.0.1 -U postgres -d $DB -qc "UPDATE memberships SET read_seq = $((N - 1000))"
run old-near-end "$OLD" $((N - 999))
psql -h 127.0.0.1 -U postgres -d $DB -qc "UPDATE memberships SET read_seq = $((N - 1000))"
run new-near-end "$NEW" $((N - 999))
uptime
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $DB"
