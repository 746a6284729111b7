# syntax=docker/dockerfile:1
#
# KubeProxy image. Build:  docker build -t kubeproxy .
# Run:    docker run --rm -p 8080:8080 -p 9901:9901 --read-only --tmpfs /tmp \
#           -v "$PWD/my-config.yaml:/etc/kubeproxy/config.yaml:ro" kubeproxy
# The demo upstream is the same image with another command:
#         docker run --rm -p 8081:8080 --entrypoint node kubeproxy \
#           bin/kubeproxy-demo-upstream --port 8080 --address 0.0.0.0 --name demo
# The Bun variant (stage `bun`; tag it <version>-bun, the chart's `runtime: bun` asks for that tag):
#         docker build --target bun -t kubeproxy:0.1.0-bun .
#
# Node 24 is the current LTS line; pin a digest (node:24-slim@sha256:...) for reproducible builds.
ARG NODE_IMAGE=node:24-slim
# The Bun variant's base: glibc (the Bun binary npm picks in the deps stage is the glibc build) and
# tini, no Node. Pin a digest here too for reproducible builds.
ARG BUN_BASE_IMAGE=debian:bookworm-slim

# 1. Compile TypeScript with the dev dependencies (tsc, @types/node).
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are copied; the build runs below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# 2. Production dependencies only, installed apart so no dev package reaches the final image.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
# Bun is the optional dependency `bun`, pinned by package-lock.json: npm installed its platform
# package (@oven/bun-linux-x64 or -aarch64, glibc) with the binary; --ignore-scripts left the
# `bun` package's own bin a placeholder. The binary moves out of node_modules here, checked to be
# the locked version: the bun stage takes it, the Node image goes without its ~100 MB.
RUN set -eu; arch="$(uname -m)"; case "$arch" in x86_64) arch=x64 ;; esac; \
    install -D -m 0755 "node_modules/@oven/bun-linux-$arch/bin/bun" /opt/bun/bin/bun; \
    rm -rf node_modules/@oven; \
    test "$(/opt/bun/bin/bun --version)" = "$(node -p 'require("./node_modules/bun/package.json").version')"

# 3a. The Bun variant (docker build --target bun): the Node image below with Bun in node's place,
# started directly (no Node parent process). Same files, user, ports, signals and command.
FROM ${BUN_BASE_IMAGE} AS bun
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
COPY --from=deps /opt/bun/bin/bun /usr/local/bin/bun
# KUBEPROXY_RUNTIME: the runtime the CLI is asked for, the one it runs on here (its start log says
# "runtime":"bun"). BUN_RUNTIME_TRANSPILER_CACHE_PATH=0: Bun would otherwise cache transpiled
# modules under $HOME/.bun (a few MB of the /tmp emptyDir).
# KUBEPROXY_BUN: where `--runtime bun` finds Bun here (the npm package's bin is a placeholder).
ENV NODE_ENV=production \
    HOME=/tmp \
    KUBEPROXY_CONFIG=/etc/kubeproxy/config.yaml \
    KUBEPROXY_RUNTIME=bun \
    KUBEPROXY_BUN=/usr/local/bin/bun \
    BUN_RUNTIME_TRANSPILER_CACHE_PATH=0
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY examples ./examples
USER 10001:10001
EXPOSE 8080 9901
# The preload puts the real undici in place of Bun's built-in one before any module imports it
# (src/runtime/bun-undici.ts says why); Bun resolves a preload like an import, hence the "./".
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "bun", "--preload", "./dist/runtime/bun-undici.js", "bin/kubeproxy"]
CMD ["--config", "/etc/kubeproxy/config.yaml"]

# 3b. Runtime (the default, last stage): compiled code, production modules, the bin scripts and the
# example configs.
FROM ${NODE_IMAGE} AS node
# tini as PID 1: the kernel ignores a signal that PID 1 has no handler for, so with node as PID 1 a
# SIGTERM during its start (before the CLI's handlers exist) would wait for the kubelet's SIGKILL.
# tini forwards every signal to node, which is then an ordinary process (Kubernetes has no --init).
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
# Nothing may be written outside /tmp (the chart runs with a read-only root filesystem and mounts
# an emptyDir there); HOME points there for any library that looks for it.
ENV NODE_ENV=production \
    HOME=/tmp \
    KUBEPROXY_CONFIG=/etc/kubeproxy/config.yaml
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY examples ./examples
# Files stay owned by root: the process can read its code but not change it.
# A numeric user, so Kubernetes can check runAsNonRoot without a passwd lookup.
USER 10001:10001
EXPOSE 8080 9901
# Exec form, no shell in between: tini passes SIGTERM to node, which fails readiness, drains and
# exits 0 (tini exits with node's status). The V8 flags are src/v8-flags.ts's (why: there).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--no-memory-reducer", "bin/kubeproxy"]
CMD ["--config", "/etc/kubeproxy/config.yaml"]
