// Drives the operator console in headless Chromium (Debian's chromium, puppeteer-core) against
// a running zhidad, and prints one JSON line per check: {"check": name, "ok": bool, "detail"}.
// tests/integration/test_console_browser.py starts zhidad, loads the profiles this script
// expects, runs it and turns each line into a test. Environment:
//   ZHIDA_URL   http://127.0.0.1:PORT      KEYS   {"admin": "...", "viewer": "...", ...}
//   CHROMIUM    the browser (default /usr/bin/chromium)
//   SHOTS       a folder for screenshots of the main pages (docs/console), optional
import puppeteer from 'puppeteer-core';

const URL = process.env.ZHIDA_URL;
const KEYS = JSON.parse(process.env.KEYS);
const SHOTS = process.env.SHOTS || '';
const MARKUP = '<img src=x onerror="window.__xss=1"><b>恶意</b>';

function report(check, ok, detail) {
  process.stdout.write(JSON.stringify({ check, ok: !!ok, detail: detail ?? null }) + '\n');
}

async function api(method, path, body, key = KEYS.admin) {
  const res = await fetch(URL + path, {
    method, headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function check(name, fn) {
  try {
    const detail = await fn();
    report(name, true, detail);
  } catch (e) {
    report(name, false, String(e && e.stack || e));
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function typeRule(page, text) {
  await page.click('#rule');
  await page.keyboard.down('Control');
  await page.keyboard.press('KeyA');
  await page.keyboard.up('Control');
  await page.keyboard.press('Backspace');
  await page.type('#rule', text, { delay: 5 });
}

async function waitCount(page, want) {
  await page.waitForFunction((w) => document.querySelector('#count')?.dataset.count === String(w),
    { timeout: 15000 }, want);
}

async function signIn(page, key) {
  await page.goto(URL + '/console/', { waitUntil: 'networkidle0' });
  await page.waitForSelector('#key', { visible: true });
  await page.type('#key', key);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#whoami[data-role]', { timeout: 10000 });
  await page.waitForSelector('#rule', { visible: true });
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: SHOTS + '/' + name + '.png', fullPage: true });
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
    '--disable-extensions', '--lang=zh-CN'],
});
const errors = [];
const loadFailures = [];
let cspHeader = null;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // A 4xx answer the page expects (a rule with an error, no session yet) is logged by the
    // browser as a failed load; the page handles it. Everything else is an error.
    if (/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text()))
      loadFailures.push(m.text());
    else errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
  page.on('response', (r) => {
    if (r.url() === URL + '/console/') cspHeader = r.headers()['content-security-policy'] || null;
  });

  await check('sign_in', async () => {
    await signIn(page, KEYS.admin);
    const who = await page.$eval('#whoami', (e) => e.textContent);
    assert(who.includes('ops'), 'whoami: ' + who);
    const kept = await page.evaluate((k) => ({
      cookie: document.cookie, local: JSON.stringify(localStorage),
      session: JSON.stringify(sessionStorage), html: document.documentElement.outerHTML.includes(k),
      input: document.querySelector('#key').value,
    }), KEYS.admin);
    assert(!kept.cookie.includes('zd_session'), 'the session cookie is visible to scripts');
    assert(!kept.local.includes(KEYS.admin) && !kept.session.includes(KEYS.admin) && !kept.html &&
      kept.input === '', 'the page kept the key: ' + JSON.stringify(kept));
    return who;
  });

  await check('count_equals_api', async () => {
    const rule = 'kind = "enterprise" and tags has "hightech" and region within "3301"';
    const want = (await api('POST', '/v1/rules:preview', { rule })).body.count;
    assert(want > 0, 'the population has no such profile');
    await typeRule(page, rule);
    await waitCount(page, want);
    const text = await page.$eval('#count', (e) => e.textContent);
    await page.waitForFunction(() => document.querySelectorAll('#sample-table tbody tr').length > 0);
    await shot(page, 'rules');
    return { want, text };
  });

  await check('error_at_column_with_suggestion', async () => {
    const rule = 'kind = "enterprise" and employes < 300';
    const e = (await api('POST', '/v1/rules:preview', { rule })).body.error;
    await typeRule(page, rule);
    // Typing may pause long enough for a preview of a prefix: wait for the whole rule's error.
    await page.waitForFunction((m) => document.querySelector('#err-msg')?.textContent === m &&
      document.querySelector('#rule-error').hidden === false, { timeout: 15000 }, e.message);
    const got = await page.evaluate(() => ({
      line: document.querySelector('#err-pos').dataset.line,
      column: document.querySelector('#err-pos').dataset.column,
      pos: document.querySelector('#err-pos').textContent,
      msg: document.querySelector('#err-msg').textContent,
      mark: document.querySelector('mark.err')?.textContent,
      before: document.querySelector('#rule-backdrop').textContent.indexOf('employes'),
      suggestion: document.querySelector('#err-suggest')?.dataset.suggestion,
    }));
    assert(e.column === 25 && got.column === String(e.column) && got.line === String(e.line),
      'column: API ' + e.column + ', page ' + got.column);
    assert(got.pos.includes('第 1 行，第 25 列'), 'position text: ' + got.pos);
    assert(got.mark === 'employes' && got.before === 24, 'underline: ' + JSON.stringify(got));
    assert(got.suggestion === 'employees' && got.msg === e.message, JSON.stringify(got));
    await shot(page, 'error');
    await page.click('#err-suggest');
    const fixed = (await api('POST', '/v1/rules:preview',
      { rule: 'kind = "enterprise" and employees < 300' })).body.count;
    await waitCount(page, fixed);
    return got;
  });

  await check('explain_table', async () => {
    const rule = 'kind = "enterprise" and employees < 300';
    const want = (await api('POST', '/v1/rules:explain', { rule, profile: 'bt-e01' })).body;
    await page.$eval('#explain-id', (e) => { e.value = ''; });
    await page.type('#explain-id', 'bt-e01');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#explain-table', { timeout: 10000 });
    const got = await page.evaluate(() => ({
      match: document.querySelector('#explain-verdict').dataset.match,
      rows: [...document.querySelectorAll('#explain-table tbody tr')].map((tr) =>
        [...tr.cells].map((c) => c.textContent)),
    }));
    assert(got.match === String(want.match), 'match: ' + got.match);
    assert(got.rows.length === want.clauses.length, 'rows: ' + got.rows.length);
    want.clauses.forEach((c, i) => assert(got.rows[i][0].startsWith(c.text), 'clause ' + i));
    await shot(page, 'explain');
    return got;
  });

  await check('markup_is_text', async () => {
    await typeRule(page, 'tags has "markup"');
    await waitCount(page, 1);
    await page.waitForFunction(() =>
      document.querySelector('#sample-table tbody tr code')?.textContent === 'bt-markup');
    const got = await page.evaluate(() => ({
      text: document.querySelector('#sample-table td.name').textContent,
      imgs: document.querySelectorAll('#sample img, #sample b').length,
      xss: window.__xss,
    }));
    assert(got.text === MARKUP, 'name shown as ' + JSON.stringify(got.text));
    assert(got.imgs === 0 && got.xss === undefined, 'markup was rendered: ' + JSON.stringify(got));
    return got;
  });

  await check('segments_save_list_use', async () => {
    await typeRule(page, 'kind = "enterprise" and employees < 50');
    await page.waitForFunction(() => document.querySelector('#count').dataset.count);
    await page.type('#seg-name', 'bt-small');
    await page.click('#seg-save');
    await page.waitForFunction(() => document.querySelector('#seg-msg').textContent.includes('bt-small'));
    await page.click('#nav a[href="#/segments"]');
    await page.waitForSelector('#segments tr[data-name="bt-small"]');
    await shot(page, 'segments');
    await page.click('#segments tr[data-name="bt-small"] button.use');
    await page.waitForFunction(() => document.querySelector('#rule')?.value === 'segment "bt-small"');
    const want = (await api('POST', '/v1/rules:preview', { rule: 'segment "bt-small"' })).body.count;
    await waitCount(page, want);
    return want;
  });

  await check('policies_list_and_funnel', async () => {
    // Until delivery lands this zhidad has no policies: the console then offers no page.
    const probe = await api('GET', '/v1/policies?limit=1');
    const link = await page.$('#nav-policies');
    const shown = link && await link.evaluate((e) => !e.hidden);
    if (probe.status === 404) {
      assert(!shown, 'a policies link without a policies API');
      return 'skipped: no /v1/policies';
    }
    assert(shown, 'no policies link');
    const pub = await api('POST', '/v1/policies', { id: 'bt-policy', title: '浏览器测试政策',
      rule: 'kind = "enterprise" and employees < 300', routes: ['inbox'] });
    assert(pub.status === 202 || pub.status === 200, 'publish: ' + JSON.stringify(pub));
    await page.click('#nav-policies');
    await page.waitForSelector('#policies tr[data-id="bt-policy"] a');
    await shot(page, 'policies');
    await page.click('#policies tr[data-id="bt-policy"] a');
    await page.waitForSelector('#policy-route-table');
    // The page follows the funnel until the policy is done: what it shows then is the API's.
    let want = null;
    let got = null;
    for (let i = 0; i < 120; i++) {
      want = (await api('GET', '/v1/policies/bt-policy')).body;
      got = await page.evaluate(() => ({
        status: document.querySelector('#policy-status-text')?.dataset.status,
        matched: document.querySelector('#policy-totals [data-k="matched"] b')?.textContent,
        delivered: document.querySelector('#policy-totals [data-k="delivered"] b')?.textContent,
      }));
      if (want.status === 'done' && got.status === 'done') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert(want.status === 'done' && got.status === 'done', 'not done: API ' + want.status +
      ', page ' + got.status);
    assert(got.matched === want.matched.toLocaleString('zh-CN') && want.matched > 0 &&
      got.delivered === want.funnel.delivered.toLocaleString('zh-CN'),
      'page ' + JSON.stringify(got) + ', API matched ' + want.matched + ' delivered ' +
      want.funnel.delivered);
    await shot(page, 'funnel');
    await page.click('#nav a[href="#/rules"]');
    await page.waitForSelector('#rule', { visible: true });
    return { status: want.status, matched: want.matched, delivered: want.funnel.delivered };
  });

  await check('english_toggle', async () => {
    await page.click('#lang');
    await page.waitForFunction(() => document.querySelector('#page-rules h2')?.textContent === 'Rule editor');
    const sample = await page.$eval('#sample-again', (e) => e.textContent);
    await page.click('#lang');
    await page.waitForFunction(() => document.querySelector('#page-rules h2')?.textContent === '规则编辑');
    return sample;
  });

  await check('phone_layout', async () => {
    // A change of isMobile makes puppeteer reload the page: the session cookie signs it in again.
    await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
    await page.waitForSelector('#rule', { visible: true });
    await typeRule(page, 'kind = "citizen"');
    await waitCount(page, (await api('POST', '/v1/rules:preview', { rule: 'kind = "citizen"' })).body.count);
    await page.waitForFunction(() =>
      document.querySelector('#sample-table tbody tr code')?.textContent.startsWith('bt-c'));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await shot(page, 'phone');
    await page.setViewport({ width: 1280, height: 900 });
    await page.waitForSelector('#rule', { visible: true });
    assert(overflow <= 0, 'the page is ' + overflow + ' px wider than a phone screen');
    return overflow;
  });

  await check('viewer_sees_no_write_button', async () => {
    await page.click('#signout');
    await page.waitForSelector('#key', { visible: true });
    await signIn(page, KEYS.viewer);
    const rule = 'kind = "enterprise"';
    await typeRule(page, rule);
    await waitCount(page, (await api('POST', '/v1/rules:preview', { rule }, KEYS.viewer)).body.count);
    const editor = await page.evaluate(() => ({
      save: !!document.querySelector('#seg-save'), explain: !!document.querySelector('#explain-go'),
    }));
    await page.click('#nav a[href="#/segments"]');
    await page.waitForSelector('#segments tr[data-name="bt-small"]');
    const segs = await page.evaluate(() => ({
      edit: document.querySelectorAll('#segments button.edit, #segments button.delete').length,
      use: document.querySelectorAll('#segments button.use').length,
    }));
    assert(!editor.save && !editor.explain && segs.edit === 0 && segs.use > 0,
      JSON.stringify({ editor, segs }));
    return { editor, segs };
  });

  await check('sign_out_ends_session', async () => {
    await page.click('#signout');
    await page.waitForSelector('#key', { visible: true });
    await page.reload({ waitUntil: 'networkidle0' });
    await page.waitForSelector('#key', { visible: true });
    const who = await page.$eval('#whoami', (e) => e.textContent);
    assert(who === '', 'still signed in as ' + who);
  });

  await check('csp_and_no_console_errors', async () => {
    assert(cspHeader && cspHeader.includes("script-src 'self'") &&
      !cspHeader.includes('unsafe-inline'), 'CSP: ' + cspHeader);
    assert(errors.length === 0, 'console errors: ' + JSON.stringify(errors));
    return { csp: cspHeader, expected_4xx: loadFailures.length };
  });
} finally {
  await browser.close();
}
