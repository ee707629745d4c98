# CueAPI: one image for the API, the poller and the dispatcher (docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STATIC_ROOT=/app/staticfiles

WORKDIR /app
RUN useradd --system --uid 10001 --home-dir /app cueapi

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings but no database; the key is a placeholder for this step only.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && chown -R cueapi /app

USER cueapi
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/status', timeout=4).status == 200 else 1)"

CMD ["gunicorn", "cueapi.wsgi", "-c", "cueapi/gunicorn.conf.py", "--bind", "0.0.0.0:8000"]
