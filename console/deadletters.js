// Dead letters (GET /v1/deadletters: notices that used up their attempts), filtered by policy
// and gateway, paged by cursor; replay (POST /v1/deadletters:replay) by policy, by gateway or
// of the selected ids — offered to roles that may publish only (a publisher sees and replays
// its own scope's letters: the API filters).
import * as api from './api.js';
import { h, clear } from './dom.js';
import { t, num } from './i18n.js';

export function mountDeadletters(root, session) {
  const can = api.can(session.role);
  const policy = h('input', { id: 'dl-policy', autocomplete: 'off', placeholder: t('dl.policy'),
    pattern: '[A-Za-z0-9._\\-]{1,64}' });
  const gateway = h('select', { id: 'dl-gateway' }, h('option', { value: '', text: t('pol.all') }));
  const body = h('tbody', { id: 'dl-body' });
  const more = h('button', { type: 'button', id: 'dl-more', hidden: true, text: t('segs.more') });
  const msg = h('p', { id: 'dl-msg', role: 'status', 'aria-live': 'polite' });
  const all = h('input', { type: 'checkbox', id: 'dl-all', 'aria-label': t('dl.all') });
  const bySel = h('button', { type: 'button', id: 'dl-replay-ids', disabled: true,
    text: t('dl.replay.ids') });
  const byPolicy = h('button', { type: 'button', id: 'dl-replay-policy', disabled: true,
    text: t('dl.replay.policy') });
  const byGateway = h('button', { type: 'button', id: 'dl-replay-gateway', disabled: true,
    text: t('dl.replay.gateway') });
  let cursor = null;
  let shown = { policy: '', gateway: '' };

  clear(root).append(h('h2', { text: t('dl.title') }),
    h('div', { class: 'card' },
      h('form', { id: 'dl-filter', class: 'row', onsubmit: (ev) => { ev.preventDefault(); page(true); } },
        h('label', { for: 'dl-policy', text: t('dl.policy') }), policy,
        h('label', { for: 'dl-gateway', text: t('dl.gateway') }), gateway,
        h('button', { type: 'submit', id: 'dl-apply', text: t('dl.apply') })),
      can.publish ? h('div', { class: 'row', id: 'dl-actions' }, bySel, byPolicy, byGateway) : null,
      msg,
      h('table', { class: 'table', id: 'deadletters' },
        h('thead', {}, h('tr', {}, can.publish ? h('th', {}, all) : null,
          ['dl.id', 'dl.policy', 'dl.gateway', 'dl.attempts', 'dl.detail', 'dl.at'].map((k) =>
            h('th', { class: k === 'dl.attempts' ? 'n' : null, text: t(k) })))),
        body),
      more));

  function selected() {
    return [...body.querySelectorAll('input.dl-pick:checked')].map((c) => c.value);
  }

  function refreshButtons() {
    bySel.disabled = selected().length === 0;
    byPolicy.disabled = !shown.policy;
    byGateway.disabled = !shown.gateway;
  }

  async function page(reset) {
    if (reset) {
      cursor = null;
      clear(body);
      all.checked = false;
      msg.textContent = '';
      shown = { policy: policy.value.trim(), gateway: gateway.value };
    }
    try {
      const q = new URLSearchParams({ limit: '50' });
      if (shown.policy) q.set('policy', shown.policy);
      if (shown.gateway) q.set('gateway', shown.gateway);
      if (cursor) q.set('cursor', cursor);
      const r = await api.deadletters(q.toString());
      for (const d of r.deadletters) {
        body.append(h('tr', { 'data-id': d.id || '' },
          can.publish ? h('td', {}, d.id ? h('input', { type: 'checkbox', class: 'dl-pick',
            value: d.id, 'aria-label': t('dl.pick', d.id), onchange: refreshButtons }) : null) : null,
          h('td', {}, h('code', { text: d.id || t('dl.erased') })),
          h('td', {}, h('a', { href: '#/policies/' + encodeURIComponent(d.policy), text: d.policy })),
          h('td', { text: d.gateway }),
          h('td', { class: 'n', text: num(d.attempts) }),
          h('td', { text: d.detail || (d.http_status ? 'HTTP ' + d.http_status : '') }),
          h('td', { text: d.at ? new Date(d.at).toLocaleString() : '' })));
      }
      cursor = r.next_cursor;
      more.hidden = !cursor;
      if (!body.firstChild) {
        body.append(h('tr', { class: 'empty' }, h('td', { colspan: can.publish ? 7 : 6, class: 'hint',
          text: t('dl.none') })));
      }
    } catch (e) {
      msg.textContent = e.message;
      msg.className = 'error';
    }
    refreshButtons();
  }

  async function replay(what) {
    msg.className = '';
    msg.textContent = '';
    try {
      const r = await api.replay(what);
      msg.textContent = t('dl.replayed', num(r.replayed));
      msg.dataset.replayed = String(r.replayed);
      const text = msg.textContent;
      await page(true);
      msg.textContent = text;
    } catch (e) {
      msg.textContent = e.message;
      msg.className = 'error';
    }
  }

  all.addEventListener('change', () => {
    for (const c of body.querySelectorAll('input.dl-pick')) c.checked = all.checked;
    refreshButtons();
  });
  bySel.addEventListener('click', () => replay({ ids: selected() }));
  byPolicy.addEventListener('click', () => replay({ policy: shown.policy }));
  byGateway.addEventListener('click', () => replay({ gateway: shown.gateway }));
  more.addEventListener('click', () => page(false));
  api.gateways().then((r) => {
    for (const g of r.gateways || []) gateway.append(h('option', { value: g.name, text: g.name }));
  }).catch(() => {});
  page(true);
}
