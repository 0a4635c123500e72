# syntax=docker/dockerfile:1
# issue-agent: one image for both roles (`node dist/main.js web|worker`; no argument runs both).
# Checked statically by test/unit/containers.test.ts (no Docker engine runs in CI).

# One pinned Node line for every stage, so the native bits the deps stage installs match
# the runtime's Node. Bump the minor here (and nowhere else).
ARG NODE_IMAGE=node:20.20-bookworm-slim

# ---- build: the full dependency tree, then tsc → dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` would run the build before the sources are
# copied; the build runs explicitly below. No dependency needs its install script (esbuild's
# only checks its binary, msgpackr-extract ships prebuilt ones).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- deps: production dependencies only ----
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts \
 && npm cache clean --force

# ---- runtime: Node, the app, and what the sandbox runs on ----
FROM ${NODE_IMAGE} AS runtime
# git: mirrors, work trees, pushes. bubblewrap: the sandbox. ripgrep: the search tool.
# util-linux: prlimit, setpriv, unshare and flock (sandbox limits, the mirror lock).
# skopeo and umoci: images a repository names under `environment:` (pulled, unpacked).
# tini: PID 1 that reaps the sandbox's orphans and forwards SIGTERM for a clean drain.
# Versions come from the pinned Debian release (bookworm); pinning each package's exact
# version would break the build at every Debian security update.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git bubblewrap ripgrep util-linux ca-certificates tini skopeo umoci \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json app.yml ./
# DATA_DIR holds mirrors, work trees and traces. A named volume mounted here starts as a
# copy of this directory, so it is the node user's from the first start.
ENV DATA_DIR=/data
RUN mkdir -p /data && chown node:node /data
# The image's own unprivileged user: the app never needs root, and bubblewrap then runs
# the sandbox as this uid in a user namespace (no setuid bit, no added capabilities).
USER node
VOLUME ["/data"]
EXPOSE 3000
# For the web role (and the default, both roles); the worker has no HTTP port, and
# docker-compose.yml gives it a check of its own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/main.js"]
