# Lifeline in a container: `docker build -t lifeline .` then
#   docker run -p 3000:3000 -v lifeline-data:/data lifeline
# (SQLite in the volume), or with DATABASE_URL=postgres://… and LIFELINE_SECRET_KEY for
# several instances behind a load balancer; see "Deployment" in README.md.

# 1. Build: the server binary and the hydrated site, optimised, with the project's own tool
#    installer (wasm-bindgen from crates.io, wasm-opt and terser from npm) and build script.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The tools first, from the lock file alone, so that they stay cached while the code changes.
COPY Cargo.toml Cargo.lock ./
COPY scripts/ensure-tools.sh scripts/ensure-tools.sh
RUN scripts/ensure-tools.sh --release
COPY . .
RUN make release

# 2. Run: the binary, the site and nothing else, as an unprivileged user.
FROM debian:bookworm-slim AS run
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data lifeline \
    && mkdir /data && chown lifeline /data
COPY --from=build /src/target/release/lifeline /app/lifeline
COPY --from=build /src/target/site /app/site
ENV LEPTOS_SITE_ROOT=/app/site \
    LEPTOS_ENV=PROD \
    LIFELINE_LISTEN_ADDR=0.0.0.0:3000 \
    DATABASE_URL=sqlite:///data/lifeline.db \
    LIFELINE_SECRET_KEY_FILE=/data/secret.key \
    LIFELINE_LOG_FORMAT=json
USER lifeline
WORKDIR /data
VOLUME /data
EXPOSE 3000
# `lifeline healthcheck` does not exist; orchestrators should probe GET /readyz (database
# reachable) and GET /healthz (process up) over HTTP.
ENTRYPOINT ["/app/lifeline"]
CMD ["serve"]
