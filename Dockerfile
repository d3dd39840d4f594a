# Airflow 3.3.2 with Ferry's pinned runtime requirements (used by docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.12
USER root
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
USER airflow
COPY requirements.txt constraints.txt /tmp/ferry/
RUN pip install --no-cache-dir -c /tmp/ferry/constraints.txt -r /tmp/ferry/requirements.txt
