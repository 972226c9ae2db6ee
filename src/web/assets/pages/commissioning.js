// Commissioning: one test per device (open the door, walk past, breathe on
// the thermometer…). Only events after "Start" count, and a thermometer
// must rise, so routine reports never turn a row green. The gateway itself
// computes the signed-off results from its history, keeps them and sends
// them upstream; the page prints as the sign-off sheet. With [arc], each
// device can also send one test event (Contact ID 601, its zone) to the
// alarm receiving centre; the gateway keeps the answer for the report.
function arcText(a) {
  if (!a) return 'not sent';
  return a.acknowledged
    ? '✓ acknowledged by the ' + a.receiver + ' receiver · zone ' + String(a.zone).padStart(3, '0') + ' · ' + when(a.at)
    : '✗ not acknowledged: ' + (a.error || 'no answer') + ' · ' + when(a.at);
}

function passes(test, ev, base) {
  if (!test || ev.kind !== test.kind) return false;
  if (test.pass === 'active') return Number(ev.value) >= 0.5;
  return base !== undefined && base !== null && ev.value - base >= test.by - 1e-9;
}

function signoffSheet(rep) {
  const arc = rep.devices.some(d => d.arc);
  const rows = rep.devices.map(d => h('tr', { 'data-device': d.id, class: d.passed ? 'green' : '' },
    h('td', { 'data-label': 'Device' }, h('strong', { text: d.name || d.id }), h('div.muted', { text: d.id })),
    h('td', { 'data-label': 'Room', text: d.room || '—' }),
    h('td', { 'data-label': 'Test', text: d.test ? d.test.instruction : 'nothing to test yet' }),
    h('td', { 'data-label': 'Result', text: d.passed ? '✓ passed · ' + reading(d.event.kind, d.event.value) + ' · ' + when(d.event.at) : '✗ not passed' }),
    arc ? h('td', { 'data-label': 'ARC test', 'data-col': 'arc', text: arcText(d.arc) }) : null));
  return h('section', { id: 'signoff-report' },
    h('h2', {}, 'Signed off: ' + rep.passed + ' of ' + rep.total + ' devices passed'),
    h('dl.kv', {}, h('dt', {}, 'Gateway'), h('dd', { text: rep.gateway }),
      h('dt', {}, 'Installer'), h('dd', { id: 'signoff-installer', text: rep.installer + ' (account ' + rep.signed_by + ')' }),
      h('dt', {}, 'Walk-through'), h('dd', { text: when(rep.started) + ' – ' + when(rep.signed_at) }),
      rep.notes ? [h('dt', {}, 'Notes'), h('dd', { text: rep.notes })] : null,
      h('dt', {}, 'Sent upstream'), h('dd', {}, 'queued with the gateway status (delivered when the uplink is up)')),
    h('div.scroll', {}, h('table.cards', {}, h('thead', {}, h('tr', {}, ['Device', 'Room', 'Test', 'Result'].concat(arc ? ['ARC test'] : []).map(t => h('th', { text: t })))), h('tbody', {}, rows))),
    h('div.signoff', {}, h('span', {}, 'Installer signature'), h('div.signoff-line'), h('span', {}, 'Client / carer signature'), h('div.signoff-line'), h('span', {}, 'Date'), h('div.signoff-line')));
}

pages.commissioning = async () => {
  const res = await api('GET', 'commissioning');
  if (!res.ok) return show(h('p.error', { text: res.data.error }));
  const rows = {};
  const tests = res.data.tests || [];
  let started = null;
  const status = h('p', { role: 'status', id: 'walk-status' });
  const arcOn = !!res.data.arc && installer();
  // One ARC test event for a device; the answer shows in its row.
  const arcTest = async id => {
    const x = rows[id];
    x.arcCell.textContent = 'sending…';
    const r = await api('POST', 'commissioning/arc_test', { device: id });
    x.arcCell.textContent = r.ok ? arcText(r.data.arc) : '✗ ' + r.data.error;
    return r.ok && r.data.arc.acknowledged;
  };
  const sections = res.data.rooms.map(r => h('section', {}, h('h2', { text: r.room }),
    h('div.scroll', {}, h('table.cards', {}, h('thead', {}, h('tr', {}, ['Device', 'Test', 'Last event', 'Check'].concat(arcOn ? ['ARC test'] : []).map(t => h('th', { text: t })))),
      h('tbody', {}, r.devices.map(x => {
        const d = x.device, le = x.last_event, test = x.test;
        const check = h('td.check', { 'data-label': 'Check', text: '—' });
        const last = h('td', { 'data-label': 'Last event', text: le ? reading(le.kind, le.value) + ' · ' + when(le.at) : 'none yet' });
        const arcCell = h('span.arc-result', { text: 'not sent' });
        const arcTd = arcOn ? h('td', { 'data-label': 'ARC test', 'data-col': 'arc' }, arcCell, ' ',
          h('button.secondary.no-print.arc-test', { type: 'button', disabled: true, onclick: () => arcTest(d.id) }, 'Test with ARC')) : null;
        const instr = h('td', { 'data-label': 'Test', 'data-col': 'instruction', text: test ? test.instruction : 'No reading yet: make it report once (press its button)' });
        const tr = h('tr', { 'data-device': d.id },
          h('td', { 'data-label': 'Device' }, h('strong', { text: d.name || d.id }), h('div.muted', { text: d.id + (d.role ? ' · ' + d.role : '') })),
          instr, last, check, arcTd);
        const kinds = new Set([test && test.kind, le && le.kind].filter(Boolean));
        // The baseline of a rise test: the newest reading of its kind (the
        // gateway sends it; the sign-off takes the same one).
        const base = x.base !== undefined && x.base !== null ? x.base : le && test && le.kind === test.kind ? le.value : null;
        rows[d.id] = { tr, check, last, instr, arcCell, test, kinds, base, passed: false };
        return tr;
      }))))));
  const start = installer() ? h('button.no-print', { type: 'button', id: 'walk', onclick: async ev => {
    const r = await api('POST', 'commissioning/start');
    if (!r.ok) { status.className = 'error'; status.textContent = r.data.error; return; }
    started = r.data.started;
    ev.target.textContent = 'Restart walk-through';
    signForm.hidden = false;
    document.querySelectorAll('button.arc-test').forEach(b => { b.disabled = false; });
    for (const x of Object.values(rows)) x.arcCell.textContent = 'not sent';
    for (const x of Object.values(rows)) { x.passed = false; x.tr.className = 'waiting'; x.check.textContent = x.test ? 'waiting: ' + x.test.instruction.toLowerCase() : 'waiting for any report'; }
    status.className = ''; status.textContent = 'Walk-through started ' + when(started) + '. Do what each row says; a row turns green when its device reports it. Earlier events do not count.';
  } }, 'Start walk-through') : null;
  const print = h('button.secondary.no-print', { type: 'button', id: 'print', onclick: () => window.print() }, 'Print / save as PDF');
  // One test event per device, one after the other (the ARC sees each zone).
  const arcAll = arcOn ? h('button.secondary.no-print.arc-test', { type: 'button', id: 'arc-all', disabled: true, onclick: async ev => {
    ev.target.disabled = true;
    const ids = Object.keys(rows);
    let acked = 0;
    for (const id of ids) if (await arcTest(id)) acked += 1;
    ev.target.disabled = false;
    status.className = acked === ids.length ? 'ok' : 'error';
    status.textContent = 'ARC test: ' + acked + ' of ' + ids.length + ' devices acknowledged by the alarm receiving centre.';
  } }, 'ARC test for all devices') : null;
  const err = h('p.error', { role: 'alert' });
  const out = h('div', { id: 'signoff-out' });
  const signForm = h('form.stack.card.no-print', { id: 'signoff', hidden: true, novalidate: true },
    h('h2', {}, 'Sign off'),
    h('label', {}, 'Installer name', h('input', { name: 'installer', autocomplete: 'name', maxlength: 64, required: true })),
    h('label', {}, 'Notes (optional)', h('input', { name: 'notes', maxlength: 500 })),
    h('button', { type: 'submit' }, 'Sign off and send the report'), err);
  signForm.addEventListener('submit', async e => {
    e.preventDefault();
    const f = formData(signForm);
    const r = await api('POST', 'commissioning/signoff', { installer: f.installer, notes: f.notes, started });
    if (!r.ok) return formError(signForm, err, r);
    err.textContent = '';
    out.replaceChildren(signoffSheet(r.data.report));
    status.className = 'ok'; status.textContent = 'Report saved in the gateway and queued upstream. Print it for the client\'s file.';
  });
  const prev = await api('GET', 'commissioning/reports');
  const last = prev.ok && prev.data.reports.length ? prev.data.reports[0] : null;
  show(h('h1', {}, 'Commissioning report'),
    h('p.muted', { text: 'Gateway ' + (res.data.gateway || '') + ' · generated ' + when(res.data.generated) }),
    h('div.row.no-print', {}, start, arcAll, print), status,
    sections.length ? sections : h('p.muted', {}, 'No devices yet.'), signForm, out,
    last ? h('p.muted.no-print', { id: 'last-signoff', text: 'Last sign-off: ' + last.installer + ', ' + when(last.signed_at) + ' (' + last.passed + ' of ' + last.total + ' passed).' }) : null);
  live(ev => {
    const id = ev.type === 'reading' ? ev.device : null;
    const r = id && rows[id];
    if (!r) return;
    r.last.textContent = reading(ev.kind, ev.value) + ' · ' + when(ev.at);
    // A device's first readings tell what it senses: its test is the most
    // telling kind seen so far (the gateway chooses the same at sign-off).
    r.kinds.add(ev.kind);
    const best = tests.find(t => r.kinds.has(t.kind));
    if (best && (!r.test || r.test.kind !== best.kind)) {
      r.test = best; r.base = null; r.instr.textContent = best.instruction;
      if (started && !r.passed) r.check.textContent = 'waiting: ' + best.instruction.toLowerCase();
    }
    if (!started || r.passed) { if (r.test && ev.kind === r.test.kind && !started) r.base = ev.value; return; }
    // Only events stamped at or after the start count.
    if (new Date(ev.at) < new Date(started)) return;
    if (passes(r.test, ev, r.base)) {
      r.passed = true; r.tr.className = 'green'; r.check.textContent = '✓ ' + reading(ev.kind, ev.value) + ' ' + new Date().toLocaleTimeString();
    } else if (r.test && ev.kind === r.test.kind && r.test.pass === 'rise') {
      // A rise counts from the lowest reading since the start (as the
      // gateway's sign-off computes it).
      r.base = r.base === null || r.base === undefined ? ev.value : Math.min(r.base, ev.value);
    }
  });
};
