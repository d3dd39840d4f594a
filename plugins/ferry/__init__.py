"""Ferry: move data between environments safely (Airflow 3 DAG bundle library).

Keep this package's top level free of heavy imports: DAG files import from it at parse time.
"""

__version__ = "0.1.0"
