# ai-forward: `aifd run` in a small image. Configure it with environment variables
# (docker run -e / --env-file); /data holds the chat logs (Log/) and the SQLite store.

# --- build: install the package and its dependencies into a virtualenv ------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/aifd
COPY pyproject.toml README.md ./
COPY ai_forward ./ai_forward
RUN /opt/aifd/bin/pip install --no-cache-dir .

# --- run: the virtualenv on a clean slim base, as an unprivileged user -------------
FROM python:3.11-slim
ENV PATH=/opt/aifd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    LOG_DIR=/data/Log \
    STORE_URL=sqlite:////data/aifd.db
RUN groupadd --system --gid 10001 aifd \
    && useradd --system --uid 10001 --gid aifd --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin aifd \
    && mkdir -p /data/Log \
    && chown -R aifd:aifd /data
COPY --from=build /opt/aifd /opt/aifd
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# No curl in slim images: ask /healthz with the Python that is already there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
# Exec form: aifd is PID 1 and receives SIGTERM itself, so in-flight requests drain.
ENTRYPOINT ["aifd", "run"]
CMD []
