// Test certificate authority, generated at run time (no key is ever committed). Shaped like Consul's
// built-in CA (spec §8.2, §8.3): EC P-256, a root with the signing URI SAN spiffe://<uuid>.consul,
// leaves with an empty subject, one critical URI SAN and both clientAuth and serverAuth EKUs.
import "reflect-metadata"; // @peculiar/x509 (tsyringe) needs the Reflect metadata API
import { createPrivateKey, randomBytes, randomUUID, webcrypto, X509Certificate as NodeX509 } from "node:crypto";
import * as x509 from "@peculiar/x509";
import type { CaRoot, CaRoots, LeafCert, SpiffeUri } from "../../src/agent/index.js";

const EC: webcrypto.EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGN: webcrypto.EcdsaParams = { name: "ECDSA", hash: "SHA-256" };
const HOUR_MS = 3_600_000;
const EKU_OIDS = { clientAuth: x509.ExtendedKeyUsage.clientAuth, serverAuth: x509.ExtendedKeyUsage.serverAuth } as const;

export type Eku = keyof typeof EKU_OIDS;

export interface IssueLeafOptions {
  /** Service name for the URI SAN; default "web". */
  service?: string;
  /** The whole URI SAN, overriding service/trustDomain/datacenter (say, an agent identity). */
  uri?: string;
  /** Trust domain in the URI SAN; default the CA's. */
  trustDomain?: string;
  datacenter?: string;
  notBefore?: Date;
  notAfter?: Date;
  ekus?: Eku[];
  /** More URI SANs after the first (Consul's leaves have exactly one). */
  extraUris?: string[];
}

export interface IssuedLeaf {
  /** Leaf PEM followed by the issuing intermediates' PEMs (as Consul's CertPEM). */
  certPem: string;
  /** SEC1 "EC PRIVATE KEY" PEM, as the agent returns it. */
  keyPem: string;
  /** Lowercase colon-hex, as Consul's SerialNumber. */
  serial: string;
  uri: SpiffeUri;
  notBefore: Date;
  notAfter: Date;
  /** The same leaf as the agent's leaf endpoint would describe it. */
  leaf: LeafCert;
}

export interface TestCa {
  trustDomain: string;
  /** PEM of this CA's certificate (a root, or an intermediate from `intermediate()`). */
  certPem: string;
  /** SEC1 PEM of the CA key (for tests that need a key that does not match a leaf). */
  keyPem: string;
  /** PEMs of intermediates between this CA and its root, this CA first; empty for a root. */
  chainPems: string[];
  issueLeaf(opts?: IssueLeafOptions): Promise<IssuedLeaf>;
  /** An intermediate CA signed by this one, with the same trust domain. */
  intermediate(opts?: { notBefore?: Date; notAfter?: Date }): Promise<TestCa>;
  /** This root as the roots endpoint would describe it. */
  caRoot(opts?: { active?: boolean }): CaRoot;
}

/** Makes a self-signed EC P-256 root CA for `trustDomain` (default `<random uuid>.consul`). */
export async function makeCa(opts: { trustDomain?: string; notBefore?: Date; notAfter?: Date } = {}): Promise<TestCa> {
  const trustDomain = opts.trustDomain ?? `${randomUUID()}.consul`;
  const keys = await webcrypto.subtle.generateKey(EC, true, ["sign", "verify"]);
  const notBefore = opts.notBefore ?? new Date(Date.now() - HOUR_MS);
  const notAfter = opts.notAfter ?? new Date(Date.now() + 10 * 24 * HOUR_MS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: `CN=pri-${randomBytes(4).toString("hex")}.consul.ca.${trustDomain.slice(0, 8)}.consul`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: `spiffe://${trustDomain}` }]),
    ],
  });
  return buildCa({ trustDomain, cert, keys, chainPems: [] });
}

async function buildCa(s: { trustDomain: string; cert: x509.X509Certificate; keys: webcrypto.CryptoKeyPair; chainPems: string[] }): Promise<TestCa> {
  const certPem = s.cert.toString("pem") + "\n";
  const keyPem = await exportSec1(s.keys.privateKey);
  const self: TestCa = {
    trustDomain: s.trustDomain,
    certPem,
    keyPem,
    chainPems: s.chainPems,
    async issueLeaf(o = {}) {
      const leafKeys = await webcrypto.subtle.generateKey(EC, true, ["sign", "verify"]);
      const notBefore = o.notBefore ?? new Date(Date.now() - 60_000); // spec §8.2: now − 1 min
      const notAfter = o.notAfter ?? new Date(notBefore.getTime() + 72 * HOUR_MS);
      const service = o.service ?? "web";
      const uri = (o.uri ??
        `spiffe://${o.trustDomain ?? s.trustDomain}/ns/default/dc/${o.datacenter ?? "dc1"}/svc/${service}`) as SpiffeUri;
      const serialHex = randomSerialHex();
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serialHex,
        subject: "", // current Consul: empty subject, so the URI SAN is critical
        issuer: s.cert.subjectName,
        notBefore,
        notAfter,
        publicKey: leafKeys.publicKey,
        signingKey: s.keys.privateKey,
        signingAlgorithm: SIGN,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(
            x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment |
              x509.KeyUsageFlags.dataEncipherment | x509.KeyUsageFlags.keyAgreement,
            true,
          ),
          new x509.ExtendedKeyUsageExtension((o.ekus ?? ["clientAuth", "serverAuth"]).map((e) => EKU_OIDS[e])),
          await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey),
          await x509.AuthorityKeyIdentifierExtension.create(s.keys.publicKey),
          new x509.SubjectAlternativeNameExtension([uri, ...(o.extraUris ?? [])].map((value) => ({ type: "url" as const, value })), true),
        ],
      });
      const leafPem = cert.toString("pem") + "\n";
      const certPemChain = leafPem + s.chainPems.join("");
      const leafKeyPem = await exportSec1(leafKeys.privateKey);
      const serial = colonHex(serialHex);
      return {
        certPem: certPemChain,
        keyPem: leafKeyPem,
        serial,
        uri,
        notBefore: cert.notBefore,
        notAfter: cert.notAfter,
        leaf: {
          serialNumber: serial,
          certPem: certPemChain,
          privateKeyPem: leafKeyPem,
          service,
          serviceUri: uri,
          validAfter: cert.notBefore,
          validBefore: cert.notAfter,
          modifyIndex: 1,
        },
      };
    },
    async intermediate(o = {}) {
      const keys = await webcrypto.subtle.generateKey(EC, true, ["sign", "verify"]);
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: randomSerialHex(),
        subject: `CN=sec-${randomBytes(4).toString("hex")}.consul.ca.${s.trustDomain.slice(0, 8)}.consul`,
        issuer: s.cert.subjectName,
        notBefore: o.notBefore ?? new Date(Date.now() - HOUR_MS),
        notAfter: o.notAfter ?? new Date(Date.now() + 5 * 24 * HOUR_MS),
        publicKey: keys.publicKey,
        signingKey: s.keys.privateKey,
        signingAlgorithm: SIGN,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true), // spec §8.3: intermediates have MaxPathLen 0
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
          await x509.AuthorityKeyIdentifierExtension.create(s.keys.publicKey),
          new x509.SubjectAlternativeNameExtension([{ type: "url", value: `spiffe://${s.trustDomain}` }]),
        ],
      });
      return buildCa({ trustDomain: s.trustDomain, cert, keys, chainPems: [cert.toString("pem") + "\n", ...s.chainPems] });
    },
    caRoot(o = {}) {
      const node = new NodeX509(certPem);
      return {
        id: node.fingerprint.toLowerCase(),
        name: "Consul CA Primary Cert",
        serialNumber: Number.parseInt(node.serialNumber.slice(-12), 16),
        signingKeyId: "",
        notBefore: s.cert.notBefore,
        notAfter: s.cert.notAfter,
        rootCertPem: certPem,
        intermediateCertPems: [],
        active: o.active ?? true,
      };
    },
  };
  return self;
}

/** The roots endpoint's answer for these CAs (the first is active unless `activeIndex` says otherwise). */
export function rootsOf(cas: TestCa[], opts: { trustDomain?: string; activeIndex?: number } = {}): CaRoots {
  const activeIndex = opts.activeIndex ?? 0;
  const roots = cas.map((ca, i) => ca.caRoot({ active: i === activeIndex }));
  return {
    activeRootId: roots[activeIndex]?.id ?? "",
    trustDomain: opts.trustDomain ?? cas[activeIndex]?.trustDomain ?? "",
    roots,
  };
}

async function exportSec1(key: webcrypto.CryptoKey): Promise<string> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" }).export({ type: "sec1", format: "pem" }).toString();
}

// A positive 8-byte serial (top bit clear), as hex.
function randomSerialHex(): string {
  const b = randomBytes(8);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString("hex");
}

function colonHex(hex: string): string {
  return hex.toLowerCase().match(/../g)!.join(":");
}
