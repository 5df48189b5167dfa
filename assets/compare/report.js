/*
 * The page of `gatewire compare` (`--html FILE` and `--serve ADDR`): renders the CompareReport
 * (src/compare/types.ts) held in <script type="application/json" id="report-data">.
 *
 * Plain browser JavaScript, no build step: src/compare/page.ts inlines this file, report.css and
 * Chart.js (the global `Chart`) into one document whose CSP forbids any network load. Every
 * report string reaches the DOM through textContent or an attribute, never as markup: environ
 * values and header fields are whatever a client sent.
 *
 * The request's and the environ's strings are bytes held as latin1 strings (one char per byte).
 * They are shown decoded as UTF-8 when they are valid UTF-8, with control chars and undecodable
 * bytes written as \xNN, so what the reader sees is what went over the wire (showBytes). The
 * report's own texts (notes, labels, descriptions) are shown as they are (showText).
 *
 * In live mode (<html data-mode="live">, the page of --serve) a form above the columns POSTs a
 * CompareRequest to `api/compare` and the page re-renders with the report that comes back.
 */
(function () {
  'use strict';

  /** Hex shown per direction; the rest of a large wire is left out (and said so). */
  var HEX_LIMIT = 4096;
  var NAMES = { http: 'HTTP', fastcgi: 'FastCGI', scgi: 'SCGI', uwsgi: 'uwsgi', cgi: 'CGI' };
  var KINDS = [
    ['header', 'framing'],
    ['length', 'length'],
    ['name', 'name'],
    ['value', 'value'],
    ['body', 'body'],
    ['padding', 'padding'],
    ['end', 'end of stream'],
    ['error', 'not the protocol'],
  ];
  var KIND_SET = {};
  KINDS.forEach(function (k) { KIND_SET[k[0]] = true; });
  /** One colour per column, shared by its header dot and its datasets in both charts. */
  var PALETTE = ['#2563eb', '#059669', '#d97706', '#7c3aed', '#dc2626', '#0891b2', '#db2777', '#65a30d', '#475569'];

  var live = document.documentElement.getAttribute('data-mode') === 'live';
  var root = document.getElementById('app');
  var charts = [];

  // ---- small helpers -------------------------------------------------------------------

  /** An element: `attrs.class`, `attrs.text`, other attributes as given; children are nodes or strings. */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === undefined || value === null || value === false) return;
        if (key === 'class') node.className = value;
        else if (key === 'text') node.textContent = String(value);
        else node.setAttribute(key, value === true ? '' : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function protocolLabel(p) {
    return NAMES[p.name] || String(p.name);
  }

  function columnLabel(p) {
    return protocolLabel(p) + (p.via === 'nginx' ? ' · nginx' : '');
  }

  function num(n) {
    return typeof n === 'number' && isFinite(n) ? n : NaN;
  }

  function fmtInt(n) {
    n = num(n);
    return isNaN(n) ? '—' : Math.round(n).toLocaleString('en-US');
  }

  function fmtBytes(n) {
    n = num(n);
    return isNaN(n) ? '—' : fmtInt(n) + ' B';
  }

  function fmtMs(ms) {
    ms = num(ms);
    if (isNaN(ms)) return '—';
    if (ms < 1) return Math.round(ms * 1000) + ' µs';
    if (ms < 10) return ms.toFixed(2) + ' ms';
    if (ms < 100) return ms.toFixed(1) + ' ms';
    return fmtInt(ms) + ' ms';
  }

  function fmtCpu(us) {
    us = num(us);
    if (isNaN(us)) return '—';
    return (us < 10 ? us.toFixed(1) : fmtInt(us)) + ' µs';
  }

  function pad2(n) {
    return (n < 10 ? '0' : '') + n;
  }

  /** The report's time in UTC: the same text wherever the file is opened. */
  function fmtDate(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.getUTCFullYear() + '-' + pad2(d.getUTCMonth() + 1) + '-' + pad2(d.getUTCDate()) + ' ' +
      pad2(d.getUTCHours()) + ':' + pad2(d.getUTCMinutes()) + ' UTC';
  }

  var utf8 = new TextDecoder('utf-8', { fatal: true });

  function latin1Bytes(s) {
    var bytes = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i) & 0xff;
    return bytes;
  }

  /** Text → UTF-8 bytes as a latin1 string (what the report's strings are). */
  function toLatin1(text) {
    var bytes = new TextEncoder().encode(text);
    var out = '';
    for (var i = 0; i < bytes.length; i++) out += String.fromCharCode(bytes[i]);
    return out;
  }

  function hex2(n) {
    return (n < 16 ? '0' : '') + n.toString(16);
  }

  /** A latin1 byte string for reading: UTF-8 decoded when it is UTF-8, controls as \xNN. */
  function showBytes(s) {
    if (typeof s !== 'string') return String(s);
    var text = s;
    if (/[\x80-\xff]/.test(s)) {
      try {
        text = utf8.decode(latin1Bytes(s));
      } catch {
        return s.replace(/[\x00-\x1f\x7f-\xff]/g, function (c) { return '\\x' + hex2(c.charCodeAt(0)); });
      }
    }
    return text.replace(/[\x00-\x1f\x7f]/g, function (c) { return '\\x' + hex2(c.charCodeAt(0)); });
  }

  /**
   * Text of the report's own (a note, a label, a detail, a description): shown as it is, unless it
   * is latin1-held UTF-8 (a decoded value put in a detail), which is shown decoded.
   */
  function showText(s) {
    if (typeof s !== 'string') s = String(s);
    if (/[\xc2-\xf4][\x80-\xbf]/.test(s) && !/[\u0100-\uffff]/.test(s)) {
      try {
        s = utf8.decode(latin1Bytes(s));
      } catch {
        // not UTF-8: text with latin1 letters, shown as it is
      }
    }
    return s.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, function (c) { return '\\x' + hex2(c.charCodeAt(0)); });
  }

  /** A latin1 byte string as text to edit (UTF-8 decoded when it is UTF-8, else as is). */
  function editable(s) {
    try {
      return utf8.decode(latin1Bytes(s));
    } catch {
      return s;
    }
  }

  function target(request) {
    return request.path + (request.query ? '?' + request.query : '');
  }

  // ---- header -----------------------------------------------------------------------------

  function renderHeader(report) {
    var req = report.request;
    var headers = Array.isArray(req.headers) ? req.headers : [];
    var bodyLength = typeof req.body === 'string' ? req.body.length : 0;
    var meta = [
      ['App', report.app],
      ['gatewire', report.gatewire],
      ['Date', fmtDate(report.generatedAt)],
      ['Load', report.load ? (report.load.durationMs / 1000) + ' s per protocol, ' + report.load.concurrency + ' at once' : 'none (sequential requests)'],
    ];
    return el('header', { class: 'top' }, [
      el('div', { class: 'brand' }, [
        el('span', { class: 'logo', text: 'gatewire' }),
        el('span', { class: 'brand-sub', text: 'compare' }),
        live ? el('span', { class: 'badge live-badge', text: 'live' }) : null,
      ]),
      el('h1', { class: 'request-line' }, [
        el('span', { class: 'method', text: showBytes(req.method) }),
        ' ',
        el('span', { class: 'target', text: showBytes(target(req)) }),
      ]),
      el('dl', { class: 'meta' }, meta.map(function (m) {
        return el('div', null, [el('dt', { text: m[0] }), el('dd', { text: showText(m[1]) })]);
      })),
      el('div', { class: 'request-detail' }, [
        el('div', { class: 'req-headers' }, [
          el('span', { class: 'caption', text: headers.length === 1 ? '1 header' : headers.length + ' headers' }),
          headers.length === 0
            ? el('span', { class: 'dim', text: 'none besides Host and Content-Length, which each client adds' })
            : el('ul', { class: 'chips' }, headers.map(function (h) {
              return el('li', { class: 'chip' }, [el('span', { class: 'chip-name', text: showBytes(h[0]) + ':' }), ' ', el('span', { text: showBytes(h[1]) })]);
            })),
        ]),
        el('div', { class: 'req-body' }, [
          el('span', { class: 'caption', text: 'Body' }),
          el('span', { text: bodyLength === 0 ? 'none' : fmtBytes(bodyLength) }),
        ]),
      ]),
    ]);
  }

  // ---- the hex views --------------------------------------------------------------------

  /** Fields in pre-order with their parent, clamped to [0, length). */
  function flatten(fields, length) {
    var out = [];
    function walk(list, parent, depth) {
      if (!Array.isArray(list)) return;
      list.forEach(function (f) {
        if (!f || typeof f !== 'object') return;
        var start = Math.max(0, Math.min(length, Math.floor(num(f.start)) || 0));
        var end = Math.max(start, Math.min(length, Math.floor(num(f.end)) || 0));
        var node = {
          index: out.length,
          field: f,
          parent: parent,
          depth: depth,
          start: start,
          end: end,
          kind: KIND_SET[f.kind] ? f.kind : 'error',
        };
        out.push(node);
        walk(f.children, node, depth + 1);
      });
    }
    walk(fields, null, 0);
    return out;
  }

  function parseHex(hex, limit) {
    var text = typeof hex === 'string' ? hex : '';
    var total = Math.floor(text.length / 2);
    var shown = Math.min(total, limit);
    var bytes = new Uint8Array(shown);
    for (var i = 0; i < shown; i++) bytes[i] = parseInt(text.substr(i * 2, 2), 16) || 0;
    return { bytes: bytes, total: total };
  }

  function describe(node) {
    var f = node.field;
    var size = f.end - f.start;
    return {
      label: showText(f.label),
      detail: f.detail === undefined ? '' : showText(f.detail),
      range: size === 1 ? 'byte ' + f.start : 'bytes ' + f.start + '–' + (f.end - 1) + ' (' + size + ')',
    };
  }

  function renderWire(title, hex, fields, declaredBytes) {
    var wire = parseHex(hex, HEX_LIMIT);
    var total = wire.total;
    var bytes = wire.bytes;
    var shown = bytes.length;
    var nodes = flatten(fields, total);
    // The deepest field of each byte colours it; its top-level field draws the boundaries.
    var leaf = new Array(shown);
    var top = new Array(shown);
    nodes.forEach(function (n) {
      var end = Math.min(n.end, shown);
      for (var i = n.start; i < end; i++) {
        leaf[i] = n;
        if (n.depth === 0) top[i] = n;
      }
    });

    var info = el('div', { class: 'info', 'aria-live': 'polite' });
    function idleInfo() {
      clear(info);
      info.className = 'info idle';
      info.appendChild(document.createTextNode(nodes.length > 0 ? 'Hover a byte or a field to see what it is.' : 'No annotations for these bytes.'));
    }
    idleInfo();

    var hexSpans = new Array(shown);
    var asciiSpans = new Array(shown);
    var grid = el('div', { class: 'hex', role: 'group', 'aria-label': title + ' bytes' });
    for (var row = 0; row < shown; row += 16) {
      var hexCell = el('span', { class: 'hx' });
      var asciiCell = el('span', { class: 'as' });
      for (var i = row; i < Math.min(row + 16, shown); i++) {
        var n = leaf[i];
        var cls = 'b k-' + (n ? n.kind : 'none');
        if (n && i === n.start) cls += ' fs';
        if (top[i] && i === top[i].start && i !== 0) cls += ' ts';
        if (i % 16 === 8) cls += ' mid';
        var b = bytes[i];
        var h = el('span', { class: cls, 'data-i': i, text: hex2(b) });
        var printable = b >= 0x20 && b < 0x7f;
        var a = el('span', { class: 'c k-' + (n ? n.kind : 'none') + (printable ? '' : ' np'), 'data-i': i, text: printable ? String.fromCharCode(b) : '·' });
        hexSpans[i] = h;
        asciiSpans[i] = a;
        hexCell.appendChild(h);
        asciiCell.appendChild(a);
      }
      grid.appendChild(el('div', { class: 'row' }, [el('span', { class: 'off', text: ('000' + row.toString(16)).slice(-4) }), hexCell, asciiCell]));
    }

    var marked = [];
    var fieldItems = [];
    function unmark() {
      marked.forEach(function (s) { s.classList.remove('hl', 'hl-parent'); });
      marked = [];
      fieldItems.forEach(function (li) { li.classList.remove('active'); });
    }
    function mark(node, cls) {
      var end = Math.min(node.end, shown);
      for (var i = node.start; i < end; i++) {
        hexSpans[i].classList.add(cls);
        asciiSpans[i].classList.add(cls);
        marked.push(hexSpans[i], asciiSpans[i]);
      }
    }
    function highlight(node) {
      unmark();
      if (node.parent) mark(node.parent, 'hl-parent');
      mark(node, 'hl');
      if (fieldItems[node.index]) fieldItems[node.index].classList.add('active');
      var d = describe(node);
      clear(info);
      info.className = 'info k-' + node.kind;
      info.appendChild(el('span', { class: 'swatch k-' + node.kind }));
      if (node.parent) info.appendChild(el('span', { class: 'info-parent', text: describe(node.parent).label + ' ›' }));
      info.appendChild(el('strong', { class: 'info-label', text: d.label }));
      if (d.detail) info.appendChild(el('span', { class: 'info-detail', text: d.detail }));
      info.appendChild(el('span', { class: 'info-range', text: d.range }));
      info.title = (node.parent ? describe(node.parent).label + ' › ' : '') + d.label + (d.detail ? ': ' + d.detail : '') + ' — ' + d.range;
    }

    grid.addEventListener('mouseover', function (event) {
      var t = event.target.closest('[data-i]');
      if (!t) return;
      var node = leaf[Number(t.getAttribute('data-i'))];
      if (node) highlight(node);
    });
    grid.addEventListener('mouseleave', function () {
      unmark();
      idleInfo();
    });

    // The field list: one item per field, children nested under their parent.
    var list = el('ol', { class: 'fields' });
    var lists = [list];
    nodes.forEach(function (n) {
      var d = describe(n);
      var li = el('li', { class: 'field', 'data-field': n.index }, [
        el('div', { class: 'field-line' }, [
          el('span', { class: 'swatch k-' + n.kind, title: n.kind }),
          el('span', { class: 'field-label' + (d.detail ? ' has-detail' : ''), text: d.label }),
          d.detail ? el('span', { class: 'field-detail', text: d.detail }) : null,
          el('span', { class: 'field-range', text: n.field.start + '–' + (n.field.end - 1) }),
        ]),
      ]);
      fieldItems[n.index] = li;
      lists.length = n.depth + 1;
      var parentList = lists[n.depth];
      (parentList || list).appendChild(li);
      if (Array.isArray(n.field.children) && n.field.children.length > 0) {
        var sub = el('ol', { class: 'fields sub' });
        li.appendChild(sub);
        lists[n.depth + 1] = sub;
      }
    });
    list.addEventListener('mouseover', function (event) {
      var li = event.target.closest('li[data-field]');
      if (li) highlight(nodes[Number(li.getAttribute('data-field'))]);
    });
    list.addEventListener('mouseleave', function () {
      unmark();
      idleInfo();
    });

    var size = typeof declaredBytes === 'number' ? declaredBytes : total;
    return el('section', { class: 'wire' }, [
      el('h3', null, [title, el('span', { class: 'wire-size', text: fmtBytes(size) })]),
      info,
      total === 0 ? el('p', { class: 'empty', text: 'No bytes.' }) : grid,
      total > shown ? el('p', { class: 'note', text: 'The first ' + fmtBytes(shown) + ' are shown; ' + fmtBytes(total - shown) + ' more were left out.' }) : null,
      nodes.length === 0 ? null : el('details', { class: 'field-list' }, [el('summary', { text: nodes.length === 1 ? '1 field' : nodes.length + ' fields' }), list]),
    ]);
  }

  // ---- the protocol columns ---------------------------------------------------------------

  function statusClass(status) {
    if (!status) return 'none';
    if (status < 300) return 'ok';
    if (status < 400) return 'redirect';
    if (status < 500) return 'client';
    return 'server';
  }

  function overhead(p) {
    if (p.name === 'http') return el('span', { class: 'delta base', text: 'baseline' });
    var over = num(p.overheadBytes);
    if (isNaN(over)) return null;
    var base = num(p.requestBytes) - over;
    var pct = base > 0 ? Math.round((over / base) * 100) : NaN;
    var sign = over > 0 ? '+' : over < 0 ? '−' : '±';
    var text = sign + fmtBytes(Math.abs(over)) + ' vs HTTP' + (isNaN(pct) ? '' : ' (' + sign + Math.abs(pct) + '%)');
    return el('span', { class: 'delta ' + (over > 0 ? 'more' : over < 0 ? 'less' : 'same'), text: text });
  }

  function stat(label, value, extra) {
    return el('div', { class: 'stat' }, [el('dt', { text: label }), el('dd', null, [el('span', { class: 'stat-value', text: value }), extra || null])]);
  }

  function renderColumn(p, index) {
    var latency = p.latency || {};
    var framing = p.framing || {};
    var color = PALETTE[index % PALETTE.length];
    var head = el('header', { class: 'col-head' }, [
      el('span', { class: 'dot', 'aria-hidden': 'true' }),
      el('h2', null, [el('span', { class: 'proto', text: protocolLabel(p) }), el('span', { class: 'via via-' + p.via, text: ' · via ' + p.via })]),
      el('span', { class: 'status status-' + statusClass(p.status), title: 'response status', text: p.status ? String(p.status) : 'no answer' }),
    ]);
    // The column's colour in the charts, so a dataset is found by its dot.
    head.firstChild.style.backgroundColor = color;
    var stats = el('dl', { class: 'stats' }, [
      stat('Request', fmtBytes(p.requestBytes), overhead(p)),
      stat('Response', fmtBytes(p.responseBytes)),
      stat('Latency', 'p50 ' + fmtMs(latency.p50), el('span', { class: 'sub', text: 'p99 ' + fmtMs(latency.p99) + (latency.samples ? ' · ' + fmtInt(latency.samples) + ' requests' : '') })),
      stat('Throughput', fmtInt(p.rps) + ' rps'),
      stat('CPU', fmtCpu(p.cpuUsPerRequest), el('span', { class: 'sub', text: 'per request' })),
    ]);
    return el('article', { class: 'col', 'data-id': p.id, 'data-protocol': p.name }, [
      head,
      stats,
      el('div', { class: 'framing' }, [
        el('span', { class: 'caption', text: 'Framing' }),
        el('span', { class: 'framing-text', text: showText(framing.description || '—') }),
      ]),
      p.error ? el('p', { class: 'error', role: 'note' }, [el('strong', { text: 'Error ' }), showText(p.error)]) : null,
      renderWire('Request', p.wire && p.wire.request, p.annotations && p.annotations.request, p.requestBytes),
      renderWire('Response', p.wire && p.wire.response, p.annotations && p.annotations.response, p.responseBytes),
    ]);
  }

  function renderLegend() {
    return el('ul', { class: 'legend', 'aria-label': 'byte colours' }, KINDS.map(function (k) {
      return el('li', null, [el('span', { class: 'swatch k-' + k[0] }), k[1]]);
    }));
  }

  // ---- the environ table ----------------------------------------------------------------

  /**
   * One row per variable, one column per protocol. A cell is compared with the first column that
   * answered (a protocol with an error has no environ: its cells say so, and are not differences);
   * a value a front set although the request did not carry it (EnvironRow.derived) gets a `+`.
   */
  function renderEnviron(report) {
    var protocols = report.protocols;
    var rows = Array.isArray(report.environ) ? report.environ : [];
    var differing = rows.filter(function (r) { return r.differs; }).length;
    var anyDerived = rows.some(function (r) { return Array.isArray(r.derived) && r.derived.length > 0; });
    var answered = protocols.filter(function (p) { return !p.error; });
    var first = answered.length > 0 ? answered[0].id : null;
    var table = el('table', { id: 'environ-table', class: 'environ-table' }, [
      el('thead', null, [el('tr', null, [
        el('th', { class: 'mark', scope: 'col', 'aria-label': 'differs' }),
        el('th', { class: 'var', scope: 'col', text: 'Variable' }),
      ].concat(protocols.map(function (p) {
        return el('th', { scope: 'col', 'data-id': p.id, title: p.id, text: columnLabel(p) });
      })))]),
      el('tbody', null, rows.map(function (r) {
        var values = r.values || {};
        var derived = Array.isArray(r.derived) ? r.derived : [];
        var base = first === null || values[first] === undefined ? null : values[first];
        return el('tr', { class: r.differs ? 'differs' : 'agrees', 'data-name': r.name }, [
          el('td', { class: 'mark', title: r.differs ? 'the protocols differ' : '', text: r.differs ? '≠' : '' }),
          el('th', { class: 'var', scope: 'row' }, [
            el('code', { text: showBytes(r.name) }),
            r.note ? el('div', { class: 'note', text: showText(r.note) }) : null,
          ]),
        ].concat(protocols.map(function (p) {
          var v = values[p.id] === undefined ? null : values[p.id];
          if (p.error) return el('td', { class: 'v no-answer', 'data-id': p.id }, [el('span', { class: 'absent', text: '(no answer)' })]);
          var cls = 'v';
          if (p.id !== first && v !== base) cls += ' cell-diff';
          if (derived.indexOf(p.id) !== -1) cls += ' derived';
          var content = v === null
            ? el('span', { class: 'absent', text: '(absent)' })
            : v === '' ? el('span', { class: 'empty', text: '(empty)' }) : document.createTextNode(showBytes(v));
          return el('td', { class: cls + (v === null ? ' is-absent' : ''), 'data-id': p.id }, [
            content,
            derived.indexOf(p.id) !== -1 ? el('span', { class: 'derived-mark', title: 'set by the front: the request did not carry it', text: '+' }) : null,
          ]);
        })));
      })),
    ]);
    var toggle = el('input', { type: 'checkbox', id: 'only-diff' });
    toggle.addEventListener('change', function () {
      table.classList.toggle('only-diff', toggle.checked);
    });
    return el('section', { class: 'environ card' }, [
      el('div', { class: 'section-head' }, [
        el('h2', { text: 'Environ' }),
        el('span', { class: 'section-sub', text: rows.length + ' variables, ' + differing + ' differ across protocols' }),
        el('label', { class: 'toggle' }, [toggle, ' only differences']),
      ]),
      el('div', { class: 'table-wrap' }, [table]),
      el('p', { class: 'table-foot' }, [
        el('span', { class: 'mark-sample', text: '≠' }), ' the protocols differ (highlighted: a value unlike the first column’s)',
        anyDerived ? el('span', { class: 'foot-item' }, [el('span', { class: 'derived-mark', text: '+' }), ' set by gatewire’s front: the request did not carry it']) : null,
      ]),
    ]);
  }

  // ---- charts -----------------------------------------------------------------------------

  function renderCharts(report) {
    var latencyCanvas = el('canvas', { id: 'latency-chart', role: 'img', 'aria-label': 'latency p50 and p99 per protocol' });
    var throughputCanvas = el('canvas', { id: 'throughput-chart', role: 'img', 'aria-label': 'throughput per protocol' });
    var timed = report.protocols.some(function (p) { return Array.isArray(p.timeline) && p.timeline.length > 0; });
    var section = el('section', { class: 'charts' }, [
      el('div', { class: 'card chart-card' }, [
        el('div', { class: 'section-head' }, [el('h2', { text: 'Latency' }), el('span', { class: 'section-sub', text: 'milliseconds, lower is better' })]),
        el('div', { class: 'chart-box' }, [latencyCanvas]),
      ]),
      el('div', { class: 'card chart-card' }, [
        el('div', { class: 'section-head' }, [
          el('h2', { text: 'Throughput' }),
          el('span', { class: 'section-sub', text: timed ? 'requests per second during the load phase' : 'requests per second' }),
        ]),
        el('div', { class: 'chart-box' }, [throughputCanvas]),
      ]),
    ]);
    return { section: section, draw: function () { drawCharts(report, latencyCanvas, throughputCanvas, timed); } };
  }

  function drawCharts(report, latencyCanvas, throughputCanvas, timed) {
    if (typeof Chart === 'undefined') return;
    var font = { family: getComputedStyle(document.body).fontFamily, size: 12 };
    Chart.defaults.font = Object.assign({}, Chart.defaults.font, font);
    Chart.defaults.color = '#475467';
    Chart.defaults.borderColor = '#eaecf0';
    var base = {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: { legend: { position: 'bottom', labels: { boxWidth: 12, boxHeight: 12, usePointStyle: false } } },
    };
    var protocols = report.protocols;
    charts.push(new Chart(latencyCanvas, {
      type: 'bar',
      data: {
        labels: ['p50', 'p99'],
        datasets: protocols.map(function (p, i) {
          var lat = p.latency || {};
          return { label: columnLabel(p), data: [num(lat.p50), num(lat.p99)], backgroundColor: PALETTE[i % PALETTE.length], borderRadius: 3 };
        }),
      },
      options: Object.assign({}, base, {
        scales: { y: { beginAtZero: true, title: { display: true, text: 'ms' } } },
        plugins: Object.assign({}, base.plugins, {
          tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ': ' + fmtMs(ctx.parsed.y); } } },
        }),
      }),
    }));
    if (timed) {
      charts.push(new Chart(throughputCanvas, {
        type: 'line',
        data: {
          datasets: protocols.map(function (p, i) {
            var points = (Array.isArray(p.timeline) ? p.timeline : []).map(function (t) { return { x: num(t.t) / 1000, y: num(t.rps) }; });
            return { label: columnLabel(p), data: points, borderColor: PALETTE[i % PALETTE.length], backgroundColor: PALETTE[i % PALETTE.length], pointRadius: 0, borderWidth: 2, tension: 0.25 };
          }),
        },
        options: Object.assign({}, base, {
          interaction: { mode: 'nearest', axis: 'x', intersect: false },
          scales: {
            x: { type: 'linear', title: { display: true, text: 'seconds into the load' } },
            y: { beginAtZero: true, title: { display: true, text: 'rps' } },
          },
        }),
      }));
    } else {
      charts.push(new Chart(throughputCanvas, {
        type: 'bar',
        data: {
          labels: ['rps'],
          datasets: protocols.map(function (p, i) {
            return { label: columnLabel(p), data: [num(p.rps)], backgroundColor: PALETTE[i % PALETTE.length], borderRadius: 3 };
          }),
        },
        options: Object.assign({}, base, { scales: { y: { beginAtZero: true, title: { display: true, text: 'rps' } } } }),
      }));
    }
  }

  // ---- the page ----------------------------------------------------------------------------

  var parts = {};

  function render(report) {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    var protocols = Array.isArray(report.protocols) ? report.protocols : [];
    report = Object.assign({}, report, { protocols: protocols });
    var header = renderHeader(report);
    var chartsPart = renderCharts(report);
    var main = el('main', { class: 'report' }, [
      el('section', { class: 'protocols' }, [
        el('div', { class: 'section-head' }, [
          el('h2', { text: 'Protocols' }),
          el('span', { class: 'section-sub', text: protocols.length + ' columns · the bytes each way, hover to decode' }),
          renderLegend(),
        ]),
        el('div', { class: 'columns', id: 'columns' }, protocols.map(renderColumn)),
      ]),
      renderEnviron(report),
      chartsPart.section,
    ]);
    if (parts.header) root.replaceChild(header, parts.header);
    else root.insertBefore(header, root.firstChild);
    if (parts.main) root.replaceChild(main, parts.main);
    else root.appendChild(main);
    parts.header = header;
    parts.main = main;
    chartsPart.draw();
    document.title = 'gatewire compare · ' + showBytes(report.request.method) + ' ' + showBytes(target(report.request));
  }

  // ---- live mode: the request form ---------------------------------------------------------

  function renderForm(initial) {
    var method = el('input', { id: 'f-method', name: 'method', required: true, spellcheck: 'false', autocomplete: 'off', list: 'f-methods' });
    var methods = el('datalist', { id: 'f-methods' }, ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].map(function (m) { return el('option', { value: m }); }));
    var path = el('input', { id: 'f-path', name: 'path', required: true, spellcheck: 'false', autocomplete: 'off' });
    var headers = el('textarea', { id: 'f-headers', name: 'headers', rows: 4, spellcheck: 'false', placeholder: 'Accept: application/json' });
    var body = el('textarea', { id: 'f-body', name: 'body', rows: 4, spellcheck: 'false', placeholder: 'request body (sent as UTF-8)' });
    var button = el('button', { type: 'submit', id: 'f-submit', text: 'Compare' });
    var status = el('p', { class: 'form-status', id: 'f-status', role: 'status' });
    var form = el('form', { class: 'live-form card', id: 'compare-form', novalidate: true }, [
      el('div', { class: 'form-row' }, [
        el('label', { class: 'f-method' }, [el('span', { text: 'Method' }), method, methods]),
        el('label', { class: 'f-path' }, [el('span', { text: 'Path and query' }), path]),
        button,
      ]),
      el('div', { class: 'form-row' }, [
        el('label', { class: 'f-area' }, [el('span', { text: 'Headers, one “Name: value” a line' }), headers]),
        el('label', { class: 'f-area' }, [el('span', { text: 'Body' }), body]),
      ]),
      status,
    ]);
    var shown = { headers: '', body: '' };
    var original = { headers: [], body: '' };

    function fill(request) {
      method.value = request.method;
      path.value = editable(target(request));
      shown.headers = (request.headers || []).map(function (h) { return editable(h[0]) + ': ' + editable(h[1]); }).join('\n');
      shown.body = editable(request.body || '');
      original.headers = request.headers || [];
      original.body = request.body || '';
      headers.value = shown.headers;
      body.value = shown.body;
    }

    /** The CompareRequest of the form; throws an Error with a message for the reader. */
    function read() {
      var m = method.value.trim();
      if (m === '') throw new Error('Give a method.');
      var t = path.value.trim();
      if (t.charAt(0) !== '/') throw new Error('The path must start with “/”.');
      // Non-ASCII goes out percent-encoded as UTF-8, as a browser's address bar sends it.
      t = t.replace(/[^\x00-\x7f]+/g, function (run) { return encodeURIComponent(run); });
      var q = t.indexOf('?');
      var pairs;
      if (headers.value === shown.headers) pairs = original.headers;
      else {
        pairs = [];
        headers.value.split(/\r?\n/).forEach(function (line, i) {
          if (line.trim() === '') return;
          var colon = line.indexOf(':');
          if (colon <= 0) throw new Error('Header line ' + (i + 1) + ' is not “Name: value”.');
          pairs.push([line.slice(0, colon).trim(), toLatin1(line.slice(colon + 1).trim())]);
        });
      }
      return {
        method: m,
        path: q === -1 ? t : t.slice(0, q),
        query: q === -1 ? '' : t.slice(q + 1),
        headers: pairs,
        body: body.value === shown.body ? original.body : toLatin1(body.value),
      };
    }

    function setStatus(text, kind) {
      status.textContent = text;
      status.className = 'form-status' + (kind ? ' ' + kind : '');
    }

    form.addEventListener('submit', function (event) {
      event.preventDefault();
      if (form.classList.contains('busy')) return;
      var request;
      try {
        request = read();
      } catch (err) {
        setStatus(err.message, 'error');
        return;
      }
      form.classList.add('busy');
      form.setAttribute('aria-busy', 'true');
      button.disabled = true;
      button.textContent = 'Comparing…';
      setStatus('Sending ' + request.method + ' ' + target(request) + ' over every protocol…', 'pending');
      fetch('api/compare', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(request),
      })
        .then(function (res) {
          return res.text().then(function (text) {
            var data;
            try {
              data = JSON.parse(text);
            } catch {
              data = null;
            }
            if (!res.ok) {
              var why = data && typeof data.error === 'string' ? data.error : text.slice(0, 300) || res.statusText;
              throw new Error(res.status + ' ' + res.statusText + ': ' + why);
            }
            if (!data || !Array.isArray(data.protocols)) throw new Error('The server answered something that is not a report.');
            return data;
          });
        })
        .then(function (report) {
          render(report);
          fill(report.request);
          setStatus('Compared at ' + fmtDate(report.generatedAt) + '.', 'done');
        })
        .catch(function (err) {
          setStatus(err && err.message ? err.message : String(err), 'error');
        })
        .then(function () {
          form.classList.remove('busy');
          form.removeAttribute('aria-busy');
          button.disabled = false;
          button.textContent = 'Compare';
        });
    });

    fill(initial.request);
    return form;
  }

  function start() {
    var data = document.getElementById('report-data');
    var report;
    try {
      report = JSON.parse(data ? data.textContent : '');
    } catch (err) {
      root.appendChild(el('p', { class: 'fatal', text: 'The report data of this page cannot be read: ' + err.message }));
      return;
    }
    clear(root);
    render(report);
    if (live) root.insertBefore(renderForm(report), parts.main);
  }

  start();
})();
