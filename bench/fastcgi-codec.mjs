// FastCGI codec micro-benchmark: our RecordDecoder + ParamsDecoder against fastcgi-stream
// (npm), in one process, same inputs, side by side.
//
//   npm run build && node bench/fastcgi-codec.mjs
//
// Workloads
//   (a) nginx-like requests: BEGIN + one PARAMS record of 26 typical fastcgi_params pairs +
//       PARAMS EOS + STDIN EOS, one request per read, on one long-lived decoder; the pairs
//       must be decoded (ours: latin1 strings; fastcgi-stream: UTF-8 strings). Requests/s.
//   (b) a 64 MiB STDIN body delivered in 64 KiB reads, (c) in 1 MiB reads. MB/s (10^6 B).
//       Body records as nginx writes them (32 KiB content) and at the maximum aligned size
//       (65528, as php-fpm writes). Records straddle reads in every case.
// Each side sees the same Buffers. Our decoder hands out views of the reads (zero copy);
// fastcgi-stream copies each record (its design). Every run checks that all bytes and all
// requests arrived, so the numbers come from working code. Best of N runs is reported.

import { EventEmitter } from 'node:events';
import os from 'node:os';
import fcgi from 'fastcgi-stream';
import {
  ParamsDecoder,
  RecordDecoder,
  RecordType,
  Role,
  decodeBeginRequest,
  encodeBeginRequest,
  encodeEndOfStream,
  encodeParamsStream,
  encodeRecord,
} from '../dist/protocols/fastcgi/index.js';

const MiB = 1024 * 1024;

// ---- inputs ----------------------------------------------------------------------------

const nginxParams = [
  ['QUERY_STRING', 'page=2&sort=name'],
  ['REQUEST_METHOD', 'GET'],
  ['CONTENT_TYPE', ''],
  ['CONTENT_LENGTH', ''],
  ['SCRIPT_NAME', '/app/index.php'],
  ['REQUEST_URI', '/app/index.php?page=2&sort=name'],
  ['DOCUMENT_URI', '/app/index.php'],
  ['DOCUMENT_ROOT', '/var/www/html'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['REQUEST_SCHEME', 'http'],
  ['GATEWAY_INTERFACE', 'CGI/1.1'],
  ['SERVER_SOFTWARE', 'nginx/1.22.1'],
  ['REMOTE_ADDR', '127.0.0.1'],
  ['REMOTE_PORT', '53144'],
  ['SERVER_ADDR', '127.0.0.1'],
  ['SERVER_PORT', '80'],
  ['SERVER_NAME', 'example.com'],
  ['REDIRECT_STATUS', '200'],
  ['SCRIPT_FILENAME', '/var/www/html/app/index.php'],
  ['HTTP_HOST', 'example.com'],
  ['HTTP_USER_AGENT', 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'],
  ['HTTP_ACCEPT', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
  ['HTTP_ACCEPT_LANGUAGE', 'en-US,en;q=0.5'],
  ['HTTP_ACCEPT_ENCODING', 'gzip, deflate, br'],
  ['HTTP_COOKIE', 'session=' + 'a1b2c3d4'.repeat(20) + '; theme=dark'], // > 127: 4-byte length
  ['HTTP_CONNECTION', 'keep-alive'],
];

const request = Buffer.concat([
  encodeBeginRequest(1, Role.Responder, 0),
  encodeParamsStream(1, nginxParams), // one padded PARAMS record + PARAMS EOS, like nginx
  encodeEndOfStream(RecordType.Stdin, 1),
]);

function bodyWire(totalBytes, recordSize) {
  const parts = [encodeBeginRequest(1), encodeParamsStream(1, nginxParams)];
  const payload = Buffer.alloc(recordSize, 0x61);
  for (let sent = 0; sent < totalBytes; sent += recordSize) {
    parts.push(encodeRecord(RecordType.Stdin, 1, payload.subarray(0, Math.min(recordSize, totalBytes - sent))));
  }
  parts.push(encodeEndOfStream(RecordType.Stdin, 1));
  return Buffer.concat(parts);
}

function reads(wire, size) {
  const out = [];
  for (let i = 0; i < wire.length; i += size) out.push(wire.subarray(i, i + size));
  return out;
}

// ---- drivers ---------------------------------------------------------------------------

/** Our side: a front's dispatch reduced to what the workloads need. */
function oursDriver() {
  const state = { requests: 0, pairs: 0, body: 0 };
  const params = new ParamsDecoder();
  const decoder = new RecordDecoder((type, _id, content) => {
    switch (type) {
      case RecordType.BeginRequest:
        decodeBeginRequest(content);
        break;
      case RecordType.Params:
        if (content.length !== 0) params.push(content);
        else state.pairs += params.end().length;
        break;
      case RecordType.Stdin:
        if (content.length !== 0) state.body += content.length;
        else state.requests++;
        break;
    }
  });
  return { state, push: (chunk) => decoder.push(chunk) };
}

function theirsDriver() {
  const state = { requests: 0, pairs: 0, body: 0 };
  const socket = new EventEmitter();
  socket.write = () => true;
  const stream = new fcgi.FastCGIStream(socket);
  stream.on('record', (_id, record) => {
    switch (record.TYPE) {
      case RecordType.Params:
        state.pairs += record.params.length;
        break;
      case RecordType.Stdin:
        if (record.data.length !== 0) state.body += record.data.length;
        else state.requests++;
        break;
    }
  });
  return { state, push: (chunk) => socket.emit('data', chunk) };
}

function time(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Requests per second, best of `runs`, each run ~`count` requests on a fresh decoder. */
function benchRequests(makeDriver, count, runs) {
  let best = 0;
  for (let r = 0; r < runs; r++) {
    const d = makeDriver();
    const s = time(() => {
      for (let i = 0; i < count; i++) d.push(request);
    });
    if (d.state.requests !== count || d.state.pairs !== count * nginxParams.length) {
      throw new Error(`request run miscounted: ${JSON.stringify(d.state)}`);
    }
    best = Math.max(best, count / s);
  }
  return best;
}

/** Body MB/s, best of `runs`. */
function benchBody(makeDriver, chunks, bodyBytes, runs) {
  let best = 0;
  for (let r = 0; r < runs; r++) {
    const d = makeDriver();
    const s = time(() => {
      for (const c of chunks) d.push(c);
    });
    if (d.state.body !== bodyBytes || d.state.requests !== 1) throw new Error(`body run miscounted: ${JSON.stringify(d.state)}`);
    best = Math.max(best, bodyBytes / 1e6 / s);
  }
  return best;
}

// ---- run -------------------------------------------------------------------------------

const fmt = (n) => Math.round(n).toLocaleString('en-US');
const rows = [];

// Warm both up so the JIT has seen every path.
benchRequests(oursDriver, 20000, 1);
benchRequests(theirsDriver, 5000, 1);

const oursReq = benchRequests(oursDriver, 300000, 5);
const theirsReq = benchRequests(theirsDriver, 50000, 5);
rows.push(['(a) nginx-like requests (26 params)', `${fmt(oursReq)} req/s`, `${fmt(theirsReq)} req/s`, oursReq / theirsReq]);

const BODY = 64 * MiB;
for (const [label, readSize] of [
  ['(b) 64 MiB STDIN, 64 KiB reads', 64 * 1024],
  ['(c) 64 MiB STDIN, 1 MiB reads', MiB],
]) {
  for (const recordSize of [32768, 65528]) {
    const chunks = reads(bodyWire(BODY, recordSize), readSize);
    benchBody(oursDriver, chunks, BODY, 1);
    benchBody(theirsDriver, chunks, BODY, 1);
    const o = benchBody(oursDriver, chunks, BODY, 7);
    const t = benchBody(theirsDriver, chunks, BODY, 3);
    rows.push([`${label}, ${recordSize}-byte records`, `${fmt(o)} MB/s`, `${fmt(t)} MB/s`, o / t]);
  }
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`FastCGI codec, Node ${process.version}, ${cpu}, ${os.cpus().length} cores; best of N runs\n`);
const head = ['workload', 'ours', 'fastcgi-stream', 'ours/theirs'];
const table = [head, ...rows.map(([w, o, t, r]) => [w, o, t, `${r.toFixed(1)}×`])];
const widths = head.map((_, i) => Math.max(...table.map((row) => row[i].length)));
for (const row of table) console.log(row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '));

const goal = rows.filter(([w]) => w.startsWith('(c)')).every(([, , , r]) => r >= 5);
console.log(`\ngoal "ours ≥ 5× fastcgi-stream on 1 MiB reads": ${goal ? 'met' : 'NOT met'}`);
