"""Dev DB structure clone (MongoDB): structure model, plan/apply, search indexes, drift (see docs/dev_clone.md)."""
