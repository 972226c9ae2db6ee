// The QR code comes from the gateway as SVG markup it made itself (no text
// from outside in it); it is parsed as SVG, never assigned as HTML.
function svgNode(markup) {
  const doc = new DOMParser().parseFromString(markup, 'image/svg+xml');
  const el = doc.documentElement;
  return el && el.nodeName === 'svg' ? document.importNode(el, true) : h('p.error', { text: 'QR code unavailable' });
}

pages.credentials = async () => {
  const res = await api('GET', 'device-credentials');
  if (!res.ok) return show(h('h1', {}, 'Wi-Fi device credentials'), h('p.error', { text: res.data.error }));
  const d = res.data;
  const err = h('p.error', { role: 'alert' });
  const issued = h('div', { id: 'issued' });
  const form = h('form.stack.card', { novalidate: true, id: 'credential-form' },
    h('h3', {}, 'New credential'),
    h('label', {}, 'Device id (as it publishes: carebridge/in/<id>)', h('input', { name: 'device', autocapitalize: 'none', autocomplete: 'off' })),
    h('button', { type: 'submit' }, 'Make credential'), err);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const res = await api('POST', 'device-credentials', formData(form));
    if (!res.ok) return formError(form, err, res);
    form.reset(); formError(form, err, { data: { error: '' } }); err.textContent = '';
    const c = res.data;
    issued.replaceChildren(h('div.card', { id: 'issued-card' },
      h('h3', {}, 'Credential for ' + c.username + ' — shown once'),
      h('p', {}, 'Enter these in the device (or scan the code with its setup app). The password cannot be shown again: if it is lost, revoke it and make a new one.'),
      h('dl.kv', {}, h('dt', {}, 'User name'), h('dd.secret', { id: 'issued-user', text: c.username }),
        h('dt', {}, 'Password'), h('dd.secret', { id: 'issued-password', text: c.password }),
        c.topic ? [h('dt', {}, 'Publishes to'), h('dd', { text: c.topic })] : null,
        c.tls_sha256 ? [h('dt', {}, 'TLS certificate SHA-256'), h('dd', { text: c.tls_sha256 })] : null),
      h('div.qr', { id: 'issued-qr' }, svgNode(c.qr_svg))));
    refreshList();
  });
  const tbody = h('tbody', { id: 'credential-rows' });
  const refreshList = async () => {
    const r = await api('GET', 'device-credentials');
    if (!r.ok) return;
    tbody.replaceChildren(...r.data.credentials.map(c => {
      const user = c.holder.device || c.holder.service;
      return h('tr', { 'data-credential': user },
        h('td', {}, h('strong', { text: user }), h('div.muted', { text: c.holder.device ? 'device' : 'service account' })),
        h('td', { text: when(c.created_at) }), h('td', { text: c.created_by }),
        h('td', {}, h('button.danger', { type: 'button', 'data-revoke': user, onclick: async () => {
          if (!confirm('Revoke the credential of ' + user + '? The device can no longer connect.')) return;
          const x = await api('DELETE', 'device-credentials/' + encodeURIComponent(user));
          if (x.ok) { issued.replaceChildren(); refreshList(); } else alert(x.data.error);
        } }, 'Revoke')));
    }));
    const none = $('#no-credentials');
    if (none) none.hidden = r.data.credentials.length > 0;
  };
  const ha = h('button.secondary', { type: 'button', id: 'make-ha', onclick: async () => {
    const res = await api('POST', 'device-credentials', { service: 'homeassistant' });
    if (!res.ok) { err.textContent = res.data.error; return; }
    issued.replaceChildren(h('div.card', { id: 'issued-card' }, h('h3', {}, 'Home Assistant account — shown once'),
      h('dl.kv', {}, h('dt', {}, 'User name'), h('dd.secret', { id: 'issued-user', text: res.data.username }),
        h('dt', {}, 'Password'), h('dd.secret', { id: 'issued-password', text: res.data.password }))));
    refreshList();
  } }, 'Make the Home Assistant account');
  show(h('h1', {}, 'Wi-Fi device credentials'),
    h('p', { id: 'credentials-state', class: d.enabled ? 'muted' : 'notice',
      text: d.enabled ? 'Devices log in to the local broker (' + d.listen + (d.tls_listen ? ', TLS ' + d.tls_listen : '') + ') with these. A device may publish only to carebridge/in/<its id>.'
        : 'Device credentials are off: set device_credentials = true in [local_broker] for the broker to ask devices for them.' }),
    d.tls_sha256 ? h('p.muted', { id: 'tls-fingerprint', text: 'TLS certificate SHA-256: ' + d.tls_sha256 }) : null,
    h('div.grid', {}, form, h('div.card', {}, h('h3', {}, 'Home Assistant'), h('p.muted', {}, 'A read-only account for Home Assistant\'s MQTT integration (discovery and state topics).'), ha)),
    issued,
    h('h2', {}, 'Credentials'),
    h('div.scroll', {}, h('table', {}, h('thead', {}, h('tr', {}, ['Who', 'Made', 'By', ''].map(t => h('th', { text: t })))), tbody)),
    h('p.muted', { id: 'no-credentials' }, 'No credentials yet.'));
  refreshList();
};

