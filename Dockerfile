# mailbot in a container: mount the config at /etc/mailbot/mailbot.toml and a data volume
# at /var/lib/mailbot (point [storage] database and [gpg] home below it).
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends gnupg \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY mailbot ./mailbot
COPY migrations ./migrations
COPY templates ./templates
RUN pip install --no-cache-dir . \
 && useradd --system --home /var/lib/mailbot --create-home mailbot

USER mailbot
WORKDIR /var/lib/mailbot
ENV MAILBOT_CONFIG=/etc/mailbot/mailbot.toml
VOLUME ["/var/lib/mailbot"]
EXPOSE 8025
STOPSIGNAL SIGTERM
ENTRYPOINT ["mailbot"]
CMD ["run"]
