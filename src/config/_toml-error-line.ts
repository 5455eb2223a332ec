/**
 * Finds the line of a TOML syntax error. Bun's TOML parser reports only a message (its `line` is the
 * caller's JavaScript line), so this re-parses ever longer prefixes of the text until the same message
 * appears: that line is where the parser gave up.
 * @module
 */

/** Past this many lines, finding the line costs more than it is worth; config files are far shorter. */
const MAX_LINES_SEARCHED = 2000;

/** The 1-based line on which parsing `text` first fails with `message`, if it can be found. */
export function tomlErrorLine(text: string, message: string): number | undefined {
  let end = 0; // where the next line starts
  for (let line = 1; line <= MAX_LINES_SEARCHED && end < text.length; line++) {
    // The prefix keeps the line's own newline: some errors are only seen at the end of the line.
    const newline = text.indexOf("\n", end);
    end = newline === -1 ? text.length : newline + 1;
    try {
      Bun.TOML.parse(text.slice(0, end));
    } catch (error) {
      if (error instanceof Error && error.message === message) return line;
    }
  }
  return undefined;
}
