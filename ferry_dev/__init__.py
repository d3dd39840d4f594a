"""Ferry developer tooling: local services (devstack), the dag.test() runner, the demo, the Airflow deployment test bed.

Never imported by the runtime package ``ferry`` (a test guards it).
"""
