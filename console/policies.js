// Policies: the list with status (GET /v1/policies, its cursor and status filter), a link to
// the form for a new one (policy_form.js) for roles that may publish, and one policy's funnel
// per route (GET /v1/policies/{id}, SPEC §4) with who delivered on a fallback chain, reads and
// recipients' feedback, refreshed every 2 s until the policy is finished; withdraw (with a
// confirmation) while it is not.
import * as api from './api.js';
import { h, clear } from './dom.js';
import { t, num } from './i18n.js';

const STATUSES = ['scheduled', 'matching', 'dispatching', 'active', 'done', 'withdrawn'];
const FINISHED = new Set(['done', 'withdrawn']);
const BUCKETS = ['delivered', 'pending', 'suppressed', 'dead', 'withdrawn'];
const COLORS = { delivered: '#1e7e4a', pending: '#f0a030', suppressed: '#8a94a6',
  dead: '#c0392b', withdrawn: '#5b6475' };

function sum(v) {
  return typeof v === 'number' ? v : Object.values(v || {}).reduce((a, b) => a + sum(b), 0);
}

// The funnel's table per route (a policy's, or a dry run's): the buckets, then which gateway of
// a chain delivered, reads and recipients' feedback.
export function funnelTable(p, id) {
  const routes = p.routes || [];
  const fb = (r, k) => num((r.feedback && r.feedback[k]) ?? 0);
  return h('div', { class: 'table-scroll' }, h('table', { class: 'table', id },
    h('thead', {}, h('tr', {}, h('th', { text: t('pol.route') }),
      BUCKETS.map((k) => h('th', { class: 'n', text: t('fun.' + k) })),
      h('th', { text: t('pol.by') }), h('th', { class: 'n', text: t('fun.read') }),
      h('th', { class: 'n', text: t('fun.useful') }), h('th', { class: 'n', text: t('fun.not_useful') }))),
    h('tbody', {}, routes.map((r) => h('tr', {},
      h('td', { text: routeName(r.route) }),
      BUCKETS.map((k) => h('td', { class: 'n', 'data-k': k, text: num(sum(r[k])) })),
      h('td', { 'data-k': 'delivered_by', text: Object.entries(r.delivered_by || {})
        .map(([g, n]) => g + ' ' + num(n)).join(', ') }),
      h('td', { class: 'n', 'data-k': 'read', text: num(r.read ?? 0) }),
      h('td', { class: 'n', 'data-k': 'useful', text: fb(r, 'useful') }),
      h('td', { class: 'n', 'data-k': 'not_useful', text: fb(r, 'not_useful') }))))));
}

function routeName(r) {
  return Array.isArray(r) ? r.join(' → ') : String(r);
}

export function mountPolicies(root, session, open) {
  const body = h('tbody', { id: 'policies-body' });
  const status = h('select', { id: 'policy-status', 'aria-label': t('pol.status') },
    h('option', { value: '', text: t('pol.all') }),
    STATUSES.map((s) => h('option', { value: s, text: t('st.' + s) })));
  const more = h('button', { type: 'button', id: 'policies-more', hidden: true, text: t('segs.more') });
  const msg = h('p', { class: 'error', role: 'alert' });
  let cursor = null;

  const can = api.can(session.role);
  clear(root).append(h('div', { class: 'row' }, h('h2', { text: t('pol.title') }),
    can.publish ? h('a', { href: '#/policy-new', id: 'policy-new', class: 'button',
      text: t('pf.new') }) : null),
    h('div', { class: 'card' },
      h('div', { class: 'row' }, h('label', { for: 'policy-status', text: t('pol.status') }), status),
      h('table', { class: 'table', id: 'policies' },
        h('thead', {}, h('tr', {}, ['pol.id', 'pol.name', 'pol.status', 'pol.matched',
          'pol.delivered'].map((k) => h('th', { class: k === 'pol.matched' || k === 'pol.delivered'
          ? 'n' : null, text: t(k) })))),
        body),
      more, msg));

  async function page(reset) {
    if (reset) {
      cursor = null;
      clear(body);
    }
    try {
      const q = new URLSearchParams({ limit: '50' });
      if (status.value) q.set('status', status.value);
      if (cursor) q.set('cursor', cursor);
      const r = await api.policies(q.toString());
      for (const p of r.policies) {
        body.append(h('tr', { 'data-id': p.id },
          h('td', {}, h('a', { href: '#/policies/' + encodeURIComponent(p.id), text: p.id })),
          h('td', { text: (p.policy && p.policy.title) || '' }),
          h('td', { class: 'st-' + p.status, text: t('st.' + p.status) }),
          h('td', { class: 'n', text: num(p.matched ?? 0) }),
          h('td', { class: 'n', text: num((p.funnel && p.funnel.delivered) ?? 0) })));
      }
      cursor = r.next_cursor;
      more.hidden = !cursor;
      if (!body.firstChild) body.append(h('tr', {}, h('td', { colspan: 5, class: 'hint', text: t('pol.none') })));
    } catch (e) {
      msg.textContent = e.message;
    }
  }
  status.addEventListener('change', () => page(true));
  more.addEventListener('click', () => page(false));
  page(true);
}

export function mountPolicy(root, session, id) {
  const head = h('div', { id: 'policy-head' });
  const totals = h('div', { id: 'policy-totals', class: 'totals' });
  const canvas = h('canvas', { id: 'chart-funnel', role: 'img' });
  const table = h('div', { id: 'policy-routes' });
  const msg = h('p', { class: 'error', role: 'alert', id: 'policy-msg' });
  const can = api.can(session.role);
  const withdrawBtn = h('button', { type: 'button', id: 'policy-withdraw', class: 'danger',
    hidden: true, text: t('pol.withdraw') });
  let chart = null;
  let timer = null;

  clear(root).append(h('p', {}, h('a', { href: '#/policies', text: '← ' + t('pol.title') })),
    head, can.publish ? h('div', { class: 'row' }, withdrawBtn) : null,
    h('div', { class: 'card' }, totals,
      h('div', { class: 'chart-wrap funnel' }, canvas)), h('div', { class: 'card' }, table), msg);

  function render(p) {
    clear(head).append(h('h2', { text: (p.policy && p.policy.title) || p.id }),
      h('p', {}, h('code', { text: p.id }), ' · ',
        h('span', { id: 'policy-status-text', 'data-status': p.status, text: t('st.' + p.status) })));
    const f = p.funnel || {};
    clear(totals).append(...[
      ['matched', 'notices'].map((k) => h('span', { class: 'total', 'data-k': k },
        h('b', { text: num(p[k] ?? 0) }), ' ', t('pol.' + k))),
      BUCKETS.map((k) => h('span', { class: 'total', 'data-k': k },
        h('b', { text: num(sum(f[k])) }), ' ', t('fun.' + k))),
      ['read', 'useful', 'not_useful'].map((k) => h('span', { class: 'total', 'data-k': k },
        h('b', { text: num((k === 'read' ? f.read : (f.feedback || {})[k]) ?? 0) }), ' ', t('fun.' + k))),
    ].flat());
    withdrawBtn.hidden = FINISHED.has(p.status);
    const routes = p.routes || [];
    const labels = routes.map((r) => routeName(r.route));
    canvas.setAttribute('aria-label', t('pol.funnel') + ': ' + routes.map((r, i) => labels[i] + ' ' +
      BUCKETS.map((k) => t('fun.' + k) + ' ' + sum(r[k])).join(', ')).join('; '));
    const datasets = BUCKETS.map((k) => ({ label: t('fun.' + k), backgroundColor: COLORS[k],
      data: routes.map((r) => sum(r[k])) }));
    if (window.Chart) {
      if (chart) {
        chart.data.labels = labels;
        chart.data.datasets.forEach((d, i) => { d.data = datasets[i].data; });
        chart.update('none');
      } else {
        chart = new window.Chart(canvas, { type: 'bar', data: { labels, datasets },
          options: { indexAxis: 'y', animation: false, responsive: true, maintainAspectRatio: false,
            scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
              y: { stacked: true } } } });
      }
    }
    clear(table).append(funnelTable(p, 'policy-route-table'));
  }

  async function poll() {
    if (!root.isConnected || root.hidden) return;
    try {
      const p = await api.policy(id);
      render(p);
      if (!FINISHED.has(p.status)) timer = setTimeout(poll, 2000);
    } catch (e) {
      msg.textContent = e.message;
    }
  }
  withdrawBtn.addEventListener('click', async () => {
    if (!window.confirm(t('pol.withdraw.confirm', id))) return;
    msg.textContent = '';
    try {
      await api.withdraw(id);
    } catch (e) {
      msg.textContent = e.message;
    }
    clearTimeout(timer);
    poll();
  });
  // After the caller has shown the page: poll() stops on a hidden one, and a policy opened by
  // its link (a reload, a bookmark) is mounted while the section is still hidden.
  timer = setTimeout(poll, 0);
  return () => clearTimeout(timer);
}
