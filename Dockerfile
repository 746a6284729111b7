# syntax=docker/dockerfile:1
#
# KubeProxy image. Build:  docker build -t kubeproxy .
# Run:    docker run --rm -p 8080:8080 -p 9901:9901 --read-only --tmpfs /tmp \
#           -v "$PWD/my-config.yaml:/etc/kubeproxy/config.yaml:ro" kubeproxy
# The demo upstream is the same image with another command:
#         docker run --rm -p 8081:8080 --entrypoint node kubeproxy \
#           bin/kubeproxy-demo-upstream --port 8080 --address 0.0.0.0 --name demo
#
# Node 24 is the current LTS line; pin a digest (node:24-slim@sha256:...) for reproducible builds.
ARG NODE_IMAGE=node:24-slim

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

# 3. Runtime: compiled code, production modules, the bin scripts and the example configs.
FROM ${NODE_IMAGE}
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
