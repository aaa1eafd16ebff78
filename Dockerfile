# The controller's image: retrainctl, the Celery worker and beat, and an MLflow server.
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 retrain
WORKDIR /app

# Dependencies first (cached while only the code changes), pinned by constraints.txt.
COPY pyproject.toml constraints.txt README.md ./
COPY controller/__init__.py controller/__init__.py
COPY detectors/__init__.py detectors/__init__.py
COPY workers/__init__.py workers/__init__.py
# the s3 extra: data, MLflow artifacts and billing exports in S3 or an S3-compatible store
RUN pip install -c constraints.txt '.[s3]'

COPY controller controller
COPY detectors detectors
COPY workers workers
COPY configs configs
RUN pip install --no-deps . && mkdir -p /data && chown retrain /data

USER retrain
ENV RETRAIN_CONFIG=/app/configs/controller.yaml
ENTRYPOINT []
CMD ["retrainctl", "--help"]
