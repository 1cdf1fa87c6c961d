// Root rotation the way Consul users request it (Consul's CA configuration docs, "Root certificate
// rotation"): PUT /v1/connect/ca/configuration with a new `PrivateKey` for the built-in provider.
import { generateKeyPairSync } from "node:crypto";

/** A fresh EC P-256 private key as SEC1 PEM, the form Consul's `PrivateKey` takes. */
export function newCaPrivateKeyPem(): string {
  return generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "sec1", format: "pem" }).toString();
}

/** The CA configuration body that rotates the root to a new private key; `extra` adds Config keys. */
export function rotateRootBody(extra: Record<string, unknown> = {}): { Provider: "consul"; Config: Record<string, unknown> } {
  return { Provider: "consul", Config: { PrivateKey: newCaPrivateKeyPem(), ...extra } };
}
