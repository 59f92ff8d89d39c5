# The Weir image docker-compose.yml runs: one image, every `weir` subcommand.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY weir ./weir
COPY streams ./streams
COPY producers ./producers
COPY consumers ./consumers
COPY apps ./apps
COPY schemas ./schemas
COPY kafka ./kafka
# Editable install: schemas/ and kafka/ are read from /app at run time.
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["weir"]
CMD ["--help"]
