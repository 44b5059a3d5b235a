/**
 * The peer listener's own timeouts (src/http/peer-server.ts) on a real HTTPS server with the
 * deployment's certificates: sockets that never finish a handshake, requests whose headers or body
 * never finish, and keep-alive. Short timeouts are passed in so that each state is reached quickly;
 * what is asserted is what the server did (closed, answered 408), not how long it took.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { connect as connectTcp, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { createPeerServer, PEER_LISTENER_TIMEOUTS, type PeerListenerTimeouts } from '../src/http/peer-server.js';
import { createTestDeployment, type TestDeployment } from './helpers/deployment.js';
import { startTestGateway } from './helpers/gateway.js';

const SHORT: PeerListenerTimeouts = { handshakeMs: 300, headersMs: 400, requestMs: 700, keepAliveMs: 3_000, checkIntervalMs: 100 };

let deployment: TestDeployment;
let serverTls: { cert: Buffer; key: Buffer; ca: Buffer };
let clientTls: { cert: Buffer; key: Buffer; ca: Buffer };

async function listen(timeouts: PeerListenerTimeouts = SHORT): Promise<{ server: Server; port: number; handled: () => number }> {
  let handled = 0;
  const server = createPeerServer((req, res) => {
    handled++;
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
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
    const { server, port, handled } = await listen();
    try {
      const socket = connectTcp({ host: '127.0.0.1', port });
      const sent = await readUntilClosed(socket);
      assert.equal(sent, '', 'nothing is sent to a socket that never authenticated');
      assert.equal(handled(), 0);
    } finally {
      await close(server);
    }
  });

  test('an authenticated request whose headers never finish gets 408 and the connection closes', async () => {
    const { server, port, handled } = await listen();
    try {
      const socket = await connectAuthenticated(port);
      const sent = readUntilClosed(socket);
      socket.write('POST /ncp/v1/ping HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/jose\r\n');
      assert.match(await sent, /^HTTP\/1\.1 408 /);
      assert.equal(handled(), 0);
    } finally {
      await close(server);
    }
  });

  test('a request whose body never finishes gets 408 and the connection closes', async () => {
    const { server, port } = await listen();
    try {
      const socket = await connectAuthenticated(port);
      const sent = readUntilClosed(socket);
      socket.write('POST /ncp/v1/ping HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/jose\r\nContent-Length: 100\r\n\r\n0123456789');
      assert.match(await sent, /^HTTP\/1\.1 408 /);
    } finally {
      await close(server);
    }
  });

  test('a complete request is answered and the connection is kept alive as announced', async () => {
    const { server, port, handled } = await listen();
    try {
      const socket = await connectAuthenticated(port);
      const sent = readUntilClosed(socket);
      socket.write('GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n');
      // A second request on the same connection, then an idle connection until the server closes it.
      socket.write('GET /b HTTP/1.1\r\nHost: localhost\r\n\r\n');
      const text = await sent;
      assert.equal(text.match(/HTTP\/1\.1 200 /g)?.length, 2, text);
      assert.match(text, /keep-alive: timeout=3\r\n/i);
      assert.equal(handled(), 2);
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
    // An idle connection between gateways outlives undici's default, and Node's default of 5 s.
    assert.ok(PEER_LISTENER_TIMEOUTS.keepAliveMs > 5_000);
  });
});
