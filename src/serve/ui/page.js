// Larder's console: live jobs (server-sent events from /v1/events, polling /v1/jobs while the
// stream is down), the repo table's filters and sorting, storage, relative times, and, for an
// admin, the actions (pull, convert, cancel, pin, track, licence reviews) as fetch() calls to
// the /v1 API with a JSON body and the admin token in an Authorization header. Everything from
// the server is set as text, never parsed as HTML.
(function () {
  'use strict';

  var POLL_MS = 1000;
  var RETRY_STREAM_MS = 5000;
  var FINISHED_SHOWN = 20;
  var TOKEN_KEY = 'larder-admin-token';
  var body = document.body;
  var page = body.dataset.page || 'overview';
  var polls = 0;
  var streamEvents = 0;
  var pollTimer = null;
  var stream = null;
  var admin = false;
  var jobs = {}; // id -> job, as last seen
  var active = null; // ids of the jobs queued or running at the last render

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function humanBytes(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    var value = Number(n) || 0;
    var unit = 0;
    while (value >= 1024 && unit + 1 < units.length) { value /= 1024; unit += 1; }
    return unit === 0 ? value + ' B' : value.toFixed(1) + ' ' + units[unit];
  }

  function ago(unix) {
    var seconds = Math.max(0, Math.round(Date.now() / 1000 - unix));
    if (seconds < 60) return seconds + ' s ago';
    if (seconds < 3600) return Math.floor(seconds / 60) + ' min ago';
    if (seconds < 86400) return Math.floor(seconds / 3600) + ' h ago';
    return Math.floor(seconds / 86400) + ' d ago';
  }

  function timeNode(unix) {
    if (unix === null || unix === undefined) return el('span', 'none', 'never');
    var node = el('time', null, ago(unix));
    var at = new Date(unix * 1000);
    node.dateTime = at.toISOString();
    node.title = at.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
    node.dataset.unix = String(unix);
    return node;
  }

  function refreshTimes() {
    var nodes = document.querySelectorAll('time[data-unix]');
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = ago(Number(nodes[i].dataset.unix));
    }
  }

  function say(text) {
    var live = $('live');
    if (live) live.textContent = text;
  }

  // ---- the API --------------------------------------------------------------------------

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  function headers(json) {
    var h = { Accept: 'application/json' };
    if (json) h['Content-Type'] = 'application/json';
    var t = token();
    if (t) h.Authorization = 'Bearer ' + t;
    return h;
  }

  function api(method, path, payload) {
    var init = { method: method, headers: headers(payload !== undefined), cache: 'no-store' };
    if (payload !== undefined) init.body = JSON.stringify(payload);
    return fetch(path, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          throw new Error((data && data.error) || ('HTTP ' + response.status));
        }
        return data;
      });
    });
  }

  function segment(text) { return encodeURIComponent(text); }

  function revisionPath(kind, repo, revision) {
    return kind + '/' + repo.split('/').map(segment).join('/') + '/' + segment(revision);
  }

  // A small form: labelled fields and one submit button; `run(values)` returns a promise.
  function actionForm(id, legend, fields, label, run) {
    var form = el('form', 'action-form action');
    form.id = id;
    var set = el('fieldset');
    set.appendChild(el('legend', null, legend));
    var inputs = {};
    fields.forEach(function (field) {
      var wrap = el('label', 'field');
      wrap.appendChild(el('span', null, field.label));
      var input;
      if (field.options) {
        input = el('select');
        field.options.forEach(function (option) {
          var o = el('option', null, option);
          o.value = option;
          input.appendChild(o);
        });
      } else {
        input = el('input');
        input.type = 'text';
        if (field.placeholder) input.placeholder = field.placeholder;
        if (field.required) input.required = true;
      }
      input.name = field.name;
      if (field.value) input.value = field.value;
      inputs[field.name] = input;
      wrap.appendChild(input);
      set.appendChild(wrap);
    });
    var button = el('button', 'action', label);
    button.type = 'submit';
    set.appendChild(button);
    var status = el('span', 'form-status');
    status.setAttribute('role', 'status');
    set.appendChild(status);
    form.appendChild(set);
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var values = {};
      Object.keys(inputs).forEach(function (k) { values[k] = inputs[k].value.trim(); });
      button.disabled = true;
      status.textContent = '…';
      run(values).then(function (text) {
        status.textContent = text || 'done';
        status.className = 'form-status ok';
      }).catch(function (error) {
        status.textContent = error.message;
        status.className = 'form-status failed';
      }).then(function () { button.disabled = false; });
    });
    return form;
  }

  function actionButton(label, title, run) {
    var button = el('button', 'action', label);
    button.type = 'button';
    if (title) button.title = title;
    button.addEventListener('click', function () {
      button.disabled = true;
      run().catch(function (error) {
        say(label + ' failed: ' + error.message);
        button.disabled = false;
      });
    });
    return button;
  }

  // ---- jobs -------------------------------------------------------------------------------

  function safeState(state) {
    return String(state).replace(/[^a-z_]/g, '');
  }

  function isActive(job) {
    return job.state === 'queued' || job.state === 'running';
  }

  function jobRow(job) {
    var spec = job.spec || {};
    var progress = job.progress || { bytes: 0, total: 0 };
    var state = safeState(job.state);
    var row = el('tr', 'job state-' + state);
    row.id = 'job-' + Number(job.id);
    row.dataset.state = state;
    row.dataset.bytes = String(Number(progress.bytes) || 0);
    row.dataset.total = String(Number(progress.total) || 0);
    row.appendChild(el('td', 'id', '#' + job.id + ' ' + job.kind));
    var storeJob = job.kind === 'gc' || job.kind === 'verify';
    var target = (spec.repo || (storeJob ? 'the store' : '?')) + (spec.revision ? '@' + spec.revision : '');
    if (job.kind === 'gc' && spec.quota) target += ' down to ' + spec.quota;
    if (job.kind === 'gc' && spec.dry_run) target += ' (dry run)';
    if (spec.type && spec.type !== 'model' && job.kind === 'pull') target += ' (' + spec.type + ')';
    if (job.kind === 'convert' && spec.to) target += ' → ' + spec.to + (spec.type ? ' ' + spec.type : '') + (spec.dtype ? ' ' + spec.dtype : '');
    row.appendChild(el('td', 'target', target));
    var stateCell = el('td', 'state');
    stateCell.appendChild(el('span', 'badge state-' + state, state));
    // Why it failed, as the machine-readable kind (`larder pull --daemon` exits by it).
    if (job.error_kind) stateCell.appendChild(el('code', 'kind', safeState(job.error_kind)));
    if (job.error) stateCell.appendChild(el('div', 'error', job.error));
    row.appendChild(stateCell);
    var progressCell = el('td', 'progress');
    var bar = document.createElement('progress');
    bar.setAttribute('aria-label', 'job ' + job.id + ' progress');
    if (progress.total > 0) {
      bar.max = progress.total;
      bar.value = Math.min(progress.bytes, progress.total);
    }
    progressCell.appendChild(bar);
    var text = humanBytes(progress.bytes);
    if (progress.total > 0) {
      text += ' of ' + humanBytes(progress.total) + ' (' +
        Math.floor(100 * progress.bytes / progress.total) + '%)';
    }
    // What a finished gc or verify found.
    var report = progress.report;
    if (report && job.kind === 'verify') {
      text = Number(report.checked) + ' blobs checked, ' + Number(report.bad) + ' bad';
    } else if (report && job.kind === 'gc') {
      var gc = report.gc || report;
      text = (spec.dry_run ? 'would free ' : 'freed ') + humanBytes(Number(gc.freed) || 0);
    }
    progressCell.appendChild(el('span', 'bytes', ' ' + text));
    row.appendChild(progressCell);
    var updated = el('td', 'updated');
    updated.appendChild(timeNode(job.updated_at));
    row.appendChild(updated);
    var actions = el('td', 'row-actions');
    if (admin && isActive(job)) {
      var cancel = actionButton('Cancel', 'Cancel job ' + job.id, function () {
        return api('DELETE', '/v1/jobs/' + Number(job.id)).then(function (view) { upsertJob(view); });
      });
      cancel.classList.add('cancel');
      cancel.setAttribute('aria-label', 'Cancel job ' + job.id);
      actions.appendChild(cancel);
    }
    row.appendChild(actions);
    return row;
  }

  function renderJobs() {
    var jobsBody = $('jobs-body');
    if (!jobsBody) return false;
    var all = Object.keys(jobs).map(function (id) { return jobs[id]; });
    var running = all.filter(isActive).sort(function (a, b) { return a.id - b.id; });
    var finished = all.filter(function (j) { return !isActive(j); })
      .sort(function (a, b) { return b.updated_at - a.updated_at || b.id - a.id; })
      .slice(0, FINISHED_SHOWN);
    var rows = running.concat(finished);
    var fragment = document.createDocumentFragment();
    if (rows.length === 0) {
      var empty = el('tr', 'placeholder');
      var cell = el('td', null, 'No jobs.');
      cell.colSpan = 6;
      empty.appendChild(cell);
      fragment.appendChild(empty);
    }
    rows.forEach(function (job) { fragment.appendChild(jobRow(job)); });
    // Keep the keyboard focus on a cancel button that survives the redraw.
    var focused = document.activeElement && document.activeElement.closest &&
      document.activeElement.closest('tr.job');
    var focusedId = focused ? focused.id : null;
    jobsBody.replaceChildren(fragment);
    if (focusedId && $(focusedId)) {
      var again = $(focusedId).querySelector('button');
      if (again) again.focus();
    }
    var now = new Set(running.map(function (j) { return j.id; }));
    var ended = active !== null && Array.from(active).some(function (id) { return !now.has(id); });
    active = now;
    return ended;
  }

  function upsertJob(job) {
    jobs[job.id] = job;
    if (renderJobs()) refreshRepos();
  }

  function loadJobs() {
    return api('GET', '/v1/jobs').then(function (list) {
      polls += 1;
      body.dataset.polls = String(polls);
      jobs = {};
      list.forEach(function (job) { jobs[job.id] = job; });
      var status = $('jobs-status');
      if (status) status.textContent = '';
      if (renderJobs()) refreshRepos();
    }).catch(function (error) {
      var status = $('jobs-status');
      if (status) status.textContent = 'Jobs unavailable: ' + error.message;
    });
  }

  function startPolling() {
    if (pollTimer !== null) return;
    body.dataset.live = 'polling';
    (function tick() {
      loadJobs().then(function () {
        if (pollTimer !== null) pollTimer = setTimeout(tick, POLL_MS);
      });
    })();
    pollTimer = 0;
  }

  function stopPolling() {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
  }

  // ---- live updates ------------------------------------------------------------------------

  var refreshSoon = null;
  function later(fn) {
    if (refreshSoon) return;
    refreshSoon = setTimeout(function () { refreshSoon = null; fn(); }, 300);
  }

  function openStream() {
    if (!window.EventSource) { startPolling(); return; }
    stream = new EventSource('/v1/events');
    stream.addEventListener('hello', function () {
      stopPolling();
      body.dataset.live = 'sse';
      say('');
      loadJobs();
    });
    stream.addEventListener('job', function (message) {
      streamEvents += 1;
      body.dataset.streamEvents = String(streamEvents);
      var data = JSON.parse(message.data);
      if (data.job) upsertJob(data.job);
    });
    ['revision', 'licence', 'pin', 'track'].forEach(function (name) {
      stream.addEventListener(name, function () {
        streamEvents += 1;
        body.dataset.streamEvents = String(streamEvents);
        later(function () {
          refreshRepos();
          loadReviews();
          loadStorage();
        });
      });
    });
    stream.addEventListener('resync', function () { loadJobs(); refreshRepos(); });
    stream.onerror = function () {
      // The stream dropped: poll until it can be opened again.
      if (stream) stream.close();
      stream = null;
      say('Live updates interrupted; polling.');
      startPolling();
      setTimeout(openStream, RETRY_STREAM_MS);
    };
  }

  // ---- repos ------------------------------------------------------------------------------

  var VERDICTS = { allow: 'allowed', review: 'needs review', deny: 'denied' };
  var serverFiltered = false;

  function repoHref(kind, name) {
    return '/-/repo/' + (kind === 'dataset' ? 'dataset' : 'model') + '/' +
      name.split('/').map(encodeURIComponent).join('/');
  }

  function searchText(repo) {
    return [repo.name, repo.kind, repo.licence.id, repo.licence.name].join(' ').toLowerCase();
  }

  function repoRow(repo) {
    var row = el('tr', 'repo');
    var verdict = VERDICTS[repo.licence.verdict] ? repo.licence.verdict : 'unknown';
    row.dataset.kind = repo.kind;
    row.dataset.name = repo.name;
    row.dataset.search = searchText(repo);
    row.dataset.verdict = verdict;
    row.dataset.pinned = String(!!repo.pinned);
    row.dataset.tracked = String(!!(repo.tracked && repo.tracked.length));
    row.dataset.bytes = String(repo.bytes_held);
    row.dataset.pulled = String(repo.last_pulled || 0);
    row.dataset.served = String(repo.last_served || 0);
    var name = el('td', 'name');
    var link = el('a', null, repo.name);
    link.href = repoHref(repo.kind, repo.name);
    name.appendChild(link);
    if (repo.kind === 'dataset') { name.append(' '); name.appendChild(el('span', 'tag', 'dataset')); }
    if (repo.gated) { name.append(' '); name.appendChild(el('span', 'tag', 'gated: ' + repo.gated)); }
    if (repo.tracked && repo.tracked.length) {
      name.append(' ');
      name.appendChild(el('span', 'tag tracked', 'tracked: ' + repo.tracked.join(', ')));
    }
    if (repo.track_error) {
      var failed = el('span', 'tag failed', 'check failed');
      failed.title = repo.track_error;
      name.append(' ');
      name.appendChild(failed);
    }
    if (repo.pinned) { name.append(' '); name.appendChild(el('span', 'tag pinned', 'pinned')); }
    row.appendChild(name);
    var revisions = el('td', 'revisions');
    revisions.appendChild(el('span', 'count', repo.revisions));
    revisions.append(' ');
    var refs = el('span', 'refs', repo.refs.length ? repo.refs.join(', ') + ' → ' : '');
    refs.appendChild(el('code', null, repo.commit.slice(0, 10)));
    revisions.appendChild(refs);
    row.appendChild(revisions);
    var size = el('td', 'size', humanBytes(repo.bytes_held));
    size.dataset.bytes = String(repo.bytes_held);
    if (repo.bytes_held < repo.bytes_total) {
      size.append(' ');
      size.appendChild(el('span', 'of', 'of ' + humanBytes(repo.bytes_total)));
    }
    row.appendChild(size);
    var licence = el('td', 'licence');
    var id = el('span', 'licence-id', repo.licence.id);
    id.title = repo.licence.name;
    licence.appendChild(id);
    licence.append(' ');
    var badge = el('span', 'badge verdict-' + verdict, VERDICTS[verdict] || 'unknown');
    badge.dataset.verdict = verdict;
    badge.title = repo.licence.reasons.join('; ');
    licence.appendChild(badge);
    row.appendChild(licence);
    var pulled = el('td', 'pulled');
    pulled.appendChild(timeNode(repo.last_pulled));
    row.appendChild(pulled);
    var checked = el('td', 'checked');
    checked.appendChild(timeNode(repo.last_checked));
    row.appendChild(checked);
    var served = el('td', 'served');
    served.appendChild(timeNode(repo.last_served));
    row.appendChild(served);
    return row;
  }

  function refreshRepos() {
    var reposBody = $('repos-body');
    if (!reposBody) return Promise.resolve();
    return api('GET', '/v1/repos').then(function (overview) {
      var fragment = document.createDocumentFragment();
      overview.repos.forEach(function (repo) { fragment.appendChild(repoRow(repo)); });
      reposBody.replaceChildren(fragment);
      serverFiltered = false;
      applySort();
      applyFilter();
    }).catch(function () { /* the rows shown stay; the next change tries again */ });
  }

  function applyFilter() {
    var box = $('q');
    var reposBody = $('repos-body');
    if (!box || !reposBody) return;
    var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    var verdict = $('f-verdict').value;
    var pinned = $('f-pinned').checked;
    var tracked = $('f-tracked').checked;
    var minSize = Number($('f-size').value) || 0;
    var rows = reposBody.querySelectorAll('tr.repo');
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var d = rows[i].dataset;
      var text = d.search || '';
      var match = words.every(function (word) { return text.indexOf(word) !== -1; }) &&
        (!verdict || d.verdict === verdict) &&
        (!pinned || d.pinned === 'true') &&
        (!tracked || d.tracked === 'true') &&
        (Number(d.bytes) || 0) >= minSize;
      rows[i].hidden = !match;
      if (match) shown += 1;
    }
    $('no-match').hidden = shown > 0;
    $('repo-count').textContent = String(shown);
    body.dataset.filter = words.join(' ');
  }

  var sortKey = 'name';
  var sortAscending = true;
  var VERDICT_ORDER = { deny: 0, review: 1, unknown: 2, allow: 3 };

  function sortValue(row) {
    var d = row.dataset;
    switch (sortKey) {
      case 'bytes': return Number(d.bytes) || 0;
      case 'pulled': return Number(d.pulled) || 0;
      case 'served': return Number(d.served) || 0;
      case 'verdict': return VERDICT_ORDER[d.verdict] === undefined ? 2 : VERDICT_ORDER[d.verdict];
      default: return (d.name || '').toLowerCase();
    }
  }

  function applySort() {
    var reposBody = $('repos-body');
    if (!reposBody) return;
    var rows = Array.prototype.slice.call(reposBody.querySelectorAll('tr.repo'));
    rows.sort(function (a, b) {
      var x = sortValue(a);
      var y = sortValue(b);
      var order = x < y ? -1 : x > y ? 1 : 0;
      return sortAscending ? order : -order;
    });
    rows.forEach(function (row) { reposBody.appendChild(row); });
    var buttons = document.querySelectorAll('button.sort');
    for (var i = 0; i < buttons.length; i++) {
      var th = buttons[i].parentNode;
      if (buttons[i].dataset.key === sortKey) {
        th.setAttribute('aria-sort', sortAscending ? 'ascending' : 'descending');
      } else {
        th.removeAttribute('aria-sort');
      }
    }
    body.dataset.sort = sortKey + (sortAscending ? ' asc' : ' desc');
  }

  function setupRepos() {
    var box = $('q');
    if (!box) return;
    serverFiltered = box.value.trim() !== '';
    box.addEventListener('input', function () {
      var q = box.value.trim();
      history.replaceState(null, '', q ? '?q=' + encodeURIComponent(q) : location.pathname);
      if (serverFiltered) refreshRepos(); else applyFilter();
    });
    box.form.addEventListener('submit', function (event) {
      event.preventDefault();
      applyFilter();
    });
    ['f-verdict', 'f-pinned', 'f-tracked', 'f-size'].forEach(function (id) {
      $(id).addEventListener('change', function () {
        if (serverFiltered) refreshRepos(); else applyFilter();
      });
    });
    var buttons = document.querySelectorAll('button.sort');
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener('click', function (event) {
        var key = event.currentTarget.dataset.key;
        if (key === sortKey) {
          sortAscending = !sortAscending;
        } else {
          sortKey = key;
          // Biggest, newest and most doubtful first.
          sortAscending = key === 'name' || key === 'verdict';
        }
        applySort();
      });
    }
    // `#q=words` fills the box without a round trip to the server (rows a `?q=` left out on
    // the server are fetched first).
    if (location.hash.indexOf('#q=') === 0) {
      box.value = decodeURIComponent(location.hash.slice(3).replace(/\+/g, ' '));
      if (serverFiltered) refreshRepos();
    }
    applyFilter();
  }

  // ---- storage -----------------------------------------------------------------------------

  var SVG = 'http://www.w3.org/2000/svg';

  function svgEl(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function drawTraffic(samples) {
    var chart = $('traffic-chart');
    if (!chart) return;
    var W = 600, H = 160, L = 58, B = 20, T = 8;
    var nodes = [];
    var first = samples.length ? samples[0] : { at: 0, served: 0, fetched: 0 };
    var last = samples.length ? samples[samples.length - 1] : first;
    var span = Math.max(1, last.at - first.at);
    var top = 1;
    samples.forEach(function (s) {
      top = Math.max(top, s.served - first.served, s.fetched - first.fetched);
    });
    nodes.push(svgEl('line', { x1: L, y1: H - B, x2: W, y2: H - B, class: 'axis' }));
    nodes.push(svgEl('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' }));
    nodes.push(svgEl('text', { x: 2, y: T + 10, class: 'tick' }, humanBytes(top)));
    nodes.push(svgEl('text', { x: 2, y: H - B, class: 'tick' }, '0'));
    nodes.push(svgEl('text', { x: L, y: H - 4, class: 'tick' }, samples.length > 1 ? ago(first.at) : 'since start'));
    nodes.push(svgEl('text', { x: W - 30, y: H - 4, class: 'tick' }, 'now'));
    ['served', 'fetched'].forEach(function (key) {
      var points = samples.map(function (s) {
        var x = L + (W - L - 4) * (s.at - first.at) / span;
        var y = (H - B) - (H - B - T) * (s[key] - first[key]) / top;
        return x.toFixed(1) + ',' + y.toFixed(1);
      });
      if (points.length === 1) points.push((W - 4) + ',' + points[0].split(',')[1]);
      nodes.push(svgEl('polyline', { points: points.join(' '), class: 'series ' + key }));
    });
    chart.replaceChildren.apply(chart, nodes);
    var served = last.served - first.served;
    var fetched = last.fetched - first.fetched;
    $('traffic-text').textContent = 'Since ' + (samples.length > 1 ? ago(first.at) : 'start') + ': ' +
      humanBytes(served) + ' served, ' + humanBytes(fetched) + ' fetched upstream' +
      (served > fetched ? ' — the cache saved ' + humanBytes(served - fetched) + '.' : '.');
  }

  function loadStorage() {
    if (!$('storage-used')) return Promise.resolve();
    return api('GET', '/v1/storage').then(function (s) {
      var text = humanBytes(s.used) + ' held';
      var fill = $('storage-bar');
      if (s.quota) {
        var share = Math.min(1, s.used / s.quota);
        text += ' of a ' + humanBytes(s.quota) + ' quota (' + Math.round(100 * share) + '%)';
        fill.style.width = (100 * share).toFixed(1) + '%';
        fill.classList.toggle('over', s.used > s.quota);
      } else {
        text += ' · no quota set';
        fill.style.width = '0';
      }
      $('storage-used').textContent = text;
      var list = $('pinned-list');
      var items = document.createDocumentFragment();
      if (!s.pinned.length) items.appendChild(el('li', 'none', 'Nothing pinned.'));
      s.pinned.forEach(function (p) {
        var li = el('li');
        var a = el('a', null, p.repo);
        a.href = repoHref(p.kind, p.repo);
        li.appendChild(a);
        li.append(' ');
        li.appendChild(el('code', null, p.commit.slice(0, 12)));
        li.append(' ' + (p.refs.length ? '(' + p.refs.join(', ') + ') ' : '') + humanBytes(p.bytes));
        items.appendChild(li);
      });
      list.replaceChildren(items);
      drawTraffic(s.traffic);
    }).catch(function (error) {
      $('storage-used').textContent = 'Storage unavailable: ' + error.message;
    });
  }

  // ---- admin: session and actions -----------------------------------------------------------

  function setupSession() {
    var form = $('signin');
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var value = $('admin-token').value.trim();
      try { sessionStorage.setItem(TOKEN_KEY, value); } catch (e) { /* private mode */ }
      $('admin-token').value = '';
      checkSession(true);
    });
    $('signout').addEventListener('click', function () {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
      location.reload();
    });
    checkSession(false);
  }

  function checkSession(asked) {
    api('GET', '/v1/session').then(function (session) {
      admin = !!session.admin;
      body.dataset.admin = String(admin);
      $('signin').hidden = admin;
      $('session').hidden = !admin;
      if (admin) {
        $('session-text').textContent = token() ? 'Signed in as admin' : 'Admin (this machine)';
        showActions();
      } else if (asked) {
        say('That token is not an admin token of this mirror.');
      }
    }).catch(function (error) { say('Session unknown: ' + error.message); });
  }

  function showActions() {
    renderJobs();
    if (page === 'overview') {
      var place = $('job-actions');
      place.replaceChildren(
        actionForm('pull-form', 'Pull a repo', [
          { name: 'repo', label: 'Repo', placeholder: 'org/name', required: true },
          { name: 'revision', label: 'Revision', value: 'main' },
          { name: 'type', label: 'Type', options: ['model', 'dataset'] }
        ], 'Pull', function (v) {
          return api('POST', '/v1/jobs', { kind: 'pull', repo: v.repo, revision: v.revision || 'main', type: v.type })
            .then(function (r) { loadJobs(); return 'queued job ' + r.id; });
        }),
        convertForm('')
      );
      $('nav-reviews').hidden = false;
      $('reviews-section').hidden = false;
      loadReviews();
    } else if (page === 'repo') {
      repoActions();
    }
  }

  function convertForm(repo) {
    return actionForm('convert-form', 'Convert a held model', [
      { name: 'repo', label: 'Repo', placeholder: 'org/name', required: true, value: repo },
      { name: 'revision', label: 'Revision', value: 'main' },
      { name: 'to', label: 'To', options: ['gguf', 'safetensors'] },
      { name: 'type', label: 'GGUF type or dtype', value: 'q8_0' }
    ], 'Convert', function (v) {
      var spec = { kind: 'convert', repo: v.repo, revision: v.revision || 'main', to: v.to };
      if (v.to === 'gguf') spec.type = v.type; else spec.dtype = v.type;
      return api('POST', '/v1/jobs', spec).then(function (r) { loadJobs(); return 'queued job ' + r.id; });
    });
  }

  function loadReviews() {
    var place = $('reviews');
    if (!admin || !place) return;
    api('GET', '/v1/licence-reviews').then(function (queue) {
      var fragment = document.createDocumentFragment();
      if (!queue.length) fragment.appendChild(el('p', 'status', 'No licence waits for a review.'));
      queue.forEach(function (item) {
        var card = el('article', 'review');
        card.dataset.repo = item.repo;
        var title = el('h3');
        var link = el('a', null, item.repo);
        link.href = repoHref(item.type, item.repo);
        title.appendChild(link);
        card.appendChild(title);
        var what = el('p', null, 'Licence ');
        what.appendChild(el('strong', 'licence-id', item.licence.id));
        if (item.licence.name) what.append(' (' + item.licence.name + ')');
        what.append(' at ');
        what.appendChild(el('code', null, item.commit.slice(0, 12)));
        card.appendChild(what);
        if (item.licence.reasons.length) card.appendChild(el('p', 'status', item.licence.reasons.join('; ')));
        var label = el('label', 'field');
        label.appendChild(el('span', null, 'Note (kept in the audit log)'));
        var note = el('input', 'note');
        note.type = 'text';
        note.maxLength = 2000;
        label.appendChild(note);
        card.appendChild(label);
        ['accept', 'deny'].forEach(function (decision) {
          var button = actionButton(decision === 'accept' ? 'Accept' : 'Deny', null, function () {
            return api('POST', '/v1/licence-reviews', {
              repo: item.repo, revision: item.commit, type: item.type,
              decision: decision, note: note.value
            }).then(function () {
              say(item.repo + ': licence ' + (decision === 'accept' ? 'accepted' : 'denied'));
              loadReviews();
              refreshRepos();
            });
          });
          button.classList.add(decision);
          card.appendChild(button);
        });
        fragment.appendChild(card);
      });
      place.replaceChildren(fragment);
      body.dataset.reviews = String(queue.length);
    }).catch(function (error) { place.textContent = 'Reviews unavailable: ' + error.message; });
  }

  function repoActions() {
    var kind = body.dataset.kind;
    var name = body.dataset.name;
    var rows = document.querySelectorAll('tr.revision');
    for (var i = 0; i < rows.length; i++) {
      (function (row) {
        var commit = row.dataset.commit;
        var pinned = row.dataset.pinned === 'true';
        var cell = row.querySelector('.row-actions');
        var button = actionButton(pinned ? 'Unpin' : 'Pin', null, function () {
          var done = pinned
            ? api('DELETE', '/v1/pins/' + revisionPath(kind, name, commit))
            : api('POST', '/v1/pins', { repo: name, revision: commit, type: kind });
          return done.then(function (outcome) {
            pinned = outcome.pinned;
            row.dataset.pinned = String(pinned);
            row.querySelector('.pin-state').textContent = pinned ? 'pinned' : '';
            button.textContent = pinned ? 'Unpin' : 'Pin';
            button.disabled = false;
            say(name + '@' + commit.slice(0, 12) + (pinned ? ' pinned' : ' unpinned'));
          });
        });
        button.classList.add('pin');
        button.setAttribute('aria-label', (pinned ? 'Unpin ' : 'Pin ') + commit.slice(0, 12));
        cell.replaceChildren(button);
      })(rows[i]);
    }
    var place = $('repo-actions');
    place.replaceChildren(
      actionForm('track-form', 'Track a ref', [
        { name: 'ref', label: 'Branch or tag', value: 'main' },
        { name: 'every', label: 'Every', value: '6h' }
      ], 'Track', function (v) {
        return api('POST', '/v1/tracked', { repo: name, ref: v.ref || 'main', type: kind, every: v.every || '6h' })
          .then(function (r) { return 'tracking ' + r.ref; });
      }),
      actionForm('repo-pull-form', 'Pull again', [
        { name: 'revision', label: 'Revision', value: 'main' }
      ], 'Pull', function (v) {
        return api('POST', '/v1/jobs', { kind: 'pull', repo: name, revision: v.revision || 'main', type: kind })
          .then(function (r) { return 'queued job ' + r.id; });
      }),
      convertForm(name)
    );
  }

  // ---- start -------------------------------------------------------------------------------

  setupRepos();
  refreshTimes();
  setInterval(refreshTimes, 30000);
  setupSession();
  if ($('jobs-body')) loadJobs();
  loadStorage();
  if ($('storage-used')) setInterval(loadStorage, 10000);
  openStream();
})();
