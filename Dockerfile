# One image for every toolmesh process: agents (mesh serve <agent>) and, later, the
# orchestrator and gateway. TypeScript runs directly on Node 24 (type stripping).
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY src ./src
COPY servers ./servers
COPY orchestrator ./orchestrator
COPY scripts ./scripts
# Agents bind all interfaces inside the container; each service sets MESH_ADVERTISE_HOST
# to its own service name so Consul's checks and other agents reach it by name.
ENV MESH_HOST=0.0.0.0
USER node
ENTRYPOINT ["node", "orchestrator/cli/main.ts"]
CMD ["--help"]
