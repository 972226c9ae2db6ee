function passwordCard() {
  const err = h('p.error', { role: 'alert' });
  const ok = h('p.ok', { role: 'status' });
  const form = h('form.stack', { novalidate: true, id: 'password-form' },
    h('label', {}, 'Current password', h('input', { name: 'current', type: 'password', autocomplete: 'current-password' })),
    h('label', {}, 'New password (at least 10 characters)', h('input', { name: 'new', type: 'password', autocomplete: 'new-password' })),
    h('button', { type: 'submit' }, 'Change password'), err, ok);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    ok.textContent = '';
    const res = await api('POST', 'session/password', formData(form));
    if (res.ok) { form.reset(); formError(form, err, { data: { error: '' } }); err.textContent = ''; ok.textContent = 'Password changed.'; } else formError(form, err, res);
  });
  return h('div.card', {}, h('h3', {}, 'Your password'), form);
}

pages.system = async () => {
  if (!installer()) return show(h('h1', {}, 'System'), passwordCard());
  const [users, audit] = await Promise.all([api('GET', 'users'), api('GET', 'audit')]);
  const uerr = h('p.error', { role: 'alert' });
  const uform = h('form.stack', { novalidate: true },
    h('label', {}, 'User name', h('input', { name: 'name', autocapitalize: 'none' })),
    h('label', {}, 'Role', h('select', { name: 'role' }, h('option', { value: 'carer' }, 'carer'), h('option', { value: 'installer' }, 'installer'))),
    h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password' })),
    h('button', { type: 'submit' }, 'Add user'), uerr);
  uform.addEventListener('submit', async e => {
    e.preventDefault();
    const res = await api('POST', 'users', formData(uform));
    if (res.ok) pages.system(); else formError(uform, uerr, res);
  });
  const msg = h('p', { role: 'status', id: 'system-msg' });
  const ota = h('input', { type: 'file', name: 'bundle', id: 'ota-file', accept: '.cbb,application/octet-stream' });
  const otaMsg = h('p', { role: 'status', id: 'ota-msg' });
  const restoreFile = h('input', { type: 'file', name: 'restore', id: 'restore-file', accept: '.json,application/json' });
  const restoreMsg = h('p', { role: 'status', id: 'restore-msg' });
  const rform = h('form.stack', { novalidate: true },
    h('label', {}, 'Type RESET to wipe accounts, devices and history', h('input', { name: 'confirm', autocomplete: 'off' })),
    h('button.danger', { type: 'submit' }, 'Factory reset'));
  const rerr = h('p.error', { role: 'alert' });
  rform.append(rerr);
  rform.addEventListener('submit', async e => {
    e.preventDefault();
    const res = await api('POST', 'system/factory-reset', formData(rform));
    if (res.ok) location.href = '/setup'; else formError(rform, rerr, res);
  });
  const urows = (users.data.users || []).map(u => h('tr', {}, h('td', { text: u.name }), h('td', { text: u.role }), h('td', { text: when(u.created) }),
    h('td', {}, u.name === S.user ? '' : h('button.secondary', { type: 'button', onclick: async () => {
      if (!confirm('Delete ' + u.name + '?')) return;
      const r = await api('DELETE', 'users/' + encodeURIComponent(u.name));
      if (r.ok) pages.system(); else alert(r.data.error);
    } }, 'Delete'))));
  const arows = (audit.data.entries || []).map(a => h('tr', {}, h('td', { text: when(a.at) }), h('td', { text: a.user }), h('td', { text: a.action }), h('td', { text: a.detail })));
  show(h('h1', {}, 'System'),
    h('div.grid', {},
      h('div.card', {}, h('h3', {}, 'Configuration backup'), h('p', {}, h('a', { href: '/api/v1/system/backup', download: 'carebridge-backup.json', id: 'backup' }, 'Download backup (JSON)')),
        h('p.muted', {}, 'Config, active rules, devices, users (no passwords) and the audit log.'),
        h('label', {}, 'Restore from a backup', restoreFile),
        h('button.secondary', { type: 'button', id: 'restore', onclick: async () => {
          const f = restoreFile.files[0];
          if (!f) { restoreMsg.className = 'error'; restoreMsg.textContent = 'Choose a backup file first.'; return; }
          if (!confirm('Restore rules and device names from ' + f.name + '?')) return;
          const text = await f.text();
          let r = await apiRaw('POST', 'system/restore', text, 'application/json');
          // A backup without the life-safety rules: only when confirmed.
          if (r.status === 409 && r.data.confirm_field &&
              confirm(r.data.error + '\n\nRestore this backup anyway?')) {
            let doc = {}; try { doc = JSON.parse(text); } catch (e) { doc = {}; }
            doc[r.data.confirm_field] = true;
            r = await apiRaw('POST', 'system/restore', JSON.stringify(doc), 'application/json');
          }
          restoreMsg.className = r.ok ? (r.data.warnings && r.data.warnings.length ? 'error' : 'ok') : 'error';
          restoreMsg.textContent = r.ok ? 'Restored: ' + r.data.done.join('; ') + (r.data.note ? '. ' + r.data.note : '') +
            (r.data.warnings && r.data.warnings.length ? '. Warning: ' + r.data.warnings.join(' Warning: ') : '') :
            (r.data.error || 'restore failed') + (r.data.problems ? ' ' + r.data.problems.map(p => (p.line ? 'line ' + p.line + ': ' : '') + p.key + ' ' + p.message).join('; ') : '');
        } }, 'Restore'), restoreMsg),
      h('div.card', {}, h('h3', {}, 'Software update'), h('label', {}, 'Signed bundle (.cbb)', ota), h('button.secondary', { type: 'button', id: 'ota-upload', onclick: async ev => {
        const f = ota.files[0];
        if (!f) { otaMsg.className = 'error'; otaMsg.textContent = 'Choose a bundle file first.'; return; }
        ev.target.disabled = true; otaMsg.className = 'muted'; otaMsg.textContent = 'Uploading and verifying ' + f.name + '…';
        const r = await apiRaw('POST', 'system/ota', f, 'application/octet-stream');
        ev.target.disabled = false;
        otaMsg.className = r.ok ? 'ok' : 'error';
        otaMsg.textContent = r.ok ? r.data.message : (r.data.error || ('upload failed (HTTP ' + r.status + ')'));
      } }, 'Upload and verify'), otaMsg),
      h('div.card', {}, h('h3', {}, 'Logs'), h('button.secondary', { type: 'button', id: 'logs', onclick: async () => {
        const err = await download('system/logs', 'carebridge-log.txt'); msg.className = err ? 'notice' : ''; msg.textContent = err;
      } }, 'Download logs'))),
    msg,
    h('h2', {}, 'Users'), h('div.scroll', {}, h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Role', 'Created', ''].map(t => h('th', { text: t })))), h('tbody', {}, urows))),
    h('div.card', {}, h('h3', {}, 'Add a user'), uform),
    h('h2', {}, 'Audit log'), h('div.scroll', {}, h('table', { id: 'audit' }, h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'Detail'].map(t => h('th', { text: t })))), h('tbody', {}, arows))),
    h('h2', {}, 'Your account'), passwordCard(),
    h('h2', {}, 'Factory reset'), h('div.card', {}, rform));
};

