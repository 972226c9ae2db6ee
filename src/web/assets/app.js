// carebridge UI: renders the page named in <body data-page> from the JSON
// API. No framework, no inline code (CSP default-src 'self'); every value
// from the server goes into the DOM as text, never as HTML.
'use strict';

const S = { csrf: '', user: '', role: '', tz: '', es: null, handlers: [] };
const $ = (sel, root = document) => root.querySelector(sel);

// h('tag.class', {attr: v, onclick: f}, child, ...) -> element
function h(spec, attrs, ...kids) {
  const [tag, ...cls] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (cls.length) el.className = cls.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

async function api(method, path, body) {
  const opt = { method, credentials: 'same-origin', headers: {} };
  if (method !== 'GET') opt.headers['X-CSRF-Token'] = S.csrf;
  if (body !== undefined) {
    opt.headers['Content-Type'] = 'application/json';
    opt.body = JSON.stringify(body);
  }
  let res;
  try { res = await fetch('/api/v1/' + path, opt); } catch (e) {
    return { ok: false, status: 0, data: { error: 'the gateway did not answer (' + e.message + ')' } };
  }
  let data = {};
  try { data = await res.json(); } catch (e) { data = {}; }
  if (res.status === 401 && !['login', 'setup'].includes(page())) {
    // On a page already shown, keep it (with the notice): a carer reading
    // an alert should not lose it to a redirect.
    if (document.body.dataset.ready === 'true') sessionExpired(); else location.href = '/login';
  }
  return { ok: res.ok, status: res.status, data };
}

// A raw body (file upload, restore document): same session/CSRF handling.
async function apiRaw(method, path, body, ctype) {
  let res;
  try {
    res = await fetch('/api/v1/' + path, { method, credentials: 'same-origin', body,
      headers: { 'X-CSRF-Token': S.csrf, 'Content-Type': ctype } });
  } catch (e) {
    return { ok: false, status: 0, data: { error: 'the gateway did not answer (' + e.message + ')' } };
  }
  let data = {};
  try { data = await res.json(); } catch (e) { data = {}; }
  return { ok: res.ok, status: res.status, data };
}

// Downloads an API response as a file, or returns its error message.
async function download(path, name) {
  const res = await fetch('/api/v1/' + path, { credentials: 'same-origin' });
  if (!res.ok) {
    let d = {}; try { d = await res.json(); } catch (e) { d = {}; }
    return d.error || ('download failed (HTTP ' + res.status + ')');
  }
  const url = URL.createObjectURL(await res.blob());
  const a = h('a', { href: url, download: name });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return '';
}

const page = () => document.body.dataset.page;
const main = () => $('#main');
function show(...nodes) { main().replaceChildren(...nodes.flat(2).filter(n => n !== null && n !== undefined && n !== false)); }
const installer = () => S.role === 'installer';

// Times are shown in the gateway's time zone (the home's), not the laptop's.
function when(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  try { return d.toLocaleString(undefined, S.tz ? { timeZone: S.tz } : {}); } catch (e) { return d.toLocaleString(); }
}
function ago(t) {
  if (!t) return 'never';
  const s = Math.round((Date.now() - new Date(t)) / 1000);
  if (isNaN(s)) return String(t);
  // A device whose clock is ahead reports "from the future": just now.
  if (s < 5) return 'just now';
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.round(s / 60) + ' min ago';
  if (s < 86400) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
}
function duration(s) {
  if (s === undefined || s === null) return '—';
  const d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + ' d ' : '') + (d || hh ? hh + ' h ' : '') + m + ' min';
}

// A reading in words: `battery_low = 0` -> "battery OK", `contact = 1` -> "open".
const WORDS = {
  motion: ['no motion', 'motion'], occupancy: ['empty', 'occupied'], contact: ['closed', 'open'],
  panic: ['released', 'panic button pressed'], fall: ['no fall', 'fall detected'], smoke: ['no smoke', 'smoke alarm'],
  co: ['no CO', 'carbon monoxide alarm'], water_leak: ['dry', 'water leak'], bed: ['out of bed', 'in bed'],
  chair: ['out of the chair', 'in the chair'], battery_low: ['battery OK', 'battery low'], tamper: ['cover closed', 'tampered (cover open)'],
  vibration: ['still', 'vibration'], switch: ['off', 'on'],
};
const UNITS = { temperature: ' °C', humidity: ' %', illuminance: ' lx', power: ' W', energy: ' kWh', battery: ' % battery', voltage: ' V', pressure: ' hPa' };
function reading(kind, value) {
  const w = WORDS[kind];
  if (w && (value === 0 || value === 1 || value === true || value === false)) return w[Number(value)];
  if (typeof value === 'number' && UNITS[kind]) return kind === 'battery' ? Math.round(value) + UNITS[kind] : (Math.round(value * 10) / 10) + UNITS[kind] + ' ' + kind;
  return kind.replace(/_/g, ' ') + ' ' + value;
}

// The session ended (expired, logged out elsewhere, gateway restarted):
// say so on every page instead of going quiet, and offer the login.
function sessionExpired() {
  if (S.expired) return;
  S.expired = true;
  if (S.es) { S.es.close(); S.es = null; }
  document.body.dataset.live = 'expired';
  const who = $('#who-name'); if (who) who.textContent = 'logged out';
  main().before(h('div.standing', { role: 'alert', id: 'session-expired' },
    'Your session has ended, so this page is no longer updated. ',
    h('a', { href: '/login?next=' + encodeURIComponent(location.pathname) }, 'Log in again')));
}

// Shows the server's message next to the field it names, or in `where`.
function formError(form, where, res) {
  form.querySelectorAll('.field-error').forEach(e => e.remove());
  form.querySelectorAll('[aria-invalid]').forEach(e => e.removeAttribute('aria-invalid'));
  where.textContent = '';
  const msg = res.data.error || ('request failed (HTTP ' + res.status + ')');
  const input = res.data.field && form.querySelector('[name="' + CSS.escape(res.data.field) + '"]');
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.after(h('span.field-error', { role: 'alert', text: msg }));
    input.focus();
  } else {
    where.textContent = msg;
  }
}
// Editing a field the server named clears its message (a stale error next
// to a corrected value would read as a new refusal).
document.addEventListener('input', e => {
  const t = e.target;
  if (!t.getAttribute || !t.getAttribute('aria-invalid')) return;
  t.removeAttribute('aria-invalid');
  const n = t.nextElementSibling;
  if (n && n.classList.contains('field-error')) n.remove();
});
const formData = form => Object.fromEntries(new FormData(form).entries());

// ---- live events (SSE) ----
function live(fn) {
  S.handlers.push(fn);
  if (S.es) return;
  S.es = new EventSource('/api/v1/events');
  S.es.addEventListener('live', e => {
    let ev; try { ev = JSON.parse(e.data); } catch (x) { return; }
    S.handlers.forEach(f => f(ev));
  });
  S.es.addEventListener('hello', () => document.body.dataset.live = 'connected');
  // The stream ends when the session does (or the gateway restarts): ask
  // the API which; the 401 shows the notice, anything else reconnects.
  S.es.addEventListener('error', async () => {
    if (S.expired) return;
    document.body.dataset.live = 'reconnecting';
    const r = await api('GET', 'session');
    if (r.status === 401) sessionExpired();
  });
}

// ---- pages ----
const pages = {};
// ---- start ----
async function start() {
  const p = page();
  if (p !== 'login' && p !== 'setup') {
    const res = await api('GET', 'session');
    if (!res.ok) return;
    Object.assign(S, { csrf: res.data.csrf, user: res.data.user, role: res.data.role, tz: res.data.timezone || '' });
    $('#nav').hidden = false;
    $('#who').hidden = false;
    $('#who-name').textContent = S.user + ' (' + S.role + ')';
    if (!installer()) document.querySelectorAll('.installer-only').forEach(e => e.remove());
    // Standing warnings (e.g. a local broker open to the whole network).
    for (const w of res.data.warnings || []) main().before(h('div.standing', { role: 'alert', 'data-warning': '' , text: w }));
    const cur = document.querySelector('[data-nav="' + p + '"]');
    if (cur) cur.classList.add('active');
    $('#logout').addEventListener('click', async () => { await api('POST', 'logout'); location.href = '/login'; });
    const count = $('#alert-count');
    const refresh = () => api('GET', 'alerts').then(r => {
      const n = r.ok ? r.data.open.filter(a => !a.acked_by).length : 0;
      count.hidden = n === 0; count.textContent = n;
    });
    refresh();
    live(ev => {
      if (ev.type === 'alert' || ev.type === 'ack') {
        refresh();
        if (p === 'alerts' || p === 'overview') pages[p]();
      }
    });
  }
  const fn = pages[p];
  if (fn) await fn();
  document.body.dataset.ready = 'true';
}
document.addEventListener('DOMContentLoaded', start);
