/**
 * FHIR R4 OperationOutcome factories: the only body shape an error ever has on the wire.
 * Each issue carries the stable machine code in `details.coding` (system urn:ncpeh:error).
 */
import { ERROR_CATALOGUE, ERROR_SYSTEM, type ErrorCode } from './errors.js';

export interface OperationOutcomeIssue {
  severity: 'fatal' | 'error' | 'warning' | 'information';
  code: string;
  details: { coding: Array<{ system: string; code: string }>; text: string };
  diagnostics?: string;
  expression?: string[];
}

export interface OperationOutcome {
  resourceType: 'OperationOutcome';
  id?: string;
  issue: OperationOutcomeIssue[];
}

export function operationOutcome(
  code: ErrorCode,
  opts: { diagnostics?: string | undefined; expression?: readonly string[]; correlationId?: string } = {},
): OperationOutcome {
  const spec = ERROR_CATALOGUE[code];
  const issue: OperationOutcomeIssue = {
    severity: spec.status >= 500 ? 'fatal' : 'error',
    code: spec.issueType,
    details: { coding: [{ system: ERROR_SYSTEM, code }], text: spec.title },
  };
  if (opts.diagnostics !== undefined) issue.diagnostics = opts.diagnostics;
  if (opts.expression !== undefined && opts.expression.length > 0) issue.expression = [...opts.expression];
  const outcome: OperationOutcome = { resourceType: 'OperationOutcome', issue: [issue] };
  if (opts.correlationId !== undefined) outcome.id = opts.correlationId;
  return outcome;
}
