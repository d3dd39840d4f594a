"""What each choice of the schema review does to the consumer contract (issue 25's "change impact matrix").

For every detected change and every choice the review offers for it (and for the whole-set "Apply all"),
the effective mapping that choice gives is rendered into the contract model (``ferry.etl.contract``: one
model, from which JSON Schema, ``$jsonSchema``, OpenAPI, TypeScript and Zod are all rendered, so a field's
change is the same in every artifact) and compared with the contract of the accepted schema: which
collection and field change, how, and whether a consumer written against the current contract breaks
(removed field, changed or narrowed type, new required field) or the change is additive. Reads only.
"""

from __future__ import annotations

from ferry.etl import acquire, contract, mapping, pipeline, policy, schema

ARTIFACTS = "JSON Schema, $jsonSchema, OpenAPI, TypeScript, Zod"
NO_CHANGE = "no contract change"


def review_impact(meta_db, mapping_path: str, detected: dict) -> list[dict]:
    """Rows ``{change, choice, collection, field, contract, consumers}``: per change and choice, the contract
    changes that choice makes (``consumers``: BREAKING / additive), or one ``no contract change`` row; first
    the whole-set "Apply all". Each choice is judged with every other change at its form default, and what
    every choice of a change shares (the other changes' doing) is left out of its rows. Empty without changes
    or without an accepted schema to compare with."""
    if not detected.get("changes") or detected.get("base_version") is None:
        return []
    m = mapping.load(mapping_path)
    current, eff = pipeline.current_and_base(meta_db, m, mapping_path, detected)
    base = meta_db[schema.SNAPSHOTS].find_one({"source": current["source"], "version": detected["base_version"]})
    old = contract.shapes(eff, base["snapshot"])
    snap, new_tables = current["snapshot"], m["defaults"]["new_tables"]
    changes = [{**c, "affects_documents": mapping.affects_documents(eff, c)} for c in detected["changes"]]
    keys = [policy.change_key(i, c) for i, c in enumerate(changes)]
    choices = [policy.CHOICES.get(c["kind"], [policy.APPLY, policy.SKIP_ONE]) for c in changes]

    def outcome(decision: dict) -> list[contract.Impact] | str:
        try:
            new_eff = pipeline.evolve(eff, changes, decision, snap, new_tables)[0]
            mapping.check_columns(new_eff, snap)
            return contract.impact(old, contract.shapes(acquire.add_join_keys(new_eff, snap), snap))
        except Exception as exc:  # noqa: BLE001 - the choice would stop the run: the table says so
            return f"the run would stop: {exc}"

    rows = _rows("(all)", policy.APPLY_ALL, outcome({"action": "apply_all"}), set())
    for i in range(len(changes)):
        results = {}
        for choice in choices[i]:
            picked = [choice if j == i else choices[j][0] for j in range(len(changes))]
            reviewed = [_decision(k, c, p) for k, c, p in zip(keys, changes, picked, strict=True)]
            results[choice] = outcome({"action": "review", "changes": reviewed})
        landed = [set(r) for r in results.values() if not isinstance(r, str)]
        common = set.intersection(*landed) if len(landed) > 1 else set()
        for choice, result in results.items():
            rows += _rows(keys[i], choice, result, common)
    return rows


def _decision(key: str, ch: dict, choice: str) -> dict:
    return {
        "field": key,
        "kind": ch["kind"],
        "table": ch["table"],
        "column": ch.get("column"),
        "choice": choice,
        "default": None,
        "by": "impact",
    }


def _rows(key: str, choice: str, result: list[contract.Impact] | str, common: set) -> list[dict]:
    head = {"change": key, "choice": choice, "collection": "-", "field": "-"}
    if isinstance(result, str):
        return [{**head, "contract": result, "consumers": "-"}]
    own = [i for i in result if i not in common]
    if not own:
        return [{**head, "contract": NO_CHANGE, "consumers": "-"}]
    return [
        {
            **head,
            "collection": i.collection,
            "field": i.path or "(collection)",
            "contract": i.change,
            "consumers": "BREAKING" if i.breaking else "additive",
        }
        for i in own
    ]


def summaries(rows: list[dict]) -> dict[str, str]:
    """Per review field, what each of its choices does (the review form's field descriptions)."""
    return {key: summary(rows, key) for key in dict.fromkeys(r["change"] for r in rows)}


def summary(rows: list[dict], key: str) -> str:
    """One line per choice of change ``key``."""
    by_choice: dict[str, list[str]] = {}
    for r in rows:
        if r["change"] != key:
            continue
        text = (
            r["contract"] if r["field"] == "-" else f"{r['collection']}.{r['field']} {r['contract']} ({r['consumers']})"
        )
        by_choice.setdefault(r["choice"], []).append(text)
    return "; ".join(f"{choice}: {', '.join(texts)}" for choice, texts in by_choice.items())


def markdown(rows: list[dict]) -> str:
    """The review body's table (empty when there is nothing to show)."""
    if not rows:
        return ""
    from ferry.report import table

    return f"\n\n**Contract impact per choice** (the same in every artifact: {ARTIFACTS})\n\n" + table(rows)
