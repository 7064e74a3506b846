// Text that reaches a terminal or a log: a CA's error message, a proxy's status line, a server
// name, a file name. Any of them may carry control characters: ESC starts ECMA-48 control
// sequences (colours, cursor moves, OSC 0 retitling the window, OSC 52 writing the clipboard),
// CR and BS overwrite what was printed (a forged "renewed 2: all good"), C1 controls are the
// same sequences in one byte (U+009B is CSI), and Unicode's bidirectional overrides and isolates
// reorder what is shown (Trojan Source, CVE-2021-42574). They are printed escaped, as a JSON or
// JavaScript string would show them, so the operator sees that they were there.

/**
 * C0 controls, DEL, C1 controls, and the bidirectional formatting characters (UAX #9: ALM, LRM,
 * RLM, the embeddings and overrides U+202A–U+202E, the isolates U+2066–U+2069).
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escaped(c: string): string {
  const code = c.charCodeAt(0);
  return (
    NAMED[c] ??
    (code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16)}`)
  );
}

/**
 * `text` with every control and bidirectional formatting character escaped (`\x1b`, `\r`,
 * `\u202e`). `lines`: the text is several lines of node-join's own output, whose line feeds and
 * tabs stay.
 */
export function printable(text: string, opts: { lines?: boolean } = {}): string {
  return text.replace(UNSAFE, (c) => (opts.lines && (c === "\n" || c === "\t") ? c : escaped(c)));
}
