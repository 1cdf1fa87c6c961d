// Certificate minting for the dev agent's built-in CA (spec §8.2, §8.3), on Node's WebCrypto.
import "reflect-metadata"; // @peculiar/x509 (tsyringe) needs the Reflect metadata API
import { createHash, createPrivateKey, createPublicKey, generateKeyPair, webcrypto, type KeyObject } from "node:crypto";
import { promisify } from "node:util";
import * as x509 from "@peculiar/x509";

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type KeyUsage = webcrypto.KeyUsage;
const crypto = webcrypto;
const generateKeyPairAsync = promisify(generateKeyPair);

export type CaKeyType = "ec" | "rsa";

export interface SigningKey {
  type: CaKeyType;
  bits: number;
  keys: CryptoKeyPair;
}

const EC_CURVES: Record<number, string> = { 256: "P-256", 384: "P-384", 521: "P-521" };
const NODE_CURVES: Record<string, number> = { prime256v1: 256, secp384r1: 384, secp521r1: 521 };

function algorithmFor(type: CaKeyType, bits: number): webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams {
  return type === "ec"
    ? { name: "ECDSA", namedCurve: EC_CURVES[bits]! }
    : { name: "RSASSA-PKCS1-v1_5", modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
}

function signingAlgorithm(key: SigningKey): webcrypto.EcdsaParams | webcrypto.Algorithm {
  return key.type === "ec" ? { name: "ECDSA", hash: "SHA-256" } : { name: "RSASSA-PKCS1-v1_5" };
}

/** Whether the CA supports this key type and size (WebCrypto has no P-224). */
export function supportedKey(type: string, bits: number): type is CaKeyType {
  return (type === "ec" && bits in EC_CURVES) || (type === "rsa" && (bits === 2048 || bits === 4096));
}

/** A fresh CA key pair. */
export async function generateSigningKey(type: CaKeyType, bits: number): Promise<SigningKey> {
  const keys = (await crypto.subtle.generateKey(algorithmFor(type, bits), true, ["sign", "verify"])) as CryptoKeyPair;
  return { type, bits, keys };
}

/** Imports an operator-supplied CA private key (PKCS#8, SEC1 or PKCS#1 PEM). Throws on other keys. */
export function importSigningKey(pem: string): SigningKey {
  const priv = createPrivateKey(pem);
  const pub = createPublicKey(priv);
  let type: CaKeyType;
  let bits: number;
  if (priv.asymmetricKeyType === "ec") {
    type = "ec";
    bits = NODE_CURVES[priv.asymmetricKeyDetails?.namedCurve ?? ""] ?? 0;
  } else if (priv.asymmetricKeyType === "rsa") {
    type = "rsa";
    bits = priv.asymmetricKeyDetails?.modulusLength ?? 0;
  } else throw new Error(`unsupported private key type ${priv.asymmetricKeyType}`);
  if (!supportedKey(type, bits)) throw new Error(`unsupported private key: ${type} ${bits} bits`);
  const alg = algorithmFor(type, bits);
  const toCrypto = (k: KeyObject, usages: KeyUsage[]) => k.toCryptoKey(alg, true, usages);
  return { type, bits, keys: { privateKey: toCrypto(priv, ["sign"]), publicKey: toCrypto(pub, ["verify"]) } };
}

/** Consul's key ID: SHA-256 of the DER SubjectPublicKeyInfo, 32 bytes (spec §8.2). */
export function keyIdOf(spkiDer: ArrayBuffer | Uint8Array): Buffer {
  return createHash("sha256").update(new Uint8Array(spkiDer)).digest();
}

/** `a1:b2:…`, lowercase. */
export function colonHex(bytes: Uint8Array | string): string {
  const hex = typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("hex");
  return hex.toLowerCase().match(/../g)?.join(":") ?? "";
}

/** A non-negative integer as even-length big-endian hex ("08", "0100"). */
export function serialHex(serial: number): string {
  const hex = serial.toString(16);
  return hex.length % 2 ? `0${hex}` : hex;
}

/** PEM with exactly one trailing newline. */
export function certPem(cert: x509.X509Certificate): string {
  return `${cert.toString("pem").trim()}\n`;
}

const BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz";

export interface RootParams {
  key: SigningKey;
  serial: number;
  clusterId: string;
  notBefore: Date;
  notAfter: Date;
}

/** A self-signed root per spec §8.3: CN `pri-<8 base36>.consul.ca.<id8>.consul`, URI SAN `spiffe://<id>.consul`. */
export async function createRootCert(p: RootParams): Promise<x509.X509Certificate> {
  const rnd = crypto.getRandomValues(new Uint8Array(8));
  const uid = [...rnd].map((b) => BASE36[b % 36]).join("");
  const spki = await crypto.subtle.exportKey("spki", p.key.keys.publicKey);
  const keyId = keyIdOf(spki).toString("hex");
  const trustDomain = `${p.clusterId}.consul`;
  return x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialHex(p.serial),
      name: `CN=pri-${uid}.consul.ca.${p.clusterId.slice(0, 8)}.consul`,
      notBefore: p.notBefore,
      notAfter: p.notAfter,
      keys: p.key.keys,
      signingAlgorithm: signingAlgorithm(p.key),
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        new x509.SubjectKeyIdentifierExtension(keyId),
        new x509.AuthorityKeyIdentifierExtension(keyId),
        new x509.SubjectAlternativeNameExtension([{ type: "url", value: `spiffe://${trustDomain}` }]),
      ],
    },
    crypto,
  );
}

export interface LeafParams {
  issuer: x509.X509Certificate;
  /** Hex key id of the issuer (its SKI): becomes the leaf's AKI. */
  issuerKeyId: string;
  key: SigningKey;
  serial: number;
  uri: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * A leaf per spec §8.2 with an agent-generated EC P-256 key: empty subject, one critical URI SAN,
 * CA:false, digitalSignature|keyEncipherment|dataEncipherment|keyAgreement, server+client auth,
 * 32-byte SHA-256 SKI/AKI. Returns the certificate and the SEC1 `EC PRIVATE KEY` PEM.
 */
export async function signLeaf(p: LeafParams): Promise<{ cert: x509.X509Certificate; keyPem: string }> {
  const { publicKey, privateKey } = await generateKeyPairAsync("ec", { namedCurve: "prime256v1" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialHex(p.serial),
      issuer: p.issuer.subjectName,
      notBefore: p.notBefore,
      notAfter: p.notAfter,
      publicKey: spki,
      signingKey: p.key.keys.privateKey,
      signingAlgorithm: signingAlgorithm(p.key),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature |
            x509.KeyUsageFlags.keyEncipherment |
            x509.KeyUsageFlags.dataEncipherment |
            x509.KeyUsageFlags.keyAgreement,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectKeyIdentifierExtension(keyIdOf(spki).toString("hex")),
        new x509.AuthorityKeyIdentifierExtension(p.issuerKeyId),
        // the subject is empty, so the SAN must be critical (RFC 5280 §4.2.1.6)
        new x509.SubjectAlternativeNameExtension([{ type: "url", value: p.uri }], true),
      ],
    },
    crypto,
  );
  return { cert, keyPem: privateKey.export({ type: "sec1", format: "pem" }) as string };
}

/** Parses a PEM certificate. Throws on bad input. */
export function parseCert(pem: string): x509.X509Certificate {
  return new x509.X509Certificate(pem);
}

/** The key id a certificate signs with: its SKI, else Consul's SHA-256 key id. */
export function signingKeyIdOf(cert: x509.X509Certificate): string {
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  return ski ? ski.keyId.toLowerCase() : keyIdOf(cert.publicKey.rawData).toString("hex");
}

/** SHA-1 fingerprint of the DER, lowercase colon-hex (the root `ID`). */
export function sha1Fingerprint(cert: x509.X509Certificate): string {
  return colonHex(createHash("sha1").update(Buffer.from(cert.rawData)).digest());
}

/** Whether `key` is the private half of `cert`'s public key. */
export async function keyMatchesCert(key: SigningKey, cert: x509.X509Certificate): Promise<boolean> {
  const spki = Buffer.from(await crypto.subtle.exportKey("spki", key.keys.publicKey));
  return spki.equals(Buffer.from(cert.publicKey.rawData));
}
