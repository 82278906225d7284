# One image for the API and the workers; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CONDARCHIVE_DATA_DIR=/data CONDARCHIVE_HOST=0.0.0.0
WORKDIR /srv/condarchive

# git: workers resolve and archive `git+https://…` PyPI requirements (uv runs it too).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home /srv/condarchive condarchive \
    && mkdir -p /data && chown condarchive /data

USER condarchive
VOLUME ["/data"]
EXPOSE 8000
CMD ["condarchive", "serve", "--host", "0.0.0.0", "--no-worker"]
