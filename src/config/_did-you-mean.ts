/**
 * Spelling suggestions for unknown config keys ("boot_vcpu" → "boot_vcpus").
 * @module
 */

/**
 * Levenshtein distance that also counts swapping two adjacent characters as one edit (optimal string
 * alignment), because "mdoe" for "mode" is as likely a typo as a missing letter.
 */
export function editDistance(a: string, b: string): number {
  // rows[i][j] is the distance between the first i characters of a and the first j of b.
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const above = rows[i - 1] ?? [];
    const twoAbove = rows[i - 2] ?? [];
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const deletion = (above[j] ?? 0) + 1;
      const insertion = (row[j - 1] ?? 0) + 1;
      const substitution = (above[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      const swapped = i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1];
      const transposition = swapped ? (twoAbove[j - 2] ?? 0) + 1 : Infinity;
      row.push(Math.min(deletion, insertion, substitution, transposition));
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 0;
}

/** Short keys tolerate one edit, longer ones two or a third of their length, so unrelated keys are not offered. */
function maxDistance(candidate: string): number {
  return candidate.length <= 4 ? 1 : Math.max(2, Math.floor(candidate.length / 3));
}

/** The closest candidate if it is close enough to be what the user meant (case and `-`/`_` ignored), else undefined. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const normal = (s: string) => s.toLowerCase().replaceAll("-", "_");
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(normal(word), normal(candidate));
    if (distance <= maxDistance(candidate) && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}
