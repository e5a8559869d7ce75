# syntax=docker/dockerfile:1

# Node 20 on glibc, pinned on purpose: the uWebSockets.js build we depend on ships prebuilt
# binaries for this ABI (uws_linux_*_115.node) and glibc only, and the node refuses to start
# without its binary (src/uws/uws.ts). Another Node major or a musl (alpine) image will not
# run it (README, "Node versions").
ARG NODE_IMAGE=node:20-bookworm-slim

# Build: everything (TypeScript, esbuild, the Prisma CLI) lives and dies in this stage.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Install scripts are skipped: @prisma/engines would download a schema engine the service never
# runs (it applies migrations itself), and the native modules come prebuilt.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY scripts ./scripts
COPY prisma ./prisma
COPY prisma.config.ts tsconfig.json ./
COPY src ./src
# What `npm ci` would have run as postinstall: generate the Prisma client, then compile the
# node to dist/ (JavaScript bundles with the generated client inlined, and the hashed page).
RUN node scripts/prisma-generate.mjs && node scripts/build.mjs
# The production tree: no dev dependencies, and no optional peers (npm would otherwise keep
# the Prisma CLI and TypeScript, optional peers of @prisma/client and valibot).
RUN rm -rf node_modules && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund
# Only one of uWebSockets.js's 18 prebuilt binaries can load here; the others weigh ~100 MB.
RUN find node_modules/uWebSockets.js/binaries -name '*.node' \
      ! -name "uws_linux_$(node -p process.arch)_$(node -p process.versions.modules).node" -delete

# Runtime: the compiled node, the production node_modules and the migrations; nothing else.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
# Unset, a node without a JWT key listens on 127.0.0.1 only; a container must take traffic.
ENV HOST=0.0.0.0
WORKDIR /app
# Everything stays owned by root, so the service user cannot rewrite its own code.
# package.json says "type": "module", which dist/*.js needs.
COPY package.json ./
COPY prisma/migrations ./prisma/migrations
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Numeric, so Kubernetes can check runAsNonRoot against the image (uid 1000 is `node`).
USER 1000:1000
EXPOSE 8000
# Kubernetes ignores this; it is for `docker run` and compose. The image has no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT || 8000}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself is PID 1 and gets SIGTERM directly; `npm start` would sit in between and not
# pass the signal on, which breaks the drain. Same command as `npm start`.
CMD ["node", "dist/main.js"]
