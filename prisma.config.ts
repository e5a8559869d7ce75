// Prisma CLI configuration. The URL is only needed by `prisma migrate deploy` where Prisma's
// schema engine exists; the service itself applies migrations with src/store/migrate.ts.
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres" },
});
