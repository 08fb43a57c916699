// Segments: every saved rule, a page at a time (GET /v1/segments with its cursor); use one in
// a rule, edit it in the editor, delete it (admins any, publishers their scope's).
import * as api from './api.js';
import { h, clear } from './dom.js';
import { t } from './i18n.js';

export function mountSegments(root, session, go) {
  const can = api.can(session.role);
  const body = h('tbody', { id: 'segments-body' });
  const more = h('button', { type: 'button', id: 'segments-more', hidden: true, text: t('segs.more') });
  const msg = h('p', { class: 'error', role: 'alert' });
  let cursor = null;

  clear(root).append(h('h2', { text: t('segs.title') }),
    h('div', { class: 'card' },
      h('table', { class: 'table', id: 'segments' },
        h('thead', {}, h('tr', {}, h('th', { text: t('segs.name') }), h('th', { text: t('segs.rule') }),
          h('th', { text: t('segs.owner') }), h('th', {}))),
        body),
      more, msg));

  const mayChange = (s) =>
    can.writeSegments && (session.role === 'admin' || s.owner === session.scope);

  function row(s) {
    const tr = h('tr', { 'data-name': s.name },
      h('td', {}, h('code', { text: s.name })),
      h('td', {}, h('code', { class: 'rule', text: s.rule })),
      h('td', { text: s.owner === '*' ? t('segs.all') : s.owner }),
      h('td', { class: 'actions' },
        can.preview ? h('button', { type: 'button', class: 'use', text: t('segs.use'),
          onclick: () => go({ rule: 'segment "' + s.name + '"' }) }) : null,
        mayChange(s) ? h('button', { type: 'button', class: 'edit', text: t('segs.edit'),
          onclick: () => go({ rule: s.rule, segment: s.name }) }) : null,
        mayChange(s) ? h('button', { type: 'button', class: 'delete danger', text: t('segs.delete'),
          onclick: async () => {
            if (!window.confirm(t('segs.confirm', s.name))) return;
            try {
              await api.deleteSegment(s.name);
              tr.remove();
            } catch (e) {
              msg.textContent = e.message;
            }
          } }) : null));
    return tr;
  }

  async function page() {
    try {
      const r = await api.segments(cursor);
      r.segments.forEach((s) => body.append(row(s)));
      cursor = r.next_cursor;
      more.hidden = !cursor;
      if (!body.firstChild) body.append(h('tr', {}, h('td', { colspan: 4, class: 'hint', text: t('segs.none') })));
    } catch (e) {
      msg.textContent = e.message;
    }
  }
  more.addEventListener('click', page);
  page();
}
