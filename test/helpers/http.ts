/** A small JSON/FHIR HTTP client for end-to-end tests (real requests over loopback). */
export type Json = Record<string, unknown>;

export interface CallOptions {
  readonly method?: string;
  /** Bearer token (HCP assertion or citizen session). */
  readonly token?: string;
  /** Sent as JSON; see `contentType`. */
  readonly body?: unknown;
  /** Sent as is, instead of `body`. */
  readonly raw?: string;
  readonly contentType?: string;
  readonly headers?: Record<string, string>;
}

export async function call(url: string, init: CallOptions = {}): Promise<{ status: number; body: Json; headers: Headers }> {
  const hasBody = init.body !== undefined || init.raw !== undefined;
  const res = await fetch(url, {
    method: init.method ?? (hasBody ? 'POST' : 'GET'),
    headers: {
      ...(init.token === undefined ? {} : { authorization: `Bearer ${init.token}` }),
      ...(hasBody ? { 'content-type': init.contentType ?? 'application/json' } : {}),
      ...init.headers,
    },
    ...(init.raw !== undefined ? { body: init.raw } : init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await res.text();
  let body: Json;
  try {
    body = text.length === 0 ? {} : (JSON.parse(text) as Json);
  } catch {
    body = { text };
  }
  return { status: res.status, body, headers: res.headers };
}

/** The stable error code of an OperationOutcome body. */
export function outcomeCode(body: Json): string | undefined {
  const issue = (body.issue as Array<{ details?: { coding?: Array<{ code?: string }> } }> | undefined)?.[0];
  return issue?.details?.coding?.[0]?.code;
}
