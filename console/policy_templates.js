// The new-policy form's templates and their rendered preview (issue #8): the default title and
// body, optional overrides for gateways of the chosen routes, and the notice one sample profile
// would receive per gateway, as POST /v1/policies:render answers it (debounced on every edit of
// the form). The sample is the first id of the rule's random sample, or an id the operator
// types. A template error (invalid_template: unknown path, with its position) is shown at that
// template's field with the API's message; other render errors in the panel.
import * as api from './api.js';
import { h, clear, debounce } from './dom.js';
import { t, num } from './i18n.js';

const PARTS = [['title', 2], ['body', 4]];

// A byte offset of a UTF-8 string as a character (UTF-16) index of the JS string.
function charIndex(s, bytes) {
  const enc = new TextEncoder();
  let b = 0;
  let i = 0;
  for (const ch of s) {
    if (b >= bytes) break;
    b += enc.encode(ch).length;
    i += ch.length;
  }
  return i;
}

// opts: { gatewaysInRoutes() → [names], policyBody() → the POST /v1/policies body without
// templates, rule() → the rule text }.
export function templatesPart(opts) {
  const boxes = new Map(); // "default" or a gateway name → { title, body, errs, element }
  const list = h('div', { id: 'pf-tpls' });
  const gwSelect = h('select', { id: 'pf-tpl-gw', 'aria-label': t('pf.tpl.pick') });
  const addBtn = h('button', { type: 'button', id: 'pf-tpl-add', class: 'link',
    text: t('pf.tpl.add') });
  const addRow = h('div', { class: 'row' }, gwSelect, addBtn);
  const card = h('div', { class: 'card', 'data-field': 'templates' },
    h('h3', { text: t('pf.tpl') }), h('p', { class: 'hint', text: t('pf.tpl.hint') }),
    list, addRow);

  const sampleIn = h('input', { id: 'pf-sample-id', type: 'text', maxlength: 64,
    autocomplete: 'off', spellcheck: 'false' });
  const againBtn = h('button', { type: 'button', id: 'pf-sample-again', class: 'link',
    text: t('pf.render.again') });
  const who = h('p', { id: 'pf-render-who', class: 'hint', 'aria-live': 'polite' });
  const out = h('div', { id: 'pf-render', 'aria-live': 'polite' });
  const panelMsg = h('p', { id: 'pf-render-msg', class: 'error', role: 'status' });
  const panel = h('div', { class: 'card', id: 'pf-render-card' },
    h('h3', { text: t('pf.render') }),
    h('div', { class: 'field' }, h('label', { for: 'pf-sample-id', text: t('pf.render.id') }),
      h('div', { class: 'row' }, sampleIn, againBtn),
      h('span', { class: 'hint', text: t('pf.render.hint') })),
    who, panelMsg, out);

  function addBox(key) {
    const b = { errs: {} };
    const fields = PARTS.map(([part, rows]) => {
      const id = 'pf-tpl-' + key + '-' + part;
      b[part] = h('textarea', { id, rows, spellcheck: 'false', autocomplete: 'off',
        'data-template': key + '.' + part, 'aria-describedby': id + '-err' });
      b.errs[part] = h('p', { id: id + '-err', class: 'field-error', role: 'alert', hidden: true });
      b[part].addEventListener('input', () => schedule());
      return h('div', { class: 'field', 'data-field': 'templates.' + key + '.' + part },
        h('label', { for: id, text: t('pf.tpl.' + part) }), b[part], b.errs[part]);
    });
    const head = h('div', { class: 'row' },
      h('h4', { text: key === 'default' ? t('pf.tpl.default') : t('pf.tpl.gw', key) }));
    if (key !== 'default') {
      head.append(h('button', { type: 'button', class: 'link danger', text: t('pf.tpl.drop'),
        'aria-label': t('pf.tpl.drop.gw', key), onclick: () => {
          b.element.remove();
          boxes.delete(key);
          refreshGateways();
          schedule();
          gwSelect.focus();
        } }));
    }
    b.element = h('fieldset', { class: 'tpl', 'data-template': key }, head, fields);
    boxes.set(key, b);
    list.append(b.element);
    return b;
  }

  // The select offers the gateways of the routes that have no template of their own yet.
  function refreshGateways() {
    const free = opts.gatewaysInRoutes().filter((g) => !boxes.has(g));
    const keep = gwSelect.value;
    clear(gwSelect).append(...free.map((g) => h('option', { value: g, text: g })));
    if (free.includes(keep)) gwSelect.value = keep;
    addRow.hidden = free.length === 0;
  }

  addBtn.addEventListener('click', () => {
    const g = gwSelect.value;
    if (!g || boxes.has(g)) return;
    const b = addBox(g);
    refreshGateways();
    b.body.focus();
  });

  // Only what was filled: a gateway override with nothing in it is left out.
  function templates() {
    const o = {};
    for (const [key, b] of boxes) {
      const v = {};
      for (const [part] of PARTS) if (b[part].value.trim()) v[part] = b[part].value;
      if (Object.keys(v).length) o[key] = v;
    }
    return Object.keys(o).length ? o : undefined;
  }

  function clearErrors() {
    for (const b of boxes.values()) {
      for (const [part] of PARTS) {
        b.errs[part].textContent = '';
        b.errs[part].hidden = true;
        b[part].removeAttribute('aria-invalid');
      }
    }
  }

  // "templates.sms.body" → that textarea; true when shown there. focus: move the cursor to
  // the error's position (a publish, not an edit being typed).
  function showError(e, focus) {
    const f = String((e.error && e.error.field) || '');
    if (!f.startsWith('templates')) return false;
    const [, key, part] = f.split('.');
    const b = boxes.get(key);
    if (!b) return false;
    const which = part && b[part] ? part : 'body';
    const el = b.errs[which];
    el.textContent = e.message;
    el.hidden = false;
    if (e.error.path !== undefined) el.dataset.path = e.error.path;
    if (e.error.position !== undefined) el.dataset.position = String(e.error.position);
    b[which].setAttribute('aria-invalid', 'true');
    if (focus) {
      b[which].focus();
      if (e.error.position !== undefined) {
        const i = charIndex(b[which].value, e.error.position);
        b[which].setSelectionRange(i, i);
      }
    }
    return true;
  }

  // The sample: the typed id, else the first of a random sample of the rule (kept while the
  // rule text is the same, so editing a template does not change the profile).
  let auto = { rule: null, id: null };
  async function sampleId() {
    const typed = sampleIn.value.trim();
    if (typed) return typed;
    const rule = opts.rule();
    if (auto.rule !== rule) {
      const r = await api.preview({ rule, sample: 1, sample_order: 'random' });
      const s = (r.sample || [])[0];
      auto = { rule, id: s === undefined ? null : (typeof s === 'object' ? s.id : s) };
    }
    return auto.id;
  }

  let seq = 0;
  async function run() {
    const my = ++seq;
    out.classList.add('busy');
    try {
      let id = null;
      try {
        id = await sampleId();
      } catch (e) {
        // The rule has an error: its own field shows it.
        if (my !== seq) return;
        clear(out);
        who.textContent = '';
        panelMsg.textContent = t('pf.render.norule');
        return;
      }
      if (my !== seq) return;
      sampleIn.placeholder = id || '';
      if (!id) {
        clear(out);
        clearErrors();
        who.textContent = '';
        panelMsg.textContent = t('pf.render.none');
        return;
      }
      const policy = opts.policyBody();
      const tp = templates();
      if (tp) policy.templates = tp;
      let r;
      try {
        r = await api.render({ policy, profile_id: id });
      } catch (e) {
        if (my !== seq) return;
        clearErrors();
        clear(out);
        who.textContent = '';
        if (e instanceof api.ApiError && e.status < 500 && showError(e, false)) {
          panelMsg.textContent = t('pf.render.tplerr');
        } else {
          panelMsg.textContent = e.message;
        }
        return;
      }
      if (my !== seq) return;
      clearErrors();
      panelMsg.textContent = '';
      out.dataset.profile = r.profile_id;
      who.textContent = t('pf.render.who', r.profile_id) + ' · ' +
        t(r.match ? 'pf.render.match' : 'pf.render.nomatch');
      who.dataset.match = String(!!r.match);
      clear(out).append(...(r.notices || []).map((n) => h('div', {
        class: 'notice-preview rendered', 'data-gateway': n.gateway, 'data-route': n.route },
      h('p', { class: 'hint', text: t('pol.route') + ' ' + (n.route + 1) + ' · ' + n.gateway +
        ' (' + n.type + ')' }),
      h('p', { class: 'np-title', text: n.title }),
      h('p', { class: 'np-body', text: n.body }),
      n.sms ? h('p', { class: 'hint np-sms', 'data-segments': n.sms.segments,
        text: t('pf.render.sms', num(n.sms.characters), n.sms.encoding, num(n.sms.segments)) })
        : null)));
    } finally {
      if (my === seq) out.classList.remove('busy');
    }
  }
  const schedule = debounce(run, 400);
  sampleIn.addEventListener('input', () => schedule());
  sampleIn.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      schedule.now();
    }
  });
  againBtn.addEventListener('click', () => {
    sampleIn.value = '';
    auto = { rule: null, id: null };
    schedule.now();
  });

  addBox('default');
  return {
    card, panel, templates, clearErrors, schedule,
    showError: (e) => showError(e, true),
    routesChanged() {
      refreshGateways();
      schedule();
    },
  };
}
