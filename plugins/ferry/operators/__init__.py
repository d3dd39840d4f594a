"""Thin Airflow operators around Ferry's plain-Python domain logic."""
