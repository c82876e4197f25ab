# mailbot in a container. Runs with no config of yours (deploy/container.toml: listens on
# 0.0.0.0:8025 inside, data under /var/lib/mailbot, outgoing mail into a maildir there);
# mount your own at /etc/mailbot/mailbot.toml to go live (docs/operations.md#docker).
# The base is pinned by version; the Python packages by requirements.lock.
FROM python:3.11.11-slim-bookworm

# gnupg follows bookworm's security updates: the pinned base fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gnupg \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY mailbot ./mailbot
COPY migrations ./migrations
COPY templates ./templates
RUN pip install --no-cache-dir --no-deps . \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/mailbot --create-home \
      --shell /usr/sbin/nologin mailbot \
 && chmod 0700 /var/lib/mailbot
COPY deploy/container.toml /etc/mailbot/mailbot.toml

USER 10001:10001
WORKDIR /var/lib/mailbot
ENV MAILBOT_CONFIG=/etc/mailbot/mailbot.toml PYTHONUNBUFFERED=1
VOLUME ["/var/lib/mailbot"]
EXPOSE 8025 8026
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8026/healthz', timeout=4)"]
ENTRYPOINT ["mailbot"]
CMD ["run"]
