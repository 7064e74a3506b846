// The user documentation, as the doc tests read it: README.md, the guides in docs/, and the
// cloud-init files users copy recipes from.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./cli.js";

export interface Doc {
  /** Relative to the repository: "README.md", "docs/ca-cfssl.md". */
  readonly path: string;
  readonly text: string;
}

export function readDoc(path: string): Doc {
  return { path, text: readFileSync(join(REPO, path), "utf8") };
}

/** README.md, then every docs/*.md in name order. */
export function userDocs(): Doc[] {
  const guides = readdirSync(join(REPO, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => readDoc(`docs/${f}`));
  return [readDoc("README.md"), ...guides];
}

/** Everything a user reads, as one text: for "documented somewhere" checks. */
export function allDocsText(): string {
  return userDocs()
    .map((d) => d.text)
    .join("\n");
}

/** README, docs and the cloud-init files. */
export function recipeSources(): Doc[] {
  const cloudInit = readdirSync(join(REPO, "cloud-init"))
    .sort()
    .map((f) => readDoc(`cloud-init/${f}`));
  return [...userDocs(), ...cloudInit];
}
