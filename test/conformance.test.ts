/**
 * docs/conformance.md against the repository: every requirement ID the code and the tests cite
 * has a row there, every row is cited by a test file (and the files a row names really cite it),
 * every section label the code and the tests cite is a heading there, and nothing points to
 * documents outside the repository. No requirement IDs or section labels are written literally
 * in this file, so it never counts as a citation itself.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const DOC = 'docs/conformance.md';
const SELF = 'test/conformance.test.ts';

/** Where requirement IDs and section labels may be cited (paths relative to ROOT). */
const CITING = ['src', 'protocols', 'test', 'bench', 'scripts', 'fixtures', 'examples', 'cgi-bin', '.ci', 'README.md'];
/** Where nothing may point outside the repository. */
const SELF_CONTAINED = [...CITING, 'docs'];
const SKIPPED_DIRS = new Set(['node_modules', 'dist', 'build', '.git', 'coverage']);
const MAX_FILE_BYTES = 4 * 1024 * 1024;

/** The section sign, spelled out so that this file cites no label. */
const SECTION = '\u00a7';

/**
 * A requirement ID: prefix, number, optional sub-item; or a range `X-a..X-b` of one prefix.
 * Word boundaries keep `UTF-8`, `X-Test` and `SHA-1` out.
 */
const ID_RE = /\b(UP|OP|CLI|[FSUCKERH])-(\d+)(\.\d+)?(?:\.\.\1-(\d+))?\b/g;
/** A section label, optionally with an item: `<sign>2.4`, `<sign>0.1 #15`, `<sign>0.1 item 12`. */
const LABEL_RE = new RegExp(`${SECTION}(\\d+(?:\\.\\d+)*)(?:\\s+(?:#|item\\s+)(\\d+))?`, 'g');
/** Text right before a label that makes it a section of another document (an RFC, the FastCGI spec). */
const FOREIGN_BEFORE = new RegExp(`(?:RFC\\s*\\d+|\\bspec(?:ification)?|FastCGI\\s+1\\.0)\\s+(?:${SECTION}[\\d.]+,\\s*)*$`, 'i');
/** Text right before a label that names docs/conformance.md explicitly. */
const OURS_BEFORE = new RegExp(`conformance\\.md\\s+(?:${SECTION}[\\d.]+,\\s*)*$`);
/** A file header declaring that its bare section numbers are those of the FastCGI Specification. */
const FASTCGI_SPEC_NUMBERING = new RegExp(`Section numbers (?:\\(${SECTION}\\) )?refer to the FastCGI Specification`);
/** What pointing outside the repository looks like (the reference notes it was written from). */
const OUTSIDE = [['shared', '/'], ['reference', '/protocols'], ['protocols', '.md'], ['upstreams', '.md'], ['operations', '.md'], ['peers', '.md']].map((parts) => parts.join(''));

/** Which `## <sign>N` section holds the rows of each prefix. */
const SECTION_OF_PREFIX: Record<string, string> = { H: '1', F: '2', S: '3', U: '4', C: '5', K: '6', E: '7', R: '8', CLI: '11', UP: '12', OP: '13' };

type Citation = 'direct' | 'range';

interface SourceFile {
  rel: string;
  text: string;
}

interface Row {
  id: string;
  meaning: string;
  files: string[];
  section: string | undefined;
  line: number;
}

interface Label {
  label: string;
  item: string | undefined;
}

function walk(rel: string, out: SourceFile[]): void {
  const abs = path.join(ROOT, rel);
  if (!fs.existsSync(abs)) return;
  const stat = fs.statSync(abs);
  if (stat.isDirectory()) {
    for (const name of fs.readdirSync(abs).sort()) if (!SKIPPED_DIRS.has(name)) walk(path.posix.join(rel, name), out);
    return;
  }
  if (!stat.isFile() || stat.size > MAX_FILE_BYTES) return;
  const bytes = fs.readFileSync(abs);
  if (bytes.includes(0)) return; // binary
  out.push({ rel, text: bytes.toString('utf8') });
}

function filesUnder(roots: readonly string[]): SourceFile[] {
  const out: SourceFile[] = [];
  for (const r of roots) walk(r, out);
  return out;
}

/** Every ID a text cites, each range expanded, with how it was cited. */
function citedIds(text: string): Map<string, Citation> {
  const ids = new Map<string, Citation>();
  for (const m of text.matchAll(ID_RE)) {
    const [, prefix, from, sub, to] = m as unknown as [string, string, string, string | undefined, string | undefined];
    if (to !== undefined && sub === undefined) {
      ids.set(`${prefix}-${from}`, 'direct');
      ids.set(`${prefix}-${to}`, 'direct');
      for (let n = Number(from) + 1; n < Number(to); n++) if (!ids.has(`${prefix}-${n}`)) ids.set(`${prefix}-${n}`, 'range');
    } else {
      ids.set(`${prefix}-${from}${sub ?? ''}`, 'direct');
    }
  }
  return ids;
}

/** The section labels of this project a text cites (labels of RFCs and the FastCGI spec left out). */
function citedLabels(text: string): Label[] {
  const bareAreForeign = FASTCGI_SPEC_NUMBERING.test(text);
  const out: Label[] = [];
  for (const m of text.matchAll(LABEL_RE)) {
    const lineStart = text.lastIndexOf('\n', m.index) + 1;
    const before = text.slice(lineStart, m.index);
    if (FOREIGN_BEFORE.test(before)) continue;
    if (bareAreForeign && !OURS_BEFORE.test(before)) continue;
    out.push({ label: m[1] as string, item: m[2] });
  }
  return out;
}

function idOrder(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

function showLabel(l: Label): string {
  return `${SECTION}${l.label}${l.item === undefined ? '' : ` #${l.item}`}`;
}

// ---- the document -----------------------------------------------------------------------------

const docText = fs.readFileSync(path.join(ROOT, DOC), 'utf8');
const docLines = docText.split('\n');

const ROW_RE = /^\|\s*((?:UP|OP|CLI|[FSUCKERH])-\d+(?:\.\d+)?)\s*\|\s*(.*?)\s*\|\s*([^|]*?)\s*\|\s*$/;
const LOOKS_LIKE_ROW_RE = /^\|\s*(?:UP|OP|CLI|[FSUCKERH])-\d/;
const HEADING_RE = new RegExp(`^(#{1,6})\\s+${SECTION}(\\d+(?:\\.\\d+)*)(?=\\s|$)`);
const ITEM_RE = /^- \*\*#(\d+)\*\*/;

const rows: Row[] = [];
const malformedRows: string[] = [];
/** Heading labels, and the numbered items under each. */
const headings = new Map<string, Set<string>>();
{
  let top: string | undefined;
  let current: string | undefined;
  docLines.forEach((line, i) => {
    const h = HEADING_RE.exec(line);
    if (h) {
      current = h[2] as string;
      if ((h[1] as string).length <= 2) top = current.split('.')[0];
      if (!headings.has(current)) headings.set(current, new Set());
      return;
    }
    if (/^#{1,6}\s/.test(line)) current = undefined;
    if (/^#{1,2}\s/.test(line)) top = undefined;
    const item = ITEM_RE.exec(line);
    if (item && current !== undefined) headings.get(current)?.add(item[1] as string);
    const row = ROW_RE.exec(line);
    if (row) {
      const files = (row[3] as string).split(',').map((f) => f.trim()).filter((f) => f !== '');
      rows.push({ id: row[1] as string, meaning: row[2] as string, files, section: top, line: i + 1 });
    } else if (LOOKS_LIKE_ROW_RE.test(line)) {
      malformedRows.push(`${DOC}:${i + 1}: ${line}`);
    }
  });
}
const listed = new Set(rows.map((r) => r.id));

// ---- the repository ---------------------------------------------------------------------------

const citingFiles = filesUnder(CITING).filter((f) => f.rel !== SELF);
const testFiles = citingFiles.filter((f) => f.rel.startsWith('test/') && f.rel.endsWith('.test.ts'));
const testCitations = new Map<string, Map<string, Citation>>(testFiles.map((f) => [f.rel, citedIds(f.text)]));

/** id → the files citing it, e.g. "src/call.ts". */
const citedBy = new Map<string, Set<string>>();
for (const f of citingFiles) {
  for (const id of citedIds(f.text).keys()) {
    if (!citedBy.has(id)) citedBy.set(id, new Set());
    citedBy.get(id)?.add(f.rel);
  }
}

describe('docs/conformance.md', () => {
  test('the scanners work: ranges expand, foreign section numbers are left out', () => {
    const id = (prefix: string, n: string): string => `${prefix}-${n}`;
    expect([...citedIds(`see ${id('F', '3')}..${id('F', '5')}, ${id('E', '5.2')} and UTF-8, X-Test, SHA-1`).entries()]).toEqual([
      [id('F', '3'), 'direct'],
      [id('F', '5'), 'direct'],
      [id('F', '4'), 'range'],
      [id('E', '5.2'), 'direct'],
    ]);
    const labels = citedLabels(`a (${SECTION}5.3), RFC 3875 ${SECTION}6.2, ${SECTION}6.3; spec ${SECTION}3.3; ${SECTION}0.1 #15, ${SECTION}0.1 item 12.`);
    expect(labels.map(showLabel)).toEqual([`${SECTION}5.3`, `${SECTION}0.1 #15`, `${SECTION}0.1 #12`]);
  });

  test('the document parses: rows and headings were found, no row is malformed', () => {
    expect(malformedRows).toEqual([]);
    expect(rows.length).toBeGreaterThan(100);
    expect(headings.size).toBeGreaterThan(10);
    expect(citedBy.size).toBeGreaterThan(100);
  });

  test('every ID cited in the repository has a row', () => {
    const missing = [...citedBy.keys()]
      .filter((id) => !listed.has(id))
      .sort(idOrder)
      .map((id) => `${id} (cited in ${[...(citedBy.get(id) ?? [])].sort().join(', ')})`);
    expect(missing).toEqual([]);
  });

  test('every ID has one row, in the section of its prefix, with a meaning and test files', () => {
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const r of rows) {
      const where = `${DOC}:${r.line} ${r.id}`;
      if (seen.has(r.id)) problems.push(`${where}: a second row`);
      seen.add(r.id);
      const prefix = r.id.slice(0, r.id.indexOf('-'));
      const expected = SECTION_OF_PREFIX[prefix];
      if (expected !== undefined && r.section !== expected) problems.push(`${where}: under ${SECTION}${r.section ?? '?'}, belongs under ${SECTION}${expected}`);
      if (r.meaning.length < 10) problems.push(`${where}: no meaning`);
      if (r.files.length === 0) problems.push(`${where}: names no test file`);
    }
    expect(problems).toEqual([]);
  });

  test('every listed ID is cited by at least one test file', () => {
    const uncited = rows
      .map((r) => r.id)
      .filter((id) => ![...testCitations.values()].some((ids) => ids.has(id)))
      .sort(idOrder);
    expect(uncited).toEqual([]);
  });

  test('the test files a row names exist and cite its ID', () => {
    const wrong: string[] = [];
    for (const r of rows) {
      for (const file of r.files) {
        const ids = testCitations.get(file);
        if (ids === undefined) wrong.push(`${r.id}: ${file} is not a test file of the repository`);
        else if (!ids.has(r.id)) wrong.push(`${r.id}: ${file} does not cite it`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test('every section label cited in the repository is a heading (and its item is listed)', () => {
    const missing = new Set<string>();
    for (const f of citingFiles) {
      for (const l of citedLabels(f.text)) {
        const items = headings.get(l.label);
        if (items === undefined) missing.add(`${showLabel(l)} (no heading; cited in ${f.rel})`);
        else if (l.item !== undefined && !items.has(l.item)) missing.add(`${showLabel(l)} (no item #${l.item} under the heading; cited in ${f.rel})`);
      }
    }
    expect([...missing].sort()).toEqual([]);
  });

  test('nothing in the repository points to documents outside it', () => {
    const found: string[] = [];
    for (const f of filesUnder(SELF_CONTAINED)) {
      f.text.split('\n').forEach((line, i) => {
        for (const needle of OUTSIDE) if (line.includes(needle)) found.push(`${f.rel}:${i + 1}: ${needle}`);
      });
    }
    expect(found).toEqual([]);
  });
});
