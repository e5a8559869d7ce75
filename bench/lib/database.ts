// A throw-away PostgreSQL database per service start, so every run begins from an empty schema
// (the service applies its migrations itself) and leaves nothing behind.
import pg from "pg";

export interface Database {
  url: string;
  /** PostgreSQL backend processes serving this database now: their CPU is the service's too. */
  backendPids(): Promise<number[]>;
  drop(): Promise<void>;
}

export async function createDatabase(adminUrl: string, name: string): Promise<Database> {
  await admin(adminUrl, `CREATE DATABASE "${name}"`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    backendPids: async () =>
      (await admin(adminUrl, "SELECT pid FROM pg_stat_activity WHERE datname = $1", [name])).map((r) => Number(r.pid)),
    drop: async () => void (await admin(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)),
  };
}

async function admin(adminUrl: string, sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as Record<string, unknown>[];
  } finally {
    await client.end();
  }
}
