# One image for the API and the workers (the command picks the role).
#   docker build -t lrc .                                   # CPU build of PyTorch
#   docker build --build-arg TORCH="torch==2.13.0" --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t lrc:gpu .
FROM python:3.11-slim

ARG TORCH="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 LRC_DATA_DIR=/data

RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 lrc && mkdir -p /data && chown lrc /data
WORKDIR /srv/lrc
# PyTorch first and on its own: asked for by another package, pip would pick a multi-GB CUDA build.
RUN pip install --index-url "${TORCH_INDEX}" "${TORCH}"
COPY pyproject.toml README.md ./
COPY lrc ./lrc
COPY core ./core
COPY app ./app
COPY worker ./worker
COPY gateway ./gateway
COPY cli ./cli
RUN pip install .

USER lrc
EXPOSE 8000
# Idle keep-alive connections are held longer than a load balancer's idle timeout (60 s on AWS ALB and
# in nginx's upstream pools); uvicorn's 5 s would close connections the proxy still reuses (502s).
ENV UVICORN_TIMEOUT_KEEP_ALIVE=75
CMD ["uvicorn", "--factory", "app.main:create_app", "--host", "0.0.0.0", "--port", "8000"]
