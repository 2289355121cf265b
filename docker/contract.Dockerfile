# The contract suite in a container, from the wheel `make dists` builds:
#   make dists && docker build -f docker/contract.Dockerfile -t imageapi-contract .
#   docker run --rm -e IMAGEAPI_KEY_ENTERPRISE -v "$PWD/reports:/reports" imageapi-contract \
#     --base-url https://staging.example.com --report html:/reports/contract.html
# Its exit status is the suite's (docs/contract-suite.md): 1 broken, 6 too little verified,
# 7 the target unreachable or misconfigured.
FROM python:3.11-slim-bookworm

COPY dist/imageapi_contract-*.whl /wheels/
RUN pip install --no-cache-dir /wheels/imageapi_contract-*.whl && rm -rf /wheels

RUN useradd --create-home --uid 10001 suite
USER 10001
WORKDIR /home/suite

# The CI profile of hypothesis: derandomized, no example database.
ENV CI=true PYTHONUNBUFFERED=1
ENTRYPOINT ["imageapi-contract"]
CMD ["--help"]
