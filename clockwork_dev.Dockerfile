# Clockwork's image: the web app (gunicorn), the scraper and the notifier.
# Build:  docker build -f clockwork_dev.Dockerfile -t clockwork .
# Used by docker-compose.yml; the command chooses the role.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CLOCKWORK_CONFIG=/etc/clockwork/clockwork.toml \
    CLOCKWORK_BIND=0.0.0.0:8000

# Slurm client commands and ssh for the "local"/"ssh" fetchers and backends.
RUN apt-get update \
    && apt-get install -y --no-install-recommends slurm-client openssh-client tini \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --create-home --home-dir /srv/clockwork clockwork
WORKDIR /srv/clockwork

COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY clockwork_core ./clockwork_core
COPY clockwork_web ./clockwork_web
COPY slurm_state ./slurm_state
COPY gunicorn.conf.py pyproject.toml README.md ./

USER clockwork
EXPOSE 8000
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "clockwork_web.wsgi:app"]
HEALTHCHECK --interval=30s --timeout=5s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
