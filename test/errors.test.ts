/**
 * The error taxonomy: one base class (GatewireError), one code union (ErrorCode), one row per
 * code in docs/errors.md.
 *
 * (a) the code objects and docs/errors.md list the same codes, once each;
 * (b) every error class in src/ and protocols/ extends GatewireError, and one instance of each
 *     exported class carries a code of the union, keeps its `name`, and is the class its row
 *     names;
 * (c) a ProtocolError's message carries its codec's prefix exactly once.
 *
 * Some checks are types, checked by `npx tsc -p tsconfig.json --noEmit` (ts-jest runs without
 * type diagnostics here): they are marked "compile-time" and fail to type-check with the two
 * types named in the error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AppContractError } from '../src/app.js';
import { NotCgiError, CgiStalled, CgiTermination } from '../src/fronts/cgi.js';
import { CloseWithoutReply } from '../src/fronts/single-request.js';
import { SpoolLimitError } from '../src/cgi-host/spool.js';
import { UpstreamError } from '../src/upstream/common.js';
import { RequestFailure } from '../src/upstream/request.js';
import { CompareRequestError } from '../src/compare/page.js';
import { RequestError } from '../src/environ.js';
import { type ErrorCode, ListenError, ServerErrorCode } from '../src/errors.js';
import { BodyLimitError, TruncatedBodyError } from '../src/input.js';
import { LoadError } from '../src/loader.js';
import { OptionError } from '../src/options.js';
import { ValidationError } from '../src/validate.js';
import { type CodecName, GatewireError, LimitError, ProtocolError, type RegisteredErrorCode } from '../protocols/errors.js';
import { CgiResponseError, CgiResponseParser, NphResponseParser, parseCgiResponse } from '../protocols/cgi/index.js';
import {
  FastcgiErrorCode,
  FastcgiResponseDecoder,
  ParamsDecoder,
  RecordDecoder,
  decodeBeginRequest,
  decodeEndRequest,
  decodeParams,
  decodeUnknownType,
  encodeFastcgiRequest,
} from '../protocols/fastcgi/index.js';
import { ScgiDecoder, ScgiErrorCode, decodeScgiHead, encodeScgiRequest } from '../protocols/scgi/index.js';
import { UwsgiDecoder, UwsgiErrorCode, decodeUwsgiHead, encodeUwsgiRequest } from '../protocols/uwsgi/index.js';

const ROOT = path.resolve(__dirname, '..');
const DOC = 'docs/errors.md';

// ---------------------------------------------------------------------------------------------
// The codes, collected at run time from the `as const` objects
// ---------------------------------------------------------------------------------------------

/** Every code object, with the prefix its codes share. Add a new one here and in ErrorCode. */
const CODE_OBJECTS = {
  FCGI_: FastcgiErrorCode,
  SCGI_: ScgiErrorCode,
  UWSGI_: UwsgiErrorCode,
  CGI_: CgiResponseError,
  GATEWIRE_: ServerErrorCode,
} as const;
type CodeObjects = typeof CODE_OBJECTS;
type CollectedCode = { [K in keyof CodeObjects]: CodeObjects[K][keyof CodeObjects[K]] }[keyof CodeObjects];

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** Compile-time: CODE_OBJECTS holds exactly the codes of ErrorCode (a code object missing here, or an extra one). */
const collectedIsErrorCode: Equal<CollectedCode, ErrorCode> = true;
/** Compile-time: the declaration merging of src/errors.ts reached GatewireError, and adds nothing but ErrorCode. */
const registryIsErrorCode: Equal<RegisteredErrorCode, ErrorCode> = true;
const baseCodeIsErrorCode: Equal<GatewireError['code'], ErrorCode> = true;

function narrowedByInstanceof(err: unknown): ErrorCode | undefined {
  // Compile-time: instanceof gives the precise code type, not `any` (assigning to `never` would fail).
  if (err instanceof GatewireError) {
    const code: ErrorCode = err.code;
    // @ts-expect-error: a code is never an arbitrary string
    const bogus: typeof err.code = 'NOT_A_CODE';
    void bogus;
    return code;
  }
  return undefined;
}

const ALL_CODES: ReadonlyArray<{ code: string; object: string }> = Object.entries(CODE_OBJECTS).flatMap(([prefix, object]) =>
  Object.values(object as Record<string, string>).map((code) => ({ code, object: prefix })),
);
const CODE_SET: ReadonlySet<string> = new Set(ALL_CODES.map((c) => c.code));

// ---------------------------------------------------------------------------------------------
// docs/errors.md
// ---------------------------------------------------------------------------------------------

interface DocRow {
  code: string;
  cls: string;
  meaning: string;
  client: string;
  line: number;
}

/** The rows `| \`CODE\` | Class | meaning | client's view |` of docs/errors.md. */
function docRows(): DocRow[] {
  const text = fs.readFileSync(path.join(ROOT, DOC), 'utf8');
  const rows: DocRow[] = [];
  text.split('\n').forEach((line, i) => {
    const m = /^\|\s*`([^`]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (m === null) return;
    const cells = m[2]!.split('|').map((c) => c.trim());
    rows.push({ code: m[1]!, cls: cells[0] ?? '', meaning: cells[1] ?? '', client: cells[2] ?? '', line: i + 1 });
  });
  return rows;
}

// ---------------------------------------------------------------------------------------------
// The error classes of src/ and protocols/, found in the source text
// ---------------------------------------------------------------------------------------------

interface ClassDecl {
  name: string;
  parent: string;
  file: string;
  exported: boolean;
  abstract: boolean;
}

const BUILTIN_ERRORS = new Set(['Error', 'TypeError', 'RangeError', 'SyntaxError', 'ReferenceError', 'EvalError', 'URIError', 'AggregateError']);

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) sourceFiles(rel, out);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

function classDecls(): ClassDecl[] {
  const decls: ClassDecl[] = [];
  const re = /^[ \t]*(export[ \t]+)?(abstract[ \t]+)?class[ \t]+(\w+)(?:<[^>{]*>)?[ \t]+extends[ \t]+([\w.]+)/gm;
  for (const file of [...sourceFiles('src'), ...sourceFiles('protocols')]) {
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
    for (const m of text.matchAll(re)) decls.push({ name: m[3]!, parent: m[4]!, file, exported: m[1] !== undefined, abstract: m[2] !== undefined });
  }
  return decls;
}

/** The class names from `name` up its `extends` chain, as far as the source declares them. */
function chain(name: string, byName: ReadonlyMap<string, ClassDecl>): string[] {
  const out = [name];
  let decl = byName.get(name);
  while (decl !== undefined && !out.includes(decl.parent)) {
    out.push(decl.parent);
    decl = byName.get(decl.parent);
  }
  return out;
}

const DECLS = classDecls();
const BY_NAME = new Map(DECLS.map((d) => [d.name, d]));
const ERROR_DECLS = DECLS.filter((d) => BUILTIN_ERRORS.has(chain(d.name, BY_NAME).at(-1)!));

/**
 * One instance of every exported error class, and the `name` it must keep (classes that set
 * none keep Error's). A new exported error class needs a line here.
 */
const SAMPLES: Record<string, { make: () => Error; name: string }> = {
  ProtocolError: { make: () => new ProtocolError('fastcgi', FastcgiErrorCode.BadVersion, 'sample'), name: 'ProtocolError' },
  LimitError: { make: () => new LimitError('scgi', ScgiErrorCode.HeadTooLarge, 'sample', 'maxNetstringLength'), name: 'LimitError' },
  RequestError: { make: () => new RequestError(400, 'sample'), name: 'RequestError' },
  AppContractError: { make: () => new AppContractError('sample'), name: 'AppContractError' },
  LoadError: { make: () => new LoadError('sample'), name: 'LoadError' },
  OptionError: { make: () => new OptionError('sample'), name: 'OptionError' },
  ListenError: { make: () => new ListenError('sample'), name: 'ListenError' },
  ValidationError: { make: () => new ValidationError('sample'), name: 'ValidationError' },
  TruncatedBodyError: { make: () => new TruncatedBodyError('sample'), name: 'TruncatedBodyError' },
  BodyLimitError: { make: () => new BodyLimitError('sample'), name: 'BodyLimitError' },
  NotCgiError: { make: () => new NotCgiError('sample'), name: 'NotCgiError' },
  CgiTermination: { make: () => new CgiTermination('sample'), name: 'CgiTermination' },
  CgiStalled: { make: () => new CgiStalled('sample'), name: 'CgiStalled' },
  CloseWithoutReply: { make: () => new CloseWithoutReply('sample'), name: 'Error' },
  SpoolLimitError: { make: () => new SpoolLimitError('sample'), name: 'SpoolLimitError' },
  UpstreamError: { make: () => new UpstreamError('sample', 502), name: 'UpstreamError' },
  RequestFailure: { make: () => new RequestFailure('connect', 'sample'), name: 'RequestFailure' },
  CompareRequestError: { make: () => new CompareRequestError(400, 'sample'), name: 'CompareRequestError' },
};

// ---------------------------------------------------------------------------------------------

describe('error codes', () => {
  test('compile-time checks hold (see `npx tsc`): the collected objects, the registry and the base agree on ErrorCode', () => {
    expect({ collectedIsErrorCode, registryIsErrorCode, baseCodeIsErrorCode }).toEqual({
      collectedIsErrorCode: true,
      registryIsErrorCode: true,
      baseCodeIsErrorCode: true,
    });
    expect(narrowedByInstanceof(new LoadError('x'))).toBe(ServerErrorCode.Load);
  });

  test('every code is unique across the code objects and carries its object prefix', () => {
    const seen = new Map<string, string>();
    const duplicates: string[] = [];
    const badPrefix: string[] = [];
    for (const { code, object } of ALL_CODES) {
      if (seen.has(code)) duplicates.push(`${code} (in ${seen.get(code)!} and ${object})`);
      seen.set(code, object);
      if (!code.startsWith(object) || !/^[A-Z][A-Z0-9_]*[A-Z0-9]$/.test(code)) badPrefix.push(`${code} (expected ${object}…, upper-case)`);
    }
    expect({ duplicates, badPrefix }).toEqual({ duplicates: [], badPrefix: [] });
  });

  test(`every code of ErrorCode has exactly one row in ${DOC}, and every row's code exists`, () => {
    const rows = docRows();
    const counts = new Map<string, number>();
    for (const r of rows) counts.set(r.code, (counts.get(r.code) ?? 0) + 1);
    const missingFromDoc = ALL_CODES.map((c) => c.code).filter((c) => !counts.has(c));
    const unknownInDoc = rows.filter((r) => !CODE_SET.has(r.code)).map((r) => `${r.code} (${DOC}:${r.line})`);
    const twiceInDoc = [...counts].filter(([, n]) => n > 1).map(([c, n]) => `${c} (${n} rows)`);
    expect({ missingFromDoc, unknownInDoc, twiceInDoc }).toEqual({ missingFromDoc: [], unknownInDoc: [], twiceInDoc: [] });
  });

  test(`every row of ${DOC} names a class, a meaning and the client's view`, () => {
    const incomplete = docRows()
      .filter((r) => r.cls === '' || r.meaning === '' || r.client === '')
      .map((r) => `${r.code} (${DOC}:${r.line})`);
    const unknownClass = docRows()
      .filter((r) => r.cls !== '' && !ERROR_DECLS.some((d) => d.name === r.cls))
      .map((r) => `${r.code}: ${r.cls} (${DOC}:${r.line}) is no error class of src/ or protocols/`);
    expect({ incomplete, unknownClass }).toEqual({ incomplete: [], unknownClass: [] });
  });
});

describe('error classes', () => {
  test('the source scan finds the error classes (sanity check of the scan itself)', () => {
    const names = ERROR_DECLS.map((d) => d.name);
    expect(names).toEqual(expect.arrayContaining(['GatewireError', 'ProtocolError', 'LimitError', 'RequestError', 'PeerGone', 'ListenError']));
  });

  test('every error class in src/ and protocols/ extends GatewireError', () => {
    const notGatewireErrors = ERROR_DECLS.filter((d) => d.name !== 'GatewireError' && !chain(d.name, BY_NAME).includes('GatewireError')).map(
      (d) => `${d.name} (${d.file}) extends ${chain(d.name, BY_NAME).slice(1).join(' → ')}`,
    );
    expect({ notGatewireErrors }).toEqual({ notGatewireErrors: [] });
  });

  test('every error class has a row in the docs (its code names it)', () => {
    const documented = new Set(docRows().map((r) => r.cls));
    const undocumented = ERROR_DECLS.filter((d) => !d.abstract && !documented.has(d.name)).map((d) => `${d.name} (${d.file})`);
    expect({ undocumented }).toEqual({ undocumented: [] });
  });

  test('every exported error class has a sample in this test, and the sample is that export', () => {
    const exported = ERROR_DECLS.filter((d) => d.exported && !d.abstract);
    const withoutSample = exported.filter((d) => SAMPLES[d.name] === undefined).map((d) => `${d.name} (${d.file}): add it to SAMPLES`);
    const notTheExport: string[] = [];
    for (const d of exported) {
      const sample = SAMPLES[d.name];
      if (sample === undefined) continue;
      const mod = require(path.join(ROOT, d.file)) as Record<string, unknown>;
      if (mod[d.name] !== sample.make().constructor) notTheExport.push(`${d.name}: the sample is not an instance of ${d.file}'s export`);
    }
    const staleSamples = Object.keys(SAMPLES).filter((name) => !exported.some((d) => d.name === name));
    expect({ withoutSample, notTheExport, staleSamples }).toEqual({ withoutSample: [], notTheExport: [], staleSamples: [] });
  });

  const rowsByCode = new Map(docRows().map((r) => [r.code, r]));
  test.each(Object.keys(SAMPLES))('%s: a GatewireError with a code of the union, its own name, and its class in its row', (className) => {
    const sample = SAMPLES[className]!;
    const err = sample.make();
    expect({ className, isError: err instanceof Error, isGatewireError: err instanceof GatewireError }).toEqual({ className, isError: true, isGatewireError: true });
    const code = (err as GatewireError).code;
    expect({ className, code, codeInUnion: CODE_SET.has(code) }).toEqual({ className, code, codeInUnion: true });
    expect({ className, name: err.name }).toEqual({ className, name: sample.name });
    expect({ className, code, rowClass: rowsByCode.get(code)?.cls }).toEqual({ className, code, rowClass: className });
  });

  test('each server code belongs to one class: its row names a class that carries it', () => {
    const carried = new Map<string, string>();
    for (const [className, sample] of Object.entries(SAMPLES)) carried.set((sample.make() as GatewireError).code, className);
    carried.set(ServerErrorCode.PeerGone, 'PeerGone'); // not exported: its code is checked by the compiler only
    const mismatched = Object.values(ServerErrorCode)
      .filter((code) => rowsByCode.get(code)?.cls !== carried.get(code))
      .map((code) => `${code}: row says ${rowsByCode.get(code)?.cls ?? '(none)'}, carried by ${carried.get(code) ?? '(no sample)'}`);
    expect({ mismatched }).toEqual({ mismatched: [] });
  });
});

describe('ProtocolError messages', () => {
  const CODECS: readonly CodecName[] = ['fastcgi', 'scgi', 'uwsgi', 'cgi'];

  /** The message starts with `<protocol>: ` and carries no second `<protocol>: `. */
  function prefixProblem(err: ProtocolError): string | undefined {
    const prefix = `${err.protocol}: `;
    const count = err.message.match(new RegExp(`\\b${err.protocol}: `, 'g'))?.length ?? 0;
    if (!err.message.startsWith(prefix)) return `${err.code}: ${JSON.stringify(err.message)} does not start with ${JSON.stringify(prefix)}`;
    if (count !== 1) return `${err.code}: ${JSON.stringify(err.message)} carries ${JSON.stringify(prefix)} ${count} times`;
    return undefined;
  }

  function thrown(what: string, fn: () => unknown): ProtocolError {
    try {
      fn();
    } catch (err) {
      if (err instanceof ProtocolError) return err;
      throw new Error(`${what}: threw ${String(err)}, not a ProtocolError`, { cause: err });
    }
    throw new Error(`${what}: did not throw`);
  }

  test.each(CODECS)('the constructor adds the %s prefix once', (protocol) => {
    const err = new ProtocolError(protocol, FastcgiErrorCode.BadVersion, 'sample text');
    expect(err.message).toBe(`${protocol}: sample text`);
    expect(prefixProblem(err)).toBeUndefined();
    const limit = new LimitError(protocol, ScgiErrorCode.HeadTooLarge, 'sample text', 'maxNetstringLength');
    expect(limit.message).toBe(`${protocol}: sample text`);
  });

  test('no throw site passes a message that already starts with a codec prefix', () => {
    const site = /new\s+(?:ProtocolError|LimitError)\(\s*[^,]+,\s*[^,]+,\s*(['"`])((?:fastcgi|scgi|uwsgi|cgi): |\$\{(?:PROTOCOL|protocol)\}: )/g;
    const doubled: string[] = [];
    for (const file of [...sourceFiles('src'), ...sourceFiles('protocols')]) {
      const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
      for (const m of text.matchAll(site)) doubled.push(`${file}:${text.slice(0, m.index).split('\n').length}: message starts with ${JSON.stringify(m[2])}`);
    }
    expect({ doubled }).toEqual({ doubled: [] });
  });

  test('the errors the codecs throw carry their prefix once', () => {
    const scgiEnd = new ScgiDecoder();
    scgiEnd.push(Buffer.from('5:ab'));
    const uwsgiEnd = new UwsgiDecoder();
    uwsgiEnd.push(Buffer.from([0, 10, 0, 0, 1]));
    const cgiEnd = new CgiResponseParser();
    cgiEnd.push(Buffer.from('X-A: 1\n'));
    const paramsEnd = new ParamsDecoder();
    paramsEnd.push(Buffer.from([5]));
    const fcgiResponseEnd = (bytes: Buffer, ids: number[]): void => {
      const d = new FastcgiResponseDecoder({});
      for (const id of ids) d.register(id);
      d.push(bytes);
      d.end();
    };
    const uwsgiVars = (...bytes: number[]): Buffer => Buffer.concat([Buffer.from([0, bytes.length & 0xff, bytes.length >> 8, 0]), Buffer.from(bytes)]);
    const errors: Array<[string, ProtocolError]> = [
      ['fastcgi bad version', thrown('fastcgi bad version', () => new RecordDecoder(() => undefined).push(Buffer.from([2, 1, 0, 1, 0, 0, 0, 0])))],
      ['fastcgi record too large', thrown('fastcgi record too large', () => new RecordDecoder(() => undefined, { maxContentLength: 1 }).push(Buffer.from([1, 5, 0, 1, 0, 2, 0, 0])))],
      ['fastcgi BEGIN_REQUEST', thrown('fastcgi BEGIN_REQUEST', () => decodeBeginRequest(Buffer.alloc(7)))],
      ['fastcgi END_REQUEST', thrown('fastcgi END_REQUEST', () => decodeEndRequest(Buffer.alloc(7)))],
      ['fastcgi UNKNOWN_TYPE', thrown('fastcgi UNKNOWN_TYPE', () => decodeUnknownType(Buffer.alloc(9)))],
      ['fastcgi params truncated', thrown('fastcgi params truncated', () => paramsEnd.end())],
      ['fastcgi params too large', thrown('fastcgi params too large', () => decodeParams(Buffer.from([1, 1, 0x61, 0x62]), { maxParamsBytes: 2 }))],
      ['fastcgi too many params', thrown('fastcgi too many params', () => decodeParams(Buffer.from([1, 1, 0x61, 0x62]), { maxPairs: 0 }))],
      ['fastcgi unexpected request id', thrown('fastcgi unexpected request id', () => new FastcgiResponseDecoder({}).push(Buffer.from([1, 6, 0, 1, 0, 0, 0, 0])))],
      ['fastcgi unexpected record type', thrown('fastcgi unexpected record type', () => new FastcgiResponseDecoder({}).push(Buffer.from([1, 1, 0, 1, 0, 8, 0, 0])))],
      ['fastcgi unknown record type', thrown('fastcgi unknown record type', () => new FastcgiResponseDecoder({}).push(Buffer.from([1, 12, 0, 0, 0, 0, 0, 0])))],
      ['fastcgi truncated record', thrown('fastcgi truncated record', () => fcgiResponseEnd(Buffer.from([1]), []))],
      ['fastcgi missing END_REQUEST', thrown('fastcgi missing END_REQUEST', () => fcgiResponseEnd(Buffer.alloc(0), [1]))],
      ['fastcgi encoder', thrown('fastcgi encoder', () => encodeFastcgiRequest(1, { keepConn: false, params: [['A', '\u0100']] }))],
      ['fastcgi encoder too large', thrown('fastcgi encoder too large', () => encodeFastcgiRequest(1, { keepConn: false, params: [['A', 'x'.repeat(65536)]] }))],
      ['scgi leading zero', thrown('scgi leading zero', () => decodeScgiHead(Buffer.from('070:')))],
      ['scgi bad length', thrown('scgi bad length', () => decodeScgiHead(Buffer.from('x:')))],
      ['scgi head too large', thrown('scgi head too large', () => decodeScgiHead(Buffer.from('99:'), { maxNetstringLength: 10 }))],
      ['scgi missing content length', thrown('scgi missing content length', () => decodeScgiHead(Buffer.from('4:A\0b\0,')))],
      ['scgi truncated head', thrown('scgi truncated head', () => scgiEnd.end())],
      ['scgi encoder', thrown('scgi encoder', () => encodeScgiRequest([['', 'x']], 0))],
      ['uwsgi empty key', thrown('uwsgi empty key', () => decodeUwsgiHead(uwsgiVars(0, 0, 0, 0)))],
      ['uwsgi truncated var', thrown('uwsgi truncated var', () => decodeUwsgiHead(uwsgiVars(5, 0, 0x61)))],
      ['uwsgi vars too large', thrown('uwsgi vars too large', () => decodeUwsgiHead(Buffer.from([0, 100, 0, 0]), { maxUwsgiPacketSize: 10 }))],
      ['uwsgi truncated head', thrown('uwsgi truncated head', () => uwsgiEnd.end())],
      ['uwsgi encoder', thrown('uwsgi encoder', () => encodeUwsgiRequest([['', 'x']]))],
      ['cgi bare CR', thrown('cgi bare CR', () => parseCgiResponse(Buffer.from('X-A: a\rb\n\n')))],
      ['cgi no colon', thrown('cgi no colon', () => parseCgiResponse(Buffer.from('nocolon\n\n')))],
      ['cgi line too long', thrown('cgi line too long', () => parseCgiResponse(Buffer.from('X-A: 123456789\n\n'), { maxLineBytes: 4 }))],
      ['cgi incomplete head', thrown('cgi incomplete head', () => cgiEnd.end())],
      ['cgi NPH status line', thrown('cgi NPH status line', () => new NphResponseParser().push(Buffer.from('Status: 200 OK\r\n\r\n')))],
    ];
    const problems = errors.flatMap(([what, err]) => {
      const p = prefixProblem(err);
      return p === undefined ? [] : [`${what}: ${p}`];
    });
    const unknownCodes = errors.filter(([, err]) => !CODE_SET.has(err.code)).map(([what, err]) => `${what}: ${err.code}`);
    expect({ problems, unknownCodes }).toEqual({ problems: [], unknownCodes: [] });
    // The codes the inputs above were written to reach, so the list keeps exercising what it says.
    expect(errors.map(([, err]) => err.code)).toEqual([
      FastcgiErrorCode.BadVersion,
      FastcgiErrorCode.RecordTooLarge,
      FastcgiErrorCode.BadBeginRequest,
      FastcgiErrorCode.BadEndRequest,
      FastcgiErrorCode.BadUnknownType,
      FastcgiErrorCode.ParamsTruncated,
      FastcgiErrorCode.ParamsTooLarge,
      FastcgiErrorCode.TooManyParams,
      FastcgiErrorCode.UnexpectedRequestId,
      FastcgiErrorCode.UnexpectedRecordType,
      FastcgiErrorCode.UnknownRecordType,
      FastcgiErrorCode.TruncatedRecord,
      FastcgiErrorCode.MissingEndRequest,
      FastcgiErrorCode.EncodeInvalid,
      FastcgiErrorCode.EncodeTooLarge,
      ScgiErrorCode.LeadingZero,
      ScgiErrorCode.BadLength,
      ScgiErrorCode.HeadTooLarge,
      ScgiErrorCode.MissingContentLength,
      ScgiErrorCode.TruncatedHead,
      ScgiErrorCode.EncodeInvalid,
      UwsgiErrorCode.EmptyKey,
      UwsgiErrorCode.TruncatedVar,
      UwsgiErrorCode.VarsTooLarge,
      UwsgiErrorCode.TruncatedHead,
      UwsgiErrorCode.EncodeInvalid,
      CgiResponseError.BareCr,
      CgiResponseError.NoColon,
      CgiResponseError.LineTooLong,
      CgiResponseError.IncompleteHead,
      CgiResponseError.NphBadStatusLine,
    ]);
  });
});
