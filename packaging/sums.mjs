// dist/SHA256SUMS, in sha256sum's format (`<hex>  <name>` a line; `cd dist && sha256sum -c
// SHA256SUMS`): package.mjs writes the lines of the binaries and their .xz files, deb.mjs adds the
// .debs' after building them, so one file checks every download.

/**
 * The lines of SHA256SUMS that are not about a .deb: what package.mjs wrote, and stamps.
 * @param {string} text
 * @returns {string}
 */
export function withoutDebs(text) {
  return text
    .split("\n")
    .filter((l) => l !== "" && !/\.deb$/.test(l))
    .map((l) => `${l}\n`)
    .join("");
}

/**
 * SHA256SUMS with these .debs' lines in place of any earlier .deb lines.
 * @param {string} text the current SHA256SUMS
 * @param {[name: string, sha256: string][]} debs
 * @returns {string}
 */
export function withDebs(text, debs) {
  return withoutDebs(text) + debs.map(([name, sum]) => `${sum}  ${name}\n`).join("");
}
