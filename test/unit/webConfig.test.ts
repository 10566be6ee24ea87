/**
 * The web configuration file, case by case from exporter-toolkit's own test files
 * (web/testdata/*.yml and web/tls_config_test.go): what it accepts here is accepted, what it
 * refuses is refused, each error naming the key. Certificates come from openssl (helpers/certs.ts).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BasicAuth, parseBasicAuth } from '../../src/http/webConfig/basicAuth.js';
import { readWebConfig, WebConfigError } from '../../src/http/webConfig/read.js';
import { makeCerts, type TestCerts } from '../helpers/certs.js';

// exporter-toolkit's testdata users (web_config_users.good.yml), and its stand-in hash of "fakepassword".
const CAROL = '$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu';
const FAKE = '$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi';

let certs: TestCerts;
let n = 0;

beforeAll(() => {
  certs = makeCerts();
  mkdirSync(join(certs.dir, 'conf'));
});
afterAll(() => rmSync(certs.dir, { recursive: true, force: true }));

/** Writes the YAML (with ${SERVER_CRT} and the like replaced) to a file of its own and reads it. */
function load(yaml: string) {
  const path = join(certs.dir, `web-${n++}.yml`);
  const text = yaml
    .replaceAll('${SERVER_CRT}', certs.serverCert)
    .replaceAll('${SERVER_KEY}', certs.serverKey)
    .replaceAll('${CA}', certs.ca)
    .replaceAll('${CLIENT_CRT}', certs.clientCert);
  writeFileSync(path, text);
  return readWebConfig(path);
}

async function failure(yaml: string): Promise<WebConfigError> {
  const err = await load(yaml).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(WebConfigError);
  return err as WebConfigError;
}

const TLS = `tls_server_config:\n  cert_file: \${SERVER_CRT}\n  key_file: \${SERVER_KEY}\n`;

describe('web config file: what exporter-toolkit accepts', () => {
  it('an empty file: plain HTTP, no users, no headers', async () => {
    const config = await load('');
    expect(config).toMatchObject({ tls: undefined, headers: {}, http2: true });
    expect(config.users.size).toBe(0);
  });

  it('cert_file and key_file: TLS 1.2 to 1.3, the server picks the cipher, no client certificate', async () => {
    const { tls } = await load(TLS);
    expect(tls?.clientAuth).toBe('NoClientCert');
    expect(tls?.context).toMatchObject({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', honorCipherOrder: true });
    expect(tls?.context.ciphers).toBeUndefined();
    expect(tls?.allowedSans).toBeUndefined();
  });

  it('inline cert and key (tlsInline.good), and an inline client_ca', async () => {
    const pem = (path: string) => certs.read(path).toString().trimEnd().split('\n').map((l) => `    ${l}`).join('\n');
    const { tls } = await load(
      `tls_server_config:\n  cert: |\n${pem(certs.serverCert)}\n  key: |\n${pem(certs.serverKey)}\n  client_ca: |\n${pem(certs.ca)}\n  client_auth_type: RequireAndVerifyClientCert\n`,
    );
    expect(tls?.clientAuth).toBe('RequireAndVerifyClientCert');
    expect(String(tls?.context.cert)).toContain('BEGIN CERTIFICATE');
    expect(String(tls?.context.ca)).toBe(certs.read(certs.ca).toString());
  });

  it('relative file names are relative to the file, not to the working directory', async () => {
    const dir = join(certs.dir, 'conf');
    writeFileSync(join(dir, 'web.yml'), 'tls_server_config:\n  cert_file: ../server.crt\n  key_file: ../server.key\n');
    const { tls } = await readWebConfig(join(dir, 'web.yml'));
    expect(tls?.context.cert).toEqual(certs.read(certs.serverCert));
  });

  it.each([
    ['NoClientCert', 'NoClientCert'],
    ['RequestClientCert', 'RequestClientCert'],
    ['RequireAnyClientCert', 'RequireAnyClientCert'],
    ['RequireClientCert', 'RequireAnyClientCert'], // exporter-toolkit's older name
    ['VerifyClientCertIfGiven', 'VerifyClientCertIfGiven'],
    ['RequireAndVerifyClientCert', 'RequireAndVerifyClientCert'],
  ])('client_auth_type %s', async (given, meant) => {
    // Client CAs without a policy are an error (below), so NoClientCert goes without.
    const ca = meant === 'NoClientCert' ? '' : '  client_ca_file: ${CA}\n';
    const { tls } = await load(`${TLS}  client_auth_type: ${given}\n${ca}`);
    expect(tls?.clientAuth).toBe(meant);
  });

  it('every cipher exporter-toolkit offers (allCiphers.good), mapped to OpenSSL names in order', async () => {
    const { tls } = await load(`${TLS}  prefer_server_cipher_suites: false\n  cipher_suites:
  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
  - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
  - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
  - TLS_AES_128_GCM_SHA256
  - TLS_AES_256_GCM_SHA384
  - TLS_CHACHA20_POLY1305_SHA256
  - TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
  - TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
  - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
  - TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
  - TLS_RSA_WITH_AES_128_CBC_SHA
  - TLS_RSA_WITH_AES_256_CBC_SHA
  - TLS_RSA_WITH_AES_128_GCM_SHA256
  - TLS_RSA_WITH_AES_256_GCM_SHA384
`);
    expect(tls?.context.honorCipherOrder).toBe(false);
    expect(tls?.context.ciphers?.split(':').slice(0, 4)).toEqual([
      'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384',
    ]);
    expect(tls?.context.ciphers?.split(':')).toHaveLength(17);
  });

  it('every curve (allCurves.good) and versions (someCiphers.good, someCurves.good)', async () => {
    const all = await load(`${TLS}  curve_preferences: [CurveP256, CurveP384, CurveP521, X25519]\n`);
    expect(all.tls?.context.ecdhCurve).toBe('P-256:P-384:P-521:X25519');
    const pinned = await load(`${TLS}  min_version: TLS12\n  max_version: TLS12\n`);
    expect(pinned.tls?.context).toMatchObject({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    const only13 = await load(`${TLS}  min_version: TLS13\n  curve_preferences: [CurveP521]\n`);
    expect(only13.tls?.context).toMatchObject({ minVersion: 'TLSv1.3', ecdhCurve: 'P-521' });
  });

  it('client_allowed_sans (client_san.good), http2 false (noHTTP2.good)', async () => {
    const config = await load(`${TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: \${CA}\n  client_allowed_sans: [one, test3, two]
http_server_config:\n  http2: false\n`);
    expect(config.tls?.allowedSans).toEqual(['one', 'test3', 'two']);
    expect(config.http2).toBe(false);
  });

  it('the allowed headers (headers.good), a number read as its text, a blank value unset', async () => {
    const { headers } = await load(`http_server_config:
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000; includeSubDomains
    X-Content-Type-Options: nosniff
    X-XSS-Protection: 1
    Content-Security-Policy: ""
`);
    expect(headers).toEqual({
      'X-Frame-Options': 'deny', 'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
      'X-Content-Type-Options': 'nosniff', 'X-XSS-Protection': '1',
    });
  });

  it('users of any cost and bcrypt revision (users_noTLS.good); rate limiting off', async () => {
    const config = await load(`basic_auth_users:
  alice: $2y$12$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby
  bob: $2y$18$4VeFDzXIoPHKnKTU3O3GH.N.vZu06CVqczYZ8WvfzrddFU6tGqjR.
  carol: ${CAROL}
  1234: ${CAROL.replace('$2y$', '$2b$')}
rate_limit:\n  interval: 0\n  burst: 0\n`);
    expect([...config.users.keys()].sort()).toEqual(['1234', 'alice', 'bob', 'carol']);
    expect(config.tls).toBeUndefined();
  });

  it('the digest changes when a file it names changes, though the file itself does not', async () => {
    const path = join(certs.dir, 'digest.yml');
    writeFileSync(path, `tls_server_config:\n  cert_file: ${certs.serverCert}\n  key_file: ${certs.serverKey}\n`);
    const before = await readWebConfig(path);
    expect((await readWebConfig(path)).fingerprint).toBe(before.fingerprint);
    writeFileSync(path, `tls_server_config:\n  cert_file: ${certs.wrongHostCert}\n  key_file: ${certs.wrongHostKey}\n`);
    expect((await readWebConfig(path)).fingerprint).not.toBe(before.fingerprint);
  });
});

describe('web config file: what is refused, naming the key', () => {
  it.each([
    ['junk (web_config_junk)', 'hWkNKCp3fvIx3jKnsaBI\nTuEjdwNS8A2vYdFbiKqr\n', '', /must be a YAML mapping/],
    ['an unknown key (junk_key)', 'tls_server_config:\n  cert_filse: "server.crt"\n', 'tls_server_config.cert_filse', /unknown key/],
    ['an unknown top-level key', 'tls_config: {}\n', 'tls_config', /unknown key/],
    ['a key given twice', 'basic_auth_users: {}\nbasic_auth_users: {}\n', '', /not valid YAML: Map keys must be unique/],
    ['cert_file empty (certPath_empty)', 'tls_server_config:\n  cert_file: ""\n  key_file: ${SERVER_KEY}\n', 'tls_server_config.cert_file', /missing one of cert or cert_file/],
    ['cert empty (cert_empty)', 'tls_server_config:\n  cert: ""\n  key_file: ${SERVER_KEY}\n', 'tls_server_config.cert_file', /missing one of cert or cert_file/],
    ['key_file empty (keyPath_empty)', 'tls_server_config:\n  cert_file: ${SERVER_CRT}\n  key_file: ""\n', 'tls_server_config.key_file', /missing one of key or key_file/],
    ['key empty (key_empty)', 'tls_server_config:\n  cert_file: ${SERVER_CRT}\n  key: ""\n', 'tls_server_config.key_file', /missing one of key or key_file/],
    ['both empty, a client_auth_type (certPath_keyPath_empty)', 'tls_server_config:\n  cert_file: ""\n  key_file: ""\n  client_auth_type: x\n', 'tls_server_config.cert_file', /missing one of cert or cert_file/],
    ['cert_file missing (certPath_invalid)', 'tls_server_config:\n  cert_file: somefile\n  key_file: ${SERVER_KEY}\n', 'tls_server_config.cert_file', /cannot read .*somefile: ENOENT/],
    ['key_file missing (keyPath_invalid)', 'tls_server_config:\n  cert_file: ${SERVER_CRT}\n  key_file: somefile\n', 'tls_server_config.key_file', /cannot read .*ENOENT/],
    ['a key that is not the certificate\'s', 'tls_server_config:\n  cert_file: ${CLIENT_CRT}\n  key_file: ${SERVER_KEY}\n', 'tls_server_config.key_file', /Node's TLS cannot use it: .*key values mismatch/],
    ['a certificate that is none', 'tls_server_config:\n  cert_file: ${SERVER_KEY}\n  key_file: ${SERVER_KEY}\n', 'tls_server_config.cert_file', /not a PEM certificate/],
    ['an invalid client_auth_type', `${TLS}  client_auth_type: Sometimes\n`, 'tls_server_config.client_auth_type', /invalid ClientAuth: Sometimes/],
    ['client CAs without a policy (noAuth.bad)', `${TLS}  client_ca_file: \${CA}\n`, 'tls_server_config.client_auth_type', /client CA's have been configured without a Client Auth Policy/],
    ['a client CA file missing (clientCAs_invalid)', `${TLS}  client_ca_file: somefile\n`, 'tls_server_config.client_ca_file', /cannot read/],
    ['an invented cipher', `${TLS}  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048]\n`, 'tls_server_config.cipher_suites[0]', /unknown cipher: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048/],
    ['an insecure cipher Go keeps apart', `${TLS}  cipher_suites: [TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_3DES_EDE_CBC_SHA]\n`, 'tls_server_config.cipher_suites[1]', /unknown cipher/],
    ['an invented curve', `${TLS}  curve_preferences: [CurveP257]\n`, 'tls_server_config.curve_preferences[0]', /unknown curve: CurveP257/],
    ['an unknown TLS version (wrongTLSVersion)', `${TLS}  min_version: TLS111\n`, 'tls_server_config.min_version', /unknown TLS version: TLS111/],
    ['TLS 1.0, which Node does not offer', `${TLS}  min_version: TLS10\n`, 'tls_server_config.min_version', /TLS10 is not offered/],
    ['a maximum of TLS 1.1', `${TLS}  max_version: TLS11\n`, 'tls_server_config.max_version', /TLS11 is not offered/],
    ['a minimum above the maximum', `${TLS}  min_version: TLS13\n  max_version: TLS12\n`, 'tls_server_config.min_version', /above max_version/],
    ['prefer_server_cipher_suites not a boolean', `${TLS}  prefer_server_cipher_suites: sometimes\n`, 'tls_server_config.prefer_server_cipher_suites', /true or false/],
    ['X-Content-Type-Options: sniff', 'http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n', 'http_server_config.headers.X-Content-Type-Options', /invalid value for X-Content-Type-Options. Expected one of: "nosniff", but got: "sniff"/],
    ['X-Frame-Options: foo', 'http_server_config:\n  headers:\n    X-Frame-Options: foo\n', 'http_server_config.headers.X-Frame-Options', /invalid value for X-Frame-Options/],
    ['a header outside the list (extra_header)', 'http_server_config:\n  headers:\n    Content-Type: foo\n', 'http_server_config.headers.Content-Type', /HTTP header "Content-Type" can not be configured/],
    ['a header in another case', 'http_server_config:\n  headers:\n    x-frame-options: deny\n', 'http_server_config.headers.x-frame-options', /can not be configured/],
    ['an unknown http_server_config key', 'http_server_config:\n  http3: true\n', 'http_server_config.http3', /unknown key/],
    ['a password that is no hash (user_list_invalid)', 'basic_auth_users:\n  john: doe\n', 'basic_auth_users.john', /is not a bcrypt hash/],
    ['users as a list', 'basic_auth_users: [john]\n', 'basic_auth_users', /must be a mapping/],
    ['rate limiting, which mirrorstate does not do', 'rate_limit:\n  interval: 1s\n  burst: 0\n', 'rate_limit.interval', /does not rate-limit/],
  ])('%s', async (_name, yaml, key, message) => {
    const err = await failure(yaml);
    expect(err.key).toBe(key);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('\n');
  });

  it('a file that does not exist', async () => {
    const err = await readWebConfig(join(certs.dir, 'absent.yml')).catch((e: unknown) => e as WebConfigError);
    expect(err).toBeInstanceOf(WebConfigError);
    expect((err as WebConfigError).message).toMatch(/absent\.yml: cannot read it: ENOENT/);
  });

  it('never prints a hash it refuses', async () => {
    const err = await failure(`basic_auth_users:\n  john: ${CAROL.slice(0, 40)}\n`);
    expect(err.message).not.toContain(CAROL.slice(0, 40));
  });
});

describe('basic auth', () => {
  it.each([
    [`Basic ${Buffer.from('carol:pw:with:colons').toString('base64')}`, { user: 'carol', password: 'pw:with:colons' }],
    [`basic ${Buffer.from('ü:ß').toString('base64')}`, { user: 'ü', password: 'ß' }],
    ['Bearer abc', undefined],
    ['Basic !!!', undefined],
    [`Basic ${Buffer.from('nocolon').toString('base64')}`, undefined],
    [undefined, undefined],
  ])('reads %j', (header, credentials) => expect(parseBasicAuth(header)).toEqual(credentials));

  it('lets the right password in, and neither a wrong one nor an unknown user; the stand-in hash admits no one', async () => {
    const auth = new BasicAuth(new Map([['carol', CAROL], ['fake', FAKE]]));
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    try {
      expect(await auth.check(basic('fake', 'fakepassword'))).toBe('ok');
      expect(await auth.check(basic('fake', 'fakepassword'))).toBe('ok'); // now from the cache
      expect(await auth.check(basic('carol', 'fakepassword'))).toBe('denied');
      expect(await auth.check(basic('nobody', 'fakepassword'))).toBe('denied');
      expect(await auth.check(basic('Fake', 'fakepassword'))).toBe('denied');
      expect(await auth.check(undefined)).toBe('denied');
      auth.setUsers(new Map([['carol', CAROL]]));
      expect(await auth.check(basic('fake', 'fakepassword'))).toBe('denied');
    } finally {
      await auth.stop();
    }
  });
});
