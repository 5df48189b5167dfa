/** Option parsing and resolution (flag > GATEWIRE_* env > default), address syntax. */
import { Option } from 'commander';
import { OptionError, SERVE_OPTIONS, parseAddress, parseDuration, parseSize, resolveOptions } from '../src/options.js';

describe('options', () => {
  test('every option key is the attribute name commander gives its flag (a mismatch silently drops the flag)', () => {
    for (const spec of SERVE_OPTIONS) expect(new Option(spec.flags).attributeName()).toBe(spec.key);
  });
  test('every option has a GATEWIRE_* variable and a description', () => {
    for (const spec of SERVE_OPTIONS) {
      expect(spec.env).toMatch(/^GATEWIRE_[A-Z_]+$/);
      expect(spec.description.length).toBeGreaterThan(10);
    }
  });
  test('precedence: flag > environment > default', () => {
    expect(resolveOptions({}, {}).mount).toBe('');
    expect(resolveOptions({}, { GATEWIRE_MOUNT: '/env' }).mount).toBe('/env');
    expect(resolveOptions({ mount: '/flag' }, { GATEWIRE_MOUNT: '/env' }).mount).toBe('/flag');
    expect(resolveOptions({}, { GATEWIRE_HTTP: '8080,unix:/tmp/s' }).http).toEqual([
      { kind: 'tcp', host: undefined, port: 8080 },
      { kind: 'unix', path: '/tmp/s' },
    ]);
  });
  test('defaults', () => {
    const o = resolveOptions({}, {});
    expect(o).toMatchObject({ workers: 1, logLevel: 'info', logFormat: 'text', maxHeaderBytes: 16384, maxBodyBytes: 1024 ** 3, headersTimeout: 60000, keepAliveTimeout: 5000 });
  });
  test('ADDR forms', () => {
    expect(parseAddress('8080')).toEqual({ kind: 'tcp', host: undefined, port: 8080 });
    expect(parseAddress('127.0.0.1:9000')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 9000 });
    expect(parseAddress('[::1]:9000')).toEqual({ kind: 'tcp', host: '::1', port: 9000 });
    expect(parseAddress('unix:/run/g.sock')).toEqual({ kind: 'unix', path: '/run/g.sock' });
    expect(parseAddress('fd:0')).toEqual({ kind: 'fd', fd: 0 });
  });
  test.each(['', 'x', 'host:', ':80', '70000', '::1:80', 'unix:', 'fd:', 'fd:a:b', 'h:8o'])('bad ADDR %j → OptionError', (a) => {
    expect(() => parseAddress(a)).toThrow(OptionError);
  });
  test('sizes and durations', () => {
    expect(parseSize('16k')).toBe(16384);
    expect(parseSize('1MiB')).toBe(1048576);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('2m')).toBe(120000);
    expect(() => parseSize('1x')).toThrow(OptionError);
    expect(() => parseDuration('soon')).toThrow(OptionError);
  });
});

describe('CGI options and composition', () => {
  test('--cgi-pass-auth is a value-less flag; its variable takes true/false', () => {
    expect(resolveOptions({}, {}).cgiPassAuth).toBe(false);
    expect(resolveOptions({ cgiPassAuth: true }, {}).cgiPassAuth).toBe(true);
    expect(resolveOptions({}, { GATEWIRE_CGI_PASS_AUTH: '1' }).cgiPassAuth).toBe(true);
    expect(() => resolveOptions({}, { GATEWIRE_CGI_PASS_AUTH: 'maybe' })).toThrow(OptionError);
  });
  test('--cgi-document-root DIR and its variable; unset by default (the cgi-bin folder is used)', () => {
    expect(resolveOptions({}, {}).cgiDocumentRoot).toBeUndefined();
    expect(resolveOptions({ cgiDocumentRoot: '/srv/www' }, {}).cgiDocumentRoot).toBe('/srv/www');
    expect(resolveOptions({}, { GATEWIRE_CGI_DOCUMENT_ROOT: '/srv/env' }).cgiDocumentRoot).toBe('/srv/env');
  });
  test('--cgi-follow-symlinks is a value-less flag, off by default; its variable takes true/false', () => {
    expect(resolveOptions({}, {}).cgiFollowSymlinks).toBe(false);
    expect(resolveOptions({ cgiFollowSymlinks: true }, {}).cgiFollowSymlinks).toBe(true);
    expect(resolveOptions({}, { GATEWIRE_CGI_FOLLOW_SYMLINKS: 'yes' }).cgiFollowSymlinks).toBe(true);
    expect(() => resolveOptions({}, { GATEWIRE_CGI_FOLLOW_SYMLINKS: 'maybe' })).toThrow(OptionError);
  });
  test('CGI defaults', () => {
    expect(resolveOptions({}, {})).toMatchObject({ cgiBin: undefined, cgiMount: '/cgi-bin', cgiTimeout: 60000, cgiMaxQueue: 64 });
  });
});
