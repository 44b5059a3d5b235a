/**
 * The part of oidc-provider v9's API that test/helpers/oidc-op.ts uses. The package ships no types;
 * shapes follow its lib/provider.js, lib/helpers/defaults.js and example/routes/express.js.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

  export interface AccountClaims {
    sub: string;
    [claim: string]: JsonValue | undefined;
  }

  export interface Account {
    accountId: string;
    claims(use: string, scope: string, claims: unknown, rejected: string[]): Promise<AccountClaims> | AccountClaims;
  }

  export interface InteractionPrompt {
    name: 'login' | 'consent' | (string & {});
    reasons: string[];
    details: {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
      [key: string]: unknown;
    };
  }

  export interface InteractionDetails {
    uid: string;
    prompt: InteractionPrompt;
    params: Record<string, unknown>;
    session?: { accountId?: string; [key: string]: unknown };
    grantId?: string;
    returnTo: string;
  }

  export interface LoginResult {
    login: { accountId: string; acr?: string; amr?: string[]; remember?: boolean; ts?: number };
  }
  export interface ConsentResult {
    consent: { grantId?: string };
  }
  export interface ErrorResult {
    error: string;
    error_description?: string;
  }
  export type InteractionResult = LoginResult | ConsentResult | ErrorResult;

  export interface ClientMetadata {
    client_id: string;
    client_secret?: string;
    redirect_uris: string[];
    grant_types?: string[];
    response_types?: string[];
    token_endpoint_auth_method?: string;
    id_token_signed_response_alg?: string;
    [key: string]: unknown;
  }

  export interface Configuration {
    acrValues?: string[];
    claims?: Record<string, string[] | null>;
    clients?: ClientMetadata[];
    conformIdTokenClaims?: boolean;
    cookies?: { keys?: (string | Buffer)[]; [key: string]: unknown };
    features?: Record<string, { enabled: boolean; [key: string]: unknown }>;
    findAccount?: (ctx: unknown, sub: string, token?: unknown) => Promise<Account | undefined>;
    interactions?: { url?: (ctx: unknown, interaction: { uid: string }) => Promise<string> | string; policy?: unknown };
    jwks?: { keys: object[] };
    pkce?: { required?: (ctx: unknown, client: unknown) => boolean };
    renderError?: (ctx: { type: string; body: unknown }, out: Record<string, string>, error: Error) => Promise<void> | void;
    scopes?: string[];
    ttl?: Record<string, number | ((...args: unknown[]) => number)>;
    [key: string]: unknown;
  }

  export interface Grant {
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    addResourceScope(indicator: string, scope: string): void;
    save(): Promise<string>;
  }

  export default class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    proxy: boolean;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResult,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
    Grant: {
      new (properties: { accountId: string; clientId: string }): Grant;
      find(id: string): Promise<Grant | undefined>;
    };
    on(event: string, listener: (...args: unknown[]) => void): this;
  }
}
