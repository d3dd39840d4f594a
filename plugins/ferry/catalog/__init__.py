"""Dataset catalog promotion: local catalog entries (and their schemas) to the production catalog.

``promote`` holds the MongoDB catalog target; ``runs`` what the ``dataset_promotion`` task does.
"""
