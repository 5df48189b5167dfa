/** `serve APP --cgi-bin DIR`: the CGI mount gets its requests, the app the rest. */
import type { App } from '../src/app.js';
import { mountApp, parseInterpreters } from '../src/compose.js';
import { inject } from '../src/inject.js';
import { LoadError } from '../src/loader.js';

const seen = (tag: string): App => (environ, sr) => {
  sr('200 OK', [['Content-Type', 'text/plain']]);
  return [`${tag} ${environ.SCRIPT_NAME}|${environ.PATH_INFO}`];
};

describe('mountApp', () => {
  const app = mountApp('/cgi-bin', seen('cgi'), seen('app'));
  test('a path under the mount goes to the inner app, the mount moved into SCRIPT_NAME', async () => {
    expect((await inject(app, { url: '/cgi-bin/x.sh/rest' })).body.toString()).toBe('cgi /cgi-bin|/x.sh/rest');
    expect((await inject(app, { url: '/app/cgi-bin/x.sh', mount: '/app' })).body.toString()).toBe('cgi /app/cgi-bin|/x.sh');
  });
  test('on a segment boundary only; everything else goes to the app', async () => {
    expect((await inject(app, { url: '/cgi-binx/y' })).body.toString()).toBe('app |/cgi-binx/y');
    expect((await inject(app, { url: '/' })).body.toString()).toBe('app |/');
  });
  test("a web server's own split (nginx fastcgi_split_path_info: SCRIPT_NAME /cgi-bin/env.sh, PATH_INFO /a/b) goes to the inner app with the path whole below the mount", async () => {
    const call = (vars: Record<string, string>): Promise<string> =>
      new Promise((resolve) => {
        const environ = { SCRIPT_NAME: '', PATH_INFO: '', ...vars } as unknown as Parameters<App>[0];
        void app(environ, () => () => undefined);
        resolve(`${environ.SCRIPT_NAME}|${environ.PATH_INFO}`);
      });
    expect(await call({ SCRIPT_NAME: '/cgi-bin/env.sh', PATH_INFO: '/a/b c' })).toBe('/cgi-bin|/env.sh/a/b c');
    expect(await call({ SCRIPT_NAME: '/cgi-bin', PATH_INFO: '/x.sh' })).toBe('/cgi-bin|/x.sh');
    // Not under the mount however it is split: the app's, untouched.
    expect(await call({ SCRIPT_NAME: '/cgi-binx', PATH_INFO: '/y' })).toBe('/cgi-binx|/y');
    expect(await call({ SCRIPT_NAME: '/app', PATH_INFO: '/x' })).toBe('/app|/x');
  });
  test('without an app, the rest is 404', async () => {
    expect((await inject(mountApp('/cgi-bin', seen('cgi')), { url: '/elsewhere' })).status).toBe(404);
  });
});

describe('--cgi-interpreters', () => {
  test('presets and .ext=COMMAND', () => {
    const table = parseInterpreters('.py, pl ,.rb=ruby');
    expect(Object.keys(table)).toEqual(['.py', '.pl', '.rb']);
    expect(table['.rb']).toBe('ruby');
  });
  test('an extension without a preset needs a command', () => {
    expect(() => parseInterpreters('.lua')).toThrow(LoadError);
  });
});
