// Reading the few certificate fields we need from node:crypto's text forms.

/**
 * The URI entries of a subjectAltName as node:crypto prints it ("URI:a, DNS:b"; since Node 17 a
 * value holding a comma or a quote is JSON-quoted: `URI:"a\u002cb"`). Returns [] for undefined or
 * unreadable text: an unreadable SAN is no SAN.
 */
export function uriSans(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  const out: string[] = [];
  let i = 0;
  const n = subjectAltName.length;
  while (i < n) {
    const colon = subjectAltName.indexOf(":", i);
    if (colon < 0) return out;
    const type = subjectAltName.slice(i, colon);
    let value: string;
    let next: number;
    if (subjectAltName[colon + 1] === '"') {
      // Find the closing quote, skipping escaped characters.
      let j = colon + 2;
      while (j < n && subjectAltName[j] !== '"') j += subjectAltName[j] === "\\" ? 2 : 1;
      if (j >= n) return [];
      try {
        value = JSON.parse(subjectAltName.slice(colon + 1, j + 1)) as string;
      } catch {
        return [];
      }
      next = j + 1;
    } else {
      const sep = subjectAltName.indexOf(", ", colon + 1);
      next = sep < 0 ? n : sep;
      value = subjectAltName.slice(colon + 1, next);
    }
    if (type === "URI") out.push(value);
    if (next < n && !subjectAltName.startsWith(", ", next)) return [];
    i = next + 2;
  }
  return out;
}

/** node:crypto's serial ("7D13C1C0", maybe odd-length) as Consul writes it: lowercase colon-hex bytes. */
export function colonHexSerial(serialNumber: string): string {
  const hex = serialNumber.length % 2 === 1 ? "0" + serialNumber : serialNumber;
  let out = "";
  for (let i = 0; i < hex.length; i += 2) out += (i === 0 ? "" : ":") + hex.slice(i, i + 2);
  return out.toLowerCase();
}
