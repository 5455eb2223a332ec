/**
 * Turns valibot's issues into a ConfigError: the dotted key, the value the user wrote, what was expected.
 * @module
 */
import type * as v from "valibot";
import { didYouMean } from "./_did-you-mean.ts";
import { ConfigError, type ConfigIssue, formatKey, issueAt } from "./config-error.ts";
import { TABLE_KEYS } from "./schema.ts";

/** valibot reports a key the schema does not know with a path item whose origin is "key". */
function isUnknownKey(issue: v.BaseIssue<unknown>): boolean {
  return issue.path?.at(-1)?.origin === "key";
}

/** One valibot issue in the user's terms; every message in schema.ts is the "expected …" part. */
function toConfigIssue(issue: v.BaseIssue<unknown>): ConfigIssue {
  const segments = (issue.path ?? []).map((item) => String(item.key));
  const key = formatKey(segments);
  const last = issue.path?.at(-1);
  const value = last ? last.value : issue.input;
  if (!isUnknownKey(issue)) return issueAt(key, value, issue.message);
  // An array of tables ([[disks]]) has one key list for all its entries: drop the index.
  const table = segments.slice(0, -1).filter((s) => !/^\d+$/.test(s));
  const known = TABLE_KEYS[table.join(".")] ?? [];
  const expected = `one of ${known.map((k) => JSON.stringify(k)).join(", ")}`;
  const suggestion = didYouMean(segments.at(-1) ?? "", known);
  const hint =
    suggestion === undefined ? `expected ${expected}` : `did you mean ${JSON.stringify(suggestion)}?`;
  return { ...issueAt(key, undefined, expected, `unknown key (${hint})`), value };
}

/**
 * The ConfigError for a failed parse. Unknown keys come first: a misspelt key is usually the cause of the
 * other complaints (a typo in `mode` makes `serial.file` look misplaced).
 */
export function configErrorFromIssues(
  issues: readonly [v.BaseIssue<unknown>, ...v.BaseIssue<unknown>[]],
  source?: string,
): ConfigError {
  const ordered = [...issues].sort((a, b) => Number(isUnknownKey(b)) - Number(isUnknownKey(a))); // stable
  const [first = issues[0], ...rest] = ordered;
  return new ConfigError([toConfigIssue(first), ...rest.map(toConfigIssue)], source);
}
