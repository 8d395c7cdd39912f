# Kaamos SFU in a container. Media needs UDP: run with host networking
#   docker run --network host -v kaamos-state:/var/lib/kaamos kaamos-sfu
# (a fixed UDP port range for media is not implemented yet, so publishing ports is not
# enough). Configure with a mounted /app/config.toml or KAAMOS_<SECTION>_<KEY> variables.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    KAAMOS_SERVER_STATE_DIR=/var/lib/kaamos \
    KAAMOS_SERVER_STATIC_DIR=/app/static

WORKDIR /app
COPY pyproject.toml README.md config.toml ./
COPY kaamos_sfu ./kaamos_sfu
COPY static ./static
RUN pip install --no-cache-dir . \
    && useradd --system --home-dir /var/lib/kaamos --create-home kaamos

USER kaamos
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health').status != 200)"
CMD ["kaamos-sfu", "--config", "/app/config.toml"]
