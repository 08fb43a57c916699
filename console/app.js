// The console's entry: sign-in, the page chosen by the URL's hash (#/rules, #/segments), the
// language toggle. Nothing here keeps the API key: it goes once to POST /v1/sessions.
import * as api from './api.js';
import { $, clear } from './dom.js';
import { t, getLang, setLang, applyStatic, onLang } from './i18n.js';
import { loadNames } from './names.js';
import { mountRules } from './editor.js';
import { mountSegments } from './segments.js';
import { mountPolicies, mountPolicy } from './policies.js';
import { mountPolicyForm } from './policy_form.js';
import { mountDeadletters } from './deadletters.js';

let session = null;
const state = {}; // what one page hands to the next (a rule to open in the editor)
let editor = null;
let policiesServed = false;
let stopPolicy = null;

function show(id) {
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== id;
}

function route() {
  if (!session) {
    show('signin');
    $('#key').focus();
    return;
  }
  const can = api.can(session.role);
  const hash = location.hash;
  if (stopPolicy) stopPolicy();
  stopPolicy = null;
  const policyId = hash.startsWith('#/policies/') ? decodeURIComponent(hash.slice(11)) : null;
  const served = policiesServed && can.readPolicies;
  const page = hash === '#/segments' ? 'segments'
    : hash === '#/policy-new' && served && can.publish ? 'policy-new'
      : hash === '#/deadletters' && served ? 'deadletters'
        : hash.startsWith('#/policies') && served ? 'policies' : 'rules';
  const navPage = page === 'policy-new' ? 'policies' : page;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === '#/' + navPage) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (page === 'policy-new' || page === 'deadletters') {
    if (editor) state.rule = editor.rule;
    const el = $('#page-policies');
    if (page === 'policy-new') editor = mountPolicyForm(el, session, state);
    else mountDeadletters(el, session);
    show('page-policies');
    return;
  }
  if (page === 'policies') {
    if (editor) state.rule = editor.rule;
    if (policyId) stopPolicy = mountPolicy($('#page-policies'), session, policyId);
    else mountPolicies($('#page-policies'), session);
    show('page-policies');
    return;
  }
  if (page === 'rules' && !can.preview) {
    show('page-none');
    return;
  }
  if (page === 'rules') {
    editor = mountRules($('#page-rules'), session, state);
  } else {
    if (editor) state.rule = editor.rule;
    mountSegments($('#page-segments'), session, (next) => {
      Object.assign(state, next);
      location.hash = '#/rules';
    });
  }
  show('page-' + page);
}

async function signedIn(s) {
  session = s;
  policiesServed = api.can(s.role).readPolicies && (await api.hasPolicies());
  render();
}

// Draws the signed-in frame and the current page (again after a language change).
function render() {
  const s = session;
  $('#nav-policies').hidden = !policiesServed;
  $('#nav-deadletters').hidden = !policiesServed;
  $('#nav').hidden = false;
  $('#signout').hidden = false;
  $('#whoami').textContent = t('whoami', s.key_name, t('role.' + s.role),
    s.scope ? t('scope', s.scope) : '');
  $('#whoami').dataset.role = s.role;
  route();
}

async function signOut() {
  await api.signOut().catch(() => {});
  session = null;
  editor = null;
  $('#nav').hidden = true;
  $('#signout').hidden = true;
  $('#whoami').textContent = '';
  clear($('#page-rules'));
  clear($('#page-segments'));
  clear($('#page-policies'));
  route();
}

async function boot() {
  applyStatic();
  document.documentElement.lang = getLang() === 'en' ? 'en' : 'zh-CN';
  $('#lang').addEventListener('click', () => setLang(getLang() === 'en' ? 'zh' : 'en'));
  onLang(() => {
    if (session) {
      if (editor) state.rule = editor.rule;
      render();
    }
  });
  $('#signout').addEventListener('click', signOut);
  $('#signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('#key');
    $('#signin-error').textContent = '';
    try {
      const s = await api.signIn(input.value);
      input.value = '';
      signedIn(s);
    } catch (e) {
      input.value = '';
      $('#signin-error').textContent = e.status === 401 ? t('signin.bad') : e.message;
    }
  });
  window.addEventListener('hashchange', route);
  await loadNames();
  const s = await api.current().catch(() => null);
  if (s) signedIn(s);
  else route();
}

boot();
