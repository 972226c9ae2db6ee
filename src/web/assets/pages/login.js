pages.login = () => {
  const err = h('p.error', { role: 'alert' });
  const form = h('form.stack', { novalidate: true },
    h('label', {}, 'User name', h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none' })),
    h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { type: 'submit' }, 'Log in'), err);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const res = await api('POST', 'login', formData(form));
    // Back to the page whose session ended (a local path only).
    const next = new URLSearchParams(location.search).get('next') || '/';
    if (res.ok) location.href = /^\/[a-z]*$/.test(next) ? next : '/'; else formError(form, err, res);
  });
  show(h('h1', {}, 'Log in'), form);
  api('GET', 'setup').then(r => { if (r.ok && r.data.needed) location.href = '/setup'; });
};

pages.setup = () => {
  const err = h('p.error', { role: 'alert' });
  const form = h('form.stack', { novalidate: true },
    h('label', {}, 'Setup code (on the gateway label)', h('input', { name: 'code', autocomplete: 'off', placeholder: 'XXXX-XXXX-XXXX', required: true })),
    h('label', {}, 'Installer user name', h('input', { name: 'username', autocomplete: 'username', autocapitalize: 'none', required: true })),
    h('label', {}, 'Password (at least 10 characters)', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true })),
    h('button', { type: 'submit' }, 'Create installer account'), err);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const res = await api('POST', 'setup', formData(form));
    if (res.ok) location.href = '/'; else formError(form, err, res);
  });
  show(h('h1', {}, 'First-time setup'),
    h('p', {}, 'This gateway has no accounts yet and no default password. Enter the one-time setup code printed on its label to create the installer account.'),
    form);
};

