/**
 * eIDAS SAML 2.0 Response verification (STANDARDS.md "eIDAS SAML 2.0"; issue 4).
 *
 * An eIDAS node or national IdP posts a base64 `samlp:Response` (SAML bindings 3.5, HTTP-POST). The
 * verifier turns it into a `VerifiedEid` or throws a `GatewayError` with an `eid.*` code. It is an
 * ordered list of one-rule checks (STYLE.md rule 2) over xml-crypto 6 and @xmldom/xmldom 0.9.
 *
 * Why not `@node-saml/node-saml`'s `validatePostResponseAsync`: it reports failures as free-text
 * `Error`s that would have to be mapped back to codes by message, accepts a Response where only one
 * of Response/Assertion is signed, and still leaves us the exactly-one-Assertion, DOCTYPE, comment,
 * LoA, attribute and replay rules. Doing the XML-DSig step with xml-crypto directly keeps every rule
 * visible in this file, each with its own code.
 *
 * The rule that defeats XML signature wrapping (XSW; CVE-2024-45409, CVE-2025-29774/29775 in
 * xml-crypto, CVE-2025-25291/25292 in ruby-saml): after a signature verifies, everything we use is
 * read from the XML that xml-crypto returns from `getSignedReferences()` for that signature, re-parsed
 * by us, never from the DOM the attacker sent. The structural checks on the received DOM (exactly
 * one Assertion, unique IDs, no comments, Signature placement) only ever refuse.
 */
import { KeyObject, X509Certificate, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import type { KeyLike } from 'node:crypto';
import { DOMParser, Element, Node } from '@xmldom/xmldom';
import type { Document } from '@xmldom/xmldom';
import { SignedXml, createOptionalCallbackFunction } from 'xml-crypto';
import type { SignatureAlgorithm } from 'xml-crypto';
import { GatewayError } from '../http/errors.js';
import type { ReplayStore } from '../crossborder/replay-store.js';
import { LOA_URIS, loaAtLeast } from './eid.js';
import type { LevelOfAssurance, VerifiedEid } from './eid.js';

// ---------------------------------------------------------------------------------------------
// Profile constants

const NS_PROTOCOL = 'urn:oasis:names:tc:SAML:2.0:protocol';
const NS_ASSERTION = 'urn:oasis:names:tc:SAML:2.0:assertion';
const NS_DSIG = 'http://www.w3.org/2000/09/xmldsig#';
const NS_EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';

const STATUS_SUCCESS = 'urn:oasis:names:tc:SAML:2.0:status:Success';
const CM_BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';
const NAMEID_FORMAT_ENTITY = 'urn:oasis:names:tc:SAML:2.0:nameid-format:entity';
const ATTRNAME_FORMAT_URI = 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri';

/** eIDAS SAML Attribute Profile v1.2: the natural person minimum data set. */
export const EIDAS_NATURAL_PERSON = {
  personIdentifier: 'http://eidas.europa.eu/attributes/naturalperson/PersonIdentifier',
  familyName: 'http://eidas.europa.eu/attributes/naturalperson/CurrentFamilyName',
  givenName: 'http://eidas.europa.eu/attributes/naturalperson/CurrentGivenName',
  dateOfBirth: 'http://eidas.europa.eu/attributes/naturalperson/DateOfBirth',
} as const;

/**
 * eIDAS SAML Attribute Profile, PersonIdentifier: `<issuing country>/<destination country>/<id>`,
 * both countries ISO 3166-1 alpha-2, at most 256 characters of identifier.
 */
const PERSON_IDENTIFIER = /^[A-Z]{2}\/[A-Z]{2}\/\S{1,256}$/;
const DATE_OF_BIRTH = /^(\d{4})-(\d{2})-(\d{2})$/;
/**
 * SAML core 1.3.3: time values are xs:dateTime in UTC. We require the `Z` form every eIDAS node
 * emits; an offset or a missing zone is refused rather than guessed.
 */
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$/;
/** xs:ID is an NCName (SAML core 1.3.4); we accept its ASCII subset, which is what IdPs emit. */
const XML_ID = /^[A-Za-z_][A-Za-z0-9._-]{0,255}$/;
const MAX_TEXT_CHARS = 1024;

export const XMLDSIG = {
  excC14n: 'http://www.w3.org/2001/10/xml-exc-c14n#',
  envelopedSignature: 'http://www.w3.org/2000/09/xmldsig#enveloped-signature',
  rsaSha1: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
  rsaSha256: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  rsaSha512: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512',
  rsaPssSha256: 'http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1',
  ecdsaSha256: 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256',
  ecdsaSha384: 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384',
  ecdsaSha512: 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512',
  sha1: 'http://www.w3.org/2000/09/xmldsig#sha1',
  sha256: 'http://www.w3.org/2001/04/xmlenc#sha256',
  sha512: 'http://www.w3.org/2001/04/xmlenc#sha512',
} as const;

/**
 * SAML core 5.4.4 allows only the enveloped-signature and exclusive-c14n transforms; without
 * comments, so that comment-splitting tricks cannot change what was signed.
 */
const ALLOWED_TRANSFORMS: ReadonlySet<string> = new Set([XMLDSIG.envelopedSignature, XMLDSIG.excC14n]);
/**
 * SHA-1 is out (eIDAS Cryptographic Requirements for the Interoperability Framework; SOG-IS Agreed
 * Cryptographic Mechanisms): RSA or ECDSA with SHA-256 or stronger only, for signatures and for
 * reference digests.
 */
const SIGNATURE_ALGORITHM_KEY_TYPE: ReadonlyMap<string, 'rsa' | 'ec'> = new Map([
  [XMLDSIG.rsaSha256, 'rsa'],
  [XMLDSIG.rsaSha512, 'rsa'],
  [XMLDSIG.rsaPssSha256, 'rsa'],
  [XMLDSIG.ecdsaSha256, 'ec'],
  [XMLDSIG.ecdsaSha384, 'ec'],
  [XMLDSIG.ecdsaSha512, 'ec'],
]);
const ALLOWED_DIGESTS: ReadonlySet<string> = new Set([XMLDSIG.sha256, XMLDSIG.sha512]);

const DEFAULT_SKEW_SECONDS = 60;
const DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024;
const MIN_RSA_BITS = 2048;

// ---------------------------------------------------------------------------------------------
// ECDSA for XML-DSig, which xml-crypto 6 does not ship

/**
 * XML-DSig 1.1 section 6.4.3 (RFC 6931 section 2.3.6): the ECDSA SignatureValue is the raw
 * `r || s` concatenation, which node:crypto calls `ieee-p1363`. Exported so the test IdP signs with
 * exactly the algorithm the verifier checks.
 */
function ecdsaAlgorithm(uri: string, hash: 'sha256' | 'sha384' | 'sha512'): new () => SignatureAlgorithm {
  return class EcdsaXmlDsig implements SignatureAlgorithm {
    getSignature = createOptionalCallbackFunction((signedInfo: string | NodeJS.ArrayBufferView, privateKey: KeyLike): string => {
      const data = typeof signedInfo === 'string' ? Buffer.from(signedInfo, 'utf8') : signedInfo;
      return cryptoSign(hash, data, { key: privateKey instanceof KeyObject ? privateKey : createPrivateKey(privateKey), dsaEncoding: 'ieee-p1363' }).toString('base64');
    });

    verifySignature = createOptionalCallbackFunction((material: string, key: KeyLike, signatureValue: string): boolean =>
      cryptoVerify(hash, Buffer.from(material, 'utf8'), { key: createPublicKey(key), dsaEncoding: 'ieee-p1363' }, Buffer.from(signatureValue, 'base64')),
    );

    getAlgorithmName = (): string => uri;
  };
}

export const ECDSA_SIGNATURE_ALGORITHMS: Readonly<Record<string, new () => SignatureAlgorithm>> = {
  [XMLDSIG.ecdsaSha256]: ecdsaAlgorithm(XMLDSIG.ecdsaSha256, 'sha256'),
  [XMLDSIG.ecdsaSha384]: ecdsaAlgorithm(XMLDSIG.ecdsaSha384, 'sha384'),
  [XMLDSIG.ecdsaSha512]: ecdsaAlgorithm(XMLDSIG.ecdsaSha512, 'sha512'),
};

// ---------------------------------------------------------------------------------------------
// API

export interface SamlVerifierOptions {
  /** The configured provider id (config `eid.saml[].id`). */
  providerId: string;
  /** The IdP's entity id: what both Issuer elements must say. */
  idpEntityId: string;
  /** Pinned IdP signing certificates (PEM) from config files; several allow key rollover. */
  idpCertsPem: string[];
  /** Our SP entity id: the Audience the assertion must name. */
  spEntityId: string;
  /** Our assertion consumer service URL: the Destination and Recipient the IdP must name. */
  acsUrl: string;
  replay: ReplayStore;
  clockSkewSeconds?: number;
  /** Limit on the decoded XML. */
  maxResponseBytes?: number;
  now?: () => Date;
}

export interface SamlVerifyContext {
  /** The ID of the AuthnRequest we sent, when the flow started at the gateway (SP-initiated). */
  expectedInResponseTo?: string;
}

export interface SamlVerifier {
  verify(samlResponseBase64: string, ctx?: SamlVerifyContext): Promise<VerifiedEid>;
}

interface PinnedCert {
  readonly pem: string;
  readonly keyType: 'rsa' | 'ec';
}

interface VerifierConfig {
  readonly providerId: string;
  readonly idpEntityId: string;
  readonly certs: readonly PinnedCert[];
  readonly spEntityId: string;
  readonly acsUrl: string;
  readonly replay: ReplayStore;
  readonly skewMs: number;
  readonly maxResponseBytes: number;
  readonly now: () => Date;
}

export function createSamlVerifier(opts: SamlVerifierOptions): SamlVerifier {
  for (const [name, value] of [
    ['providerId', opts.providerId],
    ['idpEntityId', opts.idpEntityId],
    ['spEntityId', opts.spEntityId],
    ['acsUrl', opts.acsUrl],
  ] as const) {
    if (value.length === 0) throw new TypeError(`createSamlVerifier: ${name} must not be empty`);
  }
  if (opts.idpCertsPem.length === 0) throw new TypeError('createSamlVerifier: at least one pinned IdP certificate is required');
  const skewSeconds = opts.clockSkewSeconds ?? DEFAULT_SKEW_SECONDS;
  if (!Number.isFinite(skewSeconds) || skewSeconds < 0 || skewSeconds > 300) {
    throw new TypeError('createSamlVerifier: clockSkewSeconds must be between 0 and 300');
  }
  const config: VerifierConfig = Object.freeze({
    providerId: opts.providerId,
    idpEntityId: opts.idpEntityId,
    certs: Object.freeze(opts.idpCertsPem.map(pinCertificate)),
    spEntityId: opts.spEntityId,
    acsUrl: opts.acsUrl,
    replay: opts.replay,
    skewMs: skewSeconds * 1000,
    maxResponseBytes: opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
    now: opts.now ?? (() => new Date()),
  });
  return { verify: (samlResponseBase64, ctx = {}) => verifySamlResponse(config, samlResponseBase64, ctx) };
}

/** Config-time validation: a bad pinned certificate is an operator error, so it fails at boot. */
function pinCertificate(pem: string): PinnedCert {
  const cert = new X509Certificate(pem);
  const key = cert.publicKey;
  const keyType = pinnedKeyType(key);
  if (keyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw new TypeError(`createSamlVerifier: pinned RSA key is shorter than ${MIN_RSA_BITS} bits`);
  }
  return { pem: cert.toString(), keyType };
}

function pinnedKeyType(key: KeyObject): 'rsa' | 'ec' {
  if (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') return 'rsa';
  if (key.asymmetricKeyType === 'ec') return 'ec';
  throw new TypeError(`createSamlVerifier: pinned key type ${String(key.asymmetricKeyType)} is not supported`);
}

// ---------------------------------------------------------------------------------------------
// The pipeline

async function verifySamlResponse(cfg: VerifierConfig, input: string, ctx: SamlVerifyContext): Promise<VerifiedEid> {
  const now = cfg.now().getTime();

  checkSize(input, cfg.maxResponseBytes);
  const xml = decodeBase64Strictly(input, cfg.maxResponseBytes);
  checkNoDoctype(xml);
  const received = parseXml(xml);

  // Structural rules on the received DOM. They only refuse; nothing is read from it.
  const receivedResponse = checkRootIsResponse(received);
  checkStatusSuccess(receivedResponse);
  const receivedAssertion = checkExactlyOneAssertion(received, receivedResponse);
  checkIdsUnique(received);
  checkNoCommentsInAssertion(receivedAssertion);

  // XML-DSig. From here on, only the XML the signatures cover is read.
  const response = checkResponseSigned(cfg, xml, receivedResponse);
  const assertion = checkAssertionSigned(cfg, xml, receivedAssertion);
  checkSignedAssertionIsInSignedResponse(response, assertion);
  checkStatusSuccess(response);

  checkIssuer(response, assertion, cfg.idpEntityId);
  checkDestination(response, cfg.acsUrl);
  checkInResponseTo(response, assertion, ctx.expectedInResponseTo);
  const confirmationExpiry = checkSubjectConfirmation(assertion, cfg.acsUrl, now, cfg.skewMs);
  const conditionsExpiry = checkConditions(assertion, cfg.spEntityId, now, cfg.skewMs);
  checkNameIdText(assertion);
  const authn = checkLoa(assertion, now, cfg.skewMs);
  const attributes = readAttributes(assertion);

  const assertionId = requiredId(assertion);
  const expiresAt = new Date(Math.min(confirmationExpiry.getTime(), conditionsExpiry.getTime()));
  await checkNotReplayed(cfg, assertionId, expiresAt);

  return {
    protocol: 'saml',
    providerId: cfg.providerId,
    issuer: cfg.idpEntityId,
    personId: attributes.personId,
    givenName: attributes.givenName,
    familyName: attributes.familyName,
    birthDate: attributes.birthDate,
    loa: authn.loa,
    authTime: authn.authTime,
    assertionId,
    expiresAt,
  };
}

// ---------------------------------------------------------------------------------------------
// Input and parsing

function checkSize(input: string, maxBytes: number): void {
  // Base64 grows data by 4/3; line breaks (RFC 2045 style, allowed by SAML bindings 3.5.4) add a
  // little more. Twice the decoded limit bounds both without decoding anything.
  if (input.length > maxBytes * 2) {
    throw new GatewayError('request.too-large', `SAML response exceeds ${maxBytes} bytes`);
  }
}

function decodeBase64Strictly(input: string, maxBytes: number): string {
  const compact = input.replace(/[\r\n\t ]/g, '');
  // Node's decoder skips characters it does not know; a strict alphabet and a canonical re-encoding
  // make sure the bytes we verify are exactly the bytes that were sent.
  if (compact.length === 0 || compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    throw new GatewayError('eid.malformed', 'SAMLResponse is not base64');
  }
  const bytes = Buffer.from(compact, 'base64');
  if (bytes.toString('base64') !== compact) throw new GatewayError('eid.malformed', 'SAMLResponse is not canonical base64');
  if (bytes.length > maxBytes) throw new GatewayError('request.too-large', `SAML response exceeds ${maxBytes} bytes`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new GatewayError('eid.malformed', 'SAML response is not UTF-8', { cause });
  }
}

/**
 * A DTD enables entity expansion (CWE-776, "billion laughs") and external entities (XXE, CWE-611),
 * and SAML's schemas never need one. Checked on the text, before any parser sees it.
 */
function checkNoDoctype(xml: string): void {
  if (/<!\s*(DOCTYPE|ENTITY)/i.test(xml)) {
    throw new GatewayError('eid.doctype-forbidden', 'SAML response contains a document type declaration');
  }
}

function parseXml(xml: string): Document {
  const problems: string[] = [];
  let doc: Document;
  try {
    // Warnings count too: xmldom reports recoverable damage (stray text, unknown entities) as
    // warnings or errors and carries on, and a lenient parse is a parser differential waiting to be
    // exploited against xml-crypto's own parse of the same bytes.
    doc = new DOMParser({
      locator: false,
      onError: (level, message) => {
        problems.push(`${level}: ${message}`);
      },
    }).parseFromString(xml, 'text/xml');
  } catch (cause) {
    throw new GatewayError('eid.malformed', 'SAML response is not well-formed XML', { cause });
  }
  if (problems.length > 0 || doc.documentElement === null) {
    throw new GatewayError('eid.malformed', 'SAML response is not well-formed XML');
  }
  checkNoProcessingInstructions(doc);
  return doc;
}

/**
 * Processing instructions carry no SAML meaning and have been used to smuggle stylesheets
 * (`xml-stylesheet`) into XML-DSig processors; only the XML declaration is allowed.
 */
function checkNoProcessingInstructions(doc: Document): void {
  for (const node of walk(doc)) {
    if (node.nodeType !== Node.PROCESSING_INSTRUCTION_NODE) continue;
    const isDeclaration = node.nodeName === 'xml' && node.parentNode === doc && node.previousSibling === null;
    if (!isDeclaration) throw new GatewayError('eid.malformed', 'SAML response contains a processing instruction');
  }
}

// ---------------------------------------------------------------------------------------------
// Structural checks on the received DOM (refuse only)

function checkRootIsResponse(doc: Document): Element {
  const root = doc.documentElement;
  if (root === null || !isElement(root, NS_PROTOCOL, 'Response')) {
    throw new GatewayError('eid.malformed', 'the document element is not a SAML 2.0 protocol Response');
  }
  // SAML core 3.2.2: Version is required and this profile only knows 2.0.
  if (root.getAttribute('Version') !== '2.0') throw new GatewayError('eid.malformed', 'Response Version is not 2.0');
  return root;
}

/** SAML core 3.2.2.2: anything but a top-level Success means no authentication took place. */
function checkStatusSuccess(response: Element): void {
  const status = onlyChild(response, NS_PROTOCOL, 'Status', 'Response/Status');
  const code = onlyChild(status, NS_PROTOCOL, 'StatusCode', 'Status/StatusCode');
  if (code.getAttribute('Value') !== STATUS_SUCCESS) {
    throw new GatewayError('eid.login-failed', 'the IdP reported that authentication did not succeed');
  }
}

/**
 * Exactly one Assertion anywhere in the document, and it is a direct child of the Response. Extra
 * Assertions (before or after the signed one, or tucked into Extensions or an Assertion's Advice)
 * are the raw material of signature wrapping (Somorovsky et al., "On Breaking SAML", USENIX 2012).
 * EncryptedAssertion is not supported and refused, not skipped.
 */
function checkExactlyOneAssertion(doc: Document, response: Element): Element {
  const all = descendants(doc).filter((el) => el.namespaceURI === NS_ASSERTION);
  if (all.some((el) => el.localName === 'EncryptedAssertion')) {
    throw new GatewayError('eid.wrapped', 'EncryptedAssertion is not supported');
  }
  const assertions = all.filter((el) => el.localName === 'Assertion');
  const [assertion] = assertions;
  if (assertions.length !== 1 || assertion === undefined) {
    throw new GatewayError('eid.wrapped', `expected exactly one Assertion, found ${assertions.length}`);
  }
  if (assertion.parentNode !== response) throw new GatewayError('eid.wrapped', 'the Assertion is not a child of the Response');
  return assertion;
}

/**
 * xml-crypto resolves a Reference URI against any attribute named ID, Id or id, in any namespace.
 * If two elements share a value, which one was signed and which one is read could differ, so every
 * such value must be unique in the document (XML-DSig 1.1 section 4.4.3.3, SAML core 5.4.2).
 */
function checkIdsUnique(doc: Document): void {
  const seen = new Set<string>();
  for (const el of descendants(doc)) {
    for (const attr of Array.from(el.attributes)) {
      if (attr.localName !== 'ID' && attr.localName !== 'Id' && attr.localName !== 'id') continue;
      if (seen.has(attr.value)) throw new GatewayError('eid.wrapped', 'an ID value occurs more than once');
      seen.add(attr.value);
    }
  }
}

/**
 * Comments are outside what exclusive c14n signs, so a comment inside the Assertion is unsigned
 * content. Inside a text value it splits the text node: `ES/ES/123<!---->45` verifies as the
 * signed `ES/ES/12345` while a naive reader takes `ES/ES/123` (CVE-2017-11427, CVE-2017-11428,
 * CVE-2017-11429, CVE-2018-0489). We read only the comment-free signed XML anyway; refusing the
 * input as well keeps such a response out of every log and downstream system.
 */
function checkNoCommentsInAssertion(assertion: Element): void {
  for (const node of walk(assertion)) {
    if (node.nodeType === Node.COMMENT_NODE) {
      throw new GatewayError('eid.malformed', 'the Assertion contains an XML comment');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// XML-DSig

/** STANDARDS.md and the eIDAS SAML Message Format require a signed Response. */
function checkResponseSigned(cfg: VerifierConfig, xml: string, receivedResponse: Element): Element {
  return verifyEnvelopedSignature(cfg, xml, receivedResponse, 'Response');
}

/** STANDARDS.md and the eIDAS SAML Message Format require the Assertion to be signed too. */
function checkAssertionSigned(cfg: VerifierConfig, xml: string, receivedAssertion: Element): Element {
  return verifyEnvelopedSignature(cfg, xml, receivedAssertion, 'Assertion');
}

/**
 * Verifies the enveloped signature of `target` against the pinned certificates and returns the
 * element re-parsed from the XML the signature covers.
 */
function verifyEnvelopedSignature(cfg: VerifierConfig, xml: string, target: Element, what: 'Response' | 'Assertion'): Element {
  const id = requiredId(target);
  const signature = checkSignaturePlacement(target, what);
  const keyType = checkSignatureAlgorithms(signature, id, what);

  for (const cert of cfg.certs) {
    if (cert.keyType !== keyType) continue;
    const signedXml = createVerifier(cert.pem);
    let valid: boolean;
    try {
      signedXml.loadSignature(signature);
      valid = signedXml.checkSignature(xml);
    } catch {
      valid = false;
    }
    if (!valid) continue;

    const references = signedXml.getSignedReferences();
    const [signedPart] = references;
    if (references.length !== 1 || signedPart === undefined) {
      throw new GatewayError('eid.signature-invalid', `${what} signature does not cover exactly one element`);
    }
    const signedRoot = parseXml(signedPart).documentElement;
    const ns = what === 'Response' ? NS_PROTOCOL : NS_ASSERTION;
    if (signedRoot === null || !isElement(signedRoot, ns, what) || signedRoot.getAttribute('ID') !== id) {
      throw new GatewayError('eid.wrapped', `${what} signature covers another element`);
    }
    return signedRoot;
  }
  throw new GatewayError('eid.signature-invalid', `${what} signature does not verify against the pinned IdP certificates`);
}

/**
 * SAML core 5.4.1/5.4.2: the signature is an enveloped signature, a direct child of the element it
 * signs, exactly one of them. A Signature somewhere else signs something else.
 */
function checkSignaturePlacement(target: Element, what: string): Element {
  const signatures = childElements(target).filter((el) => isElement(el, NS_DSIG, 'Signature'));
  const [signature] = signatures;
  if (signature === undefined) throw new GatewayError('eid.unsigned', `the ${what} is not signed`);
  if (signatures.length > 1) throw new GatewayError('eid.signature-invalid', `the ${what} has more than one Signature`);
  return signature;
}

/**
 * Judges the SignedInfo before xml-crypto runs, so a forbidden algorithm gets its own code. xml-crypto
 * is additionally given only the allowed algorithms (`createVerifier`), so the two cannot disagree.
 * Returns the key type the signature algorithm needs.
 */
function checkSignatureAlgorithms(signature: Element, id: string, what: string): 'rsa' | 'ec' {
  // XML-DSig section 4.1: SignedInfo, SignatureValue, KeyInfo?, Object*. SAML does not use Object.
  const parts = childElements(signature);
  if (parts.some((el) => el.namespaceURI !== NS_DSIG || el.localName === 'Object')) {
    throw new GatewayError('eid.signature-invalid', `the ${what} Signature has unexpected content`);
  }
  const [signedInfo] = parts;
  if (signedInfo === undefined || signedInfo.localName !== 'SignedInfo' || parts.filter((el) => el.localName === 'SignedInfo').length !== 1) {
    throw new GatewayError('eid.signature-invalid', `the ${what} Signature does not start with one SignedInfo`);
  }
  const infoParts = childElements(signedInfo);
  if (infoParts.some((el) => el.namespaceURI !== NS_DSIG)) {
    throw new GatewayError('eid.signature-invalid', `the ${what} SignedInfo has unexpected content`);
  }
  const c14n = onlyDsigChild(signedInfo, 'CanonicalizationMethod', what);
  if (c14n.getAttribute('Algorithm') !== XMLDSIG.excC14n || childElements(c14n).some((el) => !isElement(el, NS_EXC_C14N, 'InclusiveNamespaces'))) {
    throw new GatewayError('eid.algorithm-forbidden', `the ${what} signature does not use exclusive canonicalization`);
  }
  const signatureMethod = onlyDsigChild(signedInfo, 'SignatureMethod', what);
  const keyType = SIGNATURE_ALGORITHM_KEY_TYPE.get(signatureMethod.getAttribute('Algorithm') ?? '');
  if (keyType === undefined) throw new GatewayError('eid.algorithm-forbidden', `the ${what} signature algorithm is not allowed`);

  // SAML core 5.4.2: exactly one Reference, whose URI is "#" + the ID of the signed element.
  const reference = onlyDsigChild(signedInfo, 'Reference', what);
  if (reference.getAttribute('URI') !== `#${id}`) {
    throw new GatewayError('eid.wrapped', `the ${what} signature references another element`);
  }
  const transforms = childElements(reference).filter((el) => el.localName === 'Transforms');
  for (const transform of transforms.flatMap(childElements)) {
    if (!ALLOWED_TRANSFORMS.has(transform.getAttribute('Algorithm') ?? '')) {
      throw new GatewayError('eid.algorithm-forbidden', `the ${what} signature uses a transform SAML does not allow`);
    }
  }
  const digest = onlyDsigChild(reference, 'DigestMethod', what);
  if (!ALLOWED_DIGESTS.has(digest.getAttribute('Algorithm') ?? '')) {
    throw new GatewayError('eid.algorithm-forbidden', `the ${what} signature uses a digest weaker than SHA-256`);
  }
  return keyType;
}

/**
 * One xml-crypto verifier per pinned certificate. `getCertFromKeyInfo` returns null, so a
 * certificate in the message's KeyInfo is never used (xml-crypto 4.0-6.0.0 trusted it by default,
 * CVE-2024-32962); only the allowed algorithms are registered.
 */
function createVerifier(certPem: string): SignedXml {
  const signedXml = new SignedXml({ publicCert: certPem, getCertFromKeyInfo: () => null });
  signedXml.SignatureAlgorithms = pickAllowed({ ...signedXml.SignatureAlgorithms, ...ECDSA_SIGNATURE_ALGORITHMS }, SIGNATURE_ALGORITHM_KEY_TYPE);
  signedXml.HashAlgorithms = pickAllowed(signedXml.HashAlgorithms, ALLOWED_DIGESTS);
  signedXml.CanonicalizationAlgorithms = pickAllowed(signedXml.CanonicalizationAlgorithms, ALLOWED_TRANSFORMS);
  return signedXml;
}

function pickAllowed<T>(available: Readonly<Record<string, T>>, allowed: ReadonlySet<string> | ReadonlyMap<string, unknown>): Record<string, T> {
  const picked: Record<string, T> = {};
  for (const name of allowed.keys()) {
    const value = available[name];
    if (value === undefined) throw new Error(`xml-crypto does not provide ${name}`);
    picked[name] = value;
  }
  return picked;
}

/**
 * The two signatures were verified separately; this ties them together: the signed Response
 * contains exactly one Assertion, as a direct child, and it is the one the Assertion signature
 * covers.
 */
function checkSignedAssertionIsInSignedResponse(response: Element, assertion: Element): void {
  const inResponse = descendants(response).filter((el) => isElement(el, NS_ASSERTION, 'Assertion'));
  const [only] = inResponse;
  if (inResponse.length !== 1 || only === undefined || only.parentNode !== response || only.getAttribute('ID') !== assertion.getAttribute('ID')) {
    throw new GatewayError('eid.wrapped', 'the signed Assertion is not the one in the signed Response');
  }
}

// ---------------------------------------------------------------------------------------------
// Checks on the signed XML

/**
 * SAML core 3.2.2 / 2.3.3 and the eIDAS Message Format: both Issuer elements name the IdP, and
 * if a Format is given it is the entity format.
 */
function checkIssuer(response: Element, assertion: Element, idpEntityId: string): void {
  for (const [parent, what] of [
    [response, 'Response'],
    [assertion, 'Assertion'],
  ] as const) {
    const issuer = optionalChild(parent, NS_ASSERTION, 'Issuer', `${what}/Issuer`);
    if (issuer === undefined) throw new GatewayError('eid.unknown-issuer', `the ${what} has no Issuer`);
    const format = issuer.getAttribute('Format');
    if (format !== null && format !== NAMEID_FORMAT_ENTITY) throw new GatewayError('eid.unknown-issuer', `the ${what} Issuer is not an entity id`);
    if (textOf(issuer, `${what}/Issuer`) !== idpEntityId) throw new GatewayError('eid.unknown-issuer', `the ${what} Issuer is not the configured IdP`);
  }
}

/** SAML bindings 3.5.5.2: a signed Response sent over HTTP-POST MUST carry Destination, and it must be us. */
function checkDestination(response: Element, acsUrl: string): void {
  if (response.getAttribute('Destination') !== acsUrl) {
    throw new GatewayError('eid.wrong-recipient', 'the Response Destination is not this gateway');
  }
}

/**
 * SAML profiles 4.1.4.2/4.1.4.3: when we sent an AuthnRequest, the Response and the bearer
 * SubjectConfirmationData answer it by ID, which ties the login to the browser session that started
 * it. Without an expected ID (IdP-initiated) any value is accepted.
 */
function checkInResponseTo(response: Element, assertion: Element, expected: string | undefined): void {
  if (expected === undefined) return;
  const confirmationData = subjectConfirmationData(assertion);
  if (response.getAttribute('InResponseTo') !== expected || confirmationData.getAttribute('InResponseTo') !== expected) {
    throw new GatewayError('eid.wrong-request', 'the Response does not answer the expected AuthnRequest');
  }
}

/**
 * SAML profiles 4.1.4.2 (Web Browser SSO, bearer): one bearer SubjectConfirmation whose data names
 * our ACS as Recipient and has a NotOnOrAfter, and no NotBefore. Returns NotOnOrAfter.
 */
function checkSubjectConfirmation(assertion: Element, acsUrl: string, now: number, skewMs: number): Date {
  const subject = onlyChild(assertion, NS_ASSERTION, 'Subject', 'Assertion/Subject');
  const confirmations = childElements(subject).filter((el) => isElement(el, NS_ASSERTION, 'SubjectConfirmation'));
  const [confirmation] = confirmations;
  if (confirmations.length !== 1 || confirmation === undefined) {
    throw new GatewayError('eid.malformed', 'expected exactly one SubjectConfirmation');
  }
  if (confirmation.getAttribute('Method') !== CM_BEARER) throw new GatewayError('eid.malformed', 'the SubjectConfirmation method is not bearer');
  const data = subjectConfirmationData(assertion);
  if (data.getAttribute('Recipient') !== acsUrl) {
    throw new GatewayError('eid.wrong-recipient', 'the SubjectConfirmationData Recipient is not this gateway');
  }
  if (data.hasAttribute('NotBefore')) throw new GatewayError('eid.malformed', 'bearer SubjectConfirmationData must not carry NotBefore');
  const notOnOrAfter = instant(data.getAttribute('NotOnOrAfter'), 'SubjectConfirmationData@NotOnOrAfter');
  if (now >= notOnOrAfter.getTime() + skewMs) throw new GatewayError('eid.expired', 'the SubjectConfirmationData has expired');
  return notOnOrAfter;
}

function subjectConfirmationData(assertion: Element): Element {
  const subject = onlyChild(assertion, NS_ASSERTION, 'Subject', 'Assertion/Subject');
  const confirmation = onlyChild(subject, NS_ASSERTION, 'SubjectConfirmation', 'Subject/SubjectConfirmation');
  return onlyChild(confirmation, NS_ASSERTION, 'SubjectConfirmationData', 'SubjectConfirmation/SubjectConfirmationData');
}

/**
 * SAML core 2.5.1: the validity window with skew, and every AudienceRestriction must name us
 * (2.5.1.4). A condition we do not understand makes the assertion Indeterminate (2.5.1.1), which we
 * treat as invalid. Returns NotOnOrAfter.
 */
function checkConditions(assertion: Element, spEntityId: string, now: number, skewMs: number): Date {
  const conditions = onlyChild(assertion, NS_ASSERTION, 'Conditions', 'Assertion/Conditions');
  const notBefore = conditions.getAttribute('NotBefore');
  if (notBefore !== null && now + skewMs < instant(notBefore, 'Conditions@NotBefore').getTime()) {
    throw new GatewayError('eid.expired', 'the assertion is not yet valid');
  }
  const notOnOrAfter = instant(conditions.getAttribute('NotOnOrAfter'), 'Conditions@NotOnOrAfter');
  if (now >= notOnOrAfter.getTime() + skewMs) throw new GatewayError('eid.expired', 'the assertion has expired');

  const restrictions: Element[] = [];
  for (const condition of childElements(conditions)) {
    if (isElement(condition, NS_ASSERTION, 'AudienceRestriction')) restrictions.push(condition);
    else if (!isElement(condition, NS_ASSERTION, 'OneTimeUse') && !isElement(condition, NS_ASSERTION, 'ProxyRestriction')) {
      throw new GatewayError('eid.malformed', 'the assertion carries a condition this gateway does not understand');
    }
  }
  if (restrictions.length === 0) throw new GatewayError('eid.wrong-audience', 'the assertion has no AudienceRestriction');
  for (const restriction of restrictions) {
    const audiences = childElements(restriction)
      .filter((el) => isElement(el, NS_ASSERTION, 'Audience'))
      .map((el) => textOf(el, 'Audience'));
    if (!audiences.includes(spEntityId)) throw new GatewayError('eid.wrong-audience', 'the assertion is addressed to another party');
  }
  return notOnOrAfter;
}

/**
 * The Subject must carry a plain NameID (no EncryptedID/BaseID) whose content is one text node.
 * The signed XML has no comments left, so this is the belt to `checkNoCommentsInAssertion`'s braces.
 */
function checkNameIdText(assertion: Element): void {
  const subject = onlyChild(assertion, NS_ASSERTION, 'Subject', 'Assertion/Subject');
  const nameId = onlyChild(subject, NS_ASSERTION, 'NameID', 'Subject/NameID');
  if (textOf(nameId, 'NameID').length === 0) throw new GatewayError('eid.malformed', 'the NameID is empty');
}

/**
 * eIDAS SAML Message Format v1.2: the LoA is the AuthnContextClassRef, one of the three
 * eIDAS URIs; health data needs at least substantial (STANDARDS.md). Also reads AuthnInstant
 * (SAML core 2.7.2), which may not lie in the future.
 */
function checkLoa(assertion: Element, now: number, skewMs: number): { loa: LevelOfAssurance; authTime: Date } {
  const statement = onlyChild(assertion, NS_ASSERTION, 'AuthnStatement', 'Assertion/AuthnStatement');
  const authTime = instant(statement.getAttribute('AuthnInstant'), 'AuthnStatement@AuthnInstant');
  if (authTime.getTime() > now + skewMs) throw new GatewayError('eid.expired', 'AuthnInstant lies in the future');
  const context = onlyChild(statement, NS_ASSERTION, 'AuthnContext', 'AuthnStatement/AuthnContext');
  const classRef = textOf(onlyChild(context, NS_ASSERTION, 'AuthnContextClassRef', 'AuthnContext/AuthnContextClassRef'), 'AuthnContextClassRef');
  const loa = loaFromUri(classRef);
  if (loa === undefined) throw new GatewayError('eid.insufficient-loa', 'the AuthnContextClassRef is not an eIDAS level of assurance');
  if (!loaAtLeast(loa, 'substantial')) throw new GatewayError('eid.insufficient-loa', `level of assurance ${loa} is below substantial`);
  return { loa, authTime };
}

function loaFromUri(uri: string): LevelOfAssurance | undefined {
  for (const [loa, loaUri] of Object.entries(LOA_URIS)) {
    if (loaUri === uri && (loa === 'low' || loa === 'substantial' || loa === 'high')) return loa;
  }
  return undefined;
}

interface EidasAttributes {
  personId: string;
  familyName: string | undefined;
  givenName: string | undefined;
  birthDate: string | undefined;
}

/**
 * eIDAS SAML Attribute Profile v1.2: attributes are named by URI with the `uri` NameFormat. An eIDAS
 * attribute given twice, or with another NameFormat, is ambiguous and refused. PersonIdentifier is
 * required (it is the key for the professional registry lookup); the other values are validated
 * when present.
 */
function readAttributes(assertion: Element): EidasAttributes {
  const statements = childElements(assertion).filter((el) => isElement(el, NS_ASSERTION, 'AttributeStatement'));
  const byName = new Map<string, Element>();
  const eidasNames: ReadonlySet<string> = new Set(Object.values(EIDAS_NATURAL_PERSON));
  for (const child of statements.flatMap(childElements)) {
    if (!isElement(child, NS_ASSERTION, 'Attribute')) {
      throw new GatewayError('eid.malformed', 'the AttributeStatement holds something other than plain Attributes');
    }
    const name = child.getAttribute('Name') ?? '';
    if (!eidasNames.has(name)) continue;
    if (child.getAttribute('NameFormat') !== ATTRNAME_FORMAT_URI) throw new GatewayError('eid.malformed', `attribute ${name} does not use the uri NameFormat`);
    if (byName.has(name)) throw new GatewayError('eid.malformed', `attribute ${name} occurs more than once`);
    byName.set(name, child);
  }

  const personAttribute = byName.get(EIDAS_NATURAL_PERSON.personIdentifier);
  if (personAttribute === undefined) throw new GatewayError('eid.missing-attribute', 'PersonIdentifier');
  const personId = singleValue(personAttribute, 'PersonIdentifier');
  if (!PERSON_IDENTIFIER.test(personId)) throw new GatewayError('eid.malformed', 'PersonIdentifier does not have the eIDAS form CC/CC/identifier');

  const dobAttribute = byName.get(EIDAS_NATURAL_PERSON.dateOfBirth);
  const birthDate = dobAttribute === undefined ? undefined : singleValue(dobAttribute, 'DateOfBirth');
  if (birthDate !== undefined && !isCalendarDate(birthDate)) throw new GatewayError('eid.malformed', 'DateOfBirth is not a YYYY-MM-DD date');

  const familyAttribute = byName.get(EIDAS_NATURAL_PERSON.familyName);
  const givenAttribute = byName.get(EIDAS_NATURAL_PERSON.givenName);
  return {
    personId,
    familyName: familyAttribute === undefined ? undefined : nameValue(familyAttribute, 'CurrentFamilyName'),
    givenName: givenAttribute === undefined ? undefined : nameValue(givenAttribute, 'CurrentGivenName'),
    birthDate,
  };
}

function singleValue(attribute: Element, what: string): string {
  const values = attributeValues(attribute);
  const [value] = values;
  if (values.length !== 1 || value === undefined) throw new GatewayError('eid.malformed', `${what} must have exactly one value`);
  return textOf(value, what);
}

/**
 * eIDAS SAML Attribute Profile: a name in a non-Latin script comes with a transliteration; the
 * original carries `LatinScript="false"`. We keep the Latin form, which the registries use.
 */
function nameValue(attribute: Element, what: string): string {
  const latin = attributeValues(attribute).filter((el) => el.getAttribute('LatinScript') !== 'false');
  const [value] = latin;
  if (latin.length !== 1 || value === undefined) throw new GatewayError('eid.malformed', `${what} must have exactly one Latin-script value`);
  const text = textOf(value, what).trim();
  if (text.length === 0) throw new GatewayError('eid.malformed', `${what} is empty`);
  return text;
}

function attributeValues(attribute: Element): Element[] {
  const children = childElements(attribute);
  if (children.some((el) => !isElement(el, NS_ASSERTION, 'AttributeValue'))) {
    throw new GatewayError('eid.malformed', 'an Attribute holds something other than AttributeValues');
  }
  return children;
}

function isCalendarDate(value: string): boolean {
  const match = DATE_OF_BIRTH.exec(value);
  if (match === null) return false;
  const [, y, m, d] = match.map(Number);
  if (y === undefined || m === undefined || d === undefined) return false;
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

/**
 * SAML profiles 4.1.4.5: the SP must refuse a bearer assertion it has already accepted until it
 * would fail the time checks anyway, hence the entry lives until expiry plus skew.
 */
async function checkNotReplayed(cfg: VerifierConfig, assertionId: string, expiresAt: Date): Promise<void> {
  const keepUntil = new Date(expiresAt.getTime() + cfg.skewMs);
  if (!(await cfg.replay.remember(`saml:${cfg.idpEntityId}`, assertionId, keepUntil))) {
    throw new GatewayError('eid.replayed', 'this assertion was already used');
  }
}

// ---------------------------------------------------------------------------------------------
// DOM helpers

function isElement(node: Node, ns: string, localName: string): node is Element {
  return node instanceof Element && node.namespaceURI === ns && node.localName === localName;
}

function childElements(parent: Node): Element[] {
  return Array.from(parent.childNodes).filter((node): node is Element => node instanceof Element);
}

function* walk(root: Node): Generator<Node> {
  const stack: Node[] = [root];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    yield node;
    for (let i = node.childNodes.length - 1; i >= 0; i -= 1) {
      const child = node.childNodes.item(i);
      if (child !== null) stack.push(child);
    }
  }
}

function descendants(root: Node): Element[] {
  return Array.from(walk(root)).filter((node): node is Element => node instanceof Element && node !== root);
}

function optionalChild(parent: Element, ns: string, localName: string, what: string): Element | undefined {
  const matches = childElements(parent).filter((el) => isElement(el, ns, localName));
  if (matches.length > 1) throw new GatewayError('eid.malformed', `${what} occurs more than once`);
  return matches[0];
}

function onlyChild(parent: Element, ns: string, localName: string, what: string): Element {
  const child = optionalChild(parent, ns, localName, what);
  if (child === undefined) throw new GatewayError('eid.malformed', `${what} is missing`);
  return child;
}

function onlyDsigChild(parent: Element, localName: string, what: string): Element {
  const matches = childElements(parent).filter((el) => isElement(el, NS_DSIG, localName));
  const [only] = matches;
  if (matches.length !== 1 || only === undefined) throw new GatewayError('eid.signature-invalid', `the ${what} signature needs exactly one ${localName}`);
  return only;
}

/**
 * The content of a simple-text element: no child elements, and one text node at most (CDATA is
 * already text after c14n). Anything else means the value could be read more than one way.
 */
function textOf(el: Element, what: string): string {
  const nodes = Array.from(el.childNodes);
  const [only] = nodes;
  if (only === undefined) return '';
  if (nodes.length !== 1 || only.nodeType !== Node.TEXT_NODE) throw new GatewayError('eid.malformed', `${what} is not a single text value`);
  const text = only.nodeValue ?? '';
  if (text.length > MAX_TEXT_CHARS) throw new GatewayError('eid.malformed', `${what} is too long`);
  return text;
}

function requiredId(el: Element): string {
  const id = el.getAttribute('ID');
  if (id === null || !XML_ID.test(id)) throw new GatewayError('eid.malformed', `${el.localName ?? 'element'} has no valid ID`);
  return id;
}

function instant(value: string | null, what: string): Date {
  const match = value === null ? null : DATE_TIME.exec(value);
  if (match === null) throw new GatewayError('eid.malformed', `${what} is not a UTC xs:dateTime`);
  const [, y, mo, d, h, mi, s] = match.slice(0, 7).map(Number);
  const ms = Number((match[7] ?? '0').padEnd(3, '0').slice(0, 3));
  if (y === undefined || mo === undefined || d === undefined || h === undefined || mi === undefined || s === undefined) {
    throw new GatewayError('eid.malformed', `${what} is not a UTC xs:dateTime`);
  }
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s, ms));
  if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d || date.getUTCHours() !== h || date.getUTCMinutes() !== mi) {
    throw new GatewayError('eid.malformed', `${what} is not a valid date`);
  }
  return date;
}
