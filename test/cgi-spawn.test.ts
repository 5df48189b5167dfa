/**
 * How CGI scripts are started (src/cgi-host/spawn.ts, native/spawn.c): the native vfork path
 * and the child_process fallback must give a script the same world (C-9 environment from
 * scratch, C-6 its values byte for byte, C-12 its own session and process group, C-10 stdin as
 * asked, default signal dispositions, no inherited descriptors) and report starts, exits and
 * failures the same way.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as SpawnModule from '../src/cgi-host/spawn.js';
import type { ScriptProcess, ScriptSpawnOptions } from '../src/cgi-host/spawn.js';

const REQUIRE = process.env.GATEWIRE_REQUIRE_PEERS === '1';

/** The module loaded fresh with GATEWIRE_SPAWN set as given (the choice is made once per load). */
function loadSpawn(force: string | undefined): typeof SpawnModule {
  const saved = process.env.GATEWIRE_SPAWN;
  if (force === undefined) delete process.env.GATEWIRE_SPAWN;
  else process.env.GATEWIRE_SPAWN = force;
  let mod: typeof SpawnModule | undefined;
  jest.isolateModules(() => {
    mod = require('../src/cgi-host/spawn.js') as typeof SpawnModule;
    mod.spawnMethod(); // decide now, while the variable is set
  });
  if (saved === undefined) delete process.env.GATEWIRE_SPAWN;
  else process.env.GATEWIRE_SPAWN = saved;
  return mod as typeof SpawnModule;
}

const nativeMod = loadSpawn(undefined);
const nodeMod = loadSpawn('node');
const native = nativeMod.spawnMethod();

describe('the native spawner', () => {
  if (native.method === 'native' || REQUIRE) {
    test('is built and loads (scripts/build-native.sh, run by npm run build)', () => {
      expect(native).toEqual({ method: 'native' });
    });
  } else {
    test.skip(`is built and loads — skipped: ${native.reason ?? 'unavailable'} (required under GATEWIRE_REQUIRE_PEERS=1)`, () => undefined);
  }
  test('GATEWIRE_SPAWN=node selects child_process', () => {
    expect(nodeMod.spawnMethod()).toEqual({ method: 'child_process', reason: 'GATEWIRE_SPAWN=node' });
  });
});

interface Ran {
  pid: number | undefined;
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  error: NodeJS.ErrnoException | undefined;
  events: string[];
}

/** Runs a script to its 'close' and collects what it wrote and how it ended. */
function run(mod: typeof SpawnModule, opts: Partial<ScriptSpawnOptions> & { command: string }, input?: Buffer, env: Record<string, string> = { PATH: '/usr/bin:/bin' }): Promise<Ran> {
  return new Promise((resolve) => {
    const ran: Ran = { pid: undefined, stdout: '', stderr: '', code: null, signal: null, error: undefined, events: [] };
    mod.spawnScript({ args: [], cwd: os.tmpdir(), env, stdin: 'null', ...opts }, (err, child?: ScriptProcess) => {
      if (child === undefined) {
        ran.error = err;
        ran.events.push('failed');
        resolve(ran);
        return;
      }
      ran.pid = child.pid;
      child.stdout?.on('data', (d: Buffer) => (ran.stdout += d.toString('latin1')));
      child.stderr?.on('data', (d: Buffer) => (ran.stderr += d.toString('latin1')));
      if (child.stdin !== null) child.stdin.end(input ?? Buffer.alloc(0));
      child.on('error', (e: NodeJS.ErrnoException) => {
        ran.error = e;
        ran.events.push('error');
      });
      child.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
        ran.code = code;
        ran.signal = signal;
        ran.events.push('exit');
      });
      child.on('close', () => {
        ran.events.push('close');
        resolve(ran);
      });
    });
  });
}

/** The test process's own descriptors without close-on-exec (inherited from whoever started it). */
const inheritable = new Set(
  fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      const flags = /^flags:\s*([0-7]+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'))?.[1];
      return flags !== undefined && (parseInt(flags, 8) & 0o2000000) === 0;
    } catch {
      return false;
    }
  }),
);

const sh = (script: string): Partial<ScriptSpawnOptions> & { command: string } => ({ command: '/bin/sh', args: ['-c', script] });

/** Text as the byte string of its UTF-8 (env values are byte strings, C-6). */
const bytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

/** NAME=value entries (NUL-terminated, as in /proc/PID/environ) as a map of byte strings. */
function environOf(block: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of block.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

/** Every byte 0x01-0xFF once, in order. */
const ALL_BYTES = Array.from({ length: 255 }, (_, i) => String.fromCharCode(i + 1)).join('');

/**
 * C-6: values a shell, printf or a UTF-8 encoder would get wrong: latin-1 (not UTF-8) with the
 * latin-1 byte last, UTF-8, quotes, `$`, backquotes, backslashes, printf's `%` and `\ooo`,
 * spaces, a leading `-`, trailing newlines (command substitution strips them), control bytes.
 */
const ODD_ENV: Record<string, string> = {
  PATH: '/usr/bin:/bin',
  HTTP_COOKIE: 'n=Ren\xe9',
  HTTP_USER_AGENT: 'caf\xe9',
  PATH_INFO: '/caf\xe9',
  UTF8: bytes('wörld'),
  QUOTES: `it's "$HOME" \`id\` $(id) \\ \\351 %s %% %b \\c x\xe9`,
  DASH: '-n \xe9',
  NEWLINES: 'caf\xe9\n\n',
  CONTROL: '\x01\t\r\x1b\x7f\xff',
  ALL: ALL_BYTES,
  EMPTY: '',
};

const RUNNING_AS_ROOT = process.geteuid?.() === 0;

const methods: Array<[string, typeof SpawnModule]> = [['child_process', nodeMod]];
if (native.method === 'native') methods.unshift(['native', nativeMod]);

describe.each(methods)('spawnScript via %s', (_name, mod) => {
  test('C-9: the script sees exactly the environment, argv and cwd given; stdout and stderr apart; the exit code', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-spawn-'));
    try {
      const r = await run(mod, {
        command: '/bin/sh',
        args: ['-c', 'env | sort; echo "argv:$0:$1"; pwd; echo oops >&2; exit 7', 'zero', 'one'],
        env: { PATH: '/usr/bin:/bin', QUERY_STRING: bytes('a=1&b=é'), EMPTY: '' },
        cwd: dir,
      });
      const env = r.stdout.split('\n').filter((l) => /^[A-Z_]+=/.test(l) && !l.startsWith('PWD=') && !l.startsWith('SHLVL=') && !l.startsWith('OLDPWD='));
      expect(env).toEqual(['EMPTY=', 'PATH=/usr/bin:/bin', `QUERY_STRING=${Buffer.from('a=1&b=é').toString('latin1')}`]);
      expect(r.stdout).toContain('argv:zero:one');
      expect(r.stdout).toContain(`${fs.realpathSync(dir)}\n`);
      expect(r.stderr).toBe('oops\n');
      expect([r.code, r.signal, r.error]).toEqual([7, null, undefined]);
      expect(r.events).toEqual(['exit', 'close']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('C-6: every byte 0x01-0xFF of an environment value reaches the script as given, whatever a shell or printf would make of it; nothing is added; a NUL is refused before anything starts', async () => {
    const r = await run(mod, sh('cat /proc/$$/environ'), undefined, ODD_ENV);
    expect([r.code, r.error, r.stderr]).toEqual([0, undefined, '']);
    expect(environOf(r.stdout)).toEqual(ODD_ENV);
    const nul = await run(mod, sh('echo started'), undefined, { ...ODD_ENV, BAD: 'a\0b' });
    expect(nul.events).toEqual(['failed']);
    expect(nul.stdout).toBe('');
  });

  test('C-6/C-12: with bytes that are not UTF-8 the script is still the process spawned: its pid, leading its session and group, and a signal to it ends it', async () => {
    const r = await run(mod, sh('cat /proc/$$/stat; printf "%s" "$X" | od -An -tx1; kill -TERM $$; sleep 5'), undefined, { PATH: '/usr/bin:/bin', X: 'caf\xe9' });
    const [stat = '', hex = ''] = r.stdout.split('\n');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    expect(Number(stat.split(' ')[0])).toBe(r.pid);
    expect([Number(fields[2]), Number(fields[3])]).toEqual([r.pid, r.pid]); // pgrp, session
    expect(hex.trim()).toBe('63 61 66 e9');
    expect([r.code, r.signal]).toEqual([null, 'SIGTERM']);
  });

  test(`C-6: a command whose path holds '=' with a value that is not UTF-8: ${_name === 'native' ? 'runs (execve takes any path)' : 'refused with EINVAL, nothing started (env(1) would read the path as a variable)'}`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-spawn-'));
    const file = path.join(dir, 'a=b.sh');
    fs.writeFileSync(file, '#!/bin/sh\nprintf "%s" "$X"\n', { mode: 0o755 });
    try {
      const r = await run(mod, { command: file }, undefined, { PATH: '/usr/bin:/bin', X: 'caf\xe9' });
      if (_name === 'native') expect([r.stdout, r.code]).toEqual(['caf\xe9', 0]);
      else expect([r.events, r.error?.code]).toEqual([['failed'], 'EINVAL']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('C-12: the script leads its own session and process group', async () => {
    const r = await run(mod, sh('cat /proc/$$/stat'));
    const fields = r.stdout.slice(r.stdout.lastIndexOf(')') + 2).split(' ');
    expect(r.pid).toBeGreaterThan(0);
    expect(Number(fields[2])).toBe(r.pid); // pgrp
    expect(Number(fields[3])).toBe(r.pid); // session
  });

  test('no descriptor of the server reaches the script: 0, 1 and 2 only (child_process: plus those the server itself inherited without close-on-exec)', async () => {
    // ls is the shell's child: it lists the shell's descriptors without opening one there.
    const r = await run(mod, sh('ls /proc/$$/fd'));
    const fds = r.stdout.trim().split('\n');
    expect(fds.slice(0, 3)).toEqual(['0', '1', '2']);
    // The native path closes everything from 3 up (close_range); libuv relies on close-on-exec only.
    expect(fds.slice(3)).toEqual(_name === 'native' ? [] : fds.slice(3).filter((fd) => inheritable.has(fd)));
  });

  test('signals: nothing blocked, SIGPIPE and the other standard signals at their defaults (Node ignores SIGPIPE)', async () => {
    // Builtins only: dash blocks every signal while it forks, so a forked grep could see that.
    const r = await run(mod, sh('while read -r k v; do case $k in SigBlk:|SigIgn:) echo "$k $v";; esac; done < /proc/$$/status'));
    const blk = BigInt(`0x${/SigBlk:\s*([0-9a-f]+)/.exec(r.stdout)?.[1] ?? 'ffff'}`);
    const ign = BigInt(`0x${/SigIgn:\s*([0-9a-f]+)/.exec(r.stdout)?.[1] ?? 'ffff'}`);
    expect(blk).toBe(0n);
    expect(ign & 0x7fffffffn).toBe(0n); // signals 1..31
  });

  test('C-10: stdin as a pipe carries the body; /dev/null gives EOF at once; a spooled file fd is read from its start', async () => {
    const piped = await run(mod, { ...sh('wc -c'), stdin: 'pipe' }, Buffer.alloc(300_000, 0x61));
    expect(piped.stdout.trim()).toBe('300000');
    const none = await run(mod, { ...sh('wc -c'), stdin: 'null' });
    expect(none.stdout.trim()).toBe('0');
    const file = path.join(os.tmpdir(), `gw-spawn-${process.pid}.body`);
    fs.writeFileSync(file, 'spooled body');
    const fd = fs.openSync(file, 'r');
    try {
      const spooled = await run(mod, { ...sh('cat'), stdin: fd });
      expect(spooled.stdout).toBe('spooled body');
    } finally {
      fs.closeSync(fd);
      fs.rmSync(file, { force: true });
    }
  });

  (RUNNING_AS_ROOT ? test : test.skip)(`C-18: uid and gid are switched before exec${RUNNING_AS_ROOT ? '' : ' — skipped: needs root'}`, async () => {
    const r = await run(mod, { ...sh('id -u; id -g; id -G'), uid: 65534, gid: 65534 });
    expect(r.stdout.split('\n').slice(0, 3)).toEqual(['65534', '65534', '65534']);
  });

  test('a script killed by a signal reports the signal, no code', async () => {
    const r = await run(mod, sh('kill -TERM $$; sleep 5'));
    expect([r.code, r.signal]).toEqual([null, 'SIGTERM']);
  });

  test.each([
    ['', { PATH: '/usr/bin:/bin' }],
    [' (a value not UTF-8: the wrapper path on child_process, C-6)', { PATH: '/usr/bin:/bin', X: 'caf\xe9' }],
  ])('C-13: a missing program and a non-executable file fail with ENOENT and EACCES, nothing left running%s', async (_what, env) => {
    const missing = await run(mod, { command: '/nonexistent/gatewire-script' }, undefined, env);
    expect(missing.error?.code).toBe('ENOENT');
    const file = path.join(os.tmpdir(), `gw-spawn-${process.pid}.noexec`);
    fs.writeFileSync(file, '#!/bin/sh\necho no\n', { mode: 0o644 });
    try {
      const denied = await run(mod, { command: file }, undefined, env);
      expect(denied.error?.code).toBe('EACCES');
      expect(denied.stdout).toBe('');
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});

if (native.method === 'native') {
  test('the native path reports a start failure before any process exists (no pid, no exit event)', async () => {
    const r = await run(nativeMod, { command: '/nonexistent/gatewire-script' });
    expect(r.events).toEqual(['failed']);
    expect(r.pid).toBeUndefined();
  });

  test('worker_threads: a worker ending (terminated, or process.exit in it) while its scripts run does not crash the process, and its scripts are killed', async () => {
    const marker = `77.${process.pid}${Date.now() % 100000}`;
    const fixture = path.resolve(__dirname, 'fixtures', 'apps', 'spawn-in-worker.cjs');
    const built = path.resolve(__dirname, '..', 'dist', 'src', 'cgi-host', 'spawn.js');
    const r = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>((resolve) => {
      const child = require('node:child_process').spawn(process.execPath, [fixture, built, marker], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal, out }));
    });
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null });
    const seen = JSON.parse(r.out) as Array<{ mode: string; method: string; running: number }>;
    expect(seen.map((m) => [m.mode, m.method, m.running]).sort()).toEqual([
      ['exit', 'native', 3],
      ['terminate', 'native', 3],
    ]);
    const left = fs
      .readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((pid) => {
        try {
          return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(marker);
        } catch {
          return false;
        }
      });
    expect(left).toEqual([]);
  });

  test('a command without a slash takes the child_process path (PATH look-up is execvp\'s)', async () => {
    const viaPath = await run(nativeMod, { command: 'sh', args: ['-c', 'echo found'] });
    expect(viaPath.stdout).toBe('found\n');
  });

  test('C-18: the script gets the configured umask, set in the child (the server keeps its own)', async () => {
    const before = process.umask();
    const mask = await run(nativeMod, { ...sh('umask'), umask: 0o027 });
    expect(mask.stdout.trim()).toBe('0027');
    expect(process.umask()).toBe(before);
  });

}
