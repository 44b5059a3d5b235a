/**
 * A real eIDAS SAML 2.0 identity provider for tests and the sandbox: it builds `samlp:Response`s
 * the way an eIDAS node does (eIDAS SAML Message Format v1.2, Attribute Profile v1.2) and signs them
 * with xml-crypto (enveloped signatures, exclusive c14n, RSA-SHA256 by default, ECDSA optional), so
 * the gateway's verifier (src/identity/saml.ts) is tested against real signatures, never mocks.
 *
 * Every field has a knob (`ResponseOptions`) so a test can produce exactly one wrong thing; the
 * `attacks` functions rework a signed response the way an attacker would (signature wrapping,
 * comment truncation, tampering) by DOM surgery rather than string replacement; only the DTD is
 * spliced in as text, because a DOM serializer would not write one back.
 *
 * Test keys only: the key pair is generated in memory at start and never written anywhere.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { DOMParser, Element, XMLSerializer } from '@xmldom/xmldom';
import type { Document } from '@xmldom/xmldom';
import { SignedXml } from 'xml-crypto';
import { LOA_URIS } from '../src/identity/eid.js';
import type { LevelOfAssurance } from '../src/identity/eid.js';
import { ECDSA_SIGNATURE_ALGORITHMS, EIDAS_NATURAL_PERSON, XMLDSIG } from '../src/identity/saml.js';
import { loadX509 } from '../src/trust/pki.js';

export const SAML_NS = {
  protocol: 'urn:oasis:names:tc:SAML:2.0:protocol',
  assertion: 'urn:oasis:names:tc:SAML:2.0:assertion',
  dsig: 'http://www.w3.org/2000/09/xmldsig#',
} as const;

export const STATUS = {
  success: 'urn:oasis:names:tc:SAML:2.0:status:Success',
  responder: 'urn:oasis:names:tc:SAML:2.0:status:Responder',
  authnFailed: 'urn:oasis:names:tc:SAML:2.0:status:AuthnFailed',
} as const;

const NAMEID_FORMAT_PERSISTENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent';
const NAMEID_FORMAT_ENTITY = 'urn:oasis:names:tc:SAML:2.0:nameid-format:entity';
const ATTRNAME_FORMAT_URI = 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri';
const CM_BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';
const NS_XSI = 'http://www.w3.org/2001/XMLSchema-instance';
const NS_EIDAS_NATURAL = 'http://eidas.europa.eu/attributes/naturalperson';
const DEFAULT_LIFETIME_SECONDS = 300;

// ---------------------------------------------------------------------------------------------
// Keys

export interface SamlSigningKey {
  readonly keyType: 'rsa' | 'ec';
  /** Self-signed X.509 certificate: what the gateway pins in config. */
  readonly certPem: string;
  /** PKCS#8 PEM. */
  readonly privateKeyPem: string;
}

export interface SigningKeyOptions {
  keyType?: 'rsa' | 'ec';
  commonName?: string;
  validDays?: number;
  now?: Date;
}

/** A fresh IdP signing key with a self-signed certificate (RSA 2048 / SHA-256, or ECDSA P-256). */
export async function createSigningKey(opts: SigningKeyOptions = {}): Promise<SamlSigningKey> {
  const x509 = await loadX509();
  const keyType = opts.keyType ?? 'rsa';
  const algorithm =
    keyType === 'rsa'
      ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
      : { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const now = opts.now ?? new Date();
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: `CN=${opts.commonName ?? 'Test eIDAS IdP'}, O=ncpeh sandbox`,
      notBefore: new Date(now.getTime() - 5 * 60_000),
      notAfter: new Date(now.getTime() + (opts.validDays ?? 30) * 86_400_000),
      keys,
      signingAlgorithm: algorithm,
      extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
    },
    webcrypto,
  );
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return {
    keyType,
    certPem: cert.toString('pem') + '\n',
    privateKeyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n',
  };
}

// ---------------------------------------------------------------------------------------------
// Responses

/** eIDAS natural-person attributes; `null` leaves an attribute out, `undefined` uses the default. */
export interface EidasAttributeValues {
  personIdentifier?: string | null;
  familyName?: string | null;
  givenName?: string | null;
  dateOfBirth?: string | null;
}

export interface ResponseOptions {
  /** Our SP entity id: the Audience. */
  audience: string;
  /** The SP's ACS URL: default for both Destination and Recipient. */
  acsUrl: string;
  /** Response@Destination; `null` omits it. */
  destination?: string | null;
  /** SubjectConfirmationData@Recipient. */
  recipient?: string;
  /** Response@InResponseTo and, unless `subjectInResponseTo` says otherwise, the confirmation's. */
  inResponseTo?: string;
  subjectInResponseTo?: string;
  /** An eIDAS level, or any URI to put in AuthnContextClassRef. */
  loa?: LevelOfAssurance | { uri: string };
  nameId?: string;
  attributes?: EidasAttributeValues;
  /** Both Issuers; `assertionIssuer` overrides the Assertion's alone. */
  issuer?: string;
  assertionIssuer?: string;
  responseId?: string;
  assertionId?: string;
  /** IssueInstant and the base for the validity window; defaults to the IdP clock. */
  issueInstant?: Date;
  notBefore?: Date;
  /** Conditions@NotOnOrAfter. */
  notOnOrAfter?: Date;
  /** SubjectConfirmationData@NotOnOrAfter; defaults to `notOnOrAfter`. */
  subjectNotOnOrAfter?: Date;
  authnInstant?: Date;
  statusCode?: string;
  signResponse?: boolean;
  signAssertion?: boolean;
  signatureAlgorithm?: string;
  digestAlgorithm?: string;
  /** Publish the signing certificate in KeyInfo (default true), as most IdPs do. */
  includeKeyInfo?: boolean;
}

export interface SamlIdpOptions {
  entityId: string;
  key: SamlSigningKey;
  now?: () => Date;
}

export interface SamlIdp {
  readonly entityId: string;
  readonly key: SamlSigningKey;
  /** The signed Response document. */
  responseXml(opts: ResponseOptions): string;
  /** The signed Response, base64 as the HTTP-POST binding carries it (SAML bindings 3.5.4). */
  response(opts: ResponseOptions): string;
}

export function createSamlIdp(idpOptions: SamlIdpOptions): SamlIdp {
  const now = idpOptions.now ?? (() => new Date());
  const responseXml = (opts: ResponseOptions): string => {
    const issueInstant = opts.issueInstant ?? now();
    const notOnOrAfter = opts.notOnOrAfter ?? new Date(issueInstant.getTime() + DEFAULT_LIFETIME_SECONDS * 1000);
    const assertionId = opts.assertionId ?? newId();
    const unsigned = buildResponse(idpOptions.entityId, opts, {
      responseId: opts.responseId ?? newId(),
      assertionId,
      issueInstant,
      notBefore: opts.notBefore ?? issueInstant,
      notOnOrAfter,
      subjectNotOnOrAfter: opts.subjectNotOnOrAfter ?? notOnOrAfter,
      authnInstant: opts.authnInstant ?? issueInstant,
    });
    const signing: SigningOptions = {
      key: idpOptions.key,
      signatureAlgorithm: opts.signatureAlgorithm ?? (idpOptions.key.keyType === 'rsa' ? XMLDSIG.rsaSha256 : XMLDSIG.ecdsaSha256),
      digestAlgorithm: opts.digestAlgorithm ?? XMLDSIG.sha256,
      includeKeyInfo: opts.includeKeyInfo ?? true,
    };
    // The Assertion first: the Response signature then covers the Assertion with its signature.
    const assertionSigned = opts.signAssertion === false ? unsigned : signEnveloped(unsigned, 'Assertion', signing);
    return opts.signResponse === false ? assertionSigned : signEnveloped(assertionSigned, 'Response', signing);
  };
  return {
    entityId: idpOptions.entityId,
    key: idpOptions.key,
    responseXml,
    response: (opts) => toBase64(responseXml(opts)),
  };
}

interface ResolvedTimes {
  responseId: string;
  assertionId: string;
  issueInstant: Date;
  notBefore: Date;
  notOnOrAfter: Date;
  subjectNotOnOrAfter: Date;
  authnInstant: Date;
}

function buildResponse(entityId: string, opts: ResponseOptions, t: ResolvedTimes): string {
  const issuer = opts.issuer ?? entityId;
  const assertionIssuer = opts.assertionIssuer ?? issuer;
  const destination = opts.destination === undefined ? opts.acsUrl : opts.destination;
  const subjectInResponseTo = opts.subjectInResponseTo ?? opts.inResponseTo;
  const loa = opts.loa ?? 'substantial';
  const loaUri = typeof loa === 'string' ? LOA_URIS[loa] : loa.uri;
  const attrs = opts.attributes ?? {};
  const personIdentifier = pick(attrs.personIdentifier, 'ES/DK/12345678Z');

  const attributeXml = [
    attribute('PersonIdentifier', EIDAS_NATURAL_PERSON.personIdentifier, 'PersonIdentifierType', personIdentifier),
    attribute('FamilyName', EIDAS_NATURAL_PERSON.familyName, 'CurrentFamilyNameType', pick(attrs.familyName, 'García López')),
    attribute('FirstName', EIDAS_NATURAL_PERSON.givenName, 'CurrentGivenNameType', pick(attrs.givenName, 'Lucía')),
    attribute('DateOfBirth', EIDAS_NATURAL_PERSON.dateOfBirth, 'DateOfBirthType', pick(attrs.dateOfBirth, '1980-04-23')),
  ].join('');

  return (
    `<samlp:Response xmlns:samlp="${SAML_NS.protocol}" xmlns:saml="${SAML_NS.assertion}"` +
    ` ID="${esc(t.responseId)}" Version="2.0" IssueInstant="${instant(t.issueInstant)}"` +
    (destination === null ? '' : ` Destination="${esc(destination)}"`) +
    (opts.inResponseTo === undefined ? '' : ` InResponseTo="${esc(opts.inResponseTo)}"`) +
    ` Consent="urn:oasis:names:tc:SAML:2.0:consent:obtained">` +
    `<saml:Issuer Format="${NAMEID_FORMAT_ENTITY}">${esc(issuer)}</saml:Issuer>` +
    `<samlp:Status><samlp:StatusCode Value="${esc(opts.statusCode ?? STATUS.success)}"/></samlp:Status>` +
    `<saml:Assertion ID="${esc(t.assertionId)}" Version="2.0" IssueInstant="${instant(t.issueInstant)}">` +
    `<saml:Issuer Format="${NAMEID_FORMAT_ENTITY}">${esc(assertionIssuer)}</saml:Issuer>` +
    `<saml:Subject>` +
    `<saml:NameID Format="${NAMEID_FORMAT_PERSISTENT}" NameQualifier="${esc(entityId)}">${esc(opts.nameId ?? personIdentifier ?? 'ES/DK/anonymous')}</saml:NameID>` +
    `<saml:SubjectConfirmation Method="${CM_BEARER}"><saml:SubjectConfirmationData` +
    (subjectInResponseTo === undefined ? '' : ` InResponseTo="${esc(subjectInResponseTo)}"`) +
    ` NotOnOrAfter="${instant(t.subjectNotOnOrAfter)}" Recipient="${esc(opts.recipient ?? opts.acsUrl)}"/>` +
    `</saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${instant(t.notBefore)}" NotOnOrAfter="${instant(t.notOnOrAfter)}">` +
    `<saml:AudienceRestriction><saml:Audience>${esc(opts.audience)}</saml:Audience></saml:AudienceRestriction>` +
    `</saml:Conditions>` +
    `<saml:AuthnStatement AuthnInstant="${instant(t.authnInstant)}">` +
    `<saml:AuthnContext><saml:AuthnContextClassRef>${esc(loaUri)}</saml:AuthnContextClassRef></saml:AuthnContext>` +
    `</saml:AuthnStatement>` +
    `<saml:AttributeStatement>${attributeXml}</saml:AttributeStatement>` +
    `</saml:Assertion></samlp:Response>`
  );
}

/** `null` = leave out, `undefined` = default. */
function pick(value: string | null | undefined, fallback: string): string | undefined {
  if (value === null) return undefined;
  return value ?? fallback;
}

/** eIDAS Attribute Profile: URI names, `uri` NameFormat, values typed with the eIDAS schema types. */
function attribute(friendlyName: string, name: string, type: string, value: string | undefined): string {
  if (value === undefined) return '';
  return (
    `<saml:Attribute FriendlyName="${friendlyName}" Name="${name}" NameFormat="${ATTRNAME_FORMAT_URI}">` +
    `<saml:AttributeValue xmlns:xsi="${NS_XSI}" xmlns:eidas-natural="${NS_EIDAS_NATURAL}" xsi:type="eidas-natural:${type}">${esc(value)}</saml:AttributeValue>` +
    `</saml:Attribute>`
  );
}

interface SigningOptions {
  key: SamlSigningKey;
  signatureAlgorithm: string;
  digestAlgorithm: string;
  includeKeyInfo: boolean;
}

/**
 * SAML core 5.4: an enveloped signature over the element, one Reference to its ID, the
 * enveloped-signature and exclusive-c14n transforms, placed right after the element's Issuer as
 * the schema orders it.
 */
export function signEnveloped(xml: string, element: 'Response' | 'Assertion', opts: SigningOptions): string {
  const ns = element === 'Response' ? SAML_NS.protocol : SAML_NS.assertion;
  const target = `//*[local-name(.)='${element}' and namespace-uri(.)='${ns}']`;
  const signedXml = new SignedXml({
    privateKey: opts.key.privateKeyPem,
    signatureAlgorithm: opts.signatureAlgorithm,
    canonicalizationAlgorithm: XMLDSIG.excC14n,
    ...(opts.includeKeyInfo ? { publicCert: opts.key.certPem } : {}),
  });
  signedXml.SignatureAlgorithms = { ...signedXml.SignatureAlgorithms, ...ECDSA_SIGNATURE_ALGORITHMS };
  signedXml.addReference({
    xpath: target,
    transforms: [XMLDSIG.envelopedSignature, XMLDSIG.excC14n],
    digestAlgorithm: opts.digestAlgorithm,
  });
  signedXml.computeSignature(xml, {
    prefix: 'ds',
    location: { reference: `${target}/*[local-name(.)='Issuer']`, action: 'after' },
  });
  return signedXml.getSignedXml();
}

export function toBase64(xml: string): string {
  return Buffer.from(xml, 'utf8').toString('base64');
}

export function fromBase64(b64: string): string {
  return Buffer.from(b64, 'base64').toString('utf8');
}

/** SAML core 1.3.4: IDs are NCNames, unguessable; `_` + 160 random bits. */
function newId(): string {
  return `_${randomBytes(20).toString('hex')}`;
}

/** SAML core 1.3.3: UTC, no fractional digits beyond milliseconds. */
function instant(date: Date): string {
  return date.toISOString();
}

function esc(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

// ---------------------------------------------------------------------------------------------
// Attacks: what an attacker holding one genuine signed response can do with it

function parse(xml: string): Document {
  return new DOMParser().parseFromString(xml, 'text/xml');
}

function serialize(doc: Document): string {
  return new XMLSerializer().serializeToString(doc);
}

function first(doc: Document | Element, ns: string, localName: string): Element {
  const el = doc.getElementsByTagNameNS(ns, localName).item(0);
  if (el === null) throw new Error(`no ${localName} in the document`);
  return el;
}

function directChild(parent: Element, ns: string, localName: string): Element | undefined {
  return Array.from(parent.childNodes).find(
    (node): node is Element => node instanceof Element && node.namespaceURI === ns && node.localName === localName,
  );
}

/**
 * An unsigned copy of the response's Assertion with a new ID and another PersonIdentifier and
 * NameID: what the attacker wants the gateway to read.
 */
function evilAssertion(doc: Document, personIdentifier: string): Element {
  const original = first(doc, SAML_NS.assertion, 'Assertion');
  const copy = original.cloneNode(true);
  if (!(copy instanceof Element)) throw new Error('clone is not an element');
  const signature = directChild(copy, SAML_NS.dsig, 'Signature');
  if (signature !== undefined) copy.removeChild(signature);
  copy.setAttribute('ID', newId());
  first(copy, SAML_NS.assertion, 'NameID').textContent = personIdentifier;
  for (const attr of Array.from(copy.getElementsByTagNameNS(SAML_NS.assertion, 'Attribute'))) {
    if (attr.getAttribute('Name') === EIDAS_NATURAL_PERSON.personIdentifier) {
      first(attr, SAML_NS.assertion, 'AttributeValue').textContent = personIdentifier;
    }
  }
  return copy;
}

export const attacks = {
  /** XSW: an unsigned evil Assertion inserted before the signed one. */
  extraAssertionBefore(xml: string, personIdentifier = 'ES/DK/VICTIM'): string {
    const doc = parse(xml);
    const signed = first(doc, SAML_NS.assertion, 'Assertion');
    signed.parentNode?.insertBefore(evilAssertion(doc, personIdentifier), signed);
    return serialize(doc);
  },

  /**
   * XSW: the signed Assertion moves into `samlp:Extensions` (SAML core 3.2.1) and an evil one takes
   * its place, so a verifier that finds the signed element by ID and then reads "the" Assertion by
   * position reads the evil one.
   */
  signedAssertionIntoExtensions(xml: string, personIdentifier = 'ES/DK/VICTIM'): string {
    const doc = parse(xml);
    const signed = first(doc, SAML_NS.assertion, 'Assertion');
    const response = first(doc, SAML_NS.protocol, 'Response');
    const evil = evilAssertion(doc, personIdentifier);
    response.replaceChild(evil, signed);
    const extensions = doc.createElementNS(SAML_NS.protocol, 'samlp:Extensions');
    extensions.appendChild(signed);
    response.insertBefore(extensions, first(doc, SAML_NS.protocol, 'Status'));
    return serialize(doc);
  },

  /** XSW: the evil Assertion replaces the signed one and carries it inside its own Advice. */
  signedAssertionIntoAdvice(xml: string, personIdentifier = 'ES/DK/VICTIM'): string {
    const doc = parse(xml);
    const signed = first(doc, SAML_NS.assertion, 'Assertion');
    const evil = evilAssertion(doc, personIdentifier);
    signed.parentNode?.replaceChild(evil, signed);
    const advice = doc.createElementNS(SAML_NS.assertion, 'saml:Advice');
    advice.appendChild(signed);
    evil.insertBefore(advice, first(evil, SAML_NS.assertion, 'AttributeStatement'));
    return serialize(doc);
  },

  /**
   * Moves the Assertion's signature up to become the Response's, so the Response looks signed by a
   * valid IdP signature that covers something else (SAML core 5.4.2 demands the Reference name the
   * signed element itself). Use on a response built with `signResponse: false`.
   */
  assertionSignatureOnResponse(xml: string): string {
    const doc = parse(xml);
    const response = first(doc, SAML_NS.protocol, 'Response');
    const assertion = first(doc, SAML_NS.assertion, 'Assertion');
    const signature = directChild(assertion, SAML_NS.dsig, 'Signature');
    if (signature === undefined) throw new Error('the Assertion is not signed');
    assertion.removeChild(signature);
    response.insertBefore(signature, first(doc, SAML_NS.protocol, 'Status'));
    return serialize(doc);
  },

  /** A second element carrying the signed Assertion's ID, so "the element with that ID" is ambiguous. */
  duplicateAssertionId(xml: string): string {
    const doc = parse(xml);
    const signed = first(doc, SAML_NS.assertion, 'Assertion');
    const response = first(doc, SAML_NS.protocol, 'Response');
    const extensions = doc.createElementNS(SAML_NS.protocol, 'samlp:Extensions');
    const decoy = doc.createElementNS('urn:example:attacker', 'evil:Decoy');
    decoy.setAttribute('ID', signed.getAttribute('ID') ?? '');
    extensions.appendChild(decoy);
    response.insertBefore(extensions, first(doc, SAML_NS.protocol, 'Status'));
    return serialize(doc);
  },

  /**
   * Comment truncation (CVE-2017-11427 family): splits the NameID and the PersonIdentifier value
   * after `at` characters with an empty comment. Exclusive c14n drops comments, so every signature
   * still verifies.
   */
  commentInNameId(xml: string, at: number): string {
    const doc = parse(xml);
    const nameId = first(doc, SAML_NS.assertion, 'NameID');
    const text = nameId.textContent ?? '';
    while (nameId.firstChild !== null) nameId.removeChild(nameId.firstChild);
    nameId.appendChild(doc.createTextNode(text.slice(0, at)));
    nameId.appendChild(doc.createComment(''));
    nameId.appendChild(doc.createTextNode(text.slice(at)));
    return serialize(doc);
  },

  /** Changes an eIDAS attribute's value after signing. */
  tamperAttribute(xml: string, name: string, value: string): string {
    const doc = parse(xml);
    const attr = Array.from(doc.getElementsByTagNameNS(SAML_NS.assertion, 'Attribute')).find((el) => el.getAttribute('Name') === name);
    if (attr === undefined) throw new Error(`no attribute ${name}`);
    first(attr, SAML_NS.assertion, 'AttributeValue').textContent = value;
    return serialize(doc);
  },

  /** XXE: an external entity pointing at a local file, referenced from the NameID. */
  withDoctype(xml: string): string {
    const body = xml.replace(/^<\?xml[^>]*\?>/, '');
    const withEntity = body.replace(/(<saml:NameID[^>]*>)/, '$1&xxe;');
    return `<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE samlp:Response [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>${withEntity}`;
  },
};
