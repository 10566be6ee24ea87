/**
 * Certificates made by `openssl` for one test: a CA, a server certificate for 127.0.0.1 and
 * localhost, a client certificate, both signed by the CA, a server certificate for another host, and
 * a self-signed client certificate no CA vouches for. Files only; the test removes the directory.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCerts {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  wrongHostCert: string;
  wrongHostKey: string;
  strangerCert: string;
  strangerKey: string;
  read(path: string): Buffer;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A key and a certificate signed by the CA, with these subjectAltNames and extended key usage. */
function signed(dir: string, name: string, subject: string, san: string, usage: string): void {
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${usage}\n`);
  openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`,
    '-days', '2', '-sha256', '-extfile', `${name}.ext`,
  ]);
}

export function makeCerts(dir = mkdtempSync(join(tmpdir(), 'ms-certs-'))): TestCerts {
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=mirrorstate test CA']);
  signed(dir, 'server', '/CN=localhost', 'DNS:localhost,IP:127.0.0.1', 'serverAuth');
  signed(dir, 'client', '/CN=prometheus', 'DNS:prometheus.test,URI:spiffe://test/prometheus', 'clientAuth');
  signed(dir, 'wronghost', '/CN=elsewhere.test', 'DNS:elsewhere.test', 'serverAuth');
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'stranger.key', '-out', 'stranger.crt', '-days', '2', '-subj', '/CN=stranger']);
  const at = (file: string) => join(dir, file);
  return {
    dir,
    ca: at('ca.crt'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    clientCert: at('client.crt'),
    clientKey: at('client.key'),
    wrongHostCert: at('wronghost.crt'),
    wrongHostKey: at('wronghost.key'),
    strangerCert: at('stranger.crt'),
    strangerKey: at('stranger.key'),
    read: (path) => readFileSync(path),
  };
}
