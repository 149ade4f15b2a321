# pplex-gateway, headless, in a small image: no Qt, no audio devices.
#   docker build -t pplex-gateway .
#   docker run -p 8000:8000 -v pplex-data:/data -e PPLEX_BACKENDS=ws://gpu-box:8998 pplex-gateway
# The admin secret is printed to the container's log on first start (docker logs), or set it
# with -e PPLEX_ADMIN_SECRET=... (16 characters or more).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PPLEX_DATA_DIR=/data \
    PPLEX_HOST=0.0.0.0 \
    PPLEX_PORT=8000

WORKDIR /src
COPY pyproject.toml README.md ./
COPY pplex_desktop ./pplex_desktop
# The package's own dependencies minus the desktop's (Qt, audio devices, QR codes): read from
# pyproject.toml so the image never drifts from it.
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.lower().startswith(('pyside6', 'qasync', 'sounddevice', 'segno'))))" > /tmp/gateway-requirements.txt \
 && pip install -r /tmp/gateway-requirements.txt \
 && pip install --no-deps . \
 && rm -rf /src /tmp/gateway-requirements.txt

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin pplex \
 && mkdir -p /data && chown pplex:pplex /data && chmod 700 /data
USER pplex
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000

# curl is not in the slim image; python's urllib is. /healthz needs no key and answers 200
# while the gateway serves, whether or not a model server is reachable (see its "status").
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PPLEX_PORT', '8000') + '/healthz', timeout=4); sys.exit(0 if r.status == 200 else 1)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["pplex-gateway"]
