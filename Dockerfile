# permsync daemon image. Configuration is mounted at /etc/permsync/permsync.yaml;
# secrets come from the environment (see docs/deploy.md).
#
#   docker build -t permsync .
#   docker run --rm permsync --help

# Build: every dependency (TypeScript lives in devDependencies), then the compiler.
FROM node:20-alpine AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: tsc needs none, and "prepare" would build before the sources are here.
# No optional packages: the PostgreSQL binaries of each major the tests run are not needed to build.
RUN npm ci --ignore-scripts --omit=optional --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Runtime: production dependencies only (pure JavaScript and WebAssembly, so Alpine's
# musl is no concern), and the compiled output.
FROM node:20-alpine AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: "prepare" would run tsc, which is not installed here; dist/ is copied below.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY sql ./sql
COPY --from=build /app/dist/src ./dist/src
# The image's `node` user, by number so that Kubernetes' runAsNonRoot can check it.
# The application files stay owned by root: the daemon cannot change its own code.
USER 1000:1000
EXPOSE 9187
# Node's own fetch keeps curl out of the image. The address is the default http block
# (127.0.0.1:9187); a configuration that moves the port needs a matching --health-cmd.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9187/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The daemon's heap limits, as in deploy/permsync.service (see there); set here, after
# npm ci, which needs more. `permsync drift` run in the container gets them too: 128 MB
# covers about 100,000 grants; for more, docker exec -e NODE_OPTIONS=... .
ENV NODE_OPTIONS="--max-old-space-size=128 --max-semi-space-size=2"
# Exec form: node is PID 1 and receives SIGTERM itself, no shell in between.
ENTRYPOINT ["node", "bin/permsync.js"]
CMD ["run", "--config", "/etc/permsync/permsync.yaml"]
