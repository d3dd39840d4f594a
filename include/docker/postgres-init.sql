-- docker-compose only: the demo "production" source database next to Airflow's metadata DB.
CREATE DATABASE ferry_demo_prod OWNER airflow;
