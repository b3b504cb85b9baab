# Tertulia: one server process; data (SQLite database, JWT secret, recordings) in /data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TERTULIA_DATA_DIR=/data \
    TERTULIA_HOST=0.0.0.0 \
    TERTULIA_PORT=8080

WORKDIR /app
COPY pyproject.toml README.md ./
COPY rtp ./rtp
COPY sfu ./sfu
COPY compose ./compose
COPY signaling ./signaling
COPY storage ./storage
COPY web ./web
# Editable install: the app serves web/ from the source tree.
RUN pip install --no-cache-dir -e . \
    && useradd --create-home --uid 10001 tertulia \
    && mkdir -p /data && chown tertulia:tertulia /data

USER tertulia
VOLUME ["/data"]
EXPOSE 8080
# Media (WebRTC): set TERTULIA_ICE_PORT_MIN/_MAX and publish that UDP range as the same
# port numbers (docker-compose.yml, docs/deploy.md), or use host networking.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/api/health', timeout=4).status == 200 else 1)"
CMD ["tertulia", "serve"]
