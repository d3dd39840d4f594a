// Parse documents with the Zod schemas production_etl generated (compiled to JS by tsc).
// Usage: node check.mjs <compiled zod.js> <documents.jsonl>; each line {"type": "<schema name>", "doc": {...}}.
// Prints one JSON array: per document {ok: true} or {ok: false, issues: [{path, message}]} (Zod's own issues).
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [schemaJs, docsFile] = process.argv.slice(2);
const schemas = await import(pathToFileURL(schemaJs).href);
const results = [];
for (const line of readFileSync(docsFile, "utf8").split("\n")) {
  if (!line.trim()) continue;
  const { type, doc } = JSON.parse(line);
  const res = schemas[type].safeParse(doc);
  results.push(
    res.success
      ? { ok: true }
      : { ok: false, issues: res.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })) },
  );
}
console.log(JSON.stringify(results));
