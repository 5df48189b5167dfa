/** The environ rules E-1..E-16 (docs/conformance.md §7), one or more tests each. */
import fc from 'fast-check';
import { Readable } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App, Environ } from '../src/app.js';
import { toService } from '../src/loader.js';
import { fastcgiFront } from './helpers/fcgi-client.js';
import { scgiFront } from './helpers/scgi-client.js';
import { uwsgiFront } from './helpers/uwsgi-client.js';
import {
  RequestError,
  gatewayScheme,
  gatewayVars,
  hostName,
  isPlainChunked,
  mapRequestHeaders,
  normalizeMount,
  normalizeRemoteAddr,
  percentDecodePath,
  quotePath,
  requestUrl,
  splitMount,
} from '../src/environ.js';
import { BodyInput, TruncatedBodyError } from '../src/input.js';
import { inject } from '../src/inject.js';
import { silentLogger } from '../src/log.js';
import { RequestContext, makeEnviron } from '../src/request.js';
import { validateApp } from '../src/validate.js';

const opts = { mount: '', localAddress: '127.0.0.1', maxBodyBytes: 1000 };

/** Runs a request through inject and returns the environ the app saw (validated). */
async function seen(url: string, extra: Parameters<typeof inject>[1] = {}): Promise<Environ> {
  let got: Environ | undefined;
  const app = validateApp((environ, startResponse) => {
    got = environ;
    startResponse('200 OK', []);
    return [];
  });
  const res = await inject(app, { url, ...extra });
  expect(res.status).toBe(200);
  return got as Environ;
}

describe('E-1 values are latin1 byte strings', () => {
  test('/%C3%A9 → PATH_INFO is the two chars U+00C3 U+00A9', async () => {
    const env = await seen('/%C3%A9');
    expect(env.PATH_INFO).toBe('/\u00c3\u00a9');
    expect(Buffer.from(env.PATH_INFO, 'latin1').toString('utf8')).toBe('/é');
  });
  test('percentDecodePath maps every byte value to one char', () => {
    for (let b = 1; b < 256; b++) expect(percentDecodePath(`/%${b.toString(16).padStart(2, '0')}`)).toBe(`/${String.fromCharCode(b)}`);
  });
  test('header values keep their bytes (latin1) through the HTTP mapping', () => {
    const vars: Record<string, string> = {};
    mapRequestHeaders(['X-Name', 'caf\u00e9'], vars);
    expect(vars.HTTP_X_NAME).toBe('caf\u00e9');
  });
});

describe('E-2 key syntax and server-owned keys', () => {
  test('gateway keys outside ^[A-Za-z_][A-Za-z0-9_]*$ are dropped; lower case is kept', () => {
    const vars = gatewayVars(
      [
        ['REQUEST_METHOD', 'GET'],
        ['bad-key', '1'],
        ['1X', '1'],
        ['gatewire.input', 'forged'],
        ['a b', '1'],
        ['lower_case', 'ok'],
      ],
      opts,
    );
    expect(Object.keys(vars)).not.toEqual(expect.arrayContaining(['bad-key', '1X', 'gatewire.input', 'a b']));
    expect(vars.lower_case).toBe('ok');
  });
  test('server-owned keys are written after the CGI keys and win', () => {
    const ctx = new RequestContext(silentLogger());
    const vars = { REQUEST_METHOD: 'GET', 'gatewire.protocol': 'forged' } as Record<string, string>;
    const env = makeEnviron(vars, ctx, { input: Readable.from([]), protocol: 'scgi', scheme: 'http', inputTerminated: false });
    expect(env['gatewire.protocol']).toBe('scgi');
    expect(env['gatewire.request_id']).toBe(ctx.id);
  });
});

describe('E-3 defaults when a gateway omits variables', () => {
  test('SCRIPT_NAME, PATH_INFO, QUERY_STRING, SERVER_PROTOCOL, SERVER_NAME, SERVER_PORT', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET']], opts);
    expect(vars).toMatchObject({ SCRIPT_NAME: '', PATH_INFO: '', QUERY_STRING: '', SERVER_PROTOCOL: 'HTTP/1.0', SERVER_NAME: '127.0.0.1', SERVER_PORT: '80' });
  });
  test('SERVER_PORT defaults to 443 for https; QUERY_STRING comes from REQUEST_URI', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['HTTPS', 'on'], ['REQUEST_URI', '/p?a=1']], opts);
    expect(vars.SERVER_PORT).toBe('443');
    expect(vars.QUERY_STRING).toBe('a=1');
  });
  test('REQUEST_METHOD missing → 400', () => {
    expect(() => gatewayVars([['SCRIPT_NAME', '/x']], opts)).toThrow(expect.objectContaining({ status: 400 }));
  });
});

describe('E-4 CONTENT_LENGTH and CONTENT_TYPE', () => {
  test('empty strings are removed (nginx sends them when absent)', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['CONTENT_LENGTH', ''], ['CONTENT_TYPE', '']], opts);
    expect('CONTENT_LENGTH' in vars).toBe(false);
    expect('CONTENT_TYPE' in vars).toBe(false);
  });
  test.each(['+3', ' 3', '3 ', '3a', '-1', '0x10', '1e3'])('CONTENT_LENGTH %j → 400', (cl) => {
    expect(() => gatewayVars([['REQUEST_METHOD', 'POST'], ['CONTENT_LENGTH', cl]], opts)).toThrow(expect.objectContaining({ status: 400 }));
  });
  test('CONTENT_LENGTH over the limit → 413', () => {
    expect(() => gatewayVars([['REQUEST_METHOD', 'POST'], ['CONTENT_LENGTH', '1001']], opts)).toThrow(expect.objectContaining({ status: 413 }));
  });
  test('HTTP_CONTENT_LENGTH / HTTP_CONTENT_TYPE from a gateway are not passed on', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['HTTP_CONTENT_LENGTH', '5'], ['HTTP_CONTENT_TYPE', 'x']], opts);
    expect(vars.HTTP_CONTENT_LENGTH).toBeUndefined();
    expect(vars.HTTP_CONTENT_TYPE).toBeUndefined();
  });
});

describe('E-5 SCRIPT_NAME / PATH_INFO', () => {
  test('normalizeMount trims trailing slashes and adds the leading one', () => {
    expect(normalizeMount('')).toBe('');
    expect(normalizeMount('/')).toBe('');
    expect(normalizeMount('/app/')).toBe('/app');
    expect(normalizeMount('app')).toBe('/app');
  });
  test('5.1 split by the mount on a segment boundary only', () => {
    expect(splitMount('/app/a', '/app')).toEqual(['/app', '/a']);
    expect(splitMount('/app', '/app')).toEqual(['/app', '']);
    expect(splitMount('/application', '/app')).toBeNull();
    expect(splitMount('/x', '')).toEqual(['', '/x']);
  });
  test('5.1 the HTTP front answers 404 outside the mount', async () => {
    const res = await inject(() => [], { url: '/elsewhere', mount: '/app' }).catch((e: Error) => e);
    expect(res).toBeInstanceOf(Error);
  });
  test('5.2 nginx fastcgi_params (SCRIPT_NAME = whole URI, no PATH_INFO) repaired by the mount', () => {
    const vars = gatewayVars(
      [
        ['REQUEST_METHOD', 'GET'],
        ['SCRIPT_NAME', '/app/a b/c'],
        ['REQUEST_URI', '/app/a%20b/c?x=1+2&y'],
        ['QUERY_STRING', 'x=1+2&y'],
      ],
      { ...opts, mount: '/app' },
    );
    expect([vars.SCRIPT_NAME, vars.PATH_INFO]).toEqual(['/app', '/a b/c']);
  });
  test('5.2 nginx scgi_params (neither sent): from REQUEST_URI', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['REQUEST_URI', '/x/y%2Fz']], opts);
    expect([vars.SCRIPT_NAME, vars.PATH_INFO]).toEqual(['', '/x/y/z']);
  });
  test('5.2 absolute-form REQUEST_URI drops scheme and authority', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['REQUEST_URI', 'http://h:8/p/q?z']], opts);
    expect(vars.PATH_INFO).toBe('/p/q');
  });
  test('5.2 PATH_INFO sent and non-empty: kept as sent', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['SCRIPT_NAME', '/s'], ['PATH_INFO', '/p'], ['REQUEST_URI', '/other']], { ...opts, mount: '/m' });
    expect([vars.SCRIPT_NAME, vars.PATH_INFO]).toEqual(['/s', '/p']);
  });
  test('5.2 outside the mount: the sent SCRIPT_NAME is kept, PATH_INFO ""', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['SCRIPT_NAME', '/zzz'], ['REQUEST_URI', '/zzz']], { ...opts, mount: '/app' });
    expect([vars.SCRIPT_NAME, vars.PATH_INFO]).toEqual(['/zzz', '']);
  });
  test('5.2 falls back to DOCUMENT_URI without REQUEST_URI', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['DOCUMENT_URI', '/app/d']], { ...opts, mount: '/app' });
    expect([vars.SCRIPT_NAME, vars.PATH_INFO]).toEqual(['/app', '/d']);
  });
  test('5.2 uwsgi modifier1 30 strips SCRIPT_NAME from PATH_INFO on a segment boundary only', () => {
    const strip = { ...opts, stripScriptName: true };
    const a = gatewayVars([['REQUEST_METHOD', 'GET'], ['SCRIPT_NAME', '/mnt'], ['PATH_INFO', '/mnt/x']], strip);
    expect([a.SCRIPT_NAME, a.PATH_INFO]).toEqual(['/mnt', '/x']);
    const b = gatewayVars([['REQUEST_METHOD', 'GET'], ['SCRIPT_NAME', '/mnt'], ['PATH_INFO', '/mntx/y']], strip);
    expect(b.PATH_INFO).toBe('/mntx/y');
  });
  test('E-5.3 %2F decodes to /, a malformed % stays literal, a decoded NUL is refused', () => {
    expect(percentDecodePath('/a%2Fb')).toBe('/a/b');
    expect(percentDecodePath('/a%zz%4')).toBe('/a%zz%4');
    expect(percentDecodePath('/a%00b')).toBeNull();
    expect(() => gatewayVars([['REQUEST_METHOD', 'GET'], ['REQUEST_URI', '/a%00']], opts)).toThrow(RequestError);
  });
  test('invariant: SCRIPT_NAME + PATH_INFO == decoded request path (property)', () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9%._~ -]{0,8}$/);
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 5 }), fc.constantFrom('', '/app', '/a/b'), (segs, mount) => {
        const raw = `${mount}/${segs.map((s) => encodeURIComponent(s)).join('/')}`;
        const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['REQUEST_URI', raw]], { ...opts, mount });
        expect(`${vars.SCRIPT_NAME}${vars.PATH_INFO}`).toBe(percentDecodePath(raw));
        expect(vars.SCRIPT_NAME).toBe(mount);
      }),
    );
  });
});

describe('E-6 QUERY_STRING is never decoded or altered', () => {
  test('+, %20 and a bare key survive', async () => {
    const env = await seen('/p?x=1+2&y&z=%20%2B');
    expect(env.QUERY_STRING).toBe('x=1+2&y&z=%20%2B');
  });
});

describe('E-7 REQUEST_URI is the raw target', () => {
  test('kept encoded, with the query', async () => {
    const env = await seen('/a%20b/c?x=1');
    expect(env.REQUEST_URI).toBe('/a%20b/c?x=1');
  });
});

describe('E-8 SERVER_NAME from Host without port', () => {
  test('host:port, [v6]:port, plain', () => {
    expect(hostName('example.com:8080')).toBe('example.com');
    expect(hostName('[::1]:8080')).toBe('[::1]');
    expect(hostName('example.com')).toBe('example.com');
  });
  test('gateway SERVER_NAME is taken as sent, even "_"', () => {
    expect(gatewayVars([['REQUEST_METHOD', 'GET'], ['SERVER_NAME', '_']], opts).SERVER_NAME).toBe('_');
  });
});

describe('E-9 URL reconstruction', () => {
  test('prefers HTTP_HOST; otherwise SERVER_NAME and a non-default port; quotes the path', () => {
    expect(requestUrl({ HTTP_HOST: 'h:1', SCRIPT_NAME: '/a', PATH_INFO: '/b c', QUERY_STRING: 'q=1' }, 'http')).toBe('http://h:1/a/b%20c?q=1');
    expect(requestUrl({ SERVER_NAME: 's', SERVER_PORT: '8443', SCRIPT_NAME: '', PATH_INFO: '/' }, 'https')).toBe('https://s:8443/');
    expect(requestUrl({ SERVER_NAME: 's', SERVER_PORT: '443', SCRIPT_NAME: '', PATH_INFO: '/' }, 'https')).toBe('https://s/');
    expect(quotePath('/\u00c3\u00a9')).toBe('/%C3%A9');
  });
});

describe('E-10 url_scheme', () => {
  test.each([
    [{ HTTPS: 'on' }, 'https'],
    [{ HTTPS: 'ON' }, 'https'],
    [{ HTTPS: '1' }, 'https'],
    [{ HTTPS: 'off' }, 'http'],
    [{ REQUEST_SCHEME: 'https' }, 'https'],
    [{ HTTP_X_FORWARDED_PROTO: 'https' }, 'http'],
    [{}, 'http'],
  ])('%j → %s', (vars, scheme) => {
    expect(gatewayScheme(vars as Record<string, string>)).toBe(scheme);
  });
});

describe('E-11 body stream bounded by CONTENT_LENGTH', () => {
  const source = { pause: () => undefined, resume: () => undefined };
  test('bytes past CONTENT_LENGTH are not handed to the app', async () => {
    const input = new BodyInput(source, 5);
    expect(input.offer(Buffer.from('abcdefgh'))).toBe(5);
    const got: Buffer[] = [];
    for await (const c of input) got.push(c as Buffer);
    expect(Buffer.concat(got).toString()).toBe('abcde');
  });
  test('an early end is an error, not a short body', async () => {
    const input = new BodyInput(source, 10);
    input.offer(Buffer.from('abc'));
    input.finish();
    await expect((async () => {
      for await (const _ of input) void _;
    })()).rejects.toBeInstanceOf(TruncatedBodyError);
  });
  test('unknown length (input_terminated): ends with the stream, limit enforced', async () => {
    const input = new BodyInput(source, -1, 4);
    const failed = new Promise<Error>((resolve) => input.on('error', resolve));
    input.offer(Buffer.from('abc'));
    input.offer(Buffer.from('de'));
    expect(input.destroyed).toBe(true);
    expect((await failed).name).toBe('BodyLimitError');
  });
  test('backpressure: the source is paused when the app does not read, resumed when it does', async () => {
    const calls: string[] = [];
    const input = new BodyInput({ pause: () => calls.push('pause'), resume: () => calls.push('resume') }, -1);
    for (let i = 0; i < 4; i++) input.offer(Buffer.alloc(32 * 1024));
    expect(calls).toContain('pause');
    input.read();
    await new Promise((r) => setImmediate(r));
    expect(calls).toContain('resume');
  });
});

describe('E-12 request headers → HTTP_*', () => {
  test('underscore names dropped, Proxy dropped, duplicates joined, cookies with "; "', () => {
    const vars: Record<string, string> = {};
    mapRequestHeaders(['X-Auth-User', 'real', 'X-Auth_User', 'admin', 'Proxy', 'http://evil', 'Accept', 'a', 'accept', 'b', 'Cookie', 'x=1', 'Cookie', 'y=2', 'Content-Type', 'text/plain', 'Content-Length', '3'], vars);
    expect(vars.HTTP_X_AUTH_USER).toBe('real');
    expect(vars.HTTP_PROXY).toBeUndefined();
    expect(vars.HTTP_ACCEPT).toBe('a, b');
    expect(vars.HTTP_COOKIE).toBe('x=1; y=2');
    expect(vars.CONTENT_TYPE).toBe('text/plain');
    expect(vars.CONTENT_LENGTH).toBe('3');
    expect(vars.HTTP_CONTENT_TYPE).toBeUndefined();
  });
  test('from gateways: HTTP_PROXY dropped even when empty; repeated HTTP_* joined (nginx 1.22)', () => {
    const vars = gatewayVars(
      [
        ['REQUEST_METHOD', 'GET'],
        ['HTTP_PROXY', ''],
        ['HTTP_ACCEPT', 'a'],
        ['HTTP_ACCEPT', 'b'],
        ['HTTP_COOKIE', 'x=1'],
        ['HTTP_COOKIE', 'y=2'],
      ],
      opts,
    );
    expect('HTTP_PROXY' in vars).toBe(false);
    expect(vars.HTTP_ACCEPT).toBe('a, b');
    expect(vars.HTTP_COOKIE).toBe('x=1; y=2');
  });
  test('H-2 helper: only a single chunked coding is plain chunked', () => {
    expect(isPlainChunked('chunked')).toBe(true);
    expect(isPlainChunked(',chunked')).toBe(true);
    expect(isPlainChunked('CHUNKED')).toBe(true);
    expect(isPlainChunked('gzip, chunked')).toBe(false);
    expect(isPlainChunked('chunked, chunked')).toBe(false);
  });
});

describe('E-17 a Transfer-Encoding the web server already decoded is not passed on', () => {
  test.each([
    ['CONTENT_LENGTH first (nginx)', [['CONTENT_LENGTH', '7'], ['HTTP_TRANSFER_ENCODING', 'chunked']]],
    ['CONTENT_LENGTH after the field', [['HTTP_TRANSFER_ENCODING', 'chunked'], ['CONTENT_LENGTH', '7']]],
  ] as const)('gatewayVars: %s → no HTTP_TRANSFER_ENCODING', (_name, pairs) => {
    const vars = gatewayVars([['REQUEST_METHOD', 'POST'], ...pairs], opts);
    expect(vars.CONTENT_LENGTH).toBe('7');
    expect('HTTP_TRANSFER_ENCODING' in vars).toBe(false);
  });
  test('gatewayVars: without a CONTENT_LENGTH (a streamed body, nginx sends "") the field stays', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'POST'], ['CONTENT_LENGTH', ''], ['HTTP_TRANSFER_ENCODING', 'chunked']], opts);
    expect(vars.HTTP_TRANSFER_ENCODING).toBe('chunked');
  });
  test.each([fastcgiFront, scgiFront, uwsgiFront].map((f) => [f.name, f] as const))('over %s: the environ and a node handler see CONTENT_LENGTH 7 and no Transfer-Encoding', async (_name, front) => {
    const environApp: App = (environ, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'application/json']]);
      return [JSON.stringify({ te: environ.HTTP_TRANSFER_ENCODING ?? null, cl: environ.CONTENT_LENGTH ?? null })];
    };
    const nodeHandler = (req: IncomingMessage, res: ServerResponse): void => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(JSON.stringify({ te: req.headers['transfer-encoding'] ?? null, cl: req.headers['content-length'] ?? null, body: Buffer.concat(chunks).toString() })));
    };
    for (const [service, expected] of [
      [toService(environApp, 'environ', 'E-17 environ app'), { te: null, cl: '7' }],
      [toService(nodeHandler, 'node', 'E-17 node handler'), { te: null, cl: '7', body: 'chunked' }],
    ] as const) {
      const running = await front.start(service);
      try {
        const res = await running.request({ method: 'POST', path: '/te', body: 'chunked', headers: { 'Transfer-Encoding': 'chunked', 'Content-Type': 'text/plain' } });
        expect(res.status).toBe(200);
        expect(JSON.parse(res.body.toString())).toEqual(expected);
      } finally {
        await running.close();
      }
    }
  });
});

describe('E-13 HTTP_HOST verbatim', () => {
  test('the Host header as sent', async () => {
    const env = await seen('/', { headers: { Host: 'Example.COM:8080' } });
    expect(env.HTTP_HOST).toBe('Example.COM:8080');
    expect(env.SERVER_NAME).toBe('Example.COM');
  });
});

describe('E-14 REMOTE_ADDR', () => {
  test('IPv4-mapped IPv6 is normalized; real IPv6 is kept', () => {
    expect(normalizeRemoteAddr('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeRemoteAddr('::1')).toBe('::1');
    expect(normalizeRemoteAddr('10.0.0.1')).toBe('10.0.0.1');
  });
});

describe('E-15 other gateway variables pass through unchanged', () => {
  test('DOCUMENT_ROOT, SCRIPT_FILENAME, SSL_*, SetEnv-style names', () => {
    const vars = gatewayVars(
      [
        ['REQUEST_METHOD', 'GET'],
        ['DOCUMENT_ROOT', '/srv/www'],
        ['SCRIPT_FILENAME', 'proxy:fcgi://127.0.0.1:9000/x'],
        ['SSL_PROTOCOL', 'TLSv1.3'],
        ['MY_VAR', 'v'],
      ],
      opts,
    );
    expect(vars).toMatchObject({ DOCUMENT_ROOT: '/srv/www', SCRIPT_FILENAME: 'proxy:fcgi://127.0.0.1:9000/x', SSL_PROTOCOL: 'TLSv1.3', MY_VAR: 'v' });
  });
});

describe('E-16 multithread / multiprocess / run_once', () => {
  test('defaults: not multithreaded, not run once', async () => {
    const env = await seen('/');
    expect(env['gatewire.multithread']).toBe(false);
    expect(env['gatewire.run_once']).toBe(false);
    expect(env['gatewire.multiprocess']).toBe(false);
  });
  test('multiprocess is reported when set (workers)', () => {
    const env = makeEnviron({ REQUEST_METHOD: 'GET' }, new RequestContext(silentLogger()), { input: Readable.from([]), protocol: 'http', scheme: 'http', inputTerminated: false, multiprocess: true });
    expect(env['gatewire.multiprocess']).toBe(true);
  });
  test('the signal is created lazily but always works, even after an abort', () => {
    const ctx = new RequestContext(silentLogger());
    ctx.abort('gone');
    expect(ctx.signal.aborted).toBe(true);
  });
});

describe('E-5.2 with a mount, the mount decides', () => {
  const app = { mount: '/app', localAddress: '127.0.0.1', maxBodyBytes: 1000 };
  test('nginx uwsgi_params: PATH_INFO = whole path, no SCRIPT_NAME → split by the mount', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['PATH_INFO', '/app/a b'], ['REQUEST_URI', '/app/a%20b?q']], app);
    expect([vars.SCRIPT_NAME, vars.PATH_INFO]).toEqual(['/app', '/a b']);
  });
  test('already split on the mount by the web server (fastcgi_split_path_info): kept', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['SCRIPT_NAME', '/app'], ['PATH_INFO', '/x'], ['REQUEST_URI', '/app/x']], app);
    expect([vars.SCRIPT_NAME, vars.PATH_INFO]).toEqual(['/app', '/x']);
  });
  test('without REQUEST_URI or DOCUMENT_URI, SCRIPT_NAME + PATH_INFO is the path to split', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['SCRIPT_NAME', '/app/a'], ['PATH_INFO', '/b']], app);
    expect([vars.SCRIPT_NAME, vars.PATH_INFO]).toEqual(['/app', '/a/b']);
  });
  test('E-4: a CONTENT_LENGTH too long to be exact is over any limit (413), not malformed', () => {
    expect(() => gatewayVars([['REQUEST_METHOD', 'POST'], ['CONTENT_LENGTH', '99999999999999999999']], app)).toThrow(expect.objectContaining({ status: 413 }));
  });
});

describe('U-7 with E-5.2', () => {
  test('modifier1 30 with PATH_INFO equal to SCRIPT_NAME: ("/app", ""), not re-split', () => {
    const vars = gatewayVars([['REQUEST_METHOD', 'GET'], ['SCRIPT_NAME', '/app'], ['PATH_INFO', '/app'], ['REQUEST_URI', '/app']], { mount: '', localAddress: 'l', maxBodyBytes: 1, stripScriptName: true });
    expect([vars.SCRIPT_NAME, vars.PATH_INFO]).toEqual(['/app', '']);
  });
});
