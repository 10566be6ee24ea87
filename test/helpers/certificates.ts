/**
 * Certificates made by `openssl` for a test: a CA of its own and certificates it signs (servers by
 * host name, clients by user name). Files in a temporary directory the caller removes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Issued {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

export interface TestCa {
  dir: string;
  caFile: string;
  /** A certificate whose subject is `cn`, with these subjectAltNames (`DNS:localhost`, `IP:127.0.0.1`). */
  issue(name: string, cn: string, altNames?: string[]): Issued;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makeCa(label = 'mirrorstate test CA'): TestCa {
  const dir = mkdtempSync(path.join(tmpdir(), 'ms-ca-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=${label}`], dir);
  return {
    dir,
    caFile: path.join(dir, 'ca.crt'),
    issue(name, cn, altNames = []) {
      openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
      const ext = path.join(dir, `${name}.ext`);
      writeFileSync(ext, altNames.length > 0 ? `subjectAltName=${altNames.join(',')}\n` : 'basicConstraints=CA:FALSE\n');
      openssl(
        ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', ext],
        dir,
      );
      const certFile = path.join(dir, `${name}.crt`);
      const keyFile = path.join(dir, `${name}.key`);
      return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
    },
  };
}
