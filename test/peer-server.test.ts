/**
 * The peer listener's own timeouts (src/http/peer-server.ts) on a real HTTPS server with the
 * deployment's certificates: sockets that never finish a handshake, requests whose headers or body
 * never finish, and keep-alive. Short timeouts are passed in so that each state is reached quickly;
 * what is asserted is what the server did (closed, answered 408), not how long it took.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { Server, ServerResponse } from 'node:http';
import { connect as connectTcp, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { createPeerServer, PEER_LISTENER_TIMEOUTS, type PeerListenerTimeouts } from '../src/http/peer-server.js';
import { createTestDeployment, type TestDeployment } from './helpers/deployment.js';
import { startTestGateway } from './helpers/gateway.js';

// Each test shortens the timeout it is about; the others stay long enough for a loaded machine.
const SHORT: PeerListenerTimeouts = { handshakeMs: 5_000, headersMs: 400, requestMs: 700, keepAliveMs: 3_000, checkIntervalMs: 100, idleMs: 5_000 };

let deployment: TestDeployment;
let serverTls: { cert: Buffer; key: Buffer; ca: Buffer };
let clientTls: { cert: Buffer; key: Buffer; ca: Buffer };

async function listen(
  timeouts: PeerListenerTimeouts = SHORT,
  answer: (res: ServerResponse) => void = (res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'),
): Promise<{ server: Server; port: number; handled: () => number }> {
  let handled = 0;
  const server = createPeerServer((req, res) => {
    handled++;
    req.resume();
    req.on('end', () => answer(res));
  }, serverTls, timeouts);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, handled: () => handled };
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Everything the server sent until it closed the connection. */
function readUntilClosed(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
  });
}

function connectAuthenticated(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host: '127.0.0.1', port, servername: 'localhost', ...clientTls }, () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('the peer listener closes what does not finish in time', { timeout: 60_000 }, () => {
  before(async () => {
    deployment = await createTestDeployment({ countries: ['DK', 'ES'] });
    const ca = await readFile(deployment.pki.ca.cert);
    const dk = deployment.pki.countries.DK;
    const es = deployment.pki.countries.ES;
    assert.ok(dk && es);
    serverTls = { cert: await readFile(dk.tlsServerCert), key: await readFile(dk.tlsServerKey), ca };
    clientTls = { cert: await readFile(es.tlsClientCert), key: await readFile(es.tlsClientKey), ca };
  });

  test('a connection that never starts its TLS handshake is dropped', async () => {
    const { server, port, handled } = await listen({ ...SHORT, handshakeMs: 300 });
    try {
      const socket = connectTcp({ host: '127.0.0.1', port });
      const sent = await readUntilClosed(socket);
      assert.equal(sent, '', 'nothing is sent to a socket that never authenticated');
      assert.equal(handled(), 0);
    } finally {
      await close(server);
    }
  });

  // [the part that never finishes, what is sent, how many requests reached the handler]
  const unfinished: ReadonlyArray<readonly [string, string, number]> = [
    ['headers', 'POST /ncp/v1/ping HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/jose\r\n', 0],
    ['body', 'POST /ncp/v1/ping HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/jose\r\nContent-Length: 100\r\n\r\n0123456789', 1],
  ];
  for (const [part, text, reached] of unfinished) {
    test(`an authenticated request whose ${part} never finishes gets 408 and the connection closes`, async () => {
      const { server, port, handled } = await listen();
      try {
        const socket = await connectAuthenticated(port);
        const sent = readUntilClosed(socket);
        socket.write(text);
        assert.match(await sent, /^HTTP\/1\.1 408 /);
        assert.equal(handled(), reached);
      } finally {
        await close(server);
      }
    });
  }

  test('a complete request is answered and the connection is kept alive as announced', async () => {
    const { server, port, handled } = await listen();
    try {
      const socket = await connectAuthenticated(port);
      const sent = readUntilClosed(socket);
      socket.write('GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n');
      socket.write('GET /b HTTP/1.1\r\nHost: localhost\r\n\r\n');
      // Idle for longer than the headers and request timeouts (and a check): a kept-alive
      // connection is not a slow request, and still serves a third request.
      await new Promise((resolve) => setTimeout(resolve, SHORT.requestMs + 5 * SHORT.checkIntervalMs));
      socket.write('GET /c HTTP/1.1\r\nHost: localhost\r\n\r\n');
      // Then it stays idle until the server closes it.
      const text = await sent;
      assert.equal(text.match(/HTTP\/1\.1 200 /g)?.length, 3, text);
      assert.doesNotMatch(text, / 408 /);
      assert.match(text, /keep-alive: timeout=3\r\n/i);
      assert.equal(handled(), 3);
    } finally {
      await close(server);
    }
  });

  test('a peer that stops reading a large answer is disconnected, and the answer dropped', async () => {
    let closed: Promise<void> | undefined;
    // Keep-alive far longer than the test: only the idle timeout can close this connection.
    const { server, port } = await listen({ ...SHORT, idleMs: 500, keepAliveMs: 60_000 }, (res) => {
      const socket = res.socket;
      closed = new Promise((resolve) => socket?.once('close', () => resolve()));
      res.writeHead(200, { 'content-type': 'application/jose' });
      res.end(Buffer.alloc(16 * 1024 * 1024, 0x61));
    });
    let received = 0;
    try {
      const socket = await connectAuthenticated(port);
      socket.pause();
      socket.write('POST /ncp/v1/ping HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n');
      for (let i = 0; i < 100 && closed === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(closed, 'the request was answered');
      const outcome = await Promise.race([closed.then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 10_000, 'still open').unref())]);
      assert.equal(outcome, 'closed');
      socket.on('data', (chunk: Buffer) => (received += chunk.length));
      socket.resume();
      await new Promise((resolve) => socket.once('close', resolve));
      assert.ok(received < 16 * 1024 * 1024, `the whole answer arrived (${received} bytes)`);
    } finally {
      await close(server);
    }
  });

  test('a headers timeout longer than the request timeout is refused', () => {
    assert.throws(() => createPeerServer(() => undefined, undefined, { ...SHORT, headersMs: 2_000, requestMs: 1_000 }), RangeError);
  });
});

describe("the gateway's peer listener uses these timeouts", () => {
  let gateway: Awaited<ReturnType<typeof startTestGateway>>;
  let dep: TestDeployment;
  before(async () => {
    dep = await createTestDeployment({ countries: ['DK', 'ES'] });
    gateway = await startTestGateway(dep, 'DK');
  });
  after(async () => {
    await gateway.stop();
  });

  test('headers, request and keep-alive timeouts are those of PEER_LISTENER_TIMEOUTS', () => {
    const server = gateway.gateway.peer.server;
    assert.equal(server.headersTimeout, PEER_LISTENER_TIMEOUTS.headersMs);
    assert.equal(server.requestTimeout, PEER_LISTENER_TIMEOUTS.requestMs);
    assert.equal(server.keepAliveTimeout, PEER_LISTENER_TIMEOUTS.keepAliveMs);
    assert.equal(server.timeout, PEER_LISTENER_TIMEOUTS.idleMs);
    // An idle connection between gateways outlives undici's default, and Node's default of 5 s.
    assert.ok(PEER_LISTENER_TIMEOUTS.keepAliveMs > 5_000);
  });
});
