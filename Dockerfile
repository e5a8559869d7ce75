# syntax=docker/dockerfile:1

# Node 20 on glibc, pinned on purpose: uWebSockets.js ships prebuilt binaries for this ABI
# (uws_linux_*_115.node) and glibc only, and the node refuses to start without its binary
# (src/gateway/uws.ts). Another Node major or a musl (alpine) image will not run.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only (tsx and the prisma CLI are among them). Install scripts are
# skipped: @prisma/engines would download a schema engine the service never runs (it applies
# migrations itself), and the native modules (uWebSockets.js, esbuild, bufferutil) come prebuilt.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
# Only one of uWebSockets.js's 18 prebuilt binaries can load here; the others weigh ~100 MB.
RUN find node_modules/uWebSockets.js/binaries -name '*.node' \
      ! -name "uws_linux_$(node -p process.arch)_$(node -p process.versions.modules).node" -delete
# What `npm ci` would have run as postinstall: generate the Prisma client into
# src/store/generated (it needs the schema and prisma.config.ts, not the rest of src/).
COPY scripts ./scripts
COPY prisma ./prisma
COPY prisma.config.ts tsconfig.json ./
RUN node scripts/prisma-generate.mjs

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Everything stays owned by root, so the service user cannot rewrite its own code.
COPY package.json package-lock.json prisma.config.ts tsconfig.json ./
COPY prisma ./prisma
COPY src ./src
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/src/store/generated ./src/store/generated
# Numeric, so Kubernetes can check runAsNonRoot against the image (uid 1000 is `node`).
USER 1000:1000
EXPOSE 8000
# Kubernetes ignores this; it is for `docker run` and compose. The image has no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT || 8000}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself is PID 1 and gets SIGTERM directly; `npm start` would sit in between and not
# pass the signal on, which breaks the drain.
CMD ["node", "--import", "tsx", "src/main.ts"]
