/** The response rules R-1..R-11 (docs/conformance.md §8.1), enforced once in call.ts. */
import type { App, Body, HeaderList } from '../src/app.js';
import { inject } from '../src/inject.js';
import { validateApp, ValidationError, checkEnviron } from '../src/validate.js';
import type { Environ } from '../src/app.js';
import { silentLogger } from '../src/log.js';

/** An app that starts with the given status and headers and returns `body`. */
const simple =
  (status: string, headers: HeaderList, body: Body = ['ok']): App =>
  (_env, sr) => {
    sr(status, headers);
    return body;
  };

async function statusOf(app: App, method = 'GET'): Promise<number> {
  return (await inject(app, { method })).status;
}

describe('R-1 status syntax', () => {
  test.each(['200', '2000 OK', '099 Low', 'abc OK', '200OK', '200 OK\r\nX: y', '200 O\0K', ' 200 OK'])('%j → 500', async (status) => {
    expect(await statusOf(simple(status, []))).toBe(500);
  });
  test.each(['100 Continue', '101 Switching Protocols', '103 Early Hints'])('final %j → 500', async (status) => {
    expect(await statusOf(simple(status, []))).toBe(500);
  });
  test('"200 " with an empty reason is accepted; reason kept', async () => {
    const res = await inject(simple('299 Custom Thing', []));
    expect(res.status).toBe(299);
    expect(res.reason).toBe('Custom Thing');
    expect(await statusOf(simple('200 ', []))).toBe(200);
  });
});

describe('R-2 header syntax', () => {
  test.each([
    ['Bad Name', 'v'],
    ['X:Y', 'v'],
    ['', 'v'],
    ['X-A', 'a\r\nInjected: 1'],
    ['X-A', 'a\nb'],
    ['X-A', 'a\0b'],
  ])('[%j, %j] → 500', async (name, value) => {
    expect(await statusOf(simple('200 OK', [[name, value]]))).toBe(500);
  });
  test('headers that are not [string, string] pairs → 500', async () => {
    expect(await statusOf(simple('200 OK', [['X-A'] as unknown as [string, string]]))).toBe(500);
    expect(await statusOf(simple('200 OK', [['X-A', 5] as unknown as [string, string]]))).toBe(500);
    expect(await statusOf(simple('200 OK', 'X-A: 1' as unknown as HeaderList))).toBe(500);
  });
  test('obs-text (latin1 0x80–0xFF) and HTAB in values are allowed', async () => {
    const res = await inject(simple('200 OK', [['X-Name', 'caf\u00e9\tbar']]));
    expect(res.status).toBe(200);
    expect(res.headers).toContainEqual(['X-Name', 'caf\u00e9\tbar']);
  });
});

describe('R-3 start_response twice', () => {
  test('without exc_info → 500', async () => {
    const app: App = (_e, sr) => {
      sr('200 OK', []);
      sr('404 Not Found', []);
      return [];
    };
    expect(await statusOf(app)).toBe(500);
  });
  test('with exc_info before headers were sent → the new status wins', async () => {
    const app: App = (_e, sr) => {
      sr('200 OK', [['X-First', '1']]);
      sr('503 Service Unavailable', [['Retry-After', '1']], new Error('backend down'));
      return ['later\n'];
    };
    const res = await inject(app);
    expect(res.status).toBe(503);
    expect(res.headers).toEqual([['Retry-After', '1'], ['Content-Length', '6']]);
  });
  test('with exc_info after headers were sent → re-raised, the response is aborted', async () => {
    const app: App = (_e, sr) => {
      sr('200 OK', []);
      return (async function* () {
        yield 'first';
        sr('500 Internal Server Error', [], new Error('late'));
        yield 'never';
      })();
    };
    const res = await inject(app);
    expect(res.status).toBe(200);
    expect(res.aborted).toBe(true);
    expect(res.body.toString()).toBe('first');
  });
});

describe('R-4 headers go out with the first non-empty chunk', () => {
  test('empty chunks then an error → still a clean 500', async () => {
    const app: App = (_e, sr) => {
      sr('200 OK', []);
      return (function* () {
        yield '';
        yield new Uint8Array(0);
        throw new Error('late but before any byte');
      })();
    };
    const res = await inject(app);
    expect(res.status).toBe(500);
    expect(res.aborted).toBe(false);
  });
  test('a chunk before start_response → 500', async () => {
    const app: App = () => ['too early'];
    expect(await statusOf(app)).toBe(500);
  });
  test('start_response may be called lazily inside a generator', async () => {
    const app: App = (_e, sr) =>
      (function* () {
        sr('200 OK', [['Content-Type', 'text/plain']]);
        yield 'lazy';
      })();
    const res = await inject(app);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('lazy');
  });
  test('the app returning without start_response → 500', async () => {
    expect(await statusOf(() => [])).toBe(500);
  });
  test('a bare string, bytes or a non-iterable as body → 500', async () => {
    for (const body of ['text', Buffer.from('x'), 42, null]) {
      const app = ((_e: Environ, sr: (s: string, h: HeaderList) => unknown) => {
        sr('200 OK', []);
        return body;
      }) as unknown as App;
      expect(await statusOf(app)).toBe(500);
    }
  });
  test('legacy write() sends headers then the chunk, before the iterable', async () => {
    const app: App = (_e, sr) => {
      const write = sr('200 OK', [['Content-Type', 'text/plain']]);
      write('written-');
      return ['returned'];
    };
    const res = await inject(app);
    expect(res.body.toString()).toBe('written-returned');
  });
});

describe('R-5 the body close() always runs', () => {
  const closing = (): { app: App; closed: () => number } => {
    let closed = 0;
    return {
      closed: () => closed,
      app: (env, sr) => {
        sr('200 OK', []);
        const path = env.PATH_INFO;
        return {
          *[Symbol.iterator]() {
            yield 'a';
            if (path === '/fail') throw new Error('fail in body');
            yield 'b';
          },
          close() {
            closed++;
          },
        };
      },
    };
  };
  test('on a normal end', async () => {
    const c = closing();
    await inject(c.app, { url: '/' });
    expect(c.closed()).toBe(1);
  });
  test('on an error in the body', async () => {
    const c = closing();
    await inject(c.app, { url: '/fail' });
    expect(c.closed()).toBe(1);
  });
  test('on a client abort (generator finally runs too)', async () => {
    let finallyRan = false;
    let closed = 0;
    const app: App = (_e, sr) => {
      sr('200 OK', []);
      const gen = (function* () {
        try {
          for (;;) yield Buffer.alloc(1000);
        } finally {
          finallyRan = true;
        }
      })();
      return Object.assign(gen, { close: () => closed++ });
    };
    const res = await inject(app, { abortAfterBytes: 5000 });
    expect(res.aborted).toBe(true);
    expect(finallyRan).toBe(true);
    expect(closed).toBe(1);
  });
  test('the validator reports bodies left open (none here)', async () => {
    const app = validateApp(simple('200 OK', []));
    await inject(app);
    await inject(app, { method: 'HEAD' });
    expect(app.openBodies()).toBe(0);
  });
});

describe('R-6 hop-by-hop headers from the app are refused', () => {
  test.each(['Connection', 'Keep-Alive', 'Proxy-Connection', 'Transfer-Encoding', 'TE', 'Trailer', 'Upgrade', 'transfer-encoding'])('%s → 500', async (name) => {
    expect(await statusOf(simple('200 OK', [[name, 'x']]))).toBe(500);
  });
});

describe('R-7 a Status header is refused', () => {
  test.each(['Status', 'status', 'STATUS'])('%s → 500', async (name) => {
    expect(await statusOf(simple('200 OK', [[name, '404 Not Found']]))).toBe(500);
  });
});

describe('R-8 Content-Length is exact', () => {
  test('body longer than declared: only the declared bytes go out, then the response aborts', async () => {
    const res = await inject(simple('200 OK', [['Content-Length', '3']], ['abcdef']));
    expect(res.body.toString()).toBe('abc');
    expect(res.aborted).toBe(true);
  });
  test('body shorter than declared: aborted (the peer must see an error)', async () => {
    const app: App = (_e, sr) => {
      sr('200 OK', [['Content-Length', '10']]);
      return (async function* () {
        yield 'abc';
      })();
    };
    const res = await inject(app);
    expect(res.aborted).toBe(true);
  });
  test.each(['abc', '-1', '+3', '3, 3', ' 3', ''])('Content-Length %j → 500', async (v) => {
    expect(await statusOf(simple('200 OK', [['Content-Length', v]]))).toBe(500);
  });
  test('two Content-Length headers → 500', async () => {
    expect(await statusOf(simple('200 OK', [['Content-Length', '2'], ['Content-Length', '2']], ['ok']))).toBe(500);
  });
  test('an exact Content-Length is kept; a one-chunk body gets one computed', async () => {
    const declared = await inject(simple('200 OK', [['Content-Length', '2']], ['ok']));
    expect(declared.headers).toEqual([['Content-Length', '2']]);
    expect(declared.aborted).toBe(false);
    const computed = await inject(simple('200 OK', [], ['héllo']));
    expect(computed.headers).toEqual([['Content-Length', '6']]);
  });
});

describe('R-9 HEAD, 204, 304', () => {
  test('HEAD: headers as for GET (same computed length), no body bytes', async () => {
    const get = await inject(simple('200 OK', [['Content-Type', 'text/plain']], ['four']));
    const head = await inject(simple('200 OK', [['Content-Type', 'text/plain']], ['four']), { method: 'HEAD' });
    expect(head.headers).toEqual(get.headers);
    expect(head.body.length).toBe(0);
  });
  test('204: body dropped, Content-Length removed', async () => {
    const res = await inject(simple('204 No Content', [['Content-Length', '4']], ['body']));
    expect(res.status).toBe(204);
    expect(res.body.length).toBe(0);
    expect(res.headers).toEqual([]);
  });
  test('304: body dropped', async () => {
    const res = await inject(simple('304 Not Modified', [['ETag', '"1"']], ['body']));
    expect(res.body.length).toBe(0);
    expect(res.headers).toEqual([['ETag', '"1"']]);
  });
});

describe('R-10 repeated fields stay separate', () => {
  test('two Set-Cookie and two Vary', async () => {
    const res = await inject(simple('200 OK', [['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2'], ['Vary', 'A'], ['Vary', 'B']]));
    expect(res.headers.filter(([n]) => n === 'Set-Cookie')).toEqual([['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']]);
    expect(res.headers.filter(([n]) => n === 'Vary')).toHaveLength(2);
  });
});

describe('R-11 error after headers → aborted, not ended cleanly', () => {
  test('a throwing async body after the first chunk', async () => {
    const app: App = (_e, sr) => {
      sr('200 OK', []);
      return (async function* () {
        yield 'part';
        throw new Error('boom');
      })();
    };
    const res = await inject(app);
    expect(res.aborted).toBe(true);
    expect(res.body.toString()).toBe('part');
  });
  test('error before headers → 500 with the request id, no stack', async () => {
    const res = await inject(() => {
      throw new Error('secret detail');
    });
    expect(res.status).toBe(500);
    expect(res.body.toString()).toBe(`Internal Server Error\nrequest id: ${res.requestId}\n`);
  });
  test('a rejected promise from an async app → 500', async () => {
    expect(await statusOf(async () => Promise.reject(new Error('nope')))).toBe(500);
  });
});

describe('validator (wsgiref.validate in spirit)', () => {
  test('accepts what inject builds', async () => {
    const res = await inject(validateApp(simple('200 OK', [['Content-Type', 'text/plain']])), { url: '/a?b', headers: { 'X-A': '1' } });
    expect(res.status).toBe(200);
  });
  test('rejects a bad environ with a message quoting the value', () => {
    const bad = { REQUEST_METHOD: 'GET', SCRIPT_NAME: '/', PATH_INFO: '', QUERY_STRING: '', SERVER_NAME: 'x', SERVER_PORT: '80', SERVER_PROTOCOL: 'HTTP/1.1' } as unknown as Environ;
    expect(() => checkEnviron(bad)).toThrow(ValidationError);
  });
  test('flags an app that yields a chunk before start_response (the exchange answers 500)', async () => {
    let seen: unknown;
    const app = validateApp((() => ['early']) as App);
    const res = await inject(app, {}, { ...silentLogger(), error: (_m, meta) => (seen = meta) });
    expect(res.status).toBe(500);
    expect(String((seen as { stack?: string } | undefined)?.stack)).toMatch(/ValidationError: the body produced a chunk before start_response/);
  });
  test('flags a Status header and hop-by-hop headers in start_response', async () => {
    const errors: string[] = [];
    for (const h of [['Status', '200'], ['Connection', 'close']] as Array<[string, string]>) {
      const app = validateApp((_e, sr) => {
        try {
          sr('200 OK', [h]);
        } catch (e) {
          errors.push((e as Error).name);
          throw e;
        }
        return [];
      });
      expect((await inject(app)).status).toBe(500);
    }
    expect(errors).toEqual(['ValidationError', 'ValidationError']);
  });
});
