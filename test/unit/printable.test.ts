// printable(): what reaches a terminal from a CA, a proxy or a file name shows its control and
// bidirectional formatting characters escaped, never raw.
import assert from "node:assert/strict";
import { test } from "node:test";
import { printable } from "../../agent/common/printable.js";

test("C0, DEL, C1 and bidi formatting characters are escaped; other text is left as it is", () => {
  assert.equal(
    printable("\x1b]0;t\x07\r\n\t\x00\x7f\x9b"),
    "\\x1b]0;t\\x07\\r\\n\\t\\x00\\x7f\\x9b",
  );
  assert.equal(printable("a\u202eb\u2066c\u2069d\u200f"), "a\\u202eb\\u2066c\\u2069d\\u200f");
  assert.equal(
    printable("CA kubernetes (cfssl http://ca:8888): née, 証明書"),
    "CA kubernetes (cfssl http://ca:8888): née, 証明書",
  );
});

test("node-join's own multi-line output keeps its line feeds and tabs, nothing else", () => {
  assert.equal(printable("a\tb\nc\rd\x1b", { lines: true }), "a\tb\nc\\rd\\x1b");
});
