// prisma/schema.prisma and the hand-written SQL of prisma/migrations must describe the same
// database (Prisma's schema engine, which would diff them, cannot be downloaded here). Two
// checks: the catalog of a freshly migrated database matches every model, field, key and index
// the schema declares; and every model and field round-trips through the generated client.
import { readFile } from "node:fs/promises";
import t from "tap";
import { openDatabase } from "../../src/store/database.ts";
import { freshDatabase, sql } from "../helpers/services.ts";

interface Field { name: string; column: string; type: string; optional: boolean; nativeType?: string; relation: boolean }
interface Model { name: string; table: string; fields: Field[]; id?: string[]; uniques: string[][]; indexes: string[][]; relations: { fields: string[]; references: string[]; target: string; onDelete?: string }[] }

/** Reads the parts of schema.prisma this project uses: models, scalar fields, keys, indexes, relations. */
function parseSchema(text: string): Model[] {
  const models: Model[] = [];
  for (const [, name, block] of text.matchAll(/^model (\w+) \{\n([\s\S]*?)^\}/gm)) {
    const m: Model = { name: name!, table: /@@map\("(\w+)"\)/.exec(block!)?.[1] ?? name!, fields: [], uniques: [], indexes: [], relations: [] };
    for (const line of block!.split("\n").map((l) => l.replace(/\/\/.*$/, "").trim())) {
      if (!line) continue;
      const cols = (s: string) => s.split(",").map((x) => x.trim());
      let a: RegExpExecArray | null;
      if ((a = /^@@id\(\[(.*)\]\)/.exec(line))) m.id = cols(a[1]!);
      else if ((a = /^@@unique\(\[(.*)\]\)/.exec(line))) m.uniques.push(cols(a[1]!));
      else if ((a = /^@@index\(\[(.*)\]\)/.exec(line))) m.indexes.push(cols(a[1]!));
      else if (!line.startsWith("@@")) {
        const [fname, ftype, ...rest] = line.split(/\s+/);
        const attrs = rest.join(" ");
        const base = ftype!.replace(/[?[\]]/g, "");
        const relation = !["String", "Int", "Boolean", "DateTime", "Bytes"].includes(base);
        const f: Field = { name: fname!, column: /@map\("(\w+)"\)/.exec(attrs)?.[1] ?? fname!, type: base, optional: ftype!.endsWith("?"), relation, nativeType: /@db\.(\w+(?:\(\d+\))?)/.exec(attrs)?.[1] };
        m.fields.push(f);
        if (/@id\b/.test(attrs)) m.id = [fname!];
        if (/@unique\b/.test(attrs)) m.uniques.push([fname!]);
        const rel = /@relation\((?:"\w+", )?fields: \[(.*?)\], references: \[(.*?)\](?:, onDelete: (\w+))?/.exec(attrs);
        if (rel) m.relations.push({ fields: cols(rel[1]!), references: cols(rel[2]!), target: base, onDelete: rel[3] });
      }
    }
    models.push(m);
  }
  return models;
}

const PG_TYPE: Record<string, string> = { String: "text", Int: "integer", Boolean: "boolean", Bytes: "bytea" };
const ON_DELETE: Record<string, string> = { Cascade: "CASCADE", SetNull: "SET NULL", NoAction: "NO ACTION", Restrict: "RESTRICT" };

const models = parseSchema(await readFile(new URL("../../prisma/schema.prisma", import.meta.url), "utf8"));
const url = await freshDatabase(t);
const db = await openDatabase({ databaseUrl: url, dataDir: "unused" });
t.teardown(() => db.store.close());
const pg = await sql(t, url);

t.test("the migrated catalog has exactly the schema's tables and columns", async (t) => {
  t.ok(models.length >= 5, "schema parsed");
  const tables = (await pg.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> '_prisma_migrations' ORDER BY 1`)).rows.map((r) => r.table_name);
  t.same(tables, models.map((m) => m.table).sort(), "same tables");
  for (const m of models) {
    const cols = (await pg.query(`SELECT column_name, data_type, is_nullable, datetime_precision FROM information_schema.columns WHERE table_name = $1`, [m.table])).rows;
    const byName = new Map(cols.map((c) => [c.column_name, c]));
    const scalars = m.fields.filter((f) => !f.relation);
    t.same([...byName.keys()].sort(), scalars.map((f) => f.column).sort(), `${m.name}: same columns`);
    for (const f of scalars) {
      const c = byName.get(f.column)!;
      if (f.type === "DateTime") {
        const tz = f.nativeType?.startsWith("Timestamptz");
        t.equal(c.data_type, tz ? "timestamp with time zone" : "timestamp without time zone", `${m.name}.${f.name} type`);
        t.equal(c.datetime_precision, Number(/\((\d+)\)/.exec(f.nativeType ?? "")?.[1] ?? 3), `${m.name}.${f.name} precision`);
      } else {
        t.equal(c.data_type, PG_TYPE[f.type], `${m.name}.${f.name} type`);
      }
      t.equal(c.is_nullable === "YES", f.optional, `${m.name}.${f.name} nullability`);
    }
  }
});

t.test("keys, unique constraints, indexes and foreign keys match", async (t) => {
  const colsOf = (m: Model, names: string[]) => names.map((n) => m.fields.find((f) => f.name === n)!.column).join(",");
  const indexes = (await pg.query(`
    SELECT t.relname AS table, ix.indisprimary AS pk, ix.indisunique AS uniq,
           string_agg(a.attname, ',' ORDER BY k.ord) AS cols
    FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
    CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
    WHERE n.nspname = 'public' AND t.relname <> '_prisma_migrations'
    GROUP BY t.relname, ix.indexrelid, ix.indisprimary, ix.indisunique`)).rows;
  const fks = (await pg.query(`
    SELECT c.conrelid::regclass::text AS table, c.confrelid::regclass::text AS target,
           (SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(n, ord) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n) AS cols,
           c.confdeltype AS on_delete
    FROM pg_constraint c WHERE c.contype = 'f'`)).rows;
  const delType: Record<string, string> = { c: "CASCADE", n: "SET NULL", a: "NO ACTION", r: "RESTRICT" };
  const expectedIdx: string[] = [];
  const expectedFk: string[] = [];
  for (const m of models) {
    expectedIdx.push(`${m.table} pk ${colsOf(m, m.id!)}`);
    for (const u of m.uniques) expectedIdx.push(`${m.table} unique ${colsOf(m, u)}`);
    for (const i of m.indexes) expectedIdx.push(`${m.table} index ${colsOf(m, i)}`);
    for (const r of m.relations) {
      const target = models.find((x) => x.name === r.target)!;
      expectedFk.push(`${m.table}(${colsOf(m, r.fields)}) -> ${target.table} on delete ${ON_DELETE[r.onDelete ?? "NoAction"] ?? r.onDelete}`);
    }
  }
  const actualIdx = indexes.map((i) => `${i.table} ${i.pk ? "pk" : i.uniq ? "unique" : "index"} ${i.cols}`);
  // Prisma's default onDelete for a required relation is Restrict and for an optional one SetNull;
  // this schema states every onDelete explicitly, so the parse above needs no defaults.
  const actualFk = fks.map((f) => `${f.table}(${f.cols}) -> ${f.target} on delete ${delType[f.on_delete]}`);
  t.same(actualIdx.sort(), expectedIdx.sort(), "indexes");
  t.same(actualFk.sort(), expectedFk.sort(), "foreign keys");
});

t.test("messages' attachment and reply indexes are partial: a row with neither adds no entry to them", async (t) => {
  const defs = (await pg.query(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'messages' AND indexname IN ('messages_attachment_id_key', 'messages_reply_to_idx') ORDER BY 1`)).rows;
  t.match(defs, [
    { indexname: "messages_attachment_id_key", indexdef: /^CREATE UNIQUE INDEX .* WHERE \(attachment_id IS NOT NULL\)$/ },
    { indexname: "messages_reply_to_idx", indexdef: /^CREATE INDEX .* WHERE \(reply_to IS NOT NULL\)$/ },
  ]);
});

t.test("every model and field round-trips through the generated client", async (t) => {
  const p = db.prisma;
  const now = new Date("2026-01-02T03:04:05.678Z");
  await p.group.create({ data: { name: "g", lastSeq: 2, createdAt: now } });
  await p.attachment.create({ data: { id: "a1", groupName: "g", name: "n.bin", contentType: "application/x", size: 3, data: new Uint8Array([0, 255, 7]), createdAt: now } });
  await p.message.create({ data: { id: "m1", groupName: "g", userId: "u", type: "file", body: null, attachmentId: "a1", replyToId: null, createdAt: now, updatedAt: now, deleted: false, seq: 1 } });
  await p.message.create({ data: { id: "m2", groupName: "g", userId: "u2", type: "text", body: "b", replyToId: "m1", createdAt: now, updatedAt: null, deleted: true, seq: 2 } });
  await p.seenReceipt.create({ data: { messageId: "m1", userId: "u2", seenAt: now } });
  await p.groupEvent.create({ data: { groupName: "g", seq: 1, operation: "create", messageId: "m1", userId: "u", createdAt: now } });
  const g = await p.group.findUniqueOrThrow({ where: { name: "g" } });
  t.equal(g.lastSeq, 2);
  t.same(g.createdAt, now);
  // Messages and events name their group, and events their message, without a relation (see the
  // schema's Group and GroupEvent): they are read by those columns.
  const [m1, m2] = await p.message.findMany({ where: { groupName: "g" }, orderBy: { seq: "asc" }, include: { attachment: true, replies: true, seenBy: true } });
  const events = await p.groupEvent.findMany({ where: { groupName: "g", messageId: "m1" } });
  t.match(m1, { id: "m1", userId: "u", type: "file", body: null, attachmentId: "a1", deleted: false, seq: 1 });
  t.same(m1!.updatedAt, now);
  t.same(Array.from(m1!.attachment!.data), [0, 255, 7]);
  t.match(m1!.attachment, { name: "n.bin", contentType: "application/x", size: 3 });
  t.same(m1!.replies.map((r) => r.id), ["m2"]);
  t.same(m1!.seenBy.map((s) => [s.userId, s.seenAt.toISOString()]), [["u2", now.toISOString()]]);
  t.same(events.map((e) => [e.seq, e.operation, e.userId, e.createdAt.toISOString()]), [[1, "create", "u", now.toISOString()]]);
  t.match(m2, { replyToId: "m1", body: "b", deleted: true, updatedAt: null });
  await t.rejects(p.message.create({ data: { id: "m3", groupName: "g", userId: "u", type: "text", seq: 1 } }), "(group, seq) is unique");
  await t.rejects(p.seenReceipt.create({ data: { messageId: "m1", userId: "u2" } }), "one receipt per message and user");
});
