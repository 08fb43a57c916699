// A new policy (POST /v1/policies): its texts, the rule with its live audience count (the rule
// editor's debounced preview and underlining), routes with fallback chains picked from the
// configured gateways (GET /v1/gateways), schedule and deadline, urgent, match_new_profiles,
// pace; a dry run shows the funnel as it would be; publish opens the policy's funnel. The
// API's validation errors are shown next to the field they name. Offered to admin and
// publisher only (a publisher's policy is scoped by the API).
import * as api from './api.js';
import { h, clear } from './dom.js';
import { t, num } from './i18n.js';
import { ruleField } from './editor.js';
import { funnelTable } from './policies.js';
import { templatesPart } from './policy_templates.js';

const TEXTS = [['id', 64], ['title', 512], ['summary', 8192], ['url', 2048], ['issuer', 256],
  ['category', 64]];
const MAX_ROUTES = 8;
const MAX_CHAIN = 4;

// "2026-06-01T09:00" of a datetime-local input as RFC 3339 with the browser's offset.
function rfc3339(local) {
  const d = new Date(local);
  if (Number.isNaN(d.getTime())) return local;
  const off = -d.getTimezoneOffset();
  const a = Math.abs(off);
  const pad = (n) => String(n).padStart(2, '0');
  return local + (local.length === 16 ? ':00' : '') + (off >= 0 ? '+' : '-') +
    pad(Math.floor(a / 60)) + ':' + pad(a % 60);
}

export function mountPolicyForm(root, session, state) {
  const err = {};
  const inputs = {};
  const field = (name, control, hint) => {
    err[name] = h('p', { id: 'pf-' + name + '-err', class: 'field-error', role: 'alert', hidden: true });
    return h('div', { class: 'field', 'data-field': name },
      h('label', { for: control.id, text: t('pf.' + name) }), control,
      hint ? h('span', { class: 'hint', text: hint }) : null, err[name]);
  };
  for (const [name, max] of TEXTS) {
    inputs[name] = name === 'summary'
      ? h('textarea', { id: 'pf-summary', rows: 3, maxlength: max })
      : h('input', { id: 'pf-' + name, type: name === 'url' ? 'url' : 'text', maxlength: max,
        autocomplete: 'off', required: name === 'title' });
  }
  const rule = ruleField('pf-', state.rule ?? 'kind = "enterprise" and employees < 300');
  state.rule = undefined;
  err.rule = h('p', { id: 'pf-rule-err', class: 'field-error', role: 'alert', hidden: true });
  inputs.publish_at = h('input', { id: 'pf-publish_at', type: 'datetime-local' });
  inputs.deadline = h('input', { id: 'pf-deadline', type: 'date' });
  inputs.pace = h('input', { id: 'pf-pace', type: 'number', min: 1, max: 10000000, step: 1,
    inputmode: 'numeric' });
  inputs.urgent = h('input', { id: 'pf-urgent', type: 'checkbox' });
  inputs.match_new_profiles = h('input', { id: 'pf-match_new_profiles', type: 'checkbox' });
  const check = (name) => {
    err[name] = h('p', { id: 'pf-' + name + '-err', class: 'field-error', role: 'alert', hidden: true });
    return h('div', { class: 'field check', 'data-field': name }, inputs[name],
      h('label', { for: inputs[name].id, text: t('pf.' + name) }), err[name]);
  };
  const routeBox = h('div', { id: 'pf-routes' });
  err.routes = h('p', { id: 'pf-routes-err', class: 'field-error', role: 'alert', hidden: true });
  const preview = h('div', { id: 'pf-preview', class: 'notice-preview' });
  const dryOut = h('div', { id: 'pf-dry', 'aria-live': 'polite' });
  const msg = h('p', { id: 'pf-msg', class: 'error', role: 'alert' });
  const dryBtn = h('button', { type: 'button', id: 'pf-dry-run', class: 'secondary',
    text: t('pf.dry') });
  const pubBtn = h('button', { type: 'submit', id: 'pf-publish', text: t('pf.publish') });
  let gateways = [];
  let routes = [];
  const tpl = templatesPart({
    gatewaysInRoutes: () => [...new Set(routes.flat())],
    policyBody: () => body(false),
    rule: () => rule.rule,
  });

  const form = h('form', { id: 'policy-form', novalidate: true, onsubmit: (ev) => {
    ev.preventDefault();
    send(false);
  } },
  h('div', { class: 'grid' },
    h('div', { class: 'card' },
      h('h3', { text: t('pf.texts') }),
      TEXTS.map(([name]) => field(name, inputs[name], name === 'id' ? t('pf.id.hint') : null))),
    h('div', {},
      h('div', { class: 'card' }, h('h3', { text: t('pf.preview') }),
        h('p', { class: 'hint', text: t('pf.preview.hint') }), preview),
      tpl.panel,
      h('div', { class: 'card' }, h('h3', { text: t('pf.when') }),
        field('publish_at', inputs.publish_at, t('pf.publish_at.hint')),
        field('deadline', inputs.deadline),
        field('pace', inputs.pace, t('pf.pace.hint')),
        check('urgent'), check('match_new_profiles')))),
  tpl.card,
  h('div', { class: 'card', 'data-field': 'rule' },
    h('label', { for: 'pf-rule', text: t('pf.rule') }), rule.element, err.rule),
  h('div', { class: 'card', 'data-field': 'routes' },
    h('h3', { text: t('pf.routes') }), h('p', { class: 'hint', text: t('pf.routes.hint') }),
    routeBox, err.routes),
  h('div', { class: 'row' }, dryBtn, pubBtn), msg, dryOut);

  clear(root).append(h('p', {}, h('a', { href: '#/policies', text: '← ' + t('pol.title') })),
    h('h2', { text: t('pf.new') }), form);

  function renderPreview() {
    const v = (k) => inputs[k].value.trim();
    clear(preview).append(
      h('p', { class: 'np-title', id: 'pf-preview-title', text: v('title') || t('pf.title.missing') }),
      v('summary') ? h('p', { class: 'np-summary', text: v('summary') }) : null,
      v('url') ? h('p', { class: 'np-url' }, h('code', { text: v('url') })) : null,
      h('p', { class: 'hint', text: [v('issuer'), v('category'),
        inputs.urgent.checked ? t('pf.urgent') : ''].filter(Boolean).join(' · ') }));
  }

  function renderRoutes() {
    const names = gateways.map((g) => g.name);
    tpl.routesChanged();
    clear(routeBox);
    if (!names.length) {
      routeBox.append(h('p', { class: 'error', text: t('pf.no_gateways') }));
      return;
    }
    routes.forEach((chain, i) => {
      const row = h('div', { class: 'route row', 'data-route': i },
        h('span', { class: 'route-n', text: t('pf.route', i + 1) }));
      chain.forEach((g, j) => {
        if (j > 0) row.append(h('span', { 'aria-hidden': 'true', text: '→' }));
        const sel = h('select', { class: 'route-gw', 'data-route': i, 'data-pos': j,
          'aria-label': t('pf.route.gw', i + 1, j + 1) },
        names.map((n) => h('option', { value: n, text: n + ' (' + gateways.find((x) =>
          x.name === n).type + ')' })));
        sel.value = g;
        sel.addEventListener('change', () => {
          chain[j] = sel.value;
          tpl.routesChanged();
        });
        row.append(sel);
        if (chain.length > 1) {
          row.append(h('button', { type: 'button', class: 'link', 'aria-label':
            t('pf.route.drop_gw', i + 1, j + 1), text: '×',
          onclick: () => { chain.splice(j, 1); renderRoutes(); } }));
        }
      });
      if (chain.length < MAX_CHAIN) {
        row.append(h('button', { type: 'button', class: 'link add-fallback', text: t('pf.fallback'),
          onclick: () => {
            chain.push(names.find((n) => !chain.includes(n)) || names[0]);
            renderRoutes();
          } }));
      }
      if (routes.length > 1) {
        row.append(h('button', { type: 'button', class: 'link danger', text: t('pf.route.drop'),
          onclick: () => { routes.splice(i, 1); renderRoutes(); } }));
      }
      routeBox.append(row);
    });
    if (routes.length < MAX_ROUTES) {
      routeBox.append(h('button', { type: 'button', id: 'pf-add-route', class: 'link',
        text: t('pf.route.add'), onclick: () => {
          const used = new Set(routes.flat());
          routes.push([names.find((n) => !used.has(n)) || names[0]]);
          renderRoutes();
        } }));
    }
  }

  function body(dry, withTemplates) {
    const b = {};
    for (const [name] of TEXTS) {
      const v = inputs[name].value.trim();
      if (v) b[name] = v;
    }
    b.rule = rule.rule;
    b.routes = routes.map((c) => (c.length === 1 ? c[0] : c.slice()));
    if (inputs.publish_at.value) b.publish_at = rfc3339(inputs.publish_at.value);
    if (inputs.deadline.value) b.deadline = inputs.deadline.value;
    if (inputs.pace.value !== '') b.pace = Number(inputs.pace.value);
    if (inputs.urgent.checked) b.urgent = true;
    if (inputs.match_new_profiles.checked) b.match_new_profiles = true;
    if (dry) b.dry_run = true;
    if (withTemplates) {
      const tp = tpl.templates();
      if (tp) b.templates = tp;
    }
    return b;
  }

  function clearErrors() {
    for (const e of Object.values(err)) {
      e.textContent = '';
      e.hidden = true;
    }
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    msg.textContent = '';
    tpl.clearErrors();
  }

  // The API names the field of a 400 ("routes", "routes[1]", "pace"): the message goes there.
  function showError(e) {
    if (tpl.showError(e)) return;
    const f = String((e.error && e.error.field) || '').split(/[.[]/)[0];
    if (f === 'rule' && e.error.position !== undefined) {
      rule.showError(e);
      err.rule.hidden = true;
      rule.textarea.focus();
      return;
    }
    if (err[f]) {
      err[f].textContent = e.message;
      err[f].hidden = false;
      const control = inputs[f] || (f === 'rule' ? rule.textarea : routeBox.querySelector('select'));
      if (control) {
        control.setAttribute('aria-invalid', 'true');
        control.focus();
      }
      return;
    }
    msg.textContent = e.message;
  }

  async function send(dry) {
    clearErrors();
    clear(dryOut);
    dryBtn.disabled = pubBtn.disabled = true;
    try {
      const r = await api.publish(body(dry, true));
      if (dry) {
        dryOut.append(h('div', { class: 'card', id: 'pf-dry-result' },
          h('h3', { text: t('pf.dry.title') }),
          h('p', { class: 'totals' },
            h('span', { class: 'total', 'data-k': 'matched' }, h('b', { text: num(r.matched) }),
              ' ', t('pol.matched')),
            h('span', { class: 'total', 'data-k': 'notices' }, h('b', { text: num(r.notices) }),
              ' ', t('pol.notices')),
            r.estimated ? h('span', { class: 'hint', text: t('pf.estimated', num(r.contacts_read)) })
              : null),
          funnelTable(r, 'pf-dry-table')));
        return;
      }
      location.hash = '#/policies/' + encodeURIComponent(r.id);
    } catch (e) {
      if (e instanceof api.ApiError && e.status < 500) showError(e);
      else msg.textContent = e.message;
    } finally {
      dryBtn.disabled = pubBtn.disabled = false;
    }
  }

  dryBtn.addEventListener('click', () => send(true));
  for (const k of ['title', 'summary', 'url', 'issuer', 'category']) {
    inputs[k].addEventListener('input', renderPreview);
  }
  inputs.urgent.addEventListener('change', renderPreview);
  // Any edit of the policy may change the rendered notice (texts, rule, deadline, routes).
  form.addEventListener('input', () => tpl.schedule());
  form.addEventListener('change', () => tpl.schedule());
  renderPreview();
  api.gateways().then((r) => {
    gateways = r.gateways || [];
    const first = gateways.find((g) => g.type === 'inbox') || gateways[0];
    routes = first ? [[first.name]] : [];
    renderRoutes();
  }).catch((e) => { msg.textContent = e.message; });
  inputs.title.focus();
  return { get rule() { return rule.rule; } };
}
