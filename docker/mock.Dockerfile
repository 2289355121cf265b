# The mock in a container, from the wheel `make dists` builds:
#   make dists && docker build -f docker/mock.Dockerfile -t imageapi-mock .
#   docker run --rm -p 127.0.0.1:8000:8000 imageapi-mock
# It serves the development keys. It binds 0.0.0.0 inside the container only so that the
# port published with -p reaches it; publish it on 127.0.0.1 unless others should reach it.
FROM python:3.11-slim-bookworm

# The wheel only, not the repository: what a user of the image gets is what pip installs.
COPY dist/imageapi_mock-*.whl /wheels/
RUN pip install --no-cache-dir /wheels/imageapi_mock-*.whl && rm -rf /wheels

RUN useradd --create-home --uid 10001 mock
USER 10001
WORKDIR /home/mock

# /__admin/* answers only loopback clients unless opened or given a token: inside a container
# every client comes from outside, so it is open by default; close it with
# -e MOCKSERVER_ADMIN_OPEN=false -e MOCKSERVER_ADMIN_TOKEN=... (a token then guards it).
ENV MOCKSERVER_ADMIN_OPEN=true PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:8000/api/v1/models', headers={'Authorization': 'Bearer sk_test_free_0123456789abcdef'}), timeout=4)"]
CMD ["imageapi-mock", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
