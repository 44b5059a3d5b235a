// A loopback HTTP server answering with a handler of the test's, for a FHIR server's failure modes.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StubServer {
  /** `http://127.0.0.1:<port>/fhir/R4`. */
  readonly baseUrl: string;
  readonly server: Server;
  /** Every request line seen, in order (`GET /fhir/R4/...`). */
  readonly seen: string[];
}

export async function startStub(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<StubServer> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { baseUrl: `http://127.0.0.1:${port}/fhir/R4`, server, seen };
}

export async function stopStub(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
