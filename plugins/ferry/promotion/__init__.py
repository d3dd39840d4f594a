"""Promotion of curated MongoDB data (local -> production) and of the dataset catalog.

- ``config``  loads ``include/promotion.yaml`` (natural keys, references, checks per collection)
- ``filters`` validates the user's JSON filter (no server-side JavaScript operators)
- ``plan``    decides insert / skip / update / overwrite / reject per document (reads only)
- ``execute`` validates, backs up, bulk-writes, audits; and rolls a promotion back
- ``catalog`` promotes dataset catalog entries and their schemas
"""
