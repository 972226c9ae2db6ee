function gotoLine(ta, line) {
  const lines = ta.value.split('\n');
  let at = 0;
  for (let i = 0; i < Math.min(line - 1, lines.length); i++) at += lines[i].length + 1;
  ta.focus(); ta.setSelectionRange(at, at + (lines[line - 1] || '').length);
}

pages.rules = async () => {
  const res = await api('GET', 'rules');
  if (!res.ok) return show(h('h1', {}, 'Rules'), h('p.error', { text: res.data.error }));
  if (!res.data.available) return show(h('h1', {}, 'Rules'), h('p.notice', { text: res.data.message }));
  const a = res.data.active;
  const version = () => 'Active: version ' + a.version + ' · from ' + a.source + (a.applied_at && a.version ? ' · ' + when(a.applied_at) : '');
  const info = h('p.muted', { id: 'rules-version', text: version() });
  if (!installer()) return show(h('h1', {}, 'Rules'), info, h('pre.rules', { text: a.text }));
  const ta = h('textarea', { name: 'text', id: 'rules-text', spellcheck: 'false', rows: 22, autocapitalize: 'none' });
  ta.value = a.text;
  const problems = h('ul.problems', { id: 'rules-problems', role: 'alert' });
  const msg = h('p', { id: 'rules-msg', role: 'status' });
  const tried = h('div', { id: 'rules-try' });
  const clear = () => { problems.replaceChildren(); ta.removeAttribute('aria-invalid'); msg.textContent = ''; msg.className = ''; };
  const refused = r => {
    const list = r.data.problems || [];
    if (!list.length) { msg.className = 'error'; msg.textContent = r.data.error || ('failed (HTTP ' + r.status + ')'); return; }
    ta.setAttribute('aria-invalid', 'true');
    for (const p of list) {
      problems.append(h('li.field-error', { 'data-line': p.line || '', onclick: () => p.line && gotoLine(ta, p.line) },
        (p.line ? 'line ' + p.line + ': ' : '') + (p.key ? p.key + ': ' : '') + p.message));
    }
    if (list[0].line) gotoLine(ta, list[0].line);
  };
  const busy = on => form.querySelectorAll('button').forEach(b => { b.disabled = on; });
  const tryIt = async () => {
    clear(); tried.replaceChildren(h('p.muted', {}, 'Replaying the last 24 h…')); busy(true);
    const r = await api('POST', 'rules/try', { text: ta.value });
    busy(false);
    if (!r.ok) { tried.replaceChildren(); return refused(r); }
    const d = r.data;
    const note = [d.readings + ' readings replayed in ' + d.ms + ' ms', d.capped ? 'only the first readings (cap)' : '', d.timed_out ? 'stopped early (time budget)' : ''].filter(Boolean).join(' · ');
    tried.replaceChildren(h('h2', {}, 'Would have raised ' + d.total + ' alert' + (d.total === 1 ? '' : 's')),
      h('p.muted', { text: 'From ' + when(d.since) + ' to ' + when(d.until) + ' · ' + note }),
      d.alerts.length ? h('div.scroll', {}, h('table', { id: 'try-alerts' }, h('thead', {}, h('tr', {}, ['When', 'Rule', 'State', 'Device', 'Message'].map(t => h('th', { text: t })))),
        h('tbody', {}, d.alerts.map(x => h('tr', {}, h('td', { text: when(x.at) }), h('td', { text: x.rule }), h('td', { text: x.state }), h('td', { text: x.device }), h('td', { text: x.message })))))) : null);
  };
  const form = h('form.wide', { novalidate: true },
    h('label', {}, 'Rules (TOML, see RULES.md)', ta),
    h('div.row', {}, h('button', { type: 'submit', id: 'rules-apply' }, 'Apply'),
      h('button.secondary', { type: 'button', id: 'rules-try-btn', onclick: tryIt }, 'Try it on the last 24 h'),
      res.data.can_rollback ? h('button.secondary', { type: 'button', id: 'rules-rollback', onclick: async () => {
        if (!confirm('Go back to the previous rules?')) return;
        const r = await api('POST', 'rules/rollback');
        if (r.ok) pages.rules(); else { clear(); refused(r); }
      } }, 'Roll back') : null),
    problems, msg);
  form.addEventListener('submit', async e => {
    e.preventDefault(); clear(); busy(true);
    let r = await api('PUT', 'rules', { text: ta.value });
    // Rules without the life-safety ones: only when the installer says so.
    if (r.status === 409 && r.data.confirm_field &&
        confirm(r.data.error + '\n\nApply these rules anyway?')) {
      r = await api('PUT', 'rules', { text: ta.value, [r.data.confirm_field]: true });
      if (r.ok) return location.reload(); // shows the standing warning
    }
    busy(false);
    if (!r.ok) return refused(r);
    const x = r.data.applied;
    Object.assign(a, { version: x.version, source: x.source, applied_at: new Date().toISOString() });
    info.textContent = version();
    msg.className = 'ok';
    msg.textContent = x.unchanged ? 'No change: these rules are already active.' :
      'Applied without restart: version ' + x.version + ' (' + x.kept + ' kept, ' + x.fresh + ' new or changed, ' + x.removed + ' removed).';
  });
  show(h('h1', {}, 'Rules'), info, form, tried);
};

