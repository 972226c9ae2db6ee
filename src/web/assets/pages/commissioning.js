pages.commissioning = async () => {
  const res = await api('GET', 'commissioning');
  if (!res.ok) return show(h('p.error', { text: res.data.error }));
  const rows = {};
  let walking = false;
  const status = h('p', { role: 'status', id: 'walk-status' });
  const sections = res.data.rooms.map(r => h('section', {}, h('h2', { text: r.room }),
    h('div.scroll', {}, h('table', {}, h('thead', {}, h('tr', {}, ['Device', 'Role', 'Last event', 'Check'].map(t => h('th', { text: t })))),
      h('tbody', {}, r.devices.map(x => {
        const d = x.device, le = x.last_event;
        const check = h('td.check', { text: '—' });
        const last = h('td', { text: le ? le.kind + ' = ' + le.value + ' · ' + when(le.at) : 'none yet' });
        const tr = h('tr', { 'data-device': d.id }, h('td', {}, h('strong', { text: d.name || d.id }), h('div.muted', { text: d.id })), h('td', { text: d.role || '—' }), last, check);
        rows[d.id] = { tr, check, last };
        return tr;
      }))))));
  const start = h('button.no-print', { type: 'button', id: 'walk', onclick: () => {
    walking = true;
    for (const r of Object.values(rows)) { r.tr.className = 'waiting'; r.check.textContent = 'press the button now'; }
    status.textContent = 'Walk-through: trigger each device (press its button, open the door, wave at the sensor). Rows turn green as events arrive.';
  } }, 'Start walk-through');
  const print = h('button.secondary.no-print', { type: 'button', onclick: () => window.print() }, 'Print');
  show(h('h1', {}, 'Commissioning report'),
    h('p.muted', { text: 'Gateway ' + (res.data.gateway || '') + ' · generated ' + when(res.data.generated) }),
    h('div.row.no-print', {}, start, print), status,
    sections.length ? sections : h('p.muted', {}, 'No devices yet.'));
  live(ev => {
    const id = ev.type === 'reading' ? ev.device : ev.type === 'alert' ? ev.device : null;
    const r = id && rows[id];
    if (!r) return;
    if (ev.type === 'reading') r.last.textContent = ev.kind + ' = ' + ev.value + ' · ' + when(ev.at);
    if (walking) { r.tr.className = 'green'; r.check.textContent = '✓ event received ' + new Date().toLocaleTimeString(); }
  });
};

// ---- Wi-Fi device credentials (local broker) ----
// The QR code comes from the gateway as SVG markup it made itself (no text
// from outside in it); it is parsed as SVG, never assigned as HTML.
function svgNode(markup) {
  const doc = new DOMParser().parseFromString(markup, 'image/svg+xml');
  const el = doc.documentElement;
  return el && el.nodeName === 'svg' ? document.importNode(el, true) : h('p.error', { text: 'QR code unavailable' });
}

