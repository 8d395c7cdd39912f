# Kaamos SFU in a container.
#
#   docker build -t kaamos-sfu .
#   docker run -d --name kaamos --stop-timeout 40 \
#     -p 8080:8080 -p 40000-40199:40000-40199/udp \
#     -e KAAMOS_SERVER_PUBLIC_URL=https://meet.example.org \
#     -e KAAMOS_ICE_ANNOUNCED_ADDRESSES=203.0.113.10 \
#     -v kaamos-state:/var/lib/kaamos kaamos-sfu
#
# Media is UDP on the port range below (one port per participant); the announced address
# is the host's public IP, because the container's own address is private. With
# `--network host` no -p is needed and announced addresses only if the host is behind NAT.
# Configure with a mounted /app/config.toml or KAAMOS_<SECTION>_<KEY> variables; see
# docs/deploy.md. --stop-timeout must exceed server.drain_seconds (30 s): docker stop sends
# SIGTERM, the server lets calls finish, and SIGKILL comes only after the timeout.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    KAAMOS_SERVER_STATE_DIR=/var/lib/kaamos \
    KAAMOS_SERVER_STATIC_DIR=/app/static \
    KAAMOS_ICE_PORT_MIN=40000 \
    KAAMOS_ICE_PORT_MAX=40199

WORKDIR /app
COPY pyproject.toml README.md config.toml ./
COPY kaamos_sfu ./kaamos_sfu
COPY static ./static
RUN pip install --no-cache-dir . \
    && useradd --system --home-dir /var/lib/kaamos --create-home kaamos

USER kaamos
EXPOSE 8080/tcp 40000-40199/udp
# 503 while draining or starting counts as unhealthy: urlopen raises on it. The port is
# KAAMOS_SERVER_PORT's (8080 unless set); with TLS served directly (server.tls_cert_file)
# replace http:// by https:// and add an unverified context, or check through your proxy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('KAAMOS_SERVER_PORT', '8080'), timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["kaamos-sfu", "serve", "--config", "/app/config.toml"]
