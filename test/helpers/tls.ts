/** Raw TLS clients for tests of the peer listener's handshake checks. */
import { connect as connectTls } from 'node:tls';

export interface ClientTls {
  cert?: Buffer | string;
  key?: Buffer | string;
  ca: Buffer | string;
}

/**
 * Connects with node:tls and sends a request; resolves with the TLS alert code the server answered
 * (in TLS 1.3 the client learns of a refused certificate only on its first read).
 */
export function handshakeError(url: string, tlsOpts: ClientTls): Promise<string> {
  const u = new URL(url);
  return new Promise((resolveCode, reject) => {
    const socket = connectTls({ host: u.hostname, port: Number(u.port), servername: 'localhost', rejectUnauthorized: true, ...tlsOpts });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no TLS refusal within 5 s'));
    }, 5000);
    socket.once('secureConnect', () => socket.write(`POST ${u.pathname} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n`));
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolveCode(e.code ?? e.message);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolveCode('closed-without-alert');
    });
    socket.once('data', (d: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`server answered instead of refusing: ${d.toString().slice(0, 80)}`));
    });
  });
}
