/** Code blocks out of the docs, so tests run what a reader would copy. */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const DOCS_DIR = join(import.meta.dir, "..", "..", "docs");

export interface CodeBlock {
  /** The fence's info string ("ts", "sh", ...). */
  lang: string;
  text: string;
}

/** Every fenced code block (```lang ... ```) of docs/NAME, in order. */
export function codeBlocks(name: string): CodeBlock[] {
  const markdown = readFileSync(join(DOCS_DIR, name), "utf8");
  return [...markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, text: m[2]! }));
}

/** The one block of docs/NAME that `pick` selects; throws naming the page and what was looked for. */
export function codeBlock(name: string, what: string, pick: (b: CodeBlock) => boolean): string {
  const found = codeBlocks(name).filter(pick);
  if (found.length !== 1)
    throw new Error(`docs/${name}: expected one code block with ${what}, found ${found.length}`);
  return found[0]!.text;
}
