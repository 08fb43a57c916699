// The rule editor: the audience count as the operator types (debounced preview), the error
// underlined at its position with the did-you-mean, per-clause counts, breakdown charts by
// region, scale and industry, a random sample, explain for one profile, save as a segment.
import * as api from './api.js';
import { h, clear, debounce } from './dom.js';
import { t, num, onLang } from './i18n.js';
import { label } from './names.js';

const DIMENSIONS = ['region', 'scale', 'industry'];

function scaleName(code) {
  const s = t('scale.' + code);
  return s === 'scale.' + code ? code : s;
}

// The API counts positions in bytes of UTF-8; the textarea in UTF-16 code units.
export function charIndex(text, bytePos) {
  let b = 0;
  let i = 0;
  for (const ch of text) {
    if (b >= bytePos) break;
    const cp = ch.codePointAt(0);
    b += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    i += ch.length;
  }
  return i;
}

// The token starting at i (a word, or one character), for the underline and the suggestion.
function tokenEnd(text, i) {
  let j = i;
  while (j < text.length && /[\p{L}\p{N}_]/u.test(text[j])) j++;
  return j > i ? j : Math.min(i + 1, text.length);
}

// The rule's error underlined in backdrop (a layer under the textarea ta) and told in errBox:
// the position, the message, the segment it is in, and a button applying the did-you-mean.
// Element ids get the prefix p ('' in the rule editor), so that two boxes can share a page.
// onFix runs after a suggestion was applied.
export function underliner(ta, backdrop, errBox, p, onFix) {
  function paint(text, err) {
    clear(backdrop);
    if (!err) {
      backdrop.append(text + '\n');
      return;
    }
    const i = charIndex(text, err.position);
    const j = tokenEnd(text, i);
    const mark = h('mark', { class: 'err' }, i < text.length ? text.slice(i, j) : ' ');
    backdrop.append(text.slice(0, i), mark, text.slice(j) + '\n');
  }

  function showError(text, e) {
    clear(errBox).hidden = false;
    const err = e.error || {};
    const inRule = err.position !== undefined && !err.segment;
    paint(text, inRule ? err : null);
    if (err.line !== undefined) {
      errBox.append(h('span', { id: p + 'err-pos', class: 'pos', 'data-line': err.line,
        'data-column': err.column, text: t('err.at', err.line, err.column) }));
    } else {
      errBox.append(h('span', { class: 'pos', text: t('err.other') }));
    }
    errBox.append(h('span', { id: p + 'err-msg', text: err.message || e.message }));
    if (err.segment) errBox.append(h('span', { text: t('err.segment', err.segment) }));
    const m = /did you mean "([^"]+)"/.exec(err.message || '');
    if (m && inRule) {
      const i = charIndex(text, err.position);
      const j = tokenEnd(text, i);
      errBox.append(' ', h('button', { type: 'button', id: p + 'err-suggest', class: 'link',
        'data-suggestion': m[1], text: t('err.suggest', m[1]),
        onclick: () => {
          ta.value = text.slice(0, i) + m[1] + text.slice(j);
          ta.focus();
          onFix();
        } }));
    }
  }
  return { paint, showError };
}

// A rule input for a form: the textarea over its underline layer, the audience count
// (debounced preview, count only) and the error box; ids prefixed with p. Returns
// { element, textarea, get rule, showError(e) } — showError for an error the
// form's own request answered about the rule.
export function ruleField(p, initial) {
  let seq = 0;
  const ta = h('textarea', { id: p + 'rule', rows: 3, spellcheck: 'false', autocomplete: 'off',
    'aria-describedby': p + 'rule-error ' + p + 'count' });
  const backdrop = h('div', { id: p + 'rule-backdrop', class: 'backdrop', 'aria-hidden': 'true' });
  const count = h('output', { id: p + 'count', class: 'count', 'aria-live': 'polite' });
  const errBox = h('div', { id: p + 'rule-error', class: 'rule-error', role: 'alert', hidden: true });
  const marks = underliner(ta, backdrop, errBox, p, () => update.now());

  async function run() {
    const text = ta.value;
    const my = ++seq;
    if (!text.trim()) {
      marks.paint(text, null);
      errBox.hidden = true;
      count.textContent = t('rules.empty');
      count.dataset.count = '';
      return;
    }
    count.classList.add('busy');
    try {
      const r = await api.preview({ rule: text });
      if (my !== seq) return;
      marks.paint(text, null);
      errBox.hidden = true;
      count.textContent = t('rules.count', num(r.count));
      count.dataset.count = String(r.count);
    } catch (e) {
      if (my !== seq) return;
      count.textContent = '';
      count.dataset.count = '';
      if (e instanceof api.ApiError && e.status === 400) marks.showError(text, e);
      else {
        clear(errBox).hidden = false;
        errBox.append(h('span', { id: p + 'err-msg', text: e.message }));
      }
    } finally {
      if (my === seq) count.classList.remove('busy');
    }
  }
  const update = debounce(run, 300);
  ta.addEventListener('input', () => {
    marks.paint(ta.value, null);
    update();
  });
  ta.addEventListener('scroll', () => { backdrop.scrollTop = ta.scrollTop; });
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      update.now();
    }
  });
  ta.value = initial || '';
  marks.paint(ta.value, null);
  update.now();
  return {
    element: h('div', {}, h('div', { class: 'editor' }, backdrop, ta), count, errBox),
    textarea: ta,
    get rule() { return ta.value; },
    showError(e) {
      seq++;
      count.textContent = '';
      count.dataset.count = '';
      marks.showError(ta.value, e);
    },
  };
}

export function mountRules(root, session, state) {
  const can = api.can(session.role);
  const breakdown = DIMENSIONS.map((d) =>
    d === 'region' && session.scope && session.scope.length >= 4 ? 'region:6' : d);
  let seq = 0;
  let seed = null;
  let lastRule = '';
  const charts = {};

  const ta = h('textarea', { id: 'rule', rows: 5, spellcheck: 'false', autocomplete: 'off',
    'aria-describedby': 'rule-help rule-error', 'aria-label': t('rules.label') });
  const backdrop = h('div', { id: 'rule-backdrop', class: 'backdrop', 'aria-hidden': 'true' });
  const count = h('output', { id: 'count', class: 'count', 'aria-live': 'polite' });
  const took = h('span', { id: 'took', class: 'hint' });
  const errBox = h('div', { id: 'rule-error', class: 'rule-error', role: 'alert', hidden: true });
  const clauseBox = h('div', { id: 'clauses' });
  const chartBox = h('div', { class: 'charts' });
  for (const d of DIMENSIONS) {
    const canvas = h('canvas', { id: 'chart-' + d, role: 'img' });
    chartBox.append(h('figure', { class: 'card chart' },
      h('figcaption', { 'data-k': 'chart.' + d, text: t('chart.' + d) }),
      h('div', { class: 'chart-wrap' }, canvas)));
  }
  const sampleBox = h('div', { id: 'sample' });
  const again = h('button', { type: 'button', id: 'sample-again', text: t('sample.again') });
  const explainId = h('input', { id: 'explain-id', 'aria-label': t('explain.id'),
    placeholder: t('explain.id'), autocomplete: 'off' });
  const explainGo = h('button', { type: 'submit', id: 'explain-go', text: t('explain.go') });
  const explainOut = h('div', { id: 'explain-result', 'aria-live': 'polite' });
  const segName = h('input', { id: 'seg-name', placeholder: t('seg.name'),
    'aria-label': t('seg.name'), pattern: '[A-Za-z0-9_.\\-]{1,64}', autocomplete: 'off' });
  const segSave = h('button', { type: 'submit', id: 'seg-save', text: t('seg.save') });
  const segMsg = h('span', { id: 'seg-msg', class: 'hint', 'aria-live': 'polite' });

  clear(root).append(
    h('h2', { text: t('rules.title') }),
    h('div', { class: 'grid' },
      h('div', { class: 'card editor-card' },
        h('label', { for: 'rule', text: t('rules.label') }),
        h('div', { class: 'editor' }, backdrop, ta),
        h('p', { id: 'rule-help', class: 'hint', text: t('rules.help') }),
        h('div', { class: 'status' }, count, took),
        errBox,
        can.writeSegments ? h('form', { id: 'seg-form', class: 'row', onsubmit: saveSegment },
          segName, segSave, segMsg) : null),
      h('div', { class: 'card' }, h('h3', { text: t('clauses.title') }), clauseBox)),
    chartBox,
    h('div', { class: 'grid' },
      h('div', { class: 'card' }, h('div', { class: 'row' },
        h('h3', { text: t('sample.title') }), again), sampleBox),
      can.explain ? h('div', { class: 'card' }, h('h3', { text: t('explain.title') }),
        h('form', { id: 'explain-form', class: 'row', onsubmit: runExplain }, explainId, explainGo),
        explainOut) : null));

  const marks = underliner(ta, backdrop, errBox, '', () => update.now());
  const paint = marks.paint;

  function showError(text, e) {
    root.classList.add('stale');
    marks.showError(text, e);
    count.textContent = '';
    took.textContent = '';
  }

  async function run() {
    const text = ta.value;
    lastRule = text;
    const my = ++seq;
    if (!text.trim()) {
      paint(text, null);
      errBox.hidden = true;
      count.textContent = t('rules.empty');
      count.dataset.count = '';
      return;
    }
    count.classList.add('busy');
    try {
      const body = { rule: text, sample: 10, sample_order: 'random', breakdown, clauses: true,
        breakdown_limit: 12 };
      if (seed !== null) body.seed = seed;
      const r = await api.preview(body);
      if (my !== seq) return;
      seed = r.seed ?? null;
      paint(text, null);
      errBox.hidden = true;
      root.classList.remove('stale');
      count.textContent = t('rules.count', num(r.count));
      count.dataset.count = String(r.count);
      took.textContent = t('rules.took', Number(r.took_ms).toFixed(2));
      renderClauses(r);
      renderCharts(r);
      renderSample(r.sample || []);
    } catch (e) {
      if (my !== seq) return;
      if (e instanceof api.ApiError && e.status === 400) showError(text, e);
      else {
        clear(errBox).hidden = false;
        errBox.append(h('span', { id: 'err-msg', text: e.message }));
      }
      count.dataset.count = '';
    } finally {
      if (my === seq) count.classList.remove('busy');
    }
  }
  const update = debounce(run, 300);

  function renderClauses(r) {
    clear(clauseBox);
    const steps = new Map((r.narrowing || []).map((s) => [s.position + ':' + (s.segment || ''), s]));
    const rows = (r.clauses || []).map((c) => {
      const step = steps.get(c.position + ':' + (c.segment || ''));
      return h('tr', {},
        h('td', {}, h('code', { text: (c.negated ? 'not ' : '') + c.text }),
          c.segment ? h('span', { class: 'hint', text: ' · ' + c.segment }) : null,
          c.scope ? h('span', { class: 'hint', text: t('explain.scope') }) : null),
        h('td', { class: 'n', text: num(c.count) }),
        h('td', { class: 'n', text: step ? num(step.count) : '' }));
    });
    clauseBox.append(h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', { text: t('clauses.clause') }),
        h('th', { class: 'n', text: t('clauses.count') }),
        h('th', { class: 'n', text: t('clauses.chain') }))),
      h('tbody', {}, rows)));
  }

  function renderCharts(r) {
    if (!window.Chart) return;
    DIMENSIONS.forEach((d, k) => {
      const groups = (r.breakdown || {})[breakdown[k]] || {};
      const field = d === 'scale' ? null : d;
      const full = Object.keys(groups).map((code) =>
        (field ? label(field, code) : d === 'scale' ? scaleName(code) : code));
      // Long industry names would be cut by the axis: the chart shows the start, the
      // accessible label all of it.
      const labels = full.map((l) => (l.length > 14 ? l.slice(0, 13) + '…' : l));
      const data = Object.values(groups);
      const canvas = document.getElementById('chart-' + d);
      canvas.setAttribute('aria-label', t('chart.' + d) + ': ' +
        full.map((l, i) => l + ' ' + data[i]).join(', '));
      if (charts[d]) {
        charts[d].data.labels = labels;
        charts[d].data.datasets[0].data = data;
        charts[d].update('none');
        return;
      }
      charts[d] = new window.Chart(canvas, {
        type: 'bar',
        data: { labels, datasets: [{ data, backgroundColor: '#2f6db5' }] },
        options: { indexAxis: 'y', animation: false, responsive: true, maintainAspectRatio: false,
          plugins: { legend: { display: false } },
          scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
      });
    });
  }

  async function renderSample(ids) {
    const my = seq;
    clear(sampleBox);
    if (!ids.length) {
      sampleBox.append(h('p', { class: 'hint', text: t('sample.none') }));
      return;
    }
    const docs = can.readProfiles
      ? await Promise.all(ids.map((id) => api.profile(id).catch(() => null)))
      : ids.map(() => null);
    if (my !== seq) return;
    const rows = ids.map((id, i) => {
      const p = docs[i];
      const f = (p && p.fields) || {};
      return h('tr', {},
        h('td', {}, h('code', { text: id })),
        can.readProfiles ? h('td', { class: 'name', text: f.company || f.name || '' }) : null,
        can.readProfiles ? h('td', { text: p ? label('region', p.region || '') : '' }) : null,
        can.readProfiles ? h('td', { text: p ? t('kind.' + p.kind) : '' }) : null,
        can.explain ? h('td', {}, h('button', { type: 'button', class: 'link',
          text: t('sample.explain'), onclick: () => { explainId.value = id; runExplain(); } }))
          : null);
    });
    sampleBox.append(h('table', { class: 'table', id: 'sample-table' },
      h('thead', {}, h('tr', {}, h('th', { text: t('sample.id') }),
        can.readProfiles ? [h('th', { text: t('sample.name') }), h('th', { text: t('sample.region') }),
          h('th', { text: t('sample.kind') })] : null,
        can.explain ? h('th', {}) : null)),
      h('tbody', {}, rows)));
  }

  async function runExplain(ev) {
    if (ev) ev.preventDefault();
    const id = explainId.value.trim();
    if (!id) return;
    clear(explainOut);
    try {
      const r = await api.explain(ta.value, id);
      const rows = r.clauses.map((c) => h('tr', { class: c.result ? 'yes' : 'no' },
        h('td', {}, h('code', { text: c.text }),
          c.segment ? h('span', { class: 'hint', text: ' · ' + c.segment }) : null,
          c.scope ? h('span', { class: 'hint', text: t('explain.scope') }) : null),
        h('td', { text: c.result ? t('explain.yes') : t('explain.no') }),
        h('td', {}, h('code', { text: c.value === null || c.value === undefined
          ? t('explain.missing') : typeof c.value === 'string' ? c.value : JSON.stringify(c.value) }))));
      explainOut.append(
        h('p', { id: 'explain-verdict', class: r.match ? 'ok' : 'bad',
          'data-match': String(r.match), text: r.profile || id }, ' — ',
        r.match ? t('explain.match') : t('explain.nomatch')),
        h('table', { class: 'table', id: 'explain-table' },
          h('thead', {}, h('tr', {}, h('th', { text: t('explain.clause') }),
            h('th', { text: t('explain.result') }), h('th', { text: t('explain.value') }))),
          h('tbody', {}, rows)));
    } catch (e) {
      explainOut.append(h('p', { class: 'error', role: 'alert', text: e.message }));
    }
  }

  async function saveSegment(ev) {
    ev.preventDefault();
    const name = segName.value.trim();
    segMsg.textContent = '';
    try {
      await api.putSegment(name, ta.value);
      segMsg.textContent = t('seg.saved', name);
    } catch (e) {
      segMsg.textContent = e.message;
    }
  }

  ta.addEventListener('input', () => {
    paint(ta.value, null);
    update();
  });
  ta.addEventListener('scroll', () => { backdrop.scrollTop = ta.scrollTop; });
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      update.now();
    }
  });
  again.addEventListener('click', () => { seed = null; update.now(); });

  ta.value = state.rule ?? 'kind = "enterprise" and employees < 300';
  if (state.segment) segName.value = state.segment;
  state.rule = undefined;
  state.segment = undefined;
  paint(ta.value, null);
  update.now();
  return { get rule() { return ta.value; } };
}
